//! The store's writer: one thread that runs commits, kept off the caller's CPU.
//!
//! A join hands its commit to this thread and goes on with its kernel work on the
//! runtime worker; the two only overlap when they run on different CPUs. The
//! scheduler tends to put a thread on the CPU of whoever woke it, and there the
//! writer preempts the kernel work instead, so the join takes their sum. So before
//! each hand-over the writer's CPU mask leaves out the CPU the caller is on (one
//! `sched_setaffinity` when that CPU changes; nothing on a single-CPU machine).
//! Measured on a 2-vCPU VM: the server's attach time 0.70-0.96 ms without, 0.56-0.65
//! with (see docs/benchmarks.md).

use crate::store::StoreError;
use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// The writer thread and what it may run on.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    tid: Pid,
    /// The CPUs the process may use (its mask when the writer started).
    allowed: CpuSet,
    /// The CPU left out of the writer's mask now (`usize::MAX`: none).
    avoided: AtomicUsize,
}

impl Writer {
    /// Start the thread.
    pub(crate) fn start() -> Result<Writer, StoreError> {
        let allowed = sched_getaffinity(Pid::from_raw(0)).map_err(|_| StoreError::Writer)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let (tid_tx, tid_rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("netd-store-writer".into())
            .spawn(move || {
                let _ = tid_tx.send(nix::unistd::gettid());
                for job in queue {
                    // A panicking commit fails its caller (its answer channel is
                    // dropped), not every commit after it.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })
            .map_err(|_| StoreError::Writer)?;
        let tid = tid_rx.recv().map_err(|_| StoreError::Writer)?;
        Ok(Writer {
            jobs,
            tid,
            allowed,
            avoided: AtomicUsize::new(usize::MAX),
        })
    }

    /// Run `f` on the writer thread; `None` if it panicked.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        self.keep_off_this_cpu();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .ok()?;
        rx.await.ok()
    }

    /// Leave the caller's CPU out of the writer's mask, if there is another.
    fn keep_off_this_cpu(&self) {
        let Ok(cpu) = sched_getcpu() else { return };
        if self.avoided.swap(cpu, Ordering::Relaxed) == cpu {
            return;
        }
        let mut mask = self.allowed;
        if mask.unset(cpu).is_err() {
            return;
        }
        let others = (0..CpuSet::count()).any(|c| mask.is_set(c).unwrap_or(false));
        let mask = if others { mask } else { self.allowed };
        // A hint: if it fails, the writer runs wherever the scheduler puts it.
        let _ = sched_setaffinity(self.tid, &mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_survives_a_panicking_one() {
        let w = Writer::start().unwrap();
        assert_eq!(w.run(|| 1 + 1).await, Some(2));
        assert_eq!(w.run(|| -> u8 { panic!("a failing commit") }).await, None);
        assert_eq!(w.run(|| "still there").await, Some("still there"));
    }

    #[tokio::test]
    async fn stays_off_the_callers_cpu_when_there_is_another() {
        let w = Writer::start().unwrap();
        let on_writer = w
            .run(|| sched_getaffinity(Pid::from_raw(0)).unwrap())
            .await
            .unwrap();
        let cpu = w.avoided.load(Ordering::Relaxed);
        let allowed = (0..CpuSet::count())
            .filter(|c| w.allowed.is_set(*c).unwrap_or(false))
            .count();
        if allowed > 1 {
            assert!(
                !on_writer.is_set(cpu).unwrap(),
                "the writer may run on CPU {cpu}, the caller's"
            );
        } else {
            assert_eq!(on_writer, w.allowed);
        }
    }
}
