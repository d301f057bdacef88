//! Synchronisation between the processes (and threads) that map a segment: sleeping on a word of
//! shared memory until another process notifies it, a robust mutex ([`RawMutex`]), a barrier
//! ([`RawBarrier`]), a condition variable ([`RawCondition`]), a counting semaphore
//! ([`RawSemaphore`]) and a bounded multi-producer multi-consumer channel ([`RawChannel`]), each
//! in a file of its own with its protocol and the memory order of its atomics.
//!
//! # Waiting on a word
//!
//! [`wait32`] and [`wait64`] sleep while a word holds an expected value, until [`wake32`] /
//! [`wake64`] on the same word (in any process that maps it) or a timeout ends the sleep: the
//! semantics of `Atomics.wait` and `Atomics.notify`, across processes. [`wait32_spinning`] and
//! [`wait64_spinning`], behind the public `wait`, first watch the word for up to [`WAIT_SPIN`]
//! where there is more than one CPU. Per platform:
//!
//! - **Linux**: `futex(FUTEX_WAIT)` / `futex(FUTEX_WAKE)` *without* `FUTEX_PRIVATE_FLAG`, so the
//!   kernel keys the sleep by the shared page rather than by this process's address space. Futexes
//!   are 32-bit: a 64-bit word is watched through both of its halves at once with `futex_waitv`
//!   (Linux 5.16 and later), and woken through its low half. On older kernels a 64-bit wait sleeps
//!   on the low half alone and re-reads the whole word every [`SLICE_64`], so a change confined to
//!   the high half that races with the sleep is seen within that time.
//! - **macOS 14.4 and later**: `os_sync_wait_on_address` with `OS_SYNC_WAIT_ON_ADDRESS_SHARED`
//!   (4 and 8 bytes), looked up at run time. Earlier macOS polls, as below.
//! - **Windows**: `WaitOnAddress` wakes only threads of one process, so a waiter polls the word:
//!   a short spin, a few yields, then sleeps that double from 50 µs up to [`MAX_NAP`]. A change
//!   made in another process is seen within about 2 ms, and a long wait costs about 500 short
//!   wake-ups a second. [`wake32`] cannot count pollers and returns 0 there.
//!
//! The kernel waits ([`park_async32`], [`park_async64`]) never read the word in user space: the
//! kernel compares it, and answers `EFAULT` rather than faulting if the memory is gone. That is
//! what lets a parked thread wait on behalf of JavaScript while JavaScript stays free to unmap.
//!
//! # Memory order
//!
//! Every load, store and read-modify-write here is sequentially consistent, and [`wake32`] /
//! [`wait32`] put a full fence before waking and after waking up: whatever a process wrote
//! before it woke a waiter is visible to that waiter once its wait returns `Ok`. [`RawMutex`]'s
//! `lock` is an acquire and `unlock` a release, and [`RawBarrier::wait`] is both, so plain
//! (non-atomic) writes made before them are visible after them, in every process.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

mod barrier;
mod channel;
mod condition;
mod mutex;
mod parker;
mod parties;
mod poll;
mod semaphore;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as os;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as os;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod portable;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
use portable as os;

pub use barrier::{Arrival, RawBarrier, BARRIER_PARTIES, BARRIER_SIZE};
pub use channel::{RawChannel, Received, CHANNEL_PARTIES, MAX_CAPACITY, MAX_MESSAGE};
pub use condition::{RawCondition, CONDITION_SIZE};
pub use mutex::{Acquired, RawMutex, MUTEX_SIZE};
pub use semaphore::{RawSemaphore, SEMAPHORE_PARTIES, SEMAPHORE_SIZE};

/// How often a 64-bit wait without `futex_waitv` re-reads its whole word (see the module docs).
pub const SLICE_64: Duration = Duration::from_millis(10);
/// The longest sleep between two looks at the word where waiting means polling.
pub const MAX_NAP: Duration = Duration::from_millis(2);

/// How a wait ended, with the names `Atomics.wait` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken by a notify, or the word changed while the waiter was going to sleep.
    Ok,
    /// The word did not hold the expected value when the wait began.
    NotEqual,
    /// The timeout passed first.
    TimedOut,
}

impl WaitResult {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitResult::Ok => "ok",
            WaitResult::NotEqual => "not-equal",
            WaitResult::TimedOut => "timed-out",
        }
    }
}

/// A point in time a wait must not outlast; none for a wait without a timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// `None` waits forever, and so does a timeout too large to add to the clock.
    pub(crate) fn after(timeout: Option<Duration>) -> Self {
        Deadline(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    /// The time left: `None` once it has passed, `Some(None)` when there is no deadline.
    pub(crate) fn left(&self) -> Option<Option<Duration>> {
        match self.0 {
            None => Some(None),
            Some(end) => {
                let now = Instant::now();
                (end > now).then(|| Some(end - now))
            }
        }
    }
}

/// How long [`wait32_spinning`] and [`wait64_spinning`] watch their word in user space before
/// they sleep. A sleeping waiter costs its waker a system call and itself a wake-up by the
/// kernel: tens of microseconds on a virtual machine whose idle CPU the host has to wake. A reply
/// that comes within this time is seen at once instead, by a waiter that is already running.
/// Waits that last longer pay this much CPU time once each, as the kernel's own idle polling
/// (`haltpoll`, 200 µs) does.
pub const WAIT_SPIN: Duration = Duration::from_micros(50);

/// How a spin ended: the wait is over, or it goes to sleep with the time left.
enum Spun {
    Ended(WaitResult),
    Sleep(Option<Duration>),
}

/// Whether watching a word can see another thread change it: not with one CPU, where the thread
/// that would change it cannot run while this one watches. Asked of the OS once per process.
fn spinning_pays() -> bool {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())) > 1
}

/// Watches `unchanged` for up to [`WAIT_SPIN`] or the timeout, whichever is first. A change seen
/// ends the wait with `Ok`, as a wake-up does (callers change the word before they notify); a
/// timeout shorter than the spin ends it with `TimedOut`.
fn spin_while(unchanged: impl Fn() -> bool, timeout: Option<Duration>) -> Spun {
    if !spinning_pays() || timeout == Some(Duration::ZERO) {
        return Spun::Sleep(timeout);
    }
    let start = Instant::now();
    let budget = timeout.map_or(WAIT_SPIN, |t| t.min(WAIT_SPIN));
    loop {
        // The clock is read once per 64 looks: a look costs a few nanoseconds, the clock more.
        for _ in 0..64 {
            if !unchanged() {
                return Spun::Ended(WaitResult::Ok);
            }
            std::hint::spin_loop();
        }
        let spent = start.elapsed();
        if spent >= budget {
            return match timeout {
                None => Spun::Sleep(None),
                Some(t) if t > spent => Spun::Sleep(Some(t - spent)),
                Some(_) => Spun::Ended(WaitResult::TimedOut),
            };
        }
    }
}

/// A wait that first watches: `NotEqual` if the word is not as expected now, else a spin (see
/// [`spin_while`]), then `park` with the time left. A change between the spin and the sleep
/// ends the wait as a change seen in the spin does, with `Ok`.
fn spin_then(
    unchanged: impl Fn() -> bool,
    timeout: Option<Duration>,
    park: impl FnOnce(Option<Duration>) -> WaitResult,
) -> WaitResult {
    if !unchanged() {
        return WaitResult::NotEqual;
    }
    match spin_while(&unchanged, timeout) {
        Spun::Ended(r) => {
            fence(SeqCst);
            r
        }
        Spun::Sleep(left) => match park(left) {
            WaitResult::NotEqual => WaitResult::Ok,
            r => r,
        },
    }
}

/// The address of the half of a 64-bit word that a notify of the word wakes: its low half.
fn low_half(addr: *const AtomicU64) -> *const AtomicU32 {
    if cfg!(target_endian = "little") {
        addr.cast()
    } else {
        addr.cast::<AtomicU32>().wrapping_add(1)
    }
}

/// Sleeps while the word at `addr` holds `expected`, until a [`wake32`] on it or the timeout.
///
/// # Safety
/// `addr` must point to an aligned 32-bit word that stays mapped for the whole call and that
/// other threads and processes access only atomically (as `Atomics` does in JavaScript).
///
/// # Errors
/// None: every outcome is a [`WaitResult`]. Interrupted sleeps are resumed with the time left.
///
/// ```no_run
/// use std::sync::atomic::AtomicU32;
/// use std::time::Duration;
/// use sharedobject_core::sync::{wait32, WaitResult};
/// let word = AtomicU32::new(0);
/// // SAFETY: a live, aligned word of this process.
/// let r = unsafe { wait32(&word, 0, Some(Duration::from_millis(1))) };
/// assert_eq!(r, WaitResult::TimedOut);
/// ```
pub unsafe fn wait32(
    addr: *const AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) -> WaitResult {
    // SAFETY: the caller guarantees a live, aligned word for the whole call.
    let word = unsafe { &*addr };
    if word.load(SeqCst) != expected {
        return WaitResult::NotEqual;
    }
    let r = match os::park32(addr.cast(), expected, timeout) {
        Some(r) => r,
        None => poll::wait(|| word.load(SeqCst) == expected, timeout),
    };
    fence(SeqCst);
    r
}

/// As [`wait32`], watching the word for up to [`WAIT_SPIN`] before it sleeps, where another CPU
/// can change it meanwhile (see [`spin_while`]): the wait behind the public `wait`.
///
/// # Safety
/// As for [`wait32`].
pub unsafe fn wait32_spinning(
    addr: *const AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) -> WaitResult {
    // SAFETY: the caller guarantees a live, aligned word for the whole call.
    let word = unsafe { &*addr };
    // SAFETY: as above, for the rest of the wait.
    spin_then(
        || word.load(SeqCst) == expected,
        timeout,
        |left| unsafe { wait32(addr, expected, left) },
    )
}

/// Sleeps while the 64-bit word at `addr` holds `expected`, until a [`wake64`] on it or the
/// timeout. Linux watches both halves with `futex_waitv`; see the module docs for older kernels.
///
/// # Safety
/// As for [`wait32`], for an aligned 64-bit word.
pub unsafe fn wait64(
    addr: *const AtomicU64,
    expected: u64,
    timeout: Option<Duration>,
) -> WaitResult {
    // SAFETY: the caller guarantees a live, aligned word for the whole call.
    let word = unsafe { &*addr };
    if word.load(SeqCst) != expected {
        return WaitResult::NotEqual;
    }
    let r = if let Some(r) = os::park64(addr.cast(), expected, timeout) {
        r
    } else if os::kernel_waits() {
        // Sleep on the low half, re-reading the whole word between slices.
        let deadline = Deadline::after(timeout);
        let low = low_half(addr);
        let low_expected = if cfg!(target_endian = "little") {
            expected as u32
        } else {
            (expected >> 32) as u32
        };
        loop {
            let Some(left) = deadline.left() else {
                break WaitResult::TimedOut;
            };
            let slice = left.map_or(SLICE_64, |l| l.min(SLICE_64));
            let r = os::park32(low.cast(), low_expected, Some(slice));
            if r == Some(WaitResult::Ok) || word.load(SeqCst) != expected {
                break WaitResult::Ok;
            }
        }
    } else {
        poll::wait(|| word.load(SeqCst) == expected, timeout)
    };
    fence(SeqCst);
    r
}

/// As [`wait64`], watching the word for up to [`WAIT_SPIN`] first, as [`wait32_spinning`].
///
/// # Safety
/// As for [`wait64`].
pub unsafe fn wait64_spinning(
    addr: *const AtomicU64,
    expected: u64,
    timeout: Option<Duration>,
) -> WaitResult {
    // SAFETY: the caller guarantees a live, aligned word for the whole call.
    let word = unsafe { &*addr };
    // SAFETY: as above, for the rest of the wait.
    spin_then(
        || word.load(SeqCst) == expected,
        timeout,
        |left| unsafe { wait64(addr, expected, left) },
    )
}

/// Wakes up to `count` waiters of the word at `addr` (`u32::MAX`: all of them) in every process
/// that maps it, and returns how many it woke (0 where waiting means polling). Parked waits of
/// this process on the word ([`park_async32`]) all end, whatever `count`: the kernel sees them
/// as one waiter per watcher thread.
///
/// The word is never read or written: only its address is given to the kernel, which answers
/// `EFAULT` if it is not mapped. Callers pass the address of a word they may touch anyway.
pub fn wake32(addr: *const AtomicU32, count: u32) -> usize {
    fence(SeqCst);
    // Parked waits of this process end first (see parker::woken), so their watcher threads
    // find them gone rather than end them too, and are told apart from other waiters in `n`.
    let local = parker::woken(addr as usize, addr as usize);
    let n = os::wake32(addr.cast(), count);
    local.total(n).min(count as usize)
}

/// Wakes up to `count` waiters of the 64-bit word at `addr`; as [`wake32`].
pub fn wake64(addr: *const AtomicU64, count: u32) -> usize {
    fence(SeqCst);
    let local = parker::woken(addr as usize, low_half(addr) as usize);
    let n = os::wake64(addr.cast(), low_half(addr).cast(), count);
    local.total(n).min(count as usize)
}

/// Whether this platform waits in the kernel ([`park_async32`] works). Where it does not
/// (Windows, macOS before 14.4), asynchronous waiters poll from their own event loop instead.
pub fn kernel_waits() -> bool {
    os::kernel_waits()
}

/// Waits, on a thread kept for this, while the word at `addr` holds `expected`, then calls `done`
/// with the outcome on that thread (or on the thread of a [`wake32`] of this process that ends
/// it). On Linux with `futex_waitv` pending waits share at most 16 watcher threads, and waits on
/// the same word and value end in the order they began; elsewhere each holds a thread. Neither the caller nor libuv's thread pool
/// ever blocks. A word that differs when the parked thread arms its wait ends it with `Ok`: the
/// caller compared it already, so it changed since, as a notify's writer would have changed it.
///
/// The word is never read in user space (see the module docs), so the memory may be unmapped
/// while a thread waits on it: the wait then ends, at worst at its timeout.
///
/// # Errors
/// `ERR_SHM_OS` where the platform has no kernel wait ([`kernel_waits`] is false). If no thread
/// can be started, `done` gets the OS error.
pub fn park_async32(
    addr: *const AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
    done: impl FnOnce(std::io::Result<WaitResult>) + Send + 'static,
) -> crate::Result<()> {
    no_kernel_wait()?;
    parker::park(
        addr as usize,
        false,
        u64::from(expected),
        timeout,
        Box::new(done),
    );
    Ok(())
}

/// As [`park_async32`] for a 64-bit word. Without `futex_waitv` (Linux before 5.16) the parked
/// thread sleeps on the low half only, for the whole timeout: it cannot re-read the word.
pub fn park_async64(
    addr: *const AtomicU64,
    expected: u64,
    timeout: Option<Duration>,
    done: impl FnOnce(std::io::Result<WaitResult>) + Send + 'static,
) -> crate::Result<()> {
    no_kernel_wait()?;
    parker::park(addr as usize, true, expected, timeout, Box::new(done));
    Ok(())
}

/// One wait in the kernel on this thread, for a parked wait that holds a thread of its own.
fn park_here(addr: usize, wide: bool, expected: u64, timeout: Option<Duration>) -> WaitResult {
    let r = if wide {
        let word = addr as *const AtomicU64;
        os::park64(word.cast(), expected, timeout).or_else(|| {
            let low_expected = if cfg!(target_endian = "little") {
                expected as u32
            } else {
                (expected >> 32) as u32
            };
            os::park32(low_half(word).cast(), low_expected, timeout)
        })
    } else {
        os::park32(addr as *const u32, expected as u32, timeout)
    };
    r.unwrap_or(WaitResult::Ok)
}

fn no_kernel_wait() -> crate::Result<()> {
    if kernel_waits() {
        Ok(())
    } else {
        Err(crate::Error::new(
            crate::Code::Os,
            "this platform has no kernel wait across processes; poll instead",
        ))
    }
}

/// Who holds a mutex: this process and thread, and what tells a dead holder from a reused pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Holder {
    /// The pid in the high half, the thread in the low half; never 0. What party tables key on.
    pub(crate) word: u64,
    /// The pid in the high half, the low half of `token` in the low half: a mutex's holder word,
    /// the same in no two threads of the machine (unlike `word`: two pid namespaces' first
    /// processes are both pid 1 with a thread 1).
    pub(crate) mutex_word: u64,
    pub(crate) thread: u32,
    pub(crate) start: u64,
    pub(crate) pidns: u64,
    /// 30 random bits drawn once per process over 32 bits that differ between the threads of the
    /// process (a random start counted up): the same in no two threads of the machine. Kept
    /// below 2^62 so JavaScript's BigInt64Array holds it as is.
    pub(crate) token: u64,
    /// When the thread started (clock ticks since boot; 0 where unknown): a thread id reused by
    /// a later thread has another, so a holder that ended is not taken for the new thread.
    pub(crate) thread_start: u64,
    /// Where the process's stack starts, folded to 32 bits (0 where unknown): an `exec` moves it,
    /// so a holder that exec'd is not taken for the program now running under its pid.
    pub(crate) image: u32,
}

/// This process's random part of every token, and the next thread's low half (never 0: a
/// holder word's low half is not 0). Drawn again in a forked child, which has a pid of its own.
fn token_parts(pid: u32) -> (u64, u32) {
    static DRAWN: std::sync::Mutex<Option<(u32, u64, u32)>> = std::sync::Mutex::new(None);
    let mut d = DRAWN.lock().unwrap_or_else(|p| p.into_inner());
    if !matches!(*d, Some((p, _, _)) if p == pid) {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        let r = u64::from_ne_bytes(bytes);
        *d = Some((pid, ((r >> 34) & ((1 << 30) - 1)).max(1), r as u32));
    }
    let (_, high, next) = d.as_mut().expect("drawn above");
    if *next == 0 {
        *next = 1;
    }
    let low = *next;
    *next = next.wrapping_add(1);
    (*high, low)
}

impl Holder {
    /// This thread. Each JavaScript thread (the main thread, every worker) is a distinct holder.
    pub(crate) fn me() -> Holder {
        thread_local! {
            static ME: Holder = {
                let (pid, start, pidns) = os::process();
                let (high, low) = token_parts(pid);
                let thread = os::thread_id();
                Holder {
                    word: (u64::from(pid) << 32) | u64::from(thread),
                    mutex_word: (u64::from(pid) << 32) | u64::from(low),
                    thread,
                    start,
                    pidns,
                    token: (high << 32) | u64::from(low),
                    thread_start: thread_started(pid, thread).unwrap_or(0),
                    image: stack_image(pid).unwrap_or(0),
                }
            };
        }
        ME.with(|h| *h)
    }

    /// Whether the holder `word` (pid over thread, with the `start`, `pidns`, `thread_start`
    /// and `image` it wrote; 0 for unknown) may still run. Only a holder known to be gone is
    /// dead: one this process cannot judge counts as alive.
    pub(crate) fn alive(word: u64, start: u64, pidns: u64, thread_start: u64, image: u32) -> bool {
        let (pid, thread) = ((word >> 32) as u32, word as u32);
        let me = Holder::me();
        let same_ns = pidns == 0 || me.pidns == 0 || pidns == me.pidns;
        if word == me.word {
            // Our own word: ours, or a thread of another namespace (which we cannot judge), or
            // an ended thread of this process whose id this thread was given since.
            return !same_ns || thread_start == 0 || thread_start == me.thread_start;
        }
        let thread_runs = |look: &ThreadLook| {
            look.runs != Some(false)
                && (thread_start == 0 || look.start.is_none_or(|s| s == thread_start))
        };
        if same_ns && pid == (me.word >> 32) as u32 {
            return thread_runs(&look_at_thread(pid, thread));
        }
        match os::process_alive(pid, start, pidns) {
            Some(false) => false,
            None => true,
            // The same process, unless it exec'd since: then its threads, the holder among
            // them, are gone, though the pid, the start time and the main thread remain.
            Some(true) => {
                let look = look_at_thread(pid, thread);
                thread_runs(&look)
                    && (image == 0
                        || if thread == pid {
                            look.image
                        } else {
                            stack_image(pid)
                        }
                        .is_none_or(|i| i == image))
            }
        }
    }

    /// Whether process `pid` may run, for a holder of which nothing more is known yet.
    pub(crate) fn process_may_run(pid: u32) -> bool {
        let me = Holder::me();
        pid == (me.word >> 32) as u32 || os::process_alive(pid, 0, 0) != Some(false)
    }
}

/// What one look at thread `tid` of process `pid` tells: whether it runs (`None`: this process
/// cannot tell), when it started, and where its process's stack starts when it is the main
/// thread (`None`: unknown). On Linux, one read of the thread's `/proc` stat.
struct ThreadLook {
    runs: Option<bool>,
    start: Option<u64>,
    image: Option<u32>,
}

#[cfg(target_os = "linux")]
fn look_at_thread(pid: u32, tid: u32) -> ThreadLook {
    let unknown = ThreadLook {
        runs: None,
        start: None,
        image: None,
    };
    match crate::sys::task_stat(pid, tid) {
        // A zombie counts as dead: a killed process stays one until its parent reaps it.
        Ok(Some(s)) => ThreadLook {
            runs: Some(!matches!(s.state, b'Z' | b'X' | b'x')),
            start: s.start,
            image: if tid == pid { s.stack_image } else { None },
        },
        Ok(None) => unknown,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ThreadLook {
            runs: Some(false),
            ..unknown
        },
        Err(_) => unknown,
    }
}

#[cfg(not(target_os = "linux"))]
fn look_at_thread(pid: u32, tid: u32) -> ThreadLook {
    ThreadLook {
        runs: os::thread_alive(pid, tid),
        start: None,
        image: None,
    }
}

/// When thread `tid` of process `pid` started, in clock ticks since boot (Linux: the task's
/// `/proc` stat); `None` where it cannot be read.
#[cfg(target_os = "linux")]
fn thread_started(pid: u32, tid: u32) -> Option<u64> {
    crate::sys::task_start_time(pid, tid)
}

#[cfg(not(target_os = "linux"))]
fn thread_started(_pid: u32, _tid: u32) -> Option<u64> {
    None
}

/// Where process `pid`'s stack starts, folded (Linux: its `/proc` stat); `None` where unknown.
#[cfg(target_os = "linux")]
fn stack_image(pid: u32) -> Option<u32> {
    crate::sys::task_stack_image(pid)
}

#[cfg(not(target_os = "linux"))]
fn stack_image(_pid: u32) -> Option<u32> {
    None
}

/// This thread's mutex holder word and token: what a lock taken in JavaScript with `Atomics`
/// writes into a mutex's holder word, and the token it finds there when the identity words are
/// its own already (see [`RawMutex`]).
pub fn holder_words() -> (u64, u64) {
    let me = Holder::me();
    (me.mutex_word, me.token)
}

/// Threads numbered by this process, for platforms whose thread ids another process cannot
/// look up: each JavaScript thread gets a number and is known alive until it ends.
#[cfg(not(target_os = "linux"))]
pub(crate) mod local_threads {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    use std::sync::Mutex;

    static LIVE: Mutex<Option<HashSet<u32>>> = Mutex::new(None);
    static NEXT: AtomicU32 = AtomicU32::new(1);

    struct Mark(u32);

    impl Drop for Mark {
        fn drop(&mut self) {
            let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
            live.get_or_insert_with(HashSet::new).remove(&self.0);
        }
    }

    thread_local! {
        static MARK: Mark = {
            let id = NEXT.fetch_add(1, Relaxed).max(1);
            let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
            live.get_or_insert_with(HashSet::new).insert(id);
            Mark(id)
        };
    }

    pub(crate) fn id() -> u32 {
        MARK.with(|m| m.0)
    }

    pub(crate) fn alive(id: u32) -> bool {
        let live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.as_ref().is_some_and(|l| l.contains(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_wait_on_another_value_returns_at_once() {
        let w = AtomicU32::new(5);
        // SAFETY: a live, aligned word of this test.
        assert_eq!(unsafe { wait32(&w, 4, None) }, WaitResult::NotEqual);
        let w = AtomicU64::new(1 << 40);
        // SAFETY: as above.
        assert_eq!(unsafe { wait64(&w, 0, None) }, WaitResult::NotEqual);
    }

    #[test]
    fn a_wait_times_out() {
        let w = AtomicU32::new(0);
        let t = Instant::now();
        // SAFETY: a live, aligned word of this test.
        let r = unsafe { wait32(&w, 0, Some(Duration::from_millis(30))) };
        assert_eq!(r, WaitResult::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(30));
        let w = AtomicU64::new(0);
        // SAFETY: as above.
        let r = unsafe { wait64(&w, 0, Some(Duration::from_millis(30))) };
        assert_eq!(r, WaitResult::TimedOut);
        // SAFETY: as above.
        let r = unsafe { wait64(&w, 0, Some(Duration::ZERO)) };
        assert_eq!(r, WaitResult::TimedOut);
    }

    #[test]
    fn a_spin_ends_on_a_change_or_its_timeout_and_else_hands_the_time_left_to_the_sleep() {
        let looks = std::cell::Cell::new(0u32);
        // Changed at the 10th look: within the first 64, before the clock is read, so however
        // slowly this runs (an emulated CPU) the spin sees it.
        let changed_at_10 = || {
            looks.set(looks.get() + 1);
            looks.get() < 10
        };
        match spin_while(changed_at_10, None) {
            // Where spinning cannot pay (one CPU) the wait sleeps at once, without a look.
            Spun::Sleep(None) => assert!(!spinning_pays() && looks.get() == 0),
            Spun::Ended(r) => assert!(spinning_pays() && r == WaitResult::Ok && looks.get() == 10),
            Spun::Sleep(Some(_)) => panic!("no timeout was given"),
        }
        if !spinning_pays() {
            return;
        }
        let t = Instant::now();
        assert!(matches!(
            spin_while(|| true, Some(Duration::from_micros(10))),
            Spun::Ended(WaitResult::TimedOut)
        ));
        assert!(t.elapsed() >= Duration::from_micros(10));
        let t = Instant::now();
        assert!(matches!(spin_while(|| true, None), Spun::Sleep(None)));
        assert!(t.elapsed() >= WAIT_SPIN);
        match spin_while(|| true, Some(Duration::from_secs(1))) {
            Spun::Sleep(Some(left)) => assert!(left <= Duration::from_secs(1) - WAIT_SPIN),
            _ => panic!("a long timeout goes on to sleep"),
        }
        assert!(matches!(
            spin_while(|| true, Some(Duration::ZERO)),
            Spun::Sleep(Some(Duration::ZERO))
        ));
    }

    #[test]
    fn a_spinning_wait_times_out_and_is_woken_as_a_sleeping_one() {
        let w = AtomicU32::new(0);
        // SAFETY: a live, aligned word of this test.
        assert_eq!(
            unsafe { wait32_spinning(&w, 1, None) },
            WaitResult::NotEqual
        );
        let t = Instant::now();
        // SAFETY: as above.
        let r = unsafe { wait32_spinning(&w, 0, Some(Duration::from_millis(5))) };
        assert_eq!(r, WaitResult::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(5));
        // SAFETY: as above.
        assert_eq!(
            unsafe { wait32_spinning(&w, 0, Some(Duration::ZERO)) },
            WaitResult::TimedOut
        );
        let w = Arc::new(AtomicU64::new(9));
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            // SAFETY: the Arc keeps the word alive for the whole call.
            unsafe { wait64_spinning(&*w2, 9, Some(Duration::from_secs(20))) }
        });
        // Long past the spin: the waiter sleeps, and only the store and wake end its wait.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished());
        w.store(10, SeqCst);
        while !t.is_finished() {
            wake64(&*w, 1);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(t.join().unwrap(), WaitResult::Ok);
    }

    #[test]
    fn a_wake_ends_a_wait_in_another_thread() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            // SAFETY: the Arc keeps the word alive for the whole call.
            unsafe { wait32(&*w2, 0, Some(Duration::from_secs(20))) }
        });
        // Give the waiter time to sleep, then store and wake until it is gone: it may not sleep
        // yet when we first wake.
        std::thread::sleep(Duration::from_millis(50));
        w.store(1, SeqCst);
        while !t.is_finished() {
            wake32(&*w, u32::MAX);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(t.join().unwrap(), WaitResult::Ok);
    }

    #[test]
    fn a_change_to_the_high_half_of_a_64_bit_word_ends_its_wait() {
        let w = Arc::new(AtomicU64::new(7));
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            // SAFETY: the Arc keeps the word alive for the whole call.
            unsafe { wait64(&*w2, 7, Some(Duration::from_secs(20))) }
        });
        std::thread::sleep(Duration::from_millis(50));
        w.store(7 | (1 << 33), SeqCst);
        while !t.is_finished() {
            wake64(&*w, 1);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(t.join().unwrap(), WaitResult::Ok);
    }

    #[test]
    fn a_parked_wait_reports_on_its_own_thread() {
        if !kernel_waits() {
            return;
        }
        let w = Arc::new(AtomicU32::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        park_async32(&*w, 0, Some(Duration::from_secs(20)), move |r| {
            tx.send(r.unwrap()).unwrap()
        })
        .unwrap();
        w.store(1, SeqCst);
        let r = loop {
            wake32(&*w, u32::MAX);
            if let Ok(r) = rx.recv_timeout(Duration::from_millis(5)) {
                break r;
            }
        };
        assert_eq!(r, WaitResult::Ok);
        let (tx, rx) = std::sync::mpsc::channel();
        park_async32(&*w, 1, Some(Duration::from_millis(10)), move |r| {
            tx.send(r.unwrap()).unwrap()
        })
        .unwrap();
        assert_eq!(rx.recv().unwrap(), WaitResult::TimedOut);
    }

    #[test]
    fn this_thread_is_a_live_holder_and_a_finished_thread_is_not() {
        let me = Holder::me();
        assert_ne!(me.word, 0);
        assert!(Holder::alive(
            me.word,
            me.start,
            me.pidns,
            me.thread_start,
            me.image
        ));
        let other = std::thread::spawn(Holder::me).join().unwrap();
        assert_ne!(other.word, me.word, "threads are distinct holders");
        // The thread has ended (joined), so it is dead. Under qemu-user the host thread behind a
        // joined guest thread can outlive the join by a moment: allow it that moment.
        let dead = (0..200).any(|_| {
            let gone = !Holder::alive(
                other.word,
                other.start,
                other.pidns,
                other.thread_start,
                other.image,
            );
            if !gone {
                std::thread::sleep(Duration::from_millis(10));
            }
            gone
        });
        assert!(dead, "a joined thread is not a live holder");
    }
}
