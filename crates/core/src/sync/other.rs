//! Other Unix systems: no kernel wait across processes is used, so waiters poll.

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

pub(super) fn process_alive(pid: u32, start: u64, pidns: u64) -> Option<bool> {
    crate::sys::owner_alive(pid, start, pidns)
}

pub(super) fn thread_alive(pid: u32, thread: u32) -> Option<bool> {
    (pid == std::process::id()).then(|| local_threads::alive(thread))
}

pub(super) fn nap(d: Duration) {
    std::thread::sleep(d);
}
