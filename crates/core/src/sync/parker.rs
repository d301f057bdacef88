//! Threads that sit in the kernel's wait on behalf of asynchronous waiters, so that neither a
//! JavaScript thread nor libuv's thread pool (four threads that fs, crypto and zlib need) ever
//! blocks.
//!
//! On Linux with `futex_waitv` (5.16 and later) pending waits share at most `hub::WATCHERS`
//! watcher threads, each sleeping on up to 127 words at once: 10 000 waits on a hundred words
//! take one thread. Elsewhere (macOS, older kernels), and for waits beyond what the watchers
//! hold, each pending wait holds one thread of a pool; a thread that finishes waits up to
//! `IDLE_FOR` for the next wait, then ends. Stacks are small: a waiting thread only makes system
//! calls and hands results back.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Duration;

use super::WaitResult;

/// A wait to run on a parked thread: called with `None` there, or with the error that kept any
/// thread from starting.
pub(super) type Job = Box<dyn FnOnce(Option<std::io::Error>) + Send>;

const IDLE_FOR: Duration = Duration::from_secs(30);
const STACK: usize = 256 * 1024;

struct Idle {
    id: u64,
    jobs: mpsc::Sender<Job>,
}

static IDLE: Mutex<Vec<Idle>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn idle() -> MutexGuard<'static, Vec<Idle>> {
    IDLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `job` on an idle parked thread, or on a new one.
pub(super) fn run(mut job: Job) {
    loop {
        let Some(thread) = idle().pop() else { break };
        match thread.jobs.send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(j)) => job = j,
        }
    }
    let (jobs, inbox) = mpsc::channel::<Job>();
    let id = NEXT_ID.fetch_add(1, Relaxed);
    let own = jobs.clone();
    let spawned = std::thread::Builder::new()
        .name("sharedobject-waiter".into())
        .stack_size(STACK)
        .spawn(move || serve(id, own, inbox));
    match spawned {
        // The new thread holds its own sender, so the job cannot be refused.
        Ok(_) => drop(jobs.send(job)),
        Err(e) => job(Some(e)),
    }
}

fn serve(id: u64, own: mpsc::Sender<Job>, inbox: mpsc::Receiver<Job>) {
    loop {
        match inbox.recv_timeout(IDLE_FOR) {
            Ok(job) => job(None),
            Err(_) => {
                let mut list = idle();
                if let Some(i) = list.iter().position(|t| t.id == id) {
                    list.remove(i);
                    return;
                }
                drop(list);
                // Another thread took this one from the idle list just now: its job is coming.
                match inbox.recv() {
                    Ok(job) => job(None),
                    Err(_) => return,
                }
            }
        }
        idle().push(Idle {
            id,
            jobs: own.clone(),
        });
    }
}

/// How a parked wait reports: called once, on a waiter thread or on a notifier's thread, with
/// the outcome or with the error that kept any thread from starting.
pub(super) type Done = Box<dyn FnOnce(std::io::Result<WaitResult>) + Send>;

/// Waits while the word at `addr` (`wide`: 64 bits) holds `expected`, then calls `done`. On
/// Linux with `futex_waitv` the wait joins a shared watcher thread (see `hub`); elsewhere, and
/// when every watcher is full, it holds a thread of its own.
pub(super) fn park(addr: usize, wide: bool, expected: u64, timeout: Option<Duration>, done: Done) {
    #[cfg(target_os = "linux")]
    let done = match hub::park(addr, wide, expected, timeout, done) {
        None => return,
        Some(done) => done,
    };
    run(Box::new(move |failed| match failed {
        Some(e) => done(Err(e)),
        None => done(Ok(super::park_here(addr, wide, expected, timeout))),
    }));
}

/// What a wake of this process did to its parked waits on one word.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Woken {
    /// The waits it ended.
    waits: usize,
    /// The watcher threads that held them: the kernel sees each as one waiter of the word.
    watchers: usize,
}

impl Woken {
    /// How many waiters a wake woke in all, from the kernel's count: each watcher that held the
    /// word counts as its waits (a little under if a watcher was between two kernel waits while
    /// other processes' waiters were woken too).
    pub(super) fn total(self, kernel: usize) -> usize {
        self.waits + kernel.saturating_sub(self.watchers)
    }
}

/// Called by every wake of this process on the word at `addr` (and `low`, its low half for a
/// 64-bit word), before the kernel's wake: ends the shared waits on it at once, so a wake that
/// comes while a watcher is between two kernel waits is not lost.
pub(super) fn woken(addr: usize, low: usize) -> Woken {
    #[cfg(target_os = "linux")]
    return hub::woken(addr, low);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (addr, low);
        Woken::default()
    }
}

/// Shared watcher threads on Linux: each sleeps in one `futex_waitv` call on up to 127 words of
/// shared memory plus a control word of its own, which `park` and `woken` bump to make it take
/// up a changed set. Waits on the same word and value share one entry (one kernel waiter), with
/// a queue of the promises to settle in the order they came. A watcher never reads a shared
/// word in user space: the kernel compares each (see `linux::waitv`, `linux::still`), so memory
/// unmapped meanwhile only ends the waits on it.
#[cfg(target_os = "linux")]
mod hub {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
    use std::sync::{Mutex, MutexGuard, OnceLock};
    use std::time::{Duration, Instant};

    use super::super::linux::{self, Watch, WAITV_MAX};
    use super::super::WaitResult;
    use super::{Done, Woken, STACK};

    /// Watcher threads at most: with the control word each, 16 × 127 words of entries.
    pub(super) const WATCHERS: usize = 16;
    const SLOTS: usize = WAITV_MAX - 1;

    struct Waiter {
        deadline: Option<Instant>,
        done: Done,
    }

    struct Entry {
        id: u64,
        addr: usize,
        wide: bool,
        expected: u64,
        waiters: VecDeque<Waiter>,
    }

    impl Entry {
        fn slots(&self) -> usize {
            if self.wide {
                2
            } else {
                1
            }
        }

        fn watches(&self) -> Vec<Watch> {
            if self.wide {
                linux::halves(self.addr, self.expected).to_vec()
            } else {
                vec![Watch {
                    addr: self.addr,
                    val: self.expected as u32,
                    private: false,
                }]
            }
        }
    }

    struct Watcher {
        /// Bumped (and woken) when the set changes. Leaked: the thread lives as long as the
        /// process, and the kernel may hold the address while it sleeps.
        control: &'static AtomicU32,
        entries: Vec<Entry>,
        slots: usize,
        /// The deadline the watcher sleeps to (None: none), so a new waiter with a sooner one
        /// wakes it and a later one does not.
        until: Option<Instant>,
    }

    impl Watcher {
        fn kick(&self) {
            // Relaxed: the set itself is handed over under the hub's mutex; the bump only makes
            // the watcher's kernel wait return (EAGAIN or woken) so it takes the mutex.
            self.control.fetch_add(1, Ordering::Relaxed);
            linux::wake_private(self.control.as_ptr());
        }
    }

    struct Hub {
        watchers: Vec<Watcher>,
        next_id: u64,
    }

    static HUB: Mutex<Hub> = Mutex::new(Hub {
        watchers: Vec::new(),
        next_id: 0,
    });
    /// Waiters in the hub, so a wake with none (the common case) skips the mutex.
    static PENDING: AtomicUsize = AtomicUsize::new(0);
    static WORKS: OnceLock<bool> = OnceLock::new();

    fn hub() -> MutexGuard<'static, Hub> {
        HUB.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn settle(list: Vec<Waiter>, r: WaitResult) {
        if list.is_empty() {
            return;
        }
        // SeqCst pairs with the load in `woken`: a count that reads 0 saw no waiter to end.
        PENDING.fetch_sub(list.len(), Ordering::SeqCst);
        for w in list {
            (w.done)(Ok(r));
        }
    }

    /// Takes the wait into a watcher; gives `done` back when it must hold a thread of its own
    /// (no `futex_waitv`, every watcher full, or no thread could start).
    pub(super) fn park(
        addr: usize,
        wide: bool,
        expected: u64,
        timeout: Option<Duration>,
        done: Done,
    ) -> Option<Done> {
        if !*WORKS.get_or_init(linux::waitv_works) {
            return Some(done);
        }
        let waiter = Waiter {
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            done,
        };
        let mut hub = hub();
        let same = |e: &Entry| e.addr == addr && e.wide == wide && e.expected == expected;
        for w in hub.watchers.iter_mut() {
            if let Some(e) = w.entries.iter_mut().find(|e| same(e)) {
                PENDING.fetch_add(1, Ordering::SeqCst);
                let sooner = waiter
                    .deadline
                    .is_some_and(|d| w.until.is_none_or(|u| d < u));
                e.waiters.push_back(waiter);
                if sooner {
                    w.kick();
                }
                return None;
            }
        }
        let need = if wide { 2 } else { 1 };
        let index = match hub.watchers.iter().position(|w| w.slots + need <= SLOTS) {
            Some(i) => i,
            None if hub.watchers.len() < WATCHERS => {
                let index = hub.watchers.len();
                let control: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(0)));
                let spawned = std::thread::Builder::new()
                    .name("sharedobject-watcher".into())
                    .stack_size(STACK)
                    .spawn(move || watch(index, control));
                if spawned.is_err() {
                    return Some(waiter.done);
                }
                hub.watchers.push(Watcher {
                    control,
                    entries: Vec::new(),
                    slots: 0,
                    until: None,
                });
                index
            }
            None => return Some(waiter.done),
        };
        let id = hub.next_id;
        hub.next_id += 1;
        let w = &mut hub.watchers[index];
        PENDING.fetch_add(1, Ordering::SeqCst);
        w.entries.push(Entry {
            id,
            addr,
            wide,
            expected,
            waiters: VecDeque::from([waiter]),
        });
        w.slots += need;
        w.kick();
        None
    }

    pub(super) fn woken(addr: usize, low: usize) -> Woken {
        if PENDING.load(Ordering::SeqCst) == 0 {
            return Woken::default();
        }
        let mut ended = Vec::new();
        let mut watchers = 0;
        {
            let mut hub = hub();
            for w in hub.watchers.iter_mut() {
                let before = ended.len();
                let mut i = 0;
                while i < w.entries.len() {
                    let e = &w.entries[i];
                    if e.addr == addr || (!e.wide && e.addr == low) {
                        let e = w.entries.remove(i);
                        w.slots -= e.slots();
                        ended.extend(e.waiters);
                    } else {
                        i += 1;
                    }
                }
                if ended.len() != before {
                    watchers += 1;
                    w.kick();
                }
            }
        }
        let waits = ended.len();
        settle(ended, WaitResult::Ok);
        Woken { waits, watchers }
    }

    /// Removes the entries that `ended` picks from watcher `index`, and their waiters.
    fn take(index: usize, ended: impl Fn(&Entry) -> bool) -> Vec<Waiter> {
        let mut out = Vec::new();
        let mut hub = hub();
        let w = &mut hub.watchers[index];
        let mut i = 0;
        while i < w.entries.len() {
            if ended(&w.entries[i]) {
                let e = w.entries.remove(i);
                w.slots -= e.slots();
                out.extend(e.waiters);
            } else {
                i += 1;
            }
        }
        out
    }

    /// The watcher thread: one kernel wait on its whole set, then whatever that wait says.
    fn watch(index: usize, control: &'static AtomicU32) {
        loop {
            // Under the mutex: end the waits past their deadline, and copy the set to wait on.
            let mut expired = Vec::new();
            let mut words = Vec::new();
            let mut owners = Vec::new();
            let mut ids = Vec::new();
            let mut next: Option<Instant> = None;
            let seen;
            {
                let mut hub = hub();
                let w = &mut hub.watchers[index];
                seen = control.load(Ordering::Relaxed);
                let now = Instant::now();
                let mut i = 0;
                while i < w.entries.len() {
                    let e = &mut w.entries[i];
                    let mut k = 0;
                    while k < e.waiters.len() {
                        match e.waiters[k].deadline {
                            Some(d) if d <= now => {
                                expired.extend(e.waiters.remove(k));
                            }
                            d => {
                                if let Some(d) = d {
                                    next = Some(next.map_or(d, |n| n.min(d)));
                                }
                                k += 1;
                            }
                        }
                    }
                    if e.waiters.is_empty() {
                        let e = w.entries.remove(i);
                        w.slots -= e.slots();
                    } else {
                        i += 1;
                    }
                }
                w.until = next;
                words.push(Watch {
                    addr: control.as_ptr() as usize,
                    val: seen,
                    private: true,
                });
                owners.push(u64::MAX);
                for e in &w.entries {
                    for x in e.watches() {
                        words.push(x);
                        owners.push(e.id);
                    }
                    ids.push((e.id, e.watches()));
                }
            }
            settle(expired, WaitResult::TimedOut);
            let left = next.map(|d| d.saturating_duration_since(Instant::now()));
            match linux::waitv(&words, left) {
                Ok(0) | Err(libc::ETIMEDOUT) | Err(libc::EINTR) => {}
                Ok(k) => {
                    let id = owners.get(k).copied().unwrap_or(u64::MAX);
                    settle(take(index, |e| e.id == id), WaitResult::Ok);
                }
                Err(_) if control.load(Ordering::Relaxed) != seen => {}
                Err(_) => {
                    // EAGAIN (a word changed) or EFAULT (one was unmapped), without which: ask
                    // the kernel about each word alone, and end the waits on any that moved.
                    let moved: Vec<u64> = ids
                        .iter()
                        .filter(|(_, ws)| !ws.iter().all(|x| linux::still(x.addr, x.val)))
                        .map(|(id, _)| *id)
                        .collect();
                    if moved.is_empty() {
                        // Nothing moved that the kernel can see (an error of another kind):
                        // sleep a moment rather than spin.
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    settle(take(index, |e| moved.contains(&e.id)), WaitResult::Ok);
                }
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::super::{park_async32, wake32, WaitResult};
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    #[test]
    fn waits_on_one_word_end_in_the_order_they_began() {
        let w = Arc::new(AtomicU32::new(0));
        let (tx, rx) = mpsc::channel();
        for i in 0..1000 {
            let tx = tx.clone();
            park_async32(&*w, 0, None, move |r| tx.send((i, r.unwrap())).unwrap()).unwrap();
        }
        w.store(1, SeqCst);
        wake32(&*w, u32::MAX);
        let got: Vec<_> = (0..1000).map(|_| rx.recv().unwrap()).collect();
        assert!(got.iter().all(|(_, r)| *r == WaitResult::Ok));
        // The order is the shared watchers' promise; where `futex_waitv` does not work (Linux
        // before 5.16, or an emulator that lacks it) each wait has a thread and ends when the
        // scheduler lets it.
        if super::super::linux::waitv_works() {
            assert_eq!(
                got.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                (0..1000).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn a_wait_on_memory_unmapped_meanwhile_ends_without_a_fault() {
        // SAFETY: a fresh anonymous page of this test, unmapped below; the waits only hand its
        // address to the kernel.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        // Without `futex_waitv` (Linux before 5.16, or an emulator that lacks it) the wait has a
        // thread of its own, asleep in the kernel on the page: it ends at its timeout, and what
        // matters is that it ends without a fault.
        let shared = super::super::linux::waitv_works();
        let timeout = Duration::from_millis(if shared { 60_000 } else { 200 });
        let (tx, rx) = mpsc::channel();
        park_async32(page.cast(), 0, Some(timeout), move |r| {
            tx.send(r.unwrap()).unwrap()
        })
        .unwrap();
        // Unmap the page, and keep its addresses from being mapped again meanwhile (an
        // allocation landing there would be a live word again) with an inaccessible reservation.
        // SAFETY: the page mapped above; nothing reads it from now on.
        assert_eq!(unsafe { libc::munmap(page, 4096) }, 0);
        // SAFETY: a reservation at the addresses just freed, which nothing else uses yet.
        let guard = unsafe {
            libc::mmap(
                page,
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        assert_eq!(guard, page);
        if !shared {
            let r = rx.recv_timeout(Duration::from_secs(30)).unwrap();
            assert!(matches!(r, WaitResult::Ok | WaitResult::TimedOut), "{r:?}");
            // SAFETY: the reservation made above.
            unsafe { libc::munmap(guard, 4096) };
            return;
        }
        // Another wait changes the watcher's set: it looks at every word again, through the
        // kernel, and finds the page gone. Repeat in case the first change came before the unmap
        // reached the watcher.
        let other = Arc::new(AtomicU32::new(0));
        let r = loop {
            park_async32(&*other, 0, Some(Duration::from_millis(1)), |_| {}).unwrap();
            if let Ok(r) = rx.recv_timeout(Duration::from_millis(20)) {
                break r;
            }
        };
        assert_eq!(r, WaitResult::Ok);
        // SAFETY: the reservation made above.
        unsafe { libc::munmap(guard, 4096) };
    }
}
