//! A robust mutex in a segment of its own (kind `mutex`), usable by every thread of every
//! process that maps it.
//!
//! The holder is one 64-bit word, set by one compare-and-swap: an uncontended `lock` and
//! `unlock` are one compare-and-swap each and never enter the kernel. Contended lockers count
//! themselves in `waiters`, set the holder word's top bit (`SLEEPERS`) and sleep on `seq`; an
//! unlock whose compare-and-swap from its own word finds that bit set bumps `seq` and wakes one
//! (the bit is the futex-based mutex's "contended" state, as in Drepper's *Futexes Are Tricky*).
//! A locker that slept takes the lock with the bit set while others are still counted, so they
//! are woken in turn. They sleep at most the detection interval at a time; when a sleep runs out with the
//! lock still held, they check that the holder's process and thread still run, and take the
//! lock over from a dead one with one more compare-and-swap, which tells the new holder that the
//! previous one died (what `EOWNERDEAD` tells a POSIX robust mutex's locker). The data it
//! guarded may be half-updated: the new holder decides.
//!
//! | offset | size | word |
//! |---|---|---|
//! | 0 | 8 | holder: 0 when free, else pid << 32 \| the low half of the holder's token, with the top bit set while lockers sleep |
//! | 8 | 4 | waiters: lockers between announcing themselves and waking up |
//! | 12 | 4 | seq: bumped by an unlock with waiters; the word they sleep on |
//! | 16 | 8 | identity: the holder's process start time (0 where unknown) |
//! | 24 | 8 | identity: the holder's pid namespace (0 if unknown) |
//! | 32 | 4 | detection interval, milliseconds (at least 1) |
//! | 36 | 4 | stamp: odd while a holder writes the identity words, bumped by each write |
//! | 40 | 8 | identity: the token of the thread the identity words describe (0 before any) |
//! | 48 | 8 | identity: when that thread started (0 where unknown) |
//! | 56 | 4 | identity: its thread id |
//! | 60 | 4 | identity: where its process's stack starts, folded (0 where unknown) |
//!
//! # Identity
//!
//! The holder word is unique on the machine per thread: a token's low half is unique among the
//! threads of its process, and the pid tells processes apart within a namespace; processes of
//! two namespaces with one pid would need the same 32 random bits too. The words that let a
//! checker judge the holder (process start time and namespace, thread id and start, where the
//! stack starts, which `exec` moves) are written by a holder after its compare-and-swap, and
//! only when they do not describe it already: they stay when it unlocks, so a thread that takes
//! the lock again writes nothing. A checker believes them only when they describe the holder
//! word it read (their token's low half is the word's) and were not being written meanwhile
//! (the stamp was even and unchanged before and after it read them, a sequence lock with a
//! single writer: the holder). Whether *this* thread holds the lock is the holder word and the
//! token both being ours.
//!
//! A holder whose identity a checker cannot read yet (between its compare-and-swap and its
//! first writes, a few instructions; or killed right there) is judged by its pid alone.
//!
//! # JavaScript
//!
//! JavaScript takes and releases an uncontended lock itself with `Atomics` on these words where
//! its view is a SharedArrayBuffer: a compare-and-swap of the holder word from 0 to its own,
//! then a load of the token word, calling [`RawMutex::claim`] only when the identity words are
//! not its own; an unlock loads the token word and swaps the holder word from its own to 0, going
//! to the native unlock only when that fails (sleepers to wake, or not its lock). Those are the
//! operations `try_lock` and `unlock` make here, in the same order, so the two kinds of party
//! mix freely.
//!
//! # Memory order
//!
//! The holder word, `waiters` and `seq` are SeqCst, as JavaScript's `Atomics` are: the holder's
//! compare-and-swap is the acquire of the data the lock guards and its unlock the release, and
//! the lost-wakeup argument of [`RawMutex::begin_wait`] needs a single order of the holder word
//! and `seq`. The identity words are a sequence lock with one writer, the holder (see
//! `write_identity` and `identity`): a checker sees the holder's own words whole, or an odd or
//! changed stamp, never a mix that it takes for the holder. JavaScript's holder reads the token
//! word with plain loads: it reads its own writes, or a previous holder's made before that
//! holder's release.

use std::sync::atomic::{
    fence, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};
use std::time::Duration;

use super::{wait32, wake32, Deadline, Holder, WaitResult};
use crate::error::{Code, Error, Result};

/// Bytes of a mutex's words (its segment's data).
pub const MUTEX_SIZE: usize = 64;
/// How often a contended locker looks at the holder before it sleeps.
const SPINS: u32 = 100;
/// The holder word's bit that says lockers sleep (pids are below 2^31 everywhere).
const SLEEPERS: u64 = 1 << 63;

/// The words of a mutex, over shared memory. Only ever used through a reference made by
/// [`RawMutex::at`]: every field is atomic, as other processes change them at any time.
#[repr(C)]
pub struct RawMutex {
    holder: AtomicU64,
    waiters: AtomicU32,
    seq: AtomicU32,
    start: AtomicU64,
    pidns: AtomicU64,
    detection_ms: AtomicU32,
    stamp: AtomicU32,
    token: AtomicU64,
    thread_start: AtomicU64,
    thread: AtomicU32,
    image: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<RawMutex>() == MUTEX_SIZE);

/// A lock taken: `owner_died` when it was taken over from a holder that died holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub owner_died: bool,
}

/// The identity words, as one consistent read.
struct Identity {
    start: u64,
    pidns: u64,
    thread_start: u64,
    thread: u32,
    image: u32,
}

impl RawMutex {
    /// The initial bytes of a free mutex whose lockers check the holder every `detection_ms`.
    pub fn init(detection_ms: u32) -> [u8; MUTEX_SIZE] {
        let mut b = [0u8; MUTEX_SIZE];
        b[32..36].copy_from_slice(&detection_ms.max(1).to_ne_bytes());
        b
    }

    /// The mutex whose words start at `ptr`.
    ///
    /// # Safety
    /// `ptr` must point to `len` bytes of a shared mapping that stay mapped while the reference
    /// lives, and that other threads and processes change only atomically.
    ///
    /// # Errors
    /// `ERR_SHM_BAD_HEADER` if the bytes are too few, misaligned, or not a mutex's.
    pub unsafe fn at<'a>(ptr: *const u8, len: usize) -> Result<&'a RawMutex> {
        if len < MUTEX_SIZE || ptr.is_null() || !ptr.cast::<u64>().is_aligned() {
            return Err(Error::new(
                Code::BadHeader,
                "the segment is too small or misaligned to hold a mutex",
            ));
        }
        // SAFETY: MUTEX_SIZE aligned bytes that stay mapped for 'a (the caller's contract); every
        // field is atomic, so concurrent changes by others are not data races.
        let m = unsafe { &*ptr.cast::<RawMutex>() };
        // Relaxed: written once, before the segment could be opened by anyone.
        if m.detection_ms.load(Relaxed) == 0 {
            return Err(Error::new(
                Code::BadHeader,
                "the segment does not hold a mutex",
            ));
        }
        Ok(m)
    }

    /// Whether this process's view of the mutex was closed (by another thread) under us: closing
    /// leaves zero pages where the segment was, and a mutex's detection word is never 0.
    pub fn retired(&self) -> bool {
        self.detection_ms.load(SeqCst) == 0
    }

    /// How long a locker sleeps before it checks that the holder still runs.
    pub fn detection(&self) -> Duration {
        Duration::from_millis(u64::from(self.detection_ms.load(Relaxed).max(1)))
    }

    /// The pid of the holder, if the mutex is held.
    pub fn holder_pid(&self) -> Option<u32> {
        let h = self.holder.load(SeqCst) & !SLEEPERS;
        (h != 0).then_some((h >> 32) as u32)
    }

    /// Whether this thread holds the mutex.
    pub fn held_here(&self) -> bool {
        self.mine(self.holder.load(SeqCst), &Holder::me())
    }

    /// Whether holder word `h` is this thread's: the word and the token (see the module docs).
    fn mine(&self, h: u64, me: &Holder) -> bool {
        h & !SLEEPERS == me.mutex_word && self.token.load(SeqCst) == me.token
    }

    /// This thread's holder word for a lock it takes: a locker that slept (`slept`) sets the
    /// sleepers' bit while others are still counted, so its unlock wakes the next.
    fn word_for(&self, me: &Holder, slept: bool) -> u64 {
        if slept && self.waiters.load(SeqCst) > 0 {
            me.mutex_word | SLEEPERS
        } else {
            me.mutex_word
        }
    }

    /// Writes this thread's identity words unless they are there already: what a new holder does
    /// right after its compare-and-swap, and JavaScript's lock when the token it finds is not its
    /// own.
    ///
    /// # Errors
    /// `ERR_SHM_CLOSED` when this process's view was closed by another thread: the words taken
    /// were zeros, not the mutex.
    pub fn claim(&self) -> Result<()> {
        if self.retired() {
            return Err(closed_here());
        }
        self.write_identity(&Holder::me(), false);
        Ok(())
    }

    /// Writes this thread's identity words unless they are there already (`again`: even so).
    fn write_identity(&self, me: &Holder, again: bool) {
        // Relaxed: only a holder writes these words, and we hold the lock: our compare-and-swap
        // (SeqCst) read the previous holder's release, after which it wrote them. A lock taken
        // over from a dead holder read no release of it: there they are written `again`.
        let s = self.stamp.load(Relaxed);
        // A stamp left odd by a writer killed mid-write needs the same rewrite.
        if !again && s & 1 == 0 && self.token.load(Relaxed) == me.token {
            return;
        }
        // A sequence lock's writer: the odd stamp, a release fence so that no word below is seen
        // before it, the words, and the even stamp with release, so a reader that sees it sees
        // them. Odd, and unlike any value a checker may have read before: it sees the change.
        let odd = (s | 1).wrapping_add(2);
        self.stamp.store(odd, Relaxed);
        fence(Release);
        self.token.store(me.token, Relaxed);
        self.start.store(me.start, Relaxed);
        self.pidns.store(me.pidns, Relaxed);
        self.thread_start.store(me.thread_start, Relaxed);
        self.thread.store(me.thread, Relaxed);
        self.image.store(me.image, Relaxed);
        self.stamp.store(odd.wrapping_add(1), Release);
    }

    /// The identity words if they describe holder word `h` and were read whole.
    fn identity(&self, h: u64) -> Option<Identity> {
        // A sequence lock's reader: the stamp with acquire, the words, an acquire fence so that
        // none is read after the second look at the stamp, which must be the same even value.
        let s = self.stamp.load(Acquire);
        if s & 1 == 1 {
            return None;
        }
        let token = self.token.load(Relaxed);
        let id = Identity {
            start: self.start.load(Relaxed),
            pidns: self.pidns.load(Relaxed),
            thread_start: self.thread_start.load(Relaxed),
            thread: self.thread.load(Relaxed),
            image: self.image.load(Relaxed),
        };
        fence(Acquire);
        let whole = self.stamp.load(Relaxed) == s && self.holder.load(SeqCst) == h;
        (whole && token as u32 == h as u32 && token != 0).then_some(id)
    }

    /// Whether holder word `h` may still run (see the module docs).
    fn holder_may_run(&self, h: u64) -> bool {
        let pid = ((h & !SLEEPERS) >> 32) as u32;
        match self.identity(h) {
            Some(id) => Holder::alive(
                (u64::from(pid) << 32) | u64::from(id.thread),
                id.start,
                id.pidns,
                id.thread_start,
                id.image,
            ),
            None => Holder::process_may_run(pid),
        }
    }

    /// Takes the mutex if it is free, without waiting and without judging its holder.
    pub fn try_lock(&self) -> Option<Acquired> {
        self.try_lock_as(false)
    }

    /// As [`Self::try_lock`], for a locker that slept waiting for it (`slept`): see
    /// `word_for`.
    pub fn try_lock_as(&self, slept: bool) -> Option<Acquired> {
        let me = Holder::me();
        self.holder
            .compare_exchange(0, self.word_for(&me, slept), SeqCst, SeqCst)
            .ok()?;
        self.write_identity(&me, false);
        Some(Acquired { owner_died: false })
    }

    /// Takes the mutex, waiting up to `timeout` (`None`: forever); `Ok(None)` when it timed out.
    ///
    /// # Errors
    /// `ERR_SHM_DEADLOCK` if this thread holds it already.
    pub fn lock(&self, timeout: Option<Duration>) -> Result<Option<Acquired>> {
        let me = Holder::me();
        let deadline = Deadline::after(timeout);
        let mut slept = false;
        loop {
            // Closed by another thread of this process while this one waited: what is here now
            // is zeros, not the mutex, and taking "it" would exclude nobody.
            if self.retired() {
                return Err(closed_here());
            }
            for _ in 0..SPINS {
                // Relaxed: only a hint of when to try; the CAS below is what decides.
                if self.holder.load(Relaxed) == 0 {
                    break;
                }
                std::hint::spin_loop();
            }
            match self
                .holder
                .compare_exchange(0, self.word_for(&me, slept), SeqCst, SeqCst)
            {
                Ok(_) if self.retired() => return Err(closed_here()),
                Ok(_) => {
                    self.write_identity(&me, false);
                    return Ok(Some(Acquired { owner_died: false }));
                }
                Err(h) if self.mine(h, &me) => {
                    return Err(Error::new(
                        Code::Deadlock,
                        "this thread holds the mutex already, so waiting for it would never end",
                    ))
                }
                Err(_) => {}
            }
            let Some(left) = deadline.left() else {
                return Ok(None);
            };
            let slice = left.map_or(self.detection(), |l| l.min(self.detection()));
            let Some(seq) = self.begin_wait() else {
                continue;
            };
            // SAFETY: `seq` is a word of this mutex, which stays mapped while `self` lives.
            let r = unsafe { wait32(&self.seq, seq, Some(slice)) };
            self.end_wait();
            slept = true;
            if r == WaitResult::TimedOut && !self.retired() {
                if let Some(a) = self.reclaim() {
                    return Ok(Some(a));
                }
            }
        }
    }

    /// Releases the mutex and wakes one waiter if there is any.
    ///
    /// # Errors
    /// `ERR_SHM_NOT_OWNER` if this thread does not hold it.
    pub fn unlock(&self) -> Result<()> {
        let me = Holder::me();
        let h = self.holder.load(SeqCst);
        // The token first, then the swap from our own word: JavaScript's order (module docs).
        if self.mine(h, &me) {
            if self
                .holder
                .compare_exchange(me.mutex_word, 0, SeqCst, SeqCst)
                .is_ok()
            {
                return Ok(());
            }
            // Lockers sleep: only they set the bit, on our word, so it is ours with the bit.
            if self
                .holder
                .compare_exchange(me.mutex_word | SLEEPERS, 0, SeqCst, SeqCst)
                .is_ok()
            {
                self.wake_one();
                return Ok(());
            }
        }
        let h = h & !SLEEPERS;
        let who = if h == 0 {
            "nobody holds it".to_string()
        } else if (h >> 32) as u32 == (me.mutex_word >> 32) as u32 {
            "another thread of this process holds it".to_string()
        } else {
            format!("process {} holds it", h >> 32)
        };
        Err(Error::new(
            Code::NotOwner,
            format!("unlock of a mutex this thread does not hold: {who}"),
        ))
    }

    /// Wakes one contended locker: what an unlock does after it swapped the holder word, with
    /// the sleepers' bit, to 0.
    fn wake_one(&self) {
        // SeqCst: ordered after the holder's release swap (the lost-wakeup argument of
        // `begin_wait`).
        self.seq.fetch_add(1, SeqCst);
        wake32(&self.seq, 1);
    }

    /// Counts this thread as a waiter, sets the sleepers' bit in the holder word, and returns
    /// the `seq` to sleep on, or `None` (and no count) when the mutex is free now. Every `Some`
    /// must be followed by [`Self::end_wait`].
    pub fn begin_wait(&self) -> Option<u32> {
        self.waiters.fetch_add(1, SeqCst);
        let seq = self.seq.load(SeqCst);
        // The bit is set on the word of a holder that is still there after `seq` was read: its
        // unlock then fails its plain swap, bumps `seq` and wakes, so the sleep cannot miss it
        // (a bump before the sleep makes the sleep return at once). A holder gone meanwhile
        // leaves 0, and the lock is tried again.
        let mut h = self.holder.load(SeqCst);
        loop {
            if h == 0 {
                self.waiters.fetch_sub(1, SeqCst);
                return None;
            }
            if h & SLEEPERS != 0 {
                return Some(seq);
            }
            match self
                .holder
                .compare_exchange(h, h | SLEEPERS, SeqCst, SeqCst)
            {
                Ok(_) => return Some(seq),
                Err(now) => h = now,
            }
        }
    }

    pub fn end_wait(&self) {
        // A waiter counted by a process that was killed stays counted: lockers that slept then
        // set the sleepers' bit, and their unlocks make one wasted wake call each, which is all
        // it costs.
        let _ = self
            .waiters
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
    }

    /// The word contended lockers sleep on.
    pub fn seq_word(&self) -> *const AtomicU32 {
        &self.seq
    }

    /// Takes the mutex if it is free, or over from its holder if that holder is known dead.
    pub fn reclaim(&self) -> Option<Acquired> {
        let h = self.holder.load(SeqCst);
        if h == 0 {
            return self.try_lock_as(true);
        }
        if self.holder_may_run(h) {
            return None;
        }
        let me = Holder::me();
        // Taken over by a locker that slept, perhaps beside others.
        self.holder
            .compare_exchange(h, self.word_for(&me, true), SeqCst, SeqCst)
            .ok()?;
        self.write_identity(&me, true);
        Some(Acquired { owner_died: true })
    }
}

/// The error of a wait whose object another thread of this process closed meanwhile.
pub(crate) fn closed_here() -> Error {
    Error::new(
        Code::Closed,
        "closed in this process while this thread waited on it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    /// A mutex in ordinary memory of this process, 8-aligned.
    fn fresh(detection_ms: u32) -> Arc<[u64; 8]> {
        let mut words = [0u64; 8];
        let init = RawMutex::init(detection_ms);
        for (i, w) in words.iter_mut().enumerate() {
            *w = u64::from_ne_bytes(init[i * 8..i * 8 + 8].try_into().unwrap());
        }
        Arc::new(words)
    }

    fn mutex(words: &[u64; 8]) -> &RawMutex {
        // SAFETY: 64 aligned bytes that the caller's Arc keeps alive; all access is atomic.
        unsafe { RawMutex::at(words.as_ptr().cast(), MUTEX_SIZE) }.unwrap()
    }

    #[test]
    fn lock_unlock_and_the_errors_of_misuse() {
        let w = fresh(100);
        let m = mutex(&w);
        assert_eq!(m.unlock().unwrap_err().code, Code::NotOwner);
        assert_eq!(m.try_lock(), Some(Acquired { owner_died: false }));
        assert!(m.held_here());
        assert_eq!(m.holder_pid(), Some(std::process::id()));
        assert_eq!(m.try_lock(), None);
        assert_eq!(m.lock(None).unwrap_err().code, Code::Deadlock);
        m.unlock().unwrap();
        assert_eq!(m.holder_pid(), None);
        assert_eq!(
            m.lock(Some(Duration::ZERO)).unwrap(),
            Some(Acquired { owner_died: false })
        );
        m.unlock().unwrap();
    }

    #[test]
    fn another_thread_cannot_unlock_and_times_out_waiting() {
        let w = fresh(100);
        mutex(&w).try_lock().unwrap();
        let w2 = w.clone();
        let (unlock, timed_out) = std::thread::spawn(move || {
            let m = mutex(&w2);
            (
                m.unlock().unwrap_err().code,
                m.lock(Some(Duration::from_millis(30))).unwrap(),
            )
        })
        .join()
        .unwrap();
        assert_eq!(unlock, Code::NotOwner);
        assert_eq!(timed_out, None);
        mutex(&w).unlock().unwrap();
    }

    #[test]
    fn threads_exclude_each_other() {
        let w = fresh(100);
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (w, counter) = (w.clone(), counter.clone());
                std::thread::spawn(move || {
                    let m = mutex(&w);
                    for _ in 0..5000 {
                        m.lock(None).unwrap().unwrap();
                        // A non-atomic read-modify-write: only exclusion keeps it exact.
                        let v = counter.load(Relaxed);
                        counter.store(v + 1, Relaxed);
                        m.unlock().unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.load(Relaxed), 20_000);
    }

    #[test]
    fn a_lock_held_by_a_thread_that_ended_is_taken_over_within_the_detection_time() {
        let w = fresh(20);
        let w2 = w.clone();
        std::thread::spawn(move || assert!(mutex(&w2).try_lock().is_some()))
            .join()
            .unwrap();
        let m = mutex(&w);
        let t = Instant::now();
        assert_eq!(
            m.lock(Some(Duration::from_secs(5))).unwrap(),
            Some(Acquired { owner_died: true })
        );
        assert!(t.elapsed() < Duration::from_secs(1));
        m.unlock().unwrap();
        assert_eq!(m.try_lock(), Some(Acquired { owner_died: false }));
        m.unlock().unwrap();
    }

    /// Writes identity words for holder word `pid << 32 | tag`, as a holder would.
    fn pose(m: &RawMutex, pid: u32, tag: u32, id: Identity) {
        m.holder
            .store((u64::from(pid) << 32) | u64::from(tag), SeqCst);
        let s = m.stamp.load(SeqCst);
        m.stamp.store((s | 1).wrapping_add(2), SeqCst);
        m.token.store((7 << 32) | u64::from(tag), SeqCst);
        m.start.store(id.start, SeqCst);
        m.pidns.store(id.pidns, SeqCst);
        m.thread_start.store(id.thread_start, SeqCst);
        m.thread.store(id.thread, SeqCst);
        m.image.store(id.image, SeqCst);
        m.stamp.store((s | 1).wrapping_add(3), SeqCst);
    }

    #[test]
    fn a_holder_whose_thread_id_another_thread_has_since_is_dead() {
        let w = fresh(20);
        let m = mutex(&w);
        let me = Holder::me();
        if me.thread_start == 0 {
            return; // no thread start times here: nothing tells the two apart
        }
        // As if an ended thread with this thread's id held it: another token, another start.
        let tag = (me.mutex_word as u32).wrapping_add(12345).max(1);
        pose(
            m,
            (me.word >> 32) as u32,
            tag,
            Identity {
                start: me.start,
                pidns: me.pidns,
                thread_start: me.thread_start.wrapping_add(1).max(1),
                thread: me.thread,
                image: me.image,
            },
        );
        assert!(!m.held_here());
        assert_eq!(
            m.lock(Some(Duration::from_secs(5))).unwrap(),
            Some(Acquired { owner_died: true })
        );
        m.unlock().unwrap();
    }

    #[test]
    fn identity_words_stay_after_unlock_and_are_not_written_again() {
        let w = fresh(20);
        let m = mutex(&w);
        assert!(m.try_lock().is_some());
        let stamp = m.stamp.load(SeqCst);
        assert_eq!(stamp & 1, 0);
        m.unlock().unwrap();
        assert_eq!(m.token.load(SeqCst), Holder::me().token);
        assert!(m.try_lock().is_some());
        m.unlock().unwrap();
        assert_eq!(
            m.stamp.load(SeqCst),
            stamp,
            "the same thread again writes nothing"
        );
        // Another thread rewrites them, and this one after it.
        let w2 = w.clone();
        std::thread::spawn(move || {
            let m = mutex(&w2);
            assert!(m.try_lock().is_some());
            m.unlock().unwrap();
        })
        .join()
        .unwrap();
        assert_ne!(m.stamp.load(SeqCst), stamp);
        assert_ne!(m.token.load(SeqCst), Holder::me().token);
        assert!(m.try_lock().is_some());
        assert!(m.held_here());
        assert_eq!(m.token.load(SeqCst), Holder::me().token);
        m.unlock().unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_holder_process_that_exec_d_is_dead_and_one_that_did_not_is_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        // Until the child has exec'd, its stack is the one its fork inherited; exec writes it
        // twice (before and after it lays out the arguments): wait for a value that holds.
        let me = Holder::me();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut last = None;
        let image = loop {
            std::thread::sleep(Duration::from_millis(20));
            let i = stack_image_of(pid);
            if i.is_some() && i != Some(me.image) && i == last
                || std::time::Instant::now() > deadline
            {
                break i;
            }
            last = i;
        };
        let Some(image) = image else {
            child.kill().ok();
            child.wait().ok();
            return; // the kernel shows no stack addresses here
        };
        let start = crate::sys::task_start_time(pid, pid).unwrap();
        let w = fresh(10);
        let m = mutex(&w);
        let id = |image| Identity {
            start,
            pidns: me.pidns,
            thread_start: start,
            thread: pid,
            image,
        };
        pose(m, pid, 99, id(image));
        assert_eq!(
            m.lock(Some(Duration::from_millis(60))).unwrap(),
            None,
            "the same program holds it"
        );
        pose(m, pid, 99, id(image ^ 0x5a5a));
        assert_eq!(
            m.lock(Some(Duration::from_secs(5))).unwrap(),
            Some(Acquired { owner_died: true }),
            "another program runs under the holder's pid"
        );
        m.unlock().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[cfg(target_os = "linux")]
    fn stack_image_of(pid: u32) -> Option<u32> {
        crate::sys::task_stack_image(pid)
    }

    #[test]
    fn a_holder_whose_identity_is_not_written_is_judged_by_its_pid() {
        let w = fresh(10);
        let m = mutex(&w);
        let me = Holder::me();
        // Our own pid, another thread's word, no identity yet: it may run.
        m.holder.store((me.mutex_word & !0xffff_ffff) | 77, SeqCst);
        assert_eq!(m.lock(Some(Duration::from_millis(50))).unwrap(), None);
        // A pid no process has (above the kernel's limit): dead.
        m.holder.store((u64::from(u32::MAX - 1) << 32) | 77, SeqCst);
        assert_eq!(
            m.lock(Some(Duration::from_secs(5))).unwrap(),
            Some(Acquired { owner_died: true })
        );
        m.unlock().unwrap();
    }

    #[test]
    fn bad_words_are_refused() {
        let zero = [0u64; 8];
        // SAFETY: 64 aligned bytes of this test.
        let r = unsafe { RawMutex::at(zero.as_ptr().cast(), MUTEX_SIZE) };
        assert_eq!(r.err().map(|e| e.code), Some(Code::BadHeader));
        let w = fresh(1);
        // SAFETY: as above, but too short a length.
        let r = unsafe { RawMutex::at(w.as_ptr().cast(), 32) };
        assert_eq!(r.err().map(|e| e.code), Some(Code::BadHeader));
    }
}
