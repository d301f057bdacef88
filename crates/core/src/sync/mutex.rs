//! A robust mutex in a segment of its own (kind `mutex`), usable by every thread of every
//! process that maps it.
//!
//! The holder is one 64-bit word, its process id over its thread id, set by one
//! compare-and-swap: an uncontended `lock` and `unlock` are one atomic operation each and never
//! enter the kernel. Contended lockers count themselves in `waiters` and sleep on `seq`, which an
//! unlock bumps and wakes only when someone waits. They sleep at most the detection interval at
//! a time; when a sleep runs out with the lock still held, they check that the holder's process
//! and thread still run, and take the lock over from a dead one with one more compare-and-swap,
//! which tells the new holder that the previous one died (what `EOWNERDEAD` tells a POSIX robust
//! mutex's locker). The data it guarded may be half-updated: the new holder decides.
//!
//! | offset | size | word |
//! |---|---|---|
//! | 0 | 8 | holder: 0 when free, else pid << 32 \| thread |
//!
//! JavaScript takes and releases an uncontended lock itself with `Atomics` on these words where
//! its view is a SharedArrayBuffer (a SeqCst compare-and-swap of the holder word from 0, then
//! SeqCst stores of the start time, namespace, token and thread start; an unlock clears them, stores 0, reads
//! `waiters` and calls [`RawMutex::wake_one`] if any): exactly the operations `try_lock` and
//! `unlock` make here, in the same order, so the two kinds of party mix freely.
//! | 8 | 4 | waiters: lockers between announcing themselves and waking up |
//! | 12 | 4 | seq: bumped by an unlock with waiters; the word they sleep on |
//! | 16 | 8 | the holder's process start time (0 until written) |
//! | 24 | 8 | the holder's pid namespace (0 if unknown) |
//! | 32 | 4 | detection interval, milliseconds (at least 1) |
//! | 36 | 4 | reserved, zero |
//! | 40 | 8 | the holder's token (see below; 0 until written) |
//! | 48 | 8 | when the holder's thread started (0 until written, or where unknown) |
//! | 56 | 8 | reserved, zero |
//!
//! The holder word says who to judge when a holder may be dead, but two threads of two pid
//! namespaces can carry the same one. So whether *this* thread holds the lock is asked of the
//! token, 62 random bits per thread: the holder word must be ours *and* the token. The token is
//! stored after the compare-and-swap, so another party that meets our word with a token not
//! yet written sees 0, not its own; the holder itself always wrote it before its lock returned.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use super::{wait32, wake32, Deadline, Holder, WaitResult};
use crate::error::{Code, Error, Result};

/// Bytes of a mutex's words (its segment's data).
pub const MUTEX_SIZE: usize = 64;
/// How often a contended locker looks at the holder before it sleeps.
const SPINS: u32 = 100;

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
    _pad: AtomicU32,
    token: AtomicU64,
    thread_start: AtomicU64,
    _reserved: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<RawMutex>() == MUTEX_SIZE);

/// A lock taken: `owner_died` when it was taken over from a holder that died holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub owner_died: bool,
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
        let h = self.holder.load(SeqCst);
        (h != 0).then_some((h >> 32) as u32)
    }

    /// Whether this thread holds the mutex.
    pub fn held_here(&self) -> bool {
        self.mine(self.holder.load(SeqCst), &Holder::me())
    }

    /// Whether holder word `h` is this thread's: the word and the token (see the module docs).
    fn mine(&self, h: u64, me: &Holder) -> bool {
        h == me.word && self.token.load(SeqCst) == me.token
    }

    fn claim(&self, me: &Holder) {
        // SeqCst stores after the CAS, read SeqCst by a checker: one that reads them as 0
        // judges the holder by its pid alone, one that reads them sees this holder's, never a
        // previous one's (unlock clears them before it releases).
        self.start.store(me.start, SeqCst);
        self.pidns.store(me.pidns, SeqCst);
        self.token.store(me.token, SeqCst);
        self.thread_start.store(me.thread_start, SeqCst);
    }

    /// Takes the mutex if it is free, without waiting and without judging its holder.
    pub fn try_lock(&self) -> Option<Acquired> {
        let me = Holder::me();
        self.holder
            .compare_exchange(0, me.word, SeqCst, SeqCst)
            .ok()?;
        self.claim(&me);
        Some(Acquired { owner_died: false })
    }

    /// Takes the mutex, waiting up to `timeout` (`None`: forever); `Ok(None)` when it timed out.
    ///
    /// # Errors
    /// `ERR_SHM_DEADLOCK` if this thread holds it already.
    pub fn lock(&self, timeout: Option<Duration>) -> Result<Option<Acquired>> {
        let me = Holder::me();
        let deadline = Deadline::after(timeout);
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
            match self.holder.compare_exchange(0, me.word, SeqCst, SeqCst) {
                Ok(_) if self.retired() => return Err(closed_here()),
                Ok(_) => {
                    self.claim(&me);
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
        if !self.mine(h, &me) {
            let who = if h == 0 {
                "nobody holds it".to_string()
            } else if (h >> 32) as u32 == (me.word >> 32) as u32 {
                "another thread of this process holds it".to_string()
            } else {
                format!("process {} holds it", h >> 32)
            };
            return Err(Error::new(
                Code::NotOwner,
                format!("unlock of a mutex this thread does not hold: {who}"),
            ));
        }
        self.token.store(0, SeqCst);
        self.thread_start.store(0, SeqCst);
        self.start.store(0, SeqCst);
        self.pidns.store(0, SeqCst);
        // Nobody else writes the holder while a live holder holds it, so a store releases.
        self.holder.store(0, SeqCst);
        if self.waiters.load(SeqCst) > 0 {
            self.wake_one();
        }
        Ok(())
    }

    /// Wakes one contended locker: what an unlock does after it stored 0 in the holder word and
    /// found waiters counted. JavaScript's own unlock (Atomics on the same words) calls this.
    pub fn wake_one(&self) {
        // SeqCst: ordered after the holder's release store and the read of `waiters` (the
        // lost-wakeup argument of `begin_wait`).
        self.seq.fetch_add(1, SeqCst);
        wake32(&self.seq, 1);
    }

    /// Counts this thread as a waiter and returns the `seq` to sleep on, or `None` (and no
    /// count) when the mutex is free now. Every `Some` must be followed by [`Self::end_wait`].
    pub fn begin_wait(&self) -> Option<u32> {
        self.waiters.fetch_add(1, SeqCst);
        let seq = self.seq.load(SeqCst);
        // An unlock after this point sees the count and bumps seq, so the sleep cannot miss it.
        if self.holder.load(SeqCst) == 0 {
            self.waiters.fetch_sub(1, SeqCst);
            return None;
        }
        Some(seq)
    }

    pub fn end_wait(&self) {
        // A waiter counted by a process that was killed stays counted: unlocks then make one
        // wasted wake call each, which is all it costs.
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
            return self.try_lock();
        }
        // SeqCst: the holder's claim stores are SeqCst after its CAS, so what is read here is
        // its start time and namespace or 0, never a stale value of an earlier holder.
        let (start, pidns) = (self.start.load(SeqCst), self.pidns.load(SeqCst));
        if Holder::alive(h, start, pidns, self.thread_start.load(SeqCst)) {
            return None;
        }
        let me = Holder::me();
        self.holder
            .compare_exchange(h, me.word, SeqCst, SeqCst)
            .ok()?;
        self.claim(&me);
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

    #[test]
    fn a_holder_whose_thread_id_another_thread_has_since_is_dead() {
        let w = fresh(20);
        let m = mutex(&w);
        // As if an ended thread with this thread's id held it: same word, another start time.
        let me = Holder::me();
        m.holder.store(me.word, SeqCst);
        m.start.store(me.start, SeqCst);
        m.pidns.store(me.pidns, SeqCst);
        m.thread_start
            .store(me.thread_start.wrapping_add(1).max(1), SeqCst);
        if me.thread_start == 0 {
            return; // no thread start times here: nothing tells the two apart
        }
        assert!(!m.held_here());
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
