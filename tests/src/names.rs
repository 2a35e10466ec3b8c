//! Names for the objects a test makes: unique across threads and processes running at
//! once, and traceable to the process that made them so stale ones can be swept.

use std::sync::atomic::{AtomicU32, Ordering};

/// Every harness object's name starts with this.
pub(crate) const PREFIX: &str = "ndt";

/// A fresh name, `ndt<pid>x<n>`: at most 16 characters, so it also fits a link name
/// (15) once shortened by the caller, and a unix socket path under `/tmp`.
pub fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}x{n}", std::process::id())
}

/// The pid of the process that made `name`, if it is one of ours.
pub(crate) fn owner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, n) = rest.split_once('x')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_traceable() {
        let a = unique_name();
        let b = unique_name();
        assert_ne!(a, b);
        assert_eq!(owner_pid(&a), Some(std::process::id() as i32));
        assert_eq!(owner_pid("ndtx1"), None);
        assert_eq!(owner_pid("other12x1"), None);
        assert_eq!(owner_pid("ndt12xq"), None);
    }
}
