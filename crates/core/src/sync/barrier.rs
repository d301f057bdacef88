//! A reusable barrier in a segment of its own (kind `barrier`): `parties` threads or processes
//! call `wait`, and none returns before all have arrived. Each round has a generation; the last
//! to arrive resets the count, bumps the generation and wakes everyone sleeping on it.
//!
//! | offset | size | word |
//! |---|---|---|
//! | 0 | 4 | arrived in this round |
//! | 4 | 4 | generation: bumped when a round completes; the word waiters sleep on |
//! | 8 | 4 | parties (at least 1) |
//! | 12 | 52 | reserved, zero |

use std::sync::atomic::{AtomicU32, Ordering::Relaxed, Ordering::SeqCst};

use super::{wait32, wake32};
use crate::error::{Code, Error, Result};

/// Bytes of a barrier's words (its segment's data).
pub const BARRIER_SIZE: usize = 64;

/// The words of a barrier, over shared memory; see [`RawMutex`](super::RawMutex) for why they
/// are all atomic.
#[repr(C)]
pub struct RawBarrier {
    arrived: AtomicU32,
    generation: AtomicU32,
    parties: AtomicU32,
    _reserved: [AtomicU32; 13],
}

const _: () = assert!(std::mem::size_of::<RawBarrier>() == BARRIER_SIZE);

/// What arriving did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// This party arrived last and released the round.
    Leader,
    /// Others are still to come: wait until the generation is no longer this one.
    Wait(u32),
}

impl RawBarrier {
    /// The initial bytes of a barrier for `parties` parties.
    pub fn init(parties: u32) -> [u8; BARRIER_SIZE] {
        let mut b = [0u8; BARRIER_SIZE];
        b[8..12].copy_from_slice(&parties.to_ne_bytes());
        b
    }

    /// The barrier whose words start at `ptr`.
    ///
    /// # Safety
    /// As for [`RawMutex::at`](super::RawMutex::at).
    ///
    /// # Errors
    /// `ERR_SHM_BAD_HEADER` if the bytes are too few, misaligned, or not a barrier's.
    pub unsafe fn at<'a>(ptr: *const u8, len: usize) -> Result<&'a RawBarrier> {
        if len < BARRIER_SIZE || ptr.is_null() || !ptr.cast::<u32>().is_aligned() {
            return Err(Error::new(
                Code::BadHeader,
                "the segment is too small or misaligned to hold a barrier",
            ));
        }
        // SAFETY: BARRIER_SIZE aligned bytes that stay mapped for 'a (the caller's contract);
        // every field is atomic.
        let b = unsafe { &*ptr.cast::<RawBarrier>() };
        if b.parties.load(Relaxed) == 0 {
            return Err(Error::new(
                Code::BadHeader,
                "the segment does not hold a barrier",
            ));
        }
        Ok(b)
    }

    pub fn parties(&self) -> u32 {
        self.parties.load(Relaxed)
    }

    /// Arrives at the barrier. The last of `parties` to arrive releases the round.
    pub fn arrive(&self) -> Arrival {
        // Read before arriving: the round cannot complete without this party, so this is the
        // generation of the round it joins.
        let generation = self.generation.load(SeqCst);
        let n = self.arrived.fetch_add(1, SeqCst) + 1;
        if n < self.parties() {
            return Arrival::Wait(generation);
        }
        // Reset before the bump: nobody can arrive for the next round until they see the bump.
        self.arrived.store(0, SeqCst);
        self.generation.fetch_add(1, SeqCst);
        wake32(&self.generation, u32::MAX);
        Arrival::Leader
    }

    /// Whether the round of `generation` is over.
    pub fn passed(&self, generation: u32) -> bool {
        self.generation.load(SeqCst) != generation
    }

    /// The word waiters sleep on.
    pub fn generation_word(&self) -> *const AtomicU32 {
        &self.generation
    }

    /// Arrives and waits until every party has: true for the one that arrived last.
    pub fn wait(&self) -> bool {
        match self.arrive() {
            Arrival::Leader => true,
            Arrival::Wait(generation) => {
                while !self.passed(generation) {
                    // SAFETY: the generation is a word of this barrier, mapped while `self` lives.
                    unsafe { wait32(&self.generation, generation, None) };
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn fresh(parties: u32) -> Arc<[u32; 16]> {
        let mut words = [0u32; 16];
        let init = RawBarrier::init(parties);
        for (i, w) in words.iter_mut().enumerate() {
            *w = u32::from_ne_bytes(init[i * 4..i * 4 + 4].try_into().unwrap());
        }
        Arc::new(words)
    }

    fn barrier(words: &[u32; 16]) -> &RawBarrier {
        // SAFETY: 64 aligned bytes that the caller's Arc keeps alive; all access is atomic.
        unsafe { RawBarrier::at(words.as_ptr().cast(), BARRIER_SIZE) }.unwrap()
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
                        leaders += u32::from(b.wait());
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
        assert!(barrier(&w).wait());
        assert!(barrier(&w).wait());
        let z = fresh(0);
        // SAFETY: 64 aligned bytes of this test.
        let r = unsafe { RawBarrier::at(z.as_ptr().cast(), BARRIER_SIZE) };
        assert_eq!(r.err().map(|e| e.code), Some(Code::BadHeader));
    }
}
