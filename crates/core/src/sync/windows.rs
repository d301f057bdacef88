//! Windows: `WaitOnAddress` wakes only threads of the process that calls it, and named kernel
//! objects per word would cost a handle and a system call on every notify even with nobody
//! waiting. So waiters poll the word (see `poll.rs`): a change made by another process is seen
//! within about `MAX_NAP`, a long wait costs about 500 short wake-ups a second, and `wake`
//! cannot count waiters (it returns 0). Holders are judged alive by their process handle and
//! creation time.

use std::time::Duration;

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_INVALID_PARAMETER, FILETIME, STILL_ACTIVE,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentProcessId, GetExitCodeProcess, GetProcessTimes, OpenProcess,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

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

fn creation_time(process: windows_sys::Win32::Foundation::HANDLE) -> u64 {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: `process` is a valid process handle with query rights; the four FILETIMEs are
    // written by the call.
    let ok = unsafe { GetProcessTimes(process, &mut created, &mut exited, &mut kernel, &mut user) };
    if ok == 0 {
        return 0;
    }
    (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime)
}

pub(super) fn process() -> (u32, u64, u64) {
    // SAFETY: no preconditions; the pseudo handle needs no closing.
    let (pid, me) = unsafe { (GetCurrentProcessId(), GetCurrentProcess()) };
    (pid, creation_time(me), 0)
}

pub(super) fn process_alive(pid: u32, start: u64, _pidns: u64) -> Option<bool> {
    // SAFETY: OpenProcess only looks the pid up; the handle is closed below.
    let h = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if h.is_null() {
        // SAFETY: reads this thread's last error, set by the call above.
        return match unsafe { GetLastError() } {
            ERROR_INVALID_PARAMETER => Some(false),
            _ => None,
        };
    }
    let mut code = 0u32;
    // SAFETY: `h` is a process handle with query rights; `code` receives its exit code.
    let ok = unsafe { GetExitCodeProcess(h, &mut code) };
    let created = creation_time(h);
    // SAFETY: `h` is ours and closed once.
    unsafe { CloseHandle(h) };
    if ok == 0 {
        return None;
    }
    if code != STILL_ACTIVE as u32 {
        return Some(false);
    }
    // A live pid with another creation time is a reused pid: the holder is gone.
    Some(start == 0 || created == 0 || created == start)
}

pub(super) fn thread_alive(pid: u32, thread: u32) -> Option<bool> {
    // SAFETY: no preconditions.
    let me = unsafe { GetCurrentProcessId() };
    (pid == me).then(|| local_threads::alive(thread))
}

/// `std::thread::sleep` uses a high-resolution timer, so sleeps well under a millisecond work.
pub(super) fn nap(d: Duration) {
    std::thread::sleep(d);
}
