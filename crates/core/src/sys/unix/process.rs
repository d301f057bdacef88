//! Who a process is (pid, start time, pid namespace) and whether it still runs: what a segment's
//! header records of its owner, and what the locks of `sync` record of their holders.

use rustix::io::Errno;

use super::os::{pid_namespace, start_time};

/// Who this process is: pid, start time, pid namespace.
pub(crate) fn current_process() -> (u32, u64, u64) {
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    (pid, start_time(pid).unwrap_or(0), pid_namespace())
}

/// Whether the process that created a segment still runs: `None` when this process cannot
/// tell (another pid namespace), which callers treat as alive.
pub(crate) fn owner_alive(pid: u32, start: u64, pidns: u64) -> Option<bool> {
    let ours = pid_namespace();
    if pidns != 0 && ours != 0 && pidns != ours {
        return None;
    }
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Some(false);
    };
    match rustix::process::test_kill_process(p) {
        Ok(()) | Err(Errno::PERM) => {}
        Err(Errno::SRCH) => return Some(false),
        Err(_) => return None,
    }
    // A live pid with another start time is a reused pid: the owner is gone.
    match start_time(pid) {
        Some(now) if start != 0 => Some(now == start),
        _ => Some(true),
    }
}
