//! Gratuitous ARP for new interfaces, once their bridge port forwards.
//!
//! The announcement the kernel sends when an interface comes up is lost: the
//! bridge port starts forwarding only once the kernel's link watcher has seen the
//! carrier, up to a second later. So one background task watches the host ends of
//! new interfaces and, once one is operationally up, sets the interface's MAC
//! again, which (with `arp_notify`) sends the announcement through a forwarding
//! port. One long-lived task rather than one per join: a join only queues its
//! interface, with no task to spawn and no worker thread to wake on the way to
//! its answer. Best effort: a sandbox gone in the meantime just drops out.

use crate::netlink::{Mac, Netlink};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often the host ends are looked at.
const POLL: Duration = Duration::from_millis(50);
/// The bridge reacts to the same carrier event; give it a moment.
const SETTLE: Duration = Duration::from_millis(20);
/// Give up on an interface whose port is not up by then.
const GIVE_UP: Duration = Duration::from_secs(3);

/// An interface waiting for its announcement.
pub struct Pending {
    /// The namespace of the host end.
    pub host_nl: Netlink,
    /// The host end's name.
    pub host: String,
    /// The sandbox's namespace.
    pub inside: Netlink,
    /// The interface's index in it.
    pub index: u32,
    /// Its MAC, set again to announce it.
    pub mac: Mac,
}

/// The queue and its task (started with the first interface).
#[derive(Default)]
pub struct Announcer {
    queue: Mutex<Vec<(Pending, Instant)>>,
    wake: Notify,
    task: OnceLock<()>,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("waiting", &self.lock().len())
            .finish()
    }
}

impl Announcer {
    /// Announce `p` once its port forwards. Needs a tokio runtime.
    pub fn announce(self: &Arc<Self>, p: Pending) {
        let was_empty = {
            let mut queue = self.lock();
            queue.push((p, Instant::now() + GIVE_UP));
            queue.len() == 1
        };
        self.task.get_or_init(|| {
            tokio::spawn(Arc::clone(self).run());
        });
        // A busy task finds the new entry at its next look on its own.
        if was_empty {
            self.wake.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(Pending, Instant)>> {
        // Pushes and takes: a panic cannot leave the queue half-changed.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(self: Arc<Self>) {
        loop {
            if self.lock().is_empty() {
                self.wake.notified().await;
            }
            tokio::time::sleep(POLL).await;
            let now = Instant::now();
            let mut ready = Vec::new();
            let mut waiting = Vec::new();
            let due = std::mem::take(&mut *self.lock());
            for (p, deadline) in due {
                match p.host_nl.link(&p.host).await {
                    Ok(Some(link)) if link.oper_up => ready.push(p),
                    Ok(Some(_)) if now < deadline => waiting.push((p, deadline)),
                    _ => {}
                }
            }
            self.lock().extend(waiting);
            if ready.is_empty() {
                continue;
            }
            tokio::time::sleep(SETTLE).await;
            for p in ready {
                if let Err(e) = p.inside.set_mac(p.index, p.mac).await {
                    tracing::debug!(link = %p.host, error = %e, "no gratuitous ARP");
                }
            }
        }
    }
}
