//! A condition variable in a segment of its own (kind `condition`), used with a [`RawMutex`]:
//! `wait` unlocks the mutex, sleeps until a notify, and locks it again.
//!
//! | offset | size | word |
//! |---|---|---|
//! | 0 | 4 | seq: bumped by every notify; the word waiters sleep on |
//! | 4 | 4 | waiters counted |
//! | 8 | 4 | marker: 1 (a segment of zeros is not a condition variable) |
//! | 12 | 52 | reserved, zero |
//!
//! # Protocol and memory order
//!
//! A waiter reads `seq` *before* it unlocks the mutex, then sleeps while `seq` holds that
//! value. A notifier changes the guarded state under the mutex, so a notify that matters comes
//! after the waiter's unlock, and bumps `seq` first: the sleep either sees the new value or is
//! woken. All SeqCst, so the count a notifier reads (to skip the wake call) is ordered with the
//! waiter's count and its read of `seq`. Wake-ups may be spurious, as with POSIX and Rust: wait
//! in a loop that checks the condition.
//!
//! A dead party costs nothing here: a dead waiter is not in the kernel's queue (a notify wakes
//! a live one), a count it left only costs a wake call, and the mutex is robust on its own.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use super::{wait32, wake32, RawMutex, WaitResult};
use crate::error::{Code, Error, Result};

/// Bytes of a condition variable's words.
pub const CONDITION_SIZE: usize = 64;

#[repr(C)]
pub struct RawCondition {
    seq: AtomicU32,
    waiters: AtomicU32,
    marker: AtomicU32,
    _reserved: [AtomicU32; 13],
}

const _: () = assert!(std::mem::size_of::<RawCondition>() == CONDITION_SIZE);

impl RawCondition {
    pub fn init() -> [u8; CONDITION_SIZE] {
        let mut b = [0u8; CONDITION_SIZE];
        b[8..12].copy_from_slice(&1u32.to_ne_bytes());
        b
    }

    /// The condition variable whose words start at `ptr`.
    ///
    /// # Safety
    /// As for [`RawMutex::at`].
    ///
    /// # Errors
    /// `ERR_SHM_BAD_HEADER` if the bytes are not a condition variable's.
    pub unsafe fn at<'a>(ptr: *const u8, len: usize) -> Result<&'a RawCondition> {
        let bad = || Error::new(Code::BadHeader, "the segment does not hold a condition");
        if len < CONDITION_SIZE || ptr.is_null() || !ptr.cast::<u32>().is_aligned() {
            return Err(bad());
        }
        // SAFETY: CONDITION_SIZE aligned bytes mapped for 'a; every field is atomic.
        let c = unsafe { &*ptr.cast::<RawCondition>() };
        if c.marker.load(SeqCst) != 1 {
            return Err(bad());
        }
        Ok(c)
    }

    /// Counts this thread as a waiter and returns the `seq` to sleep on; call it while holding
    /// the mutex, and [`Self::end_wait`] after the sleep.
    pub fn begin_wait(&self) -> u32 {
        self.waiters.fetch_add(1, SeqCst);
        self.seq.load(SeqCst)
    }

    pub fn end_wait(&self) {
        let _ = self
            .waiters
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
    }

    pub fn seq_word(&self) -> *const AtomicU32 {
        &self.seq
    }

    /// Unlocks `mutex` (which this thread holds), sleeps until a notify or `timeout`, and locks
    /// it again. `Ok(false)` when the timeout passed; `owner_died` of the relock is in the
    /// second value.
    ///
    /// # Errors
    /// `ERR_SHM_NOT_OWNER` if this thread does not hold `mutex`.
    pub fn wait(&self, mutex: &RawMutex, timeout: Option<Duration>) -> Result<(bool, bool)> {
        let seq = self.begin_wait();
        if let Err(e) = mutex.unlock() {
            self.end_wait();
            return Err(e);
        }
        // SAFETY: `seq` is a word of this condition variable, mapped while `self` lives.
        let r = unsafe { wait32(&self.seq, seq, timeout) };
        self.end_wait();
        if self.marker.load(SeqCst) != 1 {
            // Closed by another thread of this process meanwhile: return without the lock.
            return Err(super::mutex::closed_here());
        }
        let got = mutex.lock(None)?.expect("no timeout");
        Ok((r != WaitResult::TimedOut, got.owner_died))
    }

    /// Wakes one waiter (`all`: every waiter); returns how many the kernel woke.
    pub fn notify(&self, all: bool) -> usize {
        self.seq.fetch_add(1, SeqCst);
        if self.waiters.load(SeqCst) == 0 {
            return 0;
        }
        wake32(&self.seq, if all { u32::MAX } else { 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    #[test]
    fn a_waiter_sees_the_state_its_notifier_set() {
        let words = Arc::new(([0u64; 8], [0u32; 16], AtomicU64::new(0)));
        let init = RawMutex::init(50);
        let cinit = RawCondition::init();
        // SAFETY: the tuple's arrays are ours alone until the threads start.
        unsafe {
            std::ptr::copy_nonoverlapping(init.as_ptr(), words.0.as_ptr().cast_mut().cast(), 64);
            std::ptr::copy_nonoverlapping(cinit.as_ptr(), words.1.as_ptr().cast_mut().cast(), 64);
        }
        let parts = |w: &([u64; 8], [u32; 16], AtomicU64)| {
            // SAFETY: aligned words kept alive by the Arc; all shared access is atomic.
            unsafe {
                (
                    RawMutex::at(w.0.as_ptr().cast(), 64).unwrap(),
                    RawCondition::at(w.1.as_ptr().cast(), 64).unwrap(),
                )
            }
        };
        let w2 = words.clone();
        let waiter = std::thread::spawn(move || {
            let (m, c) = parts(&w2);
            m.lock(None).unwrap();
            while w2.2.load(SeqCst) == 0 {
                c.wait(m, None).unwrap();
            }
            m.unlock().unwrap();
        });
        let (m, c) = parts(&words);
        while !waiter.is_finished() {
            m.lock(None).unwrap();
            words.2.store(1, SeqCst);
            c.notify(true);
            m.unlock().unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        waiter.join().unwrap();
        m.lock(None).unwrap();
        let (woken, _) = c.wait(m, Some(Duration::from_millis(20))).unwrap();
        assert!(!woken, "times out without a notify");
        assert!(m.held_here());
        m.unlock().unwrap();
    }
}
