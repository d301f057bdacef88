//! Who a process is (pid, start time, pid namespace) and whether it still runs: what a segment's
//! header records of its owner, and what the locks of `sync` record of their holders.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rustix::io::Errno;

use super::os::{pid_namespace, start_time};

/// This process's pid.
pub(crate) fn current_pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Who this process is: pid, start time, pid namespace. The start time and namespace are read
/// from `/proc` once per process, since neither changes while it runs: they are kept with the
/// pid they were read for, so a forked child (another pid) reads its own.
pub(crate) fn current_process() -> (u32, u64, u64) {
    static PID: AtomicU32 = AtomicU32::new(0);
    static START: AtomicU64 = AtomicU64::new(0);
    static PIDNS: AtomicU64 = AtomicU64::new(0);
    let pid = current_pid();
    // Acquire pairs with the Release below: a pid seen here comes with the start time and
    // namespace stored before it. Threads that race both store the same values.
    if PID.load(Ordering::Acquire) == pid {
        return (
            pid,
            START.load(Ordering::Relaxed),
            PIDNS.load(Ordering::Relaxed),
        );
    }
    let (start, pidns) = (start_time(pid).unwrap_or(0), pid_namespace());
    if start != 0 {
        START.store(start, Ordering::Relaxed);
        PIDNS.store(pidns, Ordering::Relaxed);
        PID.store(pid, Ordering::Release);
    }
    (pid, start, pidns)
}

/// Whether the process that created a segment still runs: `None` when this process cannot
/// tell (another pid namespace), which callers treat as alive.
pub(crate) fn owner_alive(pid: u32, start: u64, pidns: u64) -> Option<bool> {
    let (_, _, ours) = current_process();
    if pidns != 0 && ours != 0 && pidns != ours {
        return None;
    }
    // The start time answers both questions in one read where it can be had: a pid with no
    // stat is gone (or hidden: then `kill` is asked), and a live pid with another start time is
    // a reused pid, whose owner is gone.
    if let Some(now) = start_time(pid) {
        return Some(start == 0 || now == start);
    }
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Some(false);
    };
    match rustix::process::test_kill_process(p) {
        Ok(()) | Err(Errno::PERM) => Some(true),
        Err(Errno::SRCH) => Some(false),
        Err(_) => None,
    }
}
