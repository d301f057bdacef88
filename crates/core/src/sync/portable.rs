//! The platform layer where no kernel wait across processes is used: waiters poll the word (see
//! `poll.rs`). A change made by another process is seen within about `MAX_NAP`, a long wait
//! costs about 500 short wake-ups a second, and `wake` cannot count waiters (it returns 0).
//!
//! Windows is one such system: `WaitOnAddress` wakes only threads of the process that calls it,
//! and named kernel objects per word would cost a handle and a system call on every notify even
//! with nobody waiting. Unix systems other than Linux and macOS are the others.

use std::time::Duration;

use super::{local_threads, WaitResult};

pub(super) fn kernel_waits() -> bool {
    false
}

pub(super) fn park32(
    _addr: *const u32,
    _expected: u32,
    _timeout: Option<Duration>,
) -> Option<WaitResult> {
    None
}

pub(super) fn park64(
    _addr: *const u64,
    _expected: u64,
    _timeout: Option<Duration>,
) -> Option<WaitResult> {
    None
}

pub(super) fn wake32(_addr: *const u32, _count: u32) -> usize {
    0
}

pub(super) fn wake64(_addr: *const u64, _low: *const u32, _count: u32) -> usize {
    0
}

pub(super) fn thread_id() -> u32 {
    local_threads::id()
}

pub(super) fn process() -> (u32, u64, u64) {
    crate::sys::current_process()
}

/// Judged by the process's start (creation) time, so a reused pid is not taken for the holder.
pub(super) fn process_alive(pid: u32, start: u64, pidns: u64) -> Option<bool> {
    crate::sys::owner_alive(pid, start, pidns)
}

/// Threads of this process are known; another process's threads only through their process.
pub(super) fn thread_alive(pid: u32, thread: u32) -> Option<bool> {
    (pid == std::process::id()).then(|| local_threads::alive(thread))
}

/// `std::thread::sleep` uses a high-resolution timer (on Windows too), so sleeps well under a
/// millisecond work.
pub(super) fn nap(d: Duration) {
    std::thread::sleep(d);
}
