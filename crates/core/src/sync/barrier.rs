//! A reusable barrier in a segment of its own (kind `barrier`): `parties` threads or processes
//! call `wait`, and none returns before all have arrived. Each round has a generation; the last
//! to arrive resets the count, bumps the generation and wakes everyone sleeping on it.
//!
//! A barrier breaks, as Python's `threading.Barrier` does, when a wait times out, when a party
//! calls `abort`, or when a party that waited on it before dies without arriving in the current
//! round: every waiter then fails with `ERR_SHM_BARRIER_BROKEN`, and so does every later wait
//! until `reset`. Parties are known by the table of the threads that waited (the first 256);
//! waiters look at it each time a sleep of the detection interval runs out.
//!
//! | offset | size | word |
//! |---|---|---|
//! | 0 | 4 | arrived in this round |
//! | 4 | 4 | generation (low 31 bits), bumped when a round completes, and the broken bit (bit 31); the word waiters sleep on |
//! | 8 | 4 | parties (at least 1) |
//! | 12 | 4 | entries in the party table (0 for a barrier made by an earlier version) |
//! | 16 | 4 | detection interval, milliseconds (0: 100) |
//! | 20 | 44 | reserved, zero |
//! | 64 | entries × 32 | the parties; each one's `extra` is the generation it last arrived in, plus 1 |
//!
//! # Memory order
//!
//! All SeqCst. Breaking is one `fetch_or` of the broken bit into the generation word, and
//! completing a round one CAS of that word from the round's generation, unbroken: exactly one
//! of the two happens to a round, so no party sees a round both passed and broken. A waiter's
//! sleep compares the whole word, so either change wakes it.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use super::parties::{Parties, PARTY_SIZE};
use super::{wait32, wake32, Deadline, WaitResult};
use crate::error::{Code, Error, Result};

/// Bytes of a barrier's fixed words; its party table follows.
pub const BARRIER_SIZE: usize = 64;
/// The most entries in a barrier's party table.
pub const BARRIER_PARTIES: u32 = 256;
const BROKEN: u32 = 1 << 31;
const GENERATION: u32 = BROKEN - 1;

/// The words of a barrier, over shared memory; see [`RawMutex`](super::RawMutex) for why they
/// are all atomic.
#[repr(C)]
pub struct Words {
    arrived: AtomicU32,
    generation: AtomicU32,
    parties: AtomicU32,
    table: AtomicU32,
    detection_ms: AtomicU32,
    _reserved: [AtomicU32; 11],
}

const _: () = assert!(std::mem::size_of::<Words>() == BARRIER_SIZE);

/// A barrier over the data of its segment.
pub struct RawBarrier<'a> {
    words: &'a Words,
    table: Parties<'a>,
}

/// What arriving did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// This party arrived last and released the round.
    Leader,
    /// Others are still to come: wait until the generation is no longer this one.
    Wait(u32),
}

fn broken() -> Error {
    Error::new(
        Code::BarrierBroken,
        "the barrier is broken (a party timed out, aborted or died); reset() it to use it again",
    )
}

impl<'a> RawBarrier<'a> {
    /// Bytes of the segment data of a barrier for `parties` parties.
    pub fn size(parties: u32) -> usize {
        BARRIER_SIZE + parties.min(BARRIER_PARTIES) as usize * PARTY_SIZE
    }

    /// The initial bytes of a barrier for `parties` parties (the table that follows is zero).
    pub fn init(parties: u32, detection_ms: u32) -> [u8; BARRIER_SIZE] {
        let mut b = [0u8; BARRIER_SIZE];
        b[8..12].copy_from_slice(&parties.to_ne_bytes());
        b[12..16].copy_from_slice(&parties.min(BARRIER_PARTIES).to_ne_bytes());
        b[16..20].copy_from_slice(&detection_ms.max(1).to_ne_bytes());
        b
    }

    /// The barrier whose words start at `ptr`.
    ///
    /// # Safety
    /// As for [`RawMutex::at`](super::RawMutex::at), for `len` bytes.
    ///
    /// # Errors
    /// `ERR_SHM_BAD_HEADER` if the bytes are too few, misaligned, or not a barrier's.
    pub unsafe fn at(ptr: *const u8, len: usize) -> Result<RawBarrier<'a>> {
        if len < BARRIER_SIZE || ptr.is_null() || !ptr.cast::<u64>().is_aligned() {
            return Err(Error::new(
                Code::BadHeader,
                "the segment is too small or misaligned to hold a barrier",
            ));
        }
        // SAFETY: BARRIER_SIZE aligned bytes that stay mapped for 'a (the caller's contract);
        // every field is atomic.
        let words = unsafe { &*ptr.cast::<Words>() };
        let table = words.table.load(Relaxed).min(BARRIER_PARTIES) as usize;
        if words.parties.load(Relaxed) == 0 || BARRIER_SIZE + table * PARTY_SIZE > len {
            return Err(Error::new(
                Code::BadHeader,
                "the segment does not hold a barrier",
            ));
        }
        // SAFETY: the table lies inside the `len` bytes checked above, 8-aligned.
        let table = unsafe { Parties::at(ptr.add(BARRIER_SIZE), table) };
        Ok(RawBarrier { words, table })
    }

    pub fn parties(&self) -> u32 {
        self.words.parties.load(Relaxed)
    }

    pub fn detection(&self) -> Duration {
        let ms = self.words.detection_ms.load(Relaxed);
        Duration::from_millis(u64::from(if ms == 0 { 100 } else { ms }))
    }

    pub fn is_broken(&self) -> bool {
        self.words.generation.load(SeqCst) & BROKEN != 0
    }

    /// Arrives at the barrier. The last of `parties` to arrive releases the round.
    ///
    /// # Errors
    /// `ERR_SHM_BARRIER_BROKEN` if it is broken.
    pub fn arrive(&self) -> Result<Arrival> {
        // Read before arriving: the round cannot complete without this party, so this is the
        // generation of the round it joins.
        let word = self.words.generation.load(SeqCst);
        if word & BROKEN != 0 {
            return Err(broken());
        }
        let generation = word & GENERATION;
        if let Some(i) = self.table.mine(|_| {}) {
            self.table.entries[i as usize]
                .extra
                .store(u64::from(generation) + 1, SeqCst);
        }
        let n = self.words.arrived.fetch_add(1, SeqCst) + 1;
        if n < self.parties() {
            return Ok(Arrival::Wait(generation));
        }
        // Reset before the bump: nobody can arrive for the next round until they see the bump.
        self.words.arrived.store(0, SeqCst);
        let next = (generation + 1) & GENERATION;
        if self
            .words
            .generation
            .compare_exchange(generation, next, SeqCst, SeqCst)
            .is_err()
        {
            return Err(broken());
        }
        wake32(&self.words.generation, u32::MAX);
        Ok(Arrival::Leader)
    }

    /// Whether the round of `generation` is over.
    ///
    /// # Errors
    /// `ERR_SHM_BARRIER_BROKEN` if it broke first.
    pub fn passed(&self, generation: u32) -> Result<bool> {
        let w = self.words.generation.load(SeqCst);
        if w & GENERATION != generation {
            return Ok(true);
        }
        if w & BROKEN != 0 {
            return Err(broken());
        }
        Ok(false)
    }

    /// Breaks the barrier: every waiter and every later wait fails until [`Self::reset`].
    pub fn abort(&self) {
        self.words.generation.fetch_or(BROKEN, SeqCst);
        wake32(&self.words.generation, u32::MAX);
    }

    /// Makes a broken barrier whole again, for a new round with nobody arrived, and forgets the
    /// dead parties (a process that replaces one may take its place).
    pub fn reset(&self) {
        self.words.arrived.store(0, SeqCst);
        let g = self.words.generation.load(SeqCst);
        self.words
            .generation
            .store(((g & GENERATION) + 1) & GENERATION, SeqCst);
        for (i, e) in self.table.entries.iter().enumerate() {
            let w = e.word.load(SeqCst);
            if self.table.dead(i as u32) {
                self.table.release(i as u32, w);
            }
        }
        wake32(&self.words.generation, u32::MAX);
    }

    /// Breaks the barrier if a party that waited on it before is dead and has not arrived in the
    /// round of `generation`; true when it did.
    pub fn check_parties(&self, generation: u32) -> bool {
        let missing = self.table.entries.iter().enumerate().any(|(i, e)| {
            e.extra.load(SeqCst) != u64::from(generation) + 1 && self.table.dead(i as u32)
        });
        missing && self.break_round(generation)
    }

    /// Breaks the round of `generation` if it is still on: false when it passed already.
    pub fn break_round(&self, generation: u32) -> bool {
        let broke = self
            .words
            .generation
            .compare_exchange(generation, generation | BROKEN, SeqCst, SeqCst)
            .is_ok();
        wake32(&self.words.generation, u32::MAX);
        broke || self.words.generation.load(SeqCst) == generation | BROKEN
    }

    /// The word waiters sleep on.
    pub fn generation_word(&self) -> *const AtomicU32 {
        &self.words.generation
    }

    /// Arrives and waits until every party has: true for the one that arrived last.
    ///
    /// # Errors
    /// `ERR_SHM_BARRIER_BROKEN` if the barrier is or becomes broken, or `timeout` passes (which
    /// breaks it).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let generation = match self.arrive()? {
            Arrival::Leader => return Ok(true),
            Arrival::Wait(generation) => generation,
        };
        let deadline = Deadline::after(timeout);
        loop {
            // Closed by another thread of this process: zeros, not the barrier (never 0 parties).
            if self.words.parties.load(SeqCst) == 0 {
                return Err(super::mutex::closed_here());
            }
            if self.passed(generation)? {
                break;
            }
            let Some(left) = deadline.left() else {
                if self.break_round(generation) {
                    return Err(broken());
                }
                continue;
            };
            let slice = left.map_or(self.detection(), |l| l.min(self.detection()));
            // SAFETY: the generation is a word of this barrier, mapped while `self` lives.
            let r = unsafe { wait32(&self.words.generation, generation, Some(slice)) };
            if r == WaitResult::TimedOut {
                self.check_parties(generation);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn fresh(parties: u32) -> Arc<Vec<u64>> {
        let mut words = vec![0u64; RawBarrier::size(parties) / 8];
        let init = RawBarrier::init(parties, 20);
        // SAFETY: the vector has at least BARRIER_SIZE bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(init.as_ptr(), words.as_mut_ptr().cast(), init.len())
        };
        Arc::new(words)
    }

    fn barrier(words: &[u64]) -> RawBarrier<'_> {
        // SAFETY: aligned bytes that the caller's Arc keeps alive; all access is atomic.
        unsafe { RawBarrier::at(words.as_ptr().cast(), words.len() * 8) }.unwrap()
    }

    #[test]
    fn no_thread_runs_ahead_over_many_rounds() {
        const PARTIES: usize = 4;
        const ROUNDS: u32 = 300;
        let w = fresh(PARTIES as u32);
        let progress = Arc::new((0..PARTIES).map(|_| AtomicU32::new(0)).collect::<Vec<_>>());
        let threads: Vec<_> = (0..PARTIES)
            .map(|me| {
                let (w, progress) = (w.clone(), progress.clone());
                std::thread::spawn(move || {
                    let b = barrier(&w);
                    let mut leaders = 0;
                    for round in 1..=ROUNDS {
                        progress[me].store(round, SeqCst);
                        leaders += u32::from(b.wait(None).unwrap());
                        for p in progress.iter() {
                            let r = p.load(SeqCst);
                            assert!(
                                r == round || r == round + 1,
                                "a party is at {r} in round {round}"
                            );
                        }
                    }
                    leaders
                })
            })
            .collect();
        let leaders: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(leaders, ROUNDS, "one leader per round");
    }

    #[test]
    fn a_barrier_of_one_never_waits_and_zero_parties_is_not_a_barrier() {
        let w = fresh(1);
        assert!(barrier(&w).wait(None).unwrap());
        assert!(barrier(&w).wait(None).unwrap());
        let z = fresh(0);
        // SAFETY: 64 aligned bytes of this test.
        let r = unsafe { RawBarrier::at(z.as_ptr().cast(), BARRIER_SIZE) };
        assert_eq!(r.err().map(|e| e.code), Some(Code::BadHeader));
    }

    #[test]
    fn a_timeout_or_a_dead_party_breaks_the_barrier_until_reset() {
        let w = fresh(2);
        let b = barrier(&w);
        let e = b.wait(Some(Duration::from_millis(20))).unwrap_err();
        assert_eq!(e.code, Code::BarrierBroken);
        assert!(b.is_broken());
        assert_eq!(b.wait(None).unwrap_err().code, Code::BarrierBroken);
        b.reset();
        assert!(!b.is_broken());
        // A party that waited once, then ended without coming back.
        let rounds: Vec<_> = (0..2)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || barrier(&w).wait(None).unwrap())
            })
            .collect();
        for t in rounds {
            t.join().unwrap();
        }
        let e = b.wait(Some(Duration::from_secs(20))).unwrap_err();
        assert_eq!(e.code, Code::BarrierBroken, "the ended thread broke it");
    }
}
