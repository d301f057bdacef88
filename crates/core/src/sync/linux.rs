//! Linux: shared futexes. No `FUTEX_PRIVATE_FLAG` anywhere, so the kernel keys every wait by the
//! page it is on, and processes that map a segment at different addresses meet on it. Nothing
//! here reads a word in user space: the kernel compares it, and answers `EFAULT` for memory that
//! is not mapped.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use super::{Deadline, WaitResult};

const FUTEX_WAIT: libc::c_int = 0;
const FUTEX_WAKE: libc::c_int = 1;
const FUTEX_PRIVATE_FLAG: libc::c_int = 128;
/// `futex_waitv` flags of a 32-bit futex (FUTEX2_SIZE_U32), shared (no FUTEX2_PRIVATE).
const FUTEX2_SIZE_U32: u32 = 2;
/// `futex_waitv` flag of a word only this process waits on and wakes (a watcher's control word).
const FUTEX2_PRIVATE: u32 = 128;
/// The most words one `futex_waitv` call takes (FUTEX_WAITV_MAX).
pub(super) const WAITV_MAX: usize = 128;

#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// Set once `futex_waitv` answered ENOSYS (Linux before 5.16).
static NO_WAITV: AtomicBool = AtomicBool::new(false);

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

pub(super) fn kernel_waits() -> bool {
    true
}

pub(super) fn park32(
    addr: *const u32,
    expected: u32,
    timeout: Option<Duration>,
) -> Option<WaitResult> {
    let deadline = Deadline::after(timeout);
    loop {
        let Some(left) = deadline.left() else {
            return Some(WaitResult::TimedOut);
        };
        let ts = left.map(timespec);
        // SAFETY: FUTEX_WAIT reads the word in the kernel only (EFAULT if unmapped) and the time
        // is null or points into `ts`, which outlives the call; the last two arguments are unused.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                addr,
                FUTEX_WAIT,
                expected,
                or_null(&ts),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if r == 0 {
            return Some(WaitResult::Ok);
        }
        match errno() {
            libc::EINTR => continue,
            libc::ETIMEDOUT => return Some(WaitResult::TimedOut),
            // EAGAIN: the word no longer held `expected` (it changed since the caller looked).
            // EFAULT: the memory is gone; the caller finds out when it looks.
            _ => return Some(WaitResult::Ok),
        }
    }
}

/// Both halves of a 64-bit word at once, with `futex_waitv`; `None` where the kernel lacks it.
pub(super) fn park64(
    addr: *const u64,
    expected: u64,
    timeout: Option<Duration>,
) -> Option<WaitResult> {
    if NO_WAITV.load(Relaxed) {
        return None;
    }
    let words = halves(addr as usize, expected);
    // One deadline for every retry: futex_waitv takes an absolute time.
    let end = deadline(timeout);
    loop {
        match waitv_until(&words, end) {
            Ok(_) => return Some(WaitResult::Ok),
            Err(libc::EINTR) => continue,
            Err(libc::ETIMEDOUT) => return Some(WaitResult::TimedOut),
            Err(libc::ENOSYS) => {
                NO_WAITV.store(true, Relaxed);
                return None;
            }
            // EAGAIN (a half changed) or EFAULT (unmapped): the caller looks again.
            Err(_) => return Some(WaitResult::Ok),
        }
    }
}

/// One word of a [`waitv`] call: sleep while the 32-bit word at `addr` holds `val`. `private`
/// for a word of this process's own memory that only its threads wake (with [`wake_private`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Watch {
    pub(super) addr: usize,
    pub(super) val: u32,
    pub(super) private: bool,
}

/// The halves of the 64-bit word at `addr` as two [`Watch`]es of `expected`'s halves.
pub(super) fn halves(addr: usize, expected: u64) -> [Watch; 2] {
    let (lo, hi) = if cfg!(target_endian = "little") {
        (addr, addr + 4)
    } else {
        (addr + 4, addr)
    };
    [
        Watch {
            addr: lo,
            val: expected as u32,
            private: false,
        },
        Watch {
            addr: hi,
            val: (expected >> 32) as u32,
            private: false,
        },
    ]
}

/// Sleeps on up to [`WAITV_MAX`] words at once, until one is woken (its index), a word does
/// not hold its value (`EAGAIN`, without saying which), one is not mapped (`EFAULT`, the same),
/// or `timeout` passes (`ETIMEDOUT`). The words are read by the kernel only.
pub(super) fn waitv(words: &[Watch], timeout: Option<Duration>) -> Result<usize, i32> {
    waitv_until(words, deadline(timeout))
}

/// [`waitv`] until an absolute time on the monotonic clock (`None`: no limit).
fn waitv_until(words: &[Watch], end: Option<libc::timespec>) -> Result<usize, i32> {
    if words.len() > WAITV_MAX {
        return Err(libc::EINVAL);
    }
    let list: Vec<FutexWaitv> = words
        .iter()
        .map(|w| FutexWaitv {
            val: u64::from(w.val),
            uaddr: w.addr as u64,
            flags: FUTEX2_SIZE_U32 | if w.private { FUTEX2_PRIVATE } else { 0 },
            reserved: 0,
        })
        .collect();
    // SAFETY: `list` is an array of futex_waitv structs laid out as the kernel expects, alive for
    // the call; the kernel reads the words themselves (EFAULT if unmapped), never this process.
    // The time is null or points into `end`, which outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            list.as_ptr(),
            list.len() as u32,
            0u32,
            or_null(&end),
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        Ok(r as usize)
    } else {
        Err(errno())
    }
}

/// The monotonic time `timeout` from now, as futex_waitv takes it; `None` for no limit (or one
/// past the clock's range).
fn deadline(timeout: Option<Duration>) -> Option<libc::timespec> {
    timeout
        .and_then(|t| monotonic_now().checked_add(t))
        .map(timespec)
}

/// The pointer a futex call takes for an optional time: null for none.
fn or_null(t: &Option<libc::timespec>) -> *const libc::timespec {
    t.as_ref().map_or(std::ptr::null(), |t| t as *const _)
}

fn monotonic_now() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `now`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Whether `futex_waitv` works here (Linux 5.16 and later, and not filtered out).
pub(super) fn waitv_works() -> bool {
    if NO_WAITV.load(Relaxed) {
        return false;
    }
    // A private word that does not hold the value asked: EAGAIN where the call exists.
    let probe = std::sync::atomic::AtomicU32::new(1);
    let w = Watch {
        addr: probe.as_ptr() as usize,
        val: 0,
        private: true,
    };
    match waitv(&[w], Some(Duration::ZERO)) {
        Err(libc::EAGAIN) => true,
        _ => {
            NO_WAITV.store(true, Relaxed);
            false
        }
    }
}

/// Whether the shared word at `addr` still holds `val`, asked of the kernel (a wait with a zero
/// timeout), so memory unmapped meanwhile answers `false` rather than faulting.
pub(super) fn still(addr: usize, val: u32) -> bool {
    let zero = timespec(Duration::ZERO);
    // SAFETY: as in park32: the kernel compares the word (EFAULT if unmapped); `zero` outlives
    // the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr as *const u32,
            FUTEX_WAIT,
            val,
            &zero as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    r != 0 && errno() == libc::ETIMEDOUT
}

/// Wakes the thread sleeping on a private word of this process (a watcher's control word).
pub(super) fn wake_private(addr: *const u32) {
    // SAFETY: FUTEX_WAKE never reads or writes the word; `addr` is a live word of this process.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}

pub(super) fn wake32(addr: *const u32, count: u32) -> usize {
    let n = count.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: FUTEX_WAKE only looks up the sleepers keyed by this address's page; it never reads
    // or writes the word, and answers EFAULT for an unmapped address.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    usize::try_from(r).unwrap_or(0)
}

/// 64-bit waiters sleep on both halves (futex_waitv) or on the low half: waking the low half
/// wakes them all.
pub(super) fn wake64(_addr: *const u64, low: *const u32, count: u32) -> usize {
    wake32(low, count)
}

pub(super) fn thread_id() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

pub(super) fn process() -> (u32, u64, u64) {
    crate::sys::current_process()
}

pub(super) fn process_alive(pid: u32, start: u64, pidns: u64) -> Option<bool> {
    crate::sys::owner_alive(pid, start, pidns)
}

pub(super) fn nap(d: Duration) {
    std::thread::sleep(d);
}
