//! Who a process is (pid, start time, pid namespace) and whether it still runs: what a segment's
//! header records of its owner, and what the locks of `sync` record of their holders.

use rustix::io::Errno;

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

/// A process's start time (clock ticks since boot), from `/proc/<pid>/task/<pid>/stat`: qemu-user
/// fakes `/proc/<pid>/stat` for the processes it runs (a few ticks off, different per thread),
/// but passes the task's stat through unchanged.
#[cfg(target_os = "linux")]
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(target_os = "linux")]
pub(crate) fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0)
}

#[cfg(target_os = "macos")]
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    // SAFETY: proc_pidinfo writes at most `size` bytes into `info`, a plain C struct for which
    // all-zero bytes are a valid value.
    unsafe {
        let mut info: libc::proc_bsdinfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
        let n = libc::proc_pidinfo(
            pid as libc::c_int,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        );
        (n == size).then(|| info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec)
    }
}

#[cfg(target_os = "macos")]
pub(crate) fn pid_namespace() -> u64 {
    0
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) fn start_time(_pid: u32) -> Option<u64> {
    None
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) fn pid_namespace() -> u64 {
    0
}
