//! macOS: `os_sync_wait_on_address` and `os_sync_wake_by_address_*` (macOS 14.4 and later) with
//! their SHARED flags, which key a wait by the memory object rather than by this process. They
//! are looked up at run time, so the same binary runs on older macOS, which polls instead.

use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;
use std::time::Duration;

use super::{local_threads, Deadline, WaitResult};

type WaitFn = unsafe extern "C" fn(*mut c_void, u64, usize, u32) -> c_int;
type WaitTimeoutFn = unsafe extern "C" fn(*mut c_void, u64, usize, u32, u32, u64) -> c_int;
type WakeFn = unsafe extern "C" fn(*mut c_void, usize, u32) -> c_int;

/// OS_SYNC_WAIT_ON_ADDRESS_SHARED and OS_SYNC_WAKE_BY_ADDRESS_SHARED.
const SHARED: u32 = 1;
/// OS_CLOCK_MACH_ABSOLUTE_TIME: the clock of a timeout given in nanoseconds.
const MACH_ABSOLUTE_TIME: u32 = 32;
/// A `wake` of every waiter wakes them one by one to count them, up to this many.
const COUNTED_WAKES: u32 = 4096;

struct OsSync {
    wait: WaitFn,
    wait_timeout: WaitTimeoutFn,
    wake_any: WakeFn,
    wake_all: WakeFn,
}

fn os_sync() -> Option<&'static OsSync> {
    static FNS: OnceLock<Option<OsSync>> = OnceLock::new();
    FNS.get_or_init(|| {
        let sym = |name: &CStr| {
            // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks a symbol up.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            (!p.is_null()).then_some(p)
        };
        let wait = sym(c"os_sync_wait_on_address")?;
        let wait_timeout = sym(c"os_sync_wait_on_address_with_timeout")?;
        let wake_any = sym(c"os_sync_wake_by_address_any")?;
        let wake_all = sym(c"os_sync_wake_by_address_all")?;
        // SAFETY: these are the functions of <os/os_sync_wait_on_address.h>, whose C signatures
        // the types above spell out.
        unsafe {
            Some(OsSync {
                wait: std::mem::transmute::<*mut c_void, WaitFn>(wait),
                wait_timeout: std::mem::transmute::<*mut c_void, WaitTimeoutFn>(wait_timeout),
                wake_any: std::mem::transmute::<*mut c_void, WakeFn>(wake_any),
                wake_all: std::mem::transmute::<*mut c_void, WakeFn>(wake_all),
            })
        }
    })
    .as_ref()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub(super) fn kernel_waits() -> bool {
    os_sync().is_some()
}

fn park(
    addr: *const c_void,
    size: usize,
    expected: u64,
    timeout: Option<Duration>,
) -> Option<WaitResult> {
    let f = os_sync()?;
    let deadline = Deadline::after(timeout);
    loop {
        let Some(left) = deadline.left() else {
            return Some(WaitResult::TimedOut);
        };
        // SAFETY: the kernel compares the word itself (EFAULT if unmapped); size is 4 or 8 and
        // matches the word; the flags and clock are the documented constants.
        let r = unsafe {
            match left {
                None => (f.wait)(addr.cast_mut(), expected, size, SHARED),
                Some(d) => (f.wait_timeout)(
                    addr.cast_mut(),
                    expected,
                    size,
                    SHARED,
                    MACH_ABSOLUTE_TIME,
                    d.as_nanos().clamp(1, u128::from(u64::MAX)) as u64,
                ),
            }
        };
        if r >= 0 {
            return Some(WaitResult::Ok);
        }
        match errno() {
            libc::EINTR => continue,
            libc::ETIMEDOUT => return Some(WaitResult::TimedOut),
            _ => return Some(WaitResult::Ok),
        }
    }
}

pub(super) fn park32(
    addr: *const u32,
    expected: u32,
    timeout: Option<Duration>,
) -> Option<WaitResult> {
    park(addr.cast(), 4, u64::from(expected), timeout)
}

pub(super) fn park64(
    addr: *const u64,
    expected: u64,
    timeout: Option<Duration>,
) -> Option<WaitResult> {
    park(addr.cast(), 8, expected, timeout)
}

fn wake(addr: *const c_void, size: usize, count: u32) -> usize {
    let Some(f) = os_sync() else { return 0 };
    let mut woken = 0;
    while woken < count.min(COUNTED_WAKES) {
        // SAFETY: the kernel looks the waiters of this address up; it never touches the word.
        if unsafe { (f.wake_any)(addr.cast_mut(), size, SHARED) } != 0 {
            return woken as usize;
        }
        woken += 1;
    }
    if count > COUNTED_WAKES {
        // SAFETY: as above.
        unsafe { (f.wake_all)(addr.cast_mut(), size, SHARED) };
    }
    woken as usize
}

pub(super) fn wake32(addr: *const u32, count: u32) -> usize {
    wake(addr.cast(), 4, count)
}

pub(super) fn wake64(addr: *const u64, _low: *const u32, count: u32) -> usize {
    wake(addr.cast(), 8, count)
}

pub(super) fn thread_id() -> u32 {
    local_threads::id()
}

pub(super) fn process() -> (u32, u64, u64) {
    crate::sys::current_process()
}

/// Alive unless gone, reused (another start time) or a zombie waiting for its parent.
pub(super) fn process_alive(pid: u32, start: u64, pidns: u64) -> Option<bool> {
    match crate::sys::owner_alive(pid, start, pidns) {
        Some(true) => Some(!zombie(pid)),
        other => other,
    }
}

fn zombie(pid: u32) -> bool {
    const SZOMB: u32 = 5;
    // SAFETY: proc_pidinfo writes at most `size` bytes into `info`, a plain C struct for which
    // all-zero bytes are a valid value.
    unsafe {
        let mut info: libc::proc_bsdinfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as c_int;
        let n = libc::proc_pidinfo(
            pid as c_int,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        );
        n == size && info.pbi_status == SZOMB
    }
}

/// Threads of this process are known; another process's threads only through their process.
pub(super) fn thread_alive(pid: u32, thread: u32) -> Option<bool> {
    (pid == std::process::id()).then(|| local_threads::alive(thread))
}

pub(super) fn nap(d: Duration) {
    std::thread::sleep(d);
}
