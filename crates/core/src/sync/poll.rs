//! Waiting by watching a word, where the kernel cannot wait across processes (Windows, macOS
//! before 14.4): a short spin for hand-overs that take nanoseconds, a few yields, then sleeps
//! that double from 50 µs up to `MAX_NAP`.

use std::time::Duration;

use super::{os, Deadline, WaitResult, MAX_NAP};

const SPINS: u32 = 64;
const YIELDS: u32 = 16;
const FIRST_NAP: Duration = Duration::from_micros(50);

/// Returns `Ok` as soon as `unchanged()` is false, or `TimedOut` at the deadline.
pub(super) fn wait(unchanged: impl Fn() -> bool, timeout: Option<Duration>) -> WaitResult {
    let deadline = Deadline::after(timeout);
    let mut nap = FIRST_NAP;
    let mut round = 0u32;
    loop {
        if !unchanged() {
            return WaitResult::Ok;
        }
        let Some(left) = deadline.left() else {
            return WaitResult::TimedOut;
        };
        if round < SPINS {
            std::hint::spin_loop();
        } else if round < SPINS + YIELDS {
            std::thread::yield_now();
        } else {
            os::nap(left.map_or(nap, |l| l.min(nap)));
            nap = (nap * 2).min(MAX_NAP);
        }
        round = round.saturating_add(1);
    }
}
