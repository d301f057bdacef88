//! A counting semaphore in a segment of its own (kind `semaphore`), whose permits come back when
//! the thread that holds them dies.
//!
//! # Layout
//!
//! | offset | size | word |
//! |---|---|---|
//! | 0 | 64 | a [`RawMutex`] that guards the bookkeeping below |
//! | 64 | 8 | permits available |
//! | 72 | 4 | seq: bumped by every release; the word acquirers sleep on |
//! | 76 | 4 | acquirers counted as waiting |
//! | 80 | 4 | journal: 1 while an update is being applied |
//! | 84 | 4 | journal: the party whose count the update sets |
//! | 88 | 8 | journal: that party's new count |
//! | 96 | 8 | journal: the new number available |
//! | 128 | 256 × 32 | the parties; each one's `extra` is the permits it holds |
//!
//! # Protocol
//!
//! An acquire or release takes the guard (a short critical section: no waiting inside), then
//! writes the two numbers it will change into the journal, marks the journal valid, writes
//! them to their places, and clears the mark. A party killed anywhere in there leaves the
//! guard to be taken over (its next locker is told the holder died); that locker finds the
//! journal valid and writes the numbers again, or finds it clear and knows the update either
//! did not start or finished. So the count available and the permits held always agree.
//!
//! An acquirer that finds no permit sleeps on `seq` one detection interval at a time; when a
//! sleep runs out it looks for parties that are dead and hold permits, and puts their permits
//! back. A permit released by a thread that holds none (a semaphore used as a signal) is
//! simply added.
//!
//! # Memory order
//!
//! The numbers are written under the guard, whose lock is an acquire and unlock a release;
//! they are atomics only because other processes read `available` without it (SeqCst, as the
//! waiter count and `seq` need for the lost-wakeup argument: an acquirer counts itself, reads
//! `seq`, then looks at `available`; a releaser adds, bumps `seq`, then reads the count).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use super::parties::{Parties, PARTY_SIZE};
use super::{wait32, wake32, Deadline, RawMutex, WaitResult, MUTEX_SIZE};
use crate::error::{Code, Error, Result};

/// Entries in a semaphore's party table.
pub const SEMAPHORE_PARTIES: usize = 256;
const PARTIES_AT: usize = 128;
/// Bytes of a semaphore's segment data.
pub const SEMAPHORE_SIZE: usize = PARTIES_AT + SEMAPHORE_PARTIES * PARTY_SIZE;

#[repr(C)]
struct Words {
    available: AtomicU64,
    seq: AtomicU32,
    waiting: AtomicU32,
    journal: AtomicU32,
    journal_party: AtomicU32,
    journal_held: AtomicU64,
    journal_available: AtomicU64,
}

/// A semaphore over the data of its segment.
pub struct RawSemaphore<'a> {
    guard: &'a RawMutex,
    words: &'a Words,
    parties: Parties<'a>,
}

/// No party: an update of `available` alone.
const NOBODY: u32 = u32::MAX;

impl<'a> RawSemaphore<'a> {
    /// The initial bytes of a semaphore with `permits` available.
    pub fn init(permits: u64, detection_ms: u32) -> Vec<u8> {
        let mut b = RawMutex::init(detection_ms).to_vec();
        b.extend_from_slice(&permits.to_ne_bytes());
        b
    }

    /// The semaphore whose segment data starts at `ptr`.
    ///
    /// # Safety
    /// As for [`RawMutex::at`], for `len` bytes.
    ///
    /// # Errors
    /// `ERR_SHM_BAD_HEADER` if the bytes are not a semaphore's.
    pub unsafe fn at(ptr: *const u8, len: usize) -> Result<RawSemaphore<'a>> {
        if len < SEMAPHORE_SIZE {
            return Err(Error::new(
                Code::BadHeader,
                "the segment does not hold a semaphore",
            ));
        }
        // SAFETY: the caller's contract; the guard's own check refuses misaligned bytes.
        let guard = unsafe { RawMutex::at(ptr, MUTEX_SIZE) }?;
        // SAFETY: inside the `len` bytes, 8-aligned (the guard checked `ptr`); all atomics.
        let words = unsafe { &*ptr.add(MUTEX_SIZE).cast::<Words>() };
        // SAFETY: as above, for the table.
        let parties = unsafe { Parties::at(ptr.add(PARTIES_AT), SEMAPHORE_PARTIES) };
        Ok(RawSemaphore {
            guard,
            words,
            parties,
        })
    }

    pub fn available(&self) -> u64 {
        self.words.available.load(SeqCst)
    }

    pub fn detection(&self) -> Duration {
        self.guard.detection()
    }

    /// Runs `f` holding the guard, after finishing an update a dead holder left.
    fn locked<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let got = self.guard.lock(None)?.expect("no timeout");
        if got.owner_died && self.words.journal.load(SeqCst) == 1 {
            self.apply();
        }
        let r = f();
        self.guard.unlock()?;
        Ok(r)
    }

    fn apply(&self) {
        let party = self.words.journal_party.load(SeqCst);
        if let Some(e) = self.parties.entries.get(party as usize) {
            e.extra.store(self.words.journal_held.load(SeqCst), SeqCst);
        }
        self.words
            .available
            .store(self.words.journal_available.load(SeqCst), SeqCst);
        self.words.journal.store(0, SeqCst);
    }

    /// Sets the count available and one party's count as one update, through the journal.
    fn update(&self, party: u32, held: u64, available: u64) {
        self.words.journal_party.store(party, SeqCst);
        self.words.journal_held.store(held, SeqCst);
        self.words.journal_available.store(available, SeqCst);
        self.words.journal.store(1, SeqCst);
        self.apply();
    }

    fn me(&self) -> u32 {
        self.parties
            .mine(|dead| {
                self.give_back(dead);
            })
            .unwrap_or(NOBODY)
    }

    /// Takes a permit if one is available, without waiting or judging holders.
    ///
    /// # Errors
    /// Only an OS failure of the guard.
    pub fn try_acquire(&self) -> Result<bool> {
        if self.available() == 0 {
            return Ok(false);
        }
        let me = self.me();
        self.locked(|| {
            let n = self.available();
            if n == 0 {
                return false;
            }
            let held = self.held(me) + 1;
            self.update(me, held, n - 1);
            true
        })
    }

    fn held(&self, party: u32) -> u64 {
        self.parties
            .entries
            .get(party as usize)
            .map_or(0, |e| e.extra.load(SeqCst))
    }

    /// Returns one permit (and counts one fewer held by this thread, if it holds any).
    ///
    /// # Errors
    /// `ERR_OUT_OF_RANGE` if the count would pass 2^53 - 1.
    pub fn release(&self) -> Result<()> {
        let me = self.me();
        let added = self.locked(|| {
            let n = self.available();
            if n >= (1 << 53) - 1 {
                return false;
            }
            self.update(me, self.held(me).saturating_sub(1), n + 1);
            true
        })?;
        if !added {
            return Err(Error::new(
                Code::OutOfRange,
                "a semaphore counts at most 2^53 - 1 permits",
            ));
        }
        self.words.seq.fetch_add(1, SeqCst);
        if self.words.waiting.load(SeqCst) > 0 {
            wake32(&self.words.seq, 1);
        }
        Ok(())
    }

    /// Puts back the permits of every dead party; true when it put any back.
    ///
    /// # Errors
    /// Only an OS failure of the guard.
    pub fn reclaim(&self) -> Result<bool> {
        let dead: Vec<u32> = (0..SEMAPHORE_PARTIES as u32)
            .filter(|&i| self.held(i) > 0 && self.parties.dead(i))
            .collect();
        let mut any = false;
        for i in dead {
            any |= self.give_back(i);
        }
        if any {
            self.words.seq.fetch_add(1, SeqCst);
            wake32(&self.words.seq, u32::MAX);
        }
        Ok(any)
    }

    /// Moves the permits party `i` holds back to the count available.
    fn give_back(&self, i: u32) -> bool {
        self.locked(|| {
            let held = self.held(i);
            if held == 0 {
                return false;
            }
            self.update(i, 0, self.available().saturating_add(held));
            true
        })
        .unwrap_or(false)
    }

    /// Counts this thread as waiting and returns the `seq` to sleep on. Every call must be
    /// followed by [`Self::end_wait`].
    pub fn begin_wait(&self) -> u32 {
        self.words.waiting.fetch_add(1, SeqCst);
        self.words.seq.load(SeqCst)
    }

    pub fn end_wait(&self) {
        let _ = self
            .words
            .waiting
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
    }

    pub fn seq_word(&self) -> *const AtomicU32 {
        &self.words.seq
    }

    /// Takes a permit, waiting up to `timeout`: false when it timed out.
    ///
    /// # Errors
    /// Only an OS failure of the guard.
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = Deadline::after(timeout);
        loop {
            if self.try_acquire()? {
                return Ok(true);
            }
            let seq = self.begin_wait();
            if self.available() > 0 {
                self.end_wait();
                continue;
            }
            let Some(left) = deadline.left() else {
                self.end_wait();
                return Ok(false);
            };
            let slice = left.map_or(self.detection(), |l| l.min(self.detection()));
            // SAFETY: `seq` is a word of this semaphore, mapped while `self` lives.
            let r = unsafe { wait32(&self.words.seq, seq, Some(slice)) };
            self.end_wait();
            if r == WaitResult::TimedOut {
                self.reclaim()?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn fresh(permits: u64) -> Arc<Vec<u64>> {
        let mut words = vec![0u64; SEMAPHORE_SIZE / 8];
        let init = RawSemaphore::init(permits, 20);
        // SAFETY: the vector has SEMAPHORE_SIZE bytes, more than `init`.
        unsafe {
            std::ptr::copy_nonoverlapping(init.as_ptr(), words.as_mut_ptr().cast(), init.len())
        };
        Arc::new(words)
    }

    fn sem(w: &[u64]) -> RawSemaphore<'_> {
        // SAFETY: aligned words that the caller's Arc keeps alive; all shared access is atomic.
        unsafe { RawSemaphore::at(w.as_ptr().cast(), w.len() * 8) }.unwrap()
    }

    #[test]
    fn permits_are_counted_and_a_wait_times_out() {
        let w = fresh(2);
        let s = sem(&w);
        assert!(s.try_acquire().unwrap());
        assert!(s.acquire(Some(Duration::ZERO)).unwrap());
        assert!(!s.try_acquire().unwrap());
        assert!(!s.acquire(Some(Duration::from_millis(30))).unwrap());
        s.release().unwrap();
        assert_eq!(s.available(), 1);
        assert!(s.try_acquire().unwrap());
    }

    #[test]
    fn the_permits_of_a_thread_that_ended_come_back() {
        let w = fresh(1);
        let w2 = w.clone();
        std::thread::spawn(move || assert!(sem(&w2).try_acquire().unwrap()))
            .join()
            .unwrap();
        let s = sem(&w);
        assert!(s.acquire(Some(Duration::from_secs(5))).unwrap());
    }

    #[test]
    fn an_update_cut_short_is_finished_by_the_next_locker() {
        let w = fresh(3);
        let s = sem(&w);
        let me = s.me();
        // As if a holder died after writing the journal and before applying it.
        let w2 = w.clone();
        std::thread::spawn(move || {
            let s = sem(&w2);
            assert!(s.guard.try_lock().is_some());
            s.words.journal_party.store(me, SeqCst);
            s.words.journal_held.store(1, SeqCst);
            s.words.journal_available.store(2, SeqCst);
            s.words.journal.store(1, SeqCst);
        })
        .join()
        .unwrap();
        assert!(s.try_acquire().unwrap());
        assert_eq!(s.available(), 1);
        assert_eq!(s.held(me), 2);
    }

    #[test]
    fn threads_never_hold_more_permits_than_there_are() {
        let w = fresh(3);
        let inside = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (w, inside) = (w.clone(), inside.clone());
                std::thread::spawn(move || {
                    let s = sem(&w);
                    for _ in 0..2000 {
                        assert!(s.acquire(None).unwrap());
                        assert!(inside.fetch_add(1, SeqCst) < 3);
                        inside.fetch_sub(1, SeqCst);
                        s.release().unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(sem(&w).available(), 3);
    }
}
