//! A bounded multi-producer multi-consumer queue of byte messages in a segment of its own (kind
//! `channel`): a ring of slots, each with a stamp that says whose turn it is, after Vyukov's
//! bounded queue, made to survive a party killed at any point.
//!
//! # Layout
//!
//! | offset | size | word |
//! |---|---|---|
//! | 0 | 4 | capacity (slots, at least 1) |
//! | 4 | 4 | the largest message, in bytes |
//! | 8 | 4 | bytes per slot |
//! | 12 | 4 | detection interval, milliseconds |
//! | 16 | 4 | ended: 0, or 1 once `end` was called |
//! | 64 | 8 | tail: the next position a producer claims |
//! | 128 | 8 | head: every position before it is consumed and its slot free for the next round |
//! | 192 | 4 | produced: bumped after each send; the word receivers sleep on |
//! | 196 | 4 | receivers counted as waiting |
//! | 256 | 4 | consumed: bumped after each receive; the word senders sleep on |
//! | 260 | 4 | senders counted as waiting |
//! | 320 | 256 × 32 | the parties (see [`parties`](super::parties)) |
//! | 8512 | capacity × slot | slots: stamp (8), length (4), flags (4), the message |
//!
//! The word at each cache line of its own keeps producers and consumers from sharing one.
//!
//! # Protocol
//!
//! Position `p` lives in slot `p % capacity`, in round `p / capacity`. A slot's stamp is
//! `round << 16 | state << 14 | party`: all zero at creation, which is round 0, free, for every
//! slot, so a new channel needs no more than its header written.
//!
//! - **Send.** Read `tail` = p. If p's slot is (round, FREE), claim it with one CAS of its stamp
//!   to (round, WRITING, me); then move `tail` on (a CAS any party may do: one that finds p's
//!   slot claimed helps by doing it). Copy the message in, then store (round, FULL). A slot
//!   still in an earlier round means the ring is full.
//! - **Receive.** From `head` on, take the first (round, FULL) slot with one CAS of its stamp to
//!   (round, READING, me); copy the message out; store (round + 1, FREE). Slots WRITING or
//!   READING by others are stepped over, so a slow party delays nobody. `head` moves on over
//!   slots whose stamp is in a later round than its position's (consumed; perhaps filled again
//!   already), never past one that is not.
//! - **A dead party.** Its index is in the stamps it left. A slot WRITING by a dead producer
//!   holds no committed message: it is freed for the next round. A slot READING by a dead
//!   consumer holds a message nobody got: it goes back to FULL and is received again. Both are
//!   one CAS from the stamp the dead party left, so two parties repairing at once cannot both do
//!   it. No other state exists to corrupt: `head` and `tail` only ever move by CAS from a value
//!   read, and a party killed between two steps leaves a stamp that says exactly what was done.
//! - **End.** `ended` is set once; a producer looks at it after it claimed its slot and, if
//!   set, frees the slot and fails. A receiver that sees `ended` and finds no slot FULL or
//!   WRITING after it is done: every send that could still commit claimed its slot before
//!   `ended` was set, so the scan that follows sees it (all these operations are SeqCst).
//!
//! # Memory order
//!
//! Every atomic is SeqCst. The stamp stores are what publish a message (FULL after the bytes
//! are written) and a free slot (FREE after they are read): a release at least; the lost-wakeup
//! argument between `produced`/`consumed` and their waiter counts needs the single total order
//! of SeqCst (a waiter counts itself, then reads the word, then looks at the ring; a sender
//! publishes, bumps the word, then reads the count).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use super::parties::{Parties, PARTY_SIZE};
use super::{wait32, wake32, Deadline, WaitResult};
use crate::error::{Code, Error, Result};

/// Entries in a channel's party table: threads that used it at once, in every process.
pub const CHANNEL_PARTIES: usize = 256;
const PARTIES_AT: usize = 320;
const SLOTS_AT: usize = PARTIES_AT + CHANNEL_PARTIES * PARTY_SIZE;
/// Bytes before a slot's message: stamp, length, flags.
const SLOT_HEADER: usize = 16;
/// The most slots a channel can have.
pub const MAX_CAPACITY: u32 = 1 << 24;
/// The largest message a channel can be made for.
pub const MAX_MESSAGE: u32 = 1 << 30;

const FREE: u64 = 0;
const WRITING: u64 = 1;
const FULL: u64 = 2;
const READING: u64 = 3;

fn stamp(round: u64, state: u64, party: u32) -> u64 {
    (round << 16) | (state << 14) | u64::from(party & 0x3fff)
}

fn round_of(s: u64) -> u64 {
    s >> 16
}

fn state_of(s: u64) -> u64 {
    (s >> 14) & 3
}

fn party_of(s: u64) -> u32 {
    (s & 0x3fff) as u32
}

#[repr(C)]
struct Header {
    capacity: AtomicU32,
    max_bytes: AtomicU32,
    slot_size: AtomicU32,
    detection_ms: AtomicU32,
    ended: AtomicU32,
    _pad0: [u32; 11],
    tail: AtomicU64,
    _pad1: [u64; 7],
    head: AtomicU64,
    _pad2: [u64; 7],
    produced: AtomicU32,
    rx_waiting: AtomicU32,
    _pad3: [u32; 14],
    consumed: AtomicU32,
    tx_waiting: AtomicU32,
    _pad4: [u32; 14],
}

const _: () = assert!(std::mem::size_of::<Header>() == PARTIES_AT);

#[repr(C)]
struct Slot {
    stamp: AtomicU64,
    len: AtomicU32,
    flags: AtomicU32,
}

/// What a receive found.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<T> {
    /// A message, as the closure given made it from the bytes and flags.
    Message(T),
    /// Nothing yet.
    Empty,
    /// Nothing, and nothing will come: the channel was ended and is drained.
    Ended,
}

/// A channel over the data of its segment, for as long as the mapping lives.
pub struct RawChannel<'a> {
    header: &'a Header,
    parties: Parties<'a>,
    slots: *const u8,
    capacity: u64,
    max_bytes: usize,
    slot_size: usize,
}

impl<'a> RawChannel<'a> {
    /// Bytes a channel of `capacity` slots for messages up to `max_bytes` needs.
    ///
    /// # Errors
    /// `ERR_OUT_OF_RANGE` when either is 0 or too large.
    pub fn size(capacity: u32, max_bytes: u32) -> Result<usize> {
        if capacity == 0 || capacity > MAX_CAPACITY || max_bytes == 0 || max_bytes > MAX_MESSAGE {
            return Err(Error::new(
                Code::OutOfRange,
                format!(
                    "a channel has 1 to {MAX_CAPACITY} slots for messages of 1 to {MAX_MESSAGE} bytes"
                ),
            ));
        }
        Self::slot_size(max_bytes)
            .checked_mul(capacity as usize)
            .and_then(|s| s.checked_add(SLOTS_AT))
            .ok_or_else(|| Error::new(Code::OutOfRange, "the channel would be too large"))
    }

    fn slot_size(max_bytes: u32) -> usize {
        (SLOT_HEADER + max_bytes as usize).next_multiple_of(64)
    }

    /// The header bytes of a new channel (the rest of its segment is zero).
    pub fn init(capacity: u32, max_bytes: u32, detection_ms: u32) -> Result<Vec<u8>> {
        Self::size(capacity, max_bytes)?;
        let mut b = vec![0u8; 20];
        b[0..4].copy_from_slice(&capacity.to_ne_bytes());
        b[4..8].copy_from_slice(&max_bytes.to_ne_bytes());
        b[8..12].copy_from_slice(&(Self::slot_size(max_bytes) as u32).to_ne_bytes());
        b[12..16].copy_from_slice(&detection_ms.max(1).to_ne_bytes());
        Ok(b)
    }

    /// The channel whose segment data starts at `ptr`.
    ///
    /// # Safety
    /// `ptr` must point to `len` bytes of a shared mapping that stay mapped for `'a`, whose
    /// header and stamps others change only atomically.
    ///
    /// # Errors
    /// `ERR_SHM_BAD_HEADER` if the bytes are not a channel's.
    pub unsafe fn at(ptr: *const u8, len: usize) -> Result<RawChannel<'a>> {
        let bad = || Error::new(Code::BadHeader, "the segment does not hold a channel");
        if len < SLOTS_AT || ptr.is_null() || !ptr.cast::<u64>().is_aligned() {
            return Err(bad());
        }
        // SAFETY: SLOTS_AT aligned bytes that stay mapped for 'a; every header field read or
        // written after creation is atomic (the padding is never touched).
        let header = unsafe { &*ptr.cast::<Header>() };
        let capacity = header.capacity.load(Relaxed);
        let max_bytes = header.max_bytes.load(Relaxed);
        let size = Self::size(capacity, max_bytes).map_err(|_| bad())?;
        if size > len || header.slot_size.load(Relaxed) as usize != Self::slot_size(max_bytes) {
            return Err(bad());
        }
        // SAFETY: the table lies inside the `len` bytes, 8-aligned (SLOTS_AT is a multiple of 64).
        let parties = unsafe { Parties::at(ptr.add(PARTIES_AT), CHANNEL_PARTIES) };
        Ok(RawChannel {
            header,
            parties,
            // SAFETY: inside the mapping, checked against `size` above.
            slots: unsafe { ptr.add(SLOTS_AT) },
            capacity: u64::from(capacity),
            max_bytes: max_bytes as usize,
            slot_size: Self::slot_size(max_bytes),
        })
    }

    pub fn capacity(&self) -> u32 {
        self.capacity as u32
    }

    pub fn max_message_bytes(&self) -> u32 {
        self.max_bytes as u32
    }

    pub fn detection(&self) -> Duration {
        Duration::from_millis(u64::from(self.header.detection_ms.load(Relaxed).max(1)))
    }

    /// Messages sent and not yet received (a moment's count: others change it meanwhile).
    pub fn len(&self) -> u64 {
        let head = self.header.head.load(SeqCst);
        self.header
            .tail
            .load(SeqCst)
            .saturating_sub(head)
            .min(self.capacity)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether another thread of this process closed its view under us (zeros are left where
    /// the segment was; a channel's capacity is never 0).
    fn retired(&self) -> Result<()> {
        if self.header.capacity.load(SeqCst) == 0 {
            Err(super::mutex::closed_here())
        } else {
            Ok(())
        }
    }

    pub fn ended(&self) -> bool {
        self.header.ended.load(SeqCst) != 0
    }

    fn slot(&self, pos: u64) -> (&Slot, *mut u8) {
        let i = (pos % self.capacity) as usize;
        // SAFETY: i < capacity, so the slot lies inside the mapping `at` checked; its first 16
        // bytes are the atomic stamp, length and flags, 8-aligned (slot_size is a multiple of 64).
        unsafe {
            let p = self.slots.add(i * self.slot_size);
            (&*p.cast::<Slot>(), p.add(SLOT_HEADER).cast_mut())
        }
    }

    fn me(&self) -> Result<u32> {
        self.parties
            .mine(|dead| self.repair_party(dead))
            .ok_or_else(|| {
                Error::new(
                    Code::OutOfRange,
                    format!("more than {CHANNEL_PARTIES} live threads use this channel"),
                )
            })
    }

    /// Sends `msg` if there is room: `Ok(false)` when the ring is full.
    ///
    /// # Errors
    /// `ERR_SHM_CLOSED` once the channel was ended; `ERR_OUT_OF_RANGE` for a message larger
    /// than the channel's largest.
    pub fn try_send(&self, msg: &[u8], flags: u32) -> Result<bool> {
        if msg.len() > self.max_bytes {
            return Err(Error::new(
                Code::OutOfRange,
                format!(
                    "a message of {} bytes is larger than this channel's maxMessageBytes ({})",
                    msg.len(),
                    self.max_bytes
                ),
            ));
        }
        self.retired()?;
        if self.ended() {
            return Err(ended());
        }
        let me = self.me()?;
        loop {
            let pos = self.header.tail.load(SeqCst);
            let round = pos / self.capacity;
            let (slot, data) = self.slot(pos);
            let s = slot.stamp.load(SeqCst);
            if round_of(s) < round {
                return Ok(false);
            }
            if round_of(s) > round {
                continue;
            }
            if state_of(s) != FREE {
                // Claimed by another producer that has not moved the tail yet: help it.
                let _ = self
                    .header
                    .tail
                    .compare_exchange(pos, pos + 1, SeqCst, SeqCst);
                continue;
            }
            if slot
                .stamp
                .compare_exchange(s, stamp(round, WRITING, me), SeqCst, SeqCst)
                .is_err()
            {
                continue;
            }
            let _ = self
                .header
                .tail
                .compare_exchange(pos, pos + 1, SeqCst, SeqCst);
            if self.ended() {
                // Claimed after the end: give the slot up, as a dead producer's would be.
                slot.stamp.store(stamp(round + 1, FREE, 0), SeqCst);
                self.advance_head();
                self.bump_all();
                return Err(ended());
            }
            // SAFETY: the WRITING stamp makes this slot ours alone until we store FULL; the
            // message fits (checked above) in the slot's max_bytes bytes.
            unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), data, msg.len()) };
            slot.len.store(msg.len() as u32, Relaxed);
            slot.flags.store(flags, Relaxed);
            // SeqCst store: publishes the bytes, length and flags written above.
            slot.stamp.store(stamp(round, FULL, 0), SeqCst);
            // Written into zeros, if our view was closed meanwhile: then it was not sent.
            self.retired()?;
            self.header.produced.fetch_add(1, SeqCst);
            if self.header.rx_waiting.load(SeqCst) > 0 {
                wake32(&self.header.produced, 1);
            }
            return Ok(true);
        }
    }

    /// Receives a message if there is one, handing its bytes and flags to `take` while the slot
    /// is held (what `take` returns is the message).
    ///
    /// # Errors
    /// `ERR_OUT_OF_RANGE` when more threads than the party table holds use the channel.
    pub fn try_receive<T>(&self, take: impl FnOnce(&[u8], u32) -> T) -> Result<Received<T>> {
        self.retired()?;
        let me = self.me()?;
        let ended = self.ended();
        // A consumer that freed a slot may not have moved `head` yet: positions past the window
        // would go unseen until it does.
        self.advance_head();
        let head = self.header.head.load(SeqCst);
        let mut busy = false;
        let mut pos = head;
        while pos < head + self.capacity {
            let round = pos / self.capacity;
            let (slot, data) = self.slot(pos);
            let s = slot.stamp.load(SeqCst);
            let (r, st) = (round_of(s), state_of(s));
            if r == round && st == FULL {
                if slot
                    .stamp
                    .compare_exchange(s, stamp(round, READING, me), SeqCst, SeqCst)
                    .is_err()
                {
                    continue;
                }
                let len = (slot.len.load(Relaxed) as usize).min(self.max_bytes);
                let flags = slot.flags.load(Relaxed);
                // SAFETY: the READING stamp makes the slot ours alone; the producer's FULL store
                // (read above, SeqCst) published its `len` bytes, within max_bytes.
                let bytes = unsafe { std::slice::from_raw_parts(data.cast_const(), len) };
                let out = take(bytes, flags);
                // SeqCst store: frees the slot for the next round once we are done reading.
                slot.stamp.store(stamp(round + 1, FREE, 0), SeqCst);
                // Read from zeros, if our view was closed meanwhile: that was no message.
                self.retired()?;
                self.advance_head();
                self.header.consumed.fetch_add(1, SeqCst);
                if self.header.tx_waiting.load(SeqCst) > 0 {
                    wake32(&self.header.consumed, 1);
                }
                if ended {
                    // Receivers waiting for the end must look again once the last one is gone.
                    self.bump_all();
                }
                return Ok(Received::Message(out));
            }
            if r == round && st == FREE {
                // Not yet claimed: no producer claimed a later position either.
                break;
            }
            if r == round {
                busy = true;
            }
            pos += 1;
        }
        Ok(if ended && !busy {
            Received::Ended
        } else {
            Received::Empty
        })
    }

    /// Moves `head` over every slot whose position was consumed: its stamp is in a later round
    /// (free for it, or already claimed or filled again by a producer, which only needs the slot
    /// free, not `head` moved).
    fn advance_head(&self) {
        loop {
            let h = self.header.head.load(SeqCst);
            let (slot, _) = self.slot(h);
            if round_of(slot.stamp.load(SeqCst)) <= h / self.capacity {
                return;
            }
            let _ = self.header.head.compare_exchange(h, h + 1, SeqCst, SeqCst);
        }
    }

    /// Undoes what dead parties left half done in the ring; true when it changed anything.
    pub fn repair(&self) -> bool {
        let mut changed = false;
        let head = self.header.head.load(SeqCst);
        for pos in head..head + self.capacity {
            let (slot, _) = self.slot(pos);
            let s = slot.stamp.load(SeqCst);
            let st = state_of(s);
            if (st == WRITING || st == READING) && self.parties.dead(party_of(s)) {
                changed |= self.repair_slot(slot, s);
            }
        }
        if changed {
            self.advance_head();
            self.bump_all();
        }
        changed
    }

    /// Before a dead party's entry is given to another: undo its slots, so its index in a stamp
    /// never names a live party.
    fn repair_party(&self, party: u32) {
        for i in 0..self.capacity {
            let (slot, _) = self.slot(i);
            let s = slot.stamp.load(SeqCst);
            let st = state_of(s);
            if (st == WRITING || st == READING) && party_of(s) == party {
                self.repair_slot(slot, s);
            }
        }
        self.advance_head();
        self.bump_all();
    }

    fn repair_slot(&self, slot: &Slot, s: u64) -> bool {
        let round = round_of(s);
        let to = if state_of(s) == WRITING {
            // Never committed: the slot is free for its next round.
            stamp(round + 1, FREE, 0)
        } else {
            // Committed and never handed over: receive it again.
            stamp(round, FULL, 0)
        };
        slot.stamp.compare_exchange(s, to, SeqCst, SeqCst).is_ok()
    }

    /// Marks the channel finished for every party and wakes everyone waiting on it.
    pub fn end(&self) {
        self.header.ended.store(1, SeqCst);
        self.bump_all();
    }

    fn bump_all(&self) {
        self.header.produced.fetch_add(1, SeqCst);
        self.header.consumed.fetch_add(1, SeqCst);
        wake32(&self.header.produced, u32::MAX);
        wake32(&self.header.consumed, u32::MAX);
    }

    /// Counts this thread as a waiting receiver (`rx`) or sender and returns the word's value to
    /// sleep on. Every call must be followed by [`Self::end_wait`] with the same `rx`.
    pub fn begin_wait(&self, rx: bool) -> u32 {
        let (word, waiting) = self.words(rx);
        waiting.fetch_add(1, SeqCst);
        word.load(SeqCst)
    }

    pub fn end_wait(&self, rx: bool) {
        // A waiter killed while counted stays counted: each send then makes one wake call.
        let _ = self
            .words(rx)
            .1
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
    }

    /// The word receivers (`rx`) or senders sleep on.
    pub fn wait_word(&self, rx: bool) -> *const AtomicU32 {
        self.words(rx).0
    }

    fn words(&self, rx: bool) -> (&AtomicU32, &AtomicU32) {
        if rx {
            (&self.header.produced, &self.header.rx_waiting)
        } else {
            (&self.header.consumed, &self.header.tx_waiting)
        }
    }

    /// Sends, waiting up to `timeout` for room: `Ok(false)` when it timed out.
    ///
    /// # Errors
    /// As [`Self::try_send`].
    pub fn send(&self, msg: &[u8], flags: u32, timeout: Option<Duration>) -> Result<bool> {
        let deadline = Deadline::after(timeout);
        let mut waited: Option<Backoff> = None;
        loop {
            if self.try_send(msg, flags)? {
                self.learn(waited, false);
                return Ok(true);
            }
            let backoff = waited.get_or_insert_with(|| Backoff::start(self.wait_word(false)));
            if backoff.round() {
                continue;
            }
            let seq = self.begin_wait(false);
            backoff.sleeps(seq);
            let sent = self.try_send(msg, flags);
            if !matches!(sent, Ok(false)) {
                self.end_wait(false);
                self.learn(waited, false);
                return sent;
            }
            let r = self.sleep(false, seq, &deadline);
            self.end_wait(false);
            match r {
                None => {
                    self.learn(waited, false);
                    return Ok(false);
                }
                Some(WaitResult::TimedOut) => {
                    self.repair();
                }
                Some(_) => {}
            }
        }
    }

    /// Receives, waiting up to `timeout`: `Empty` when it timed out, `Ended` once the channel
    /// was ended and drained.
    ///
    /// # Errors
    /// As [`Self::try_receive`].
    pub fn receive<T>(
        &self,
        take: impl FnOnce(&[u8], u32) -> T,
        timeout: Option<Duration>,
    ) -> Result<Received<T>> {
        let deadline = Deadline::after(timeout);
        let mut take = Some(take);
        let mut once = |bytes: &[u8], flags: u32| take.take().map(|t| t(bytes, flags));
        let mut waited: Option<Backoff> = None;
        loop {
            match self.try_receive(&mut once)? {
                Received::Message(m) => {
                    self.learn(waited, true);
                    return Ok(Received::Message(m.expect("taken once")));
                }
                Received::Ended => return Ok(Received::Ended),
                Received::Empty => {}
            }
            let backoff = waited.get_or_insert_with(|| Backoff::start(self.wait_word(true)));
            if backoff.round() {
                continue;
            }
            let seq = self.begin_wait(true);
            backoff.sleeps(seq);
            match self.try_receive(&mut once) {
                Ok(Received::Empty) => {}
                r => {
                    self.end_wait(true);
                    self.learn(waited, true);
                    return r.map(|r| match r {
                        Received::Message(m) => Received::Message(m.expect("taken once")),
                        Received::Ended => Received::Ended,
                        Received::Empty => Received::Empty,
                    });
                }
            }
            let r = self.sleep(true, seq, &deadline);
            self.end_wait(true);
            match r {
                None => {
                    self.learn(waited, true);
                    return Ok(Received::Empty);
                }
                Some(WaitResult::TimedOut) => {
                    self.repair();
                }
                Some(_) => {}
            }
        }
    }

    /// Tells the wait's [`Backoff`] how it went.
    fn learn(&self, waited: Option<Backoff>, rx: bool) {
        Backoff::finish(waited, || self.words(rx).0.load(SeqCst));
    }

    /// One sleep of at most the detection interval; `None` once the deadline passed.
    fn sleep(&self, rx: bool, seq: u32, deadline: &Deadline) -> Option<WaitResult> {
        let left = deadline.left()?;
        let slice = left.map_or(self.detection(), |l| l.min(self.detection()));
        // SAFETY: the word is in this channel's header, mapped while `self` lives.
        let r = unsafe { wait32(self.wait_word(rx), seq, Some(slice)) };
        if r == WaitResult::TimedOut && deadline.left().is_none() {
            return None;
        }
        Some(r)
    }
}

/// Rounds of spinning, then of yielding, before a blocking send or receive sleeps: a message or
/// a free slot that comes within some tens of microseconds is taken without two system calls and
/// a context switch on each side. The spin is short (about 240 pauses) and the rest is spent
/// yielding the CPU: a waiter that spun all along took a CPU from the processes it was waiting
/// for wherever there are more of them than CPUs.
const SPIN_ROUNDS: u32 = 4;
const YIELD_ROUNDS: u32 = 32;

/// After a wait whose spin was wasted, this many next waits on the same word sleep at once.
const SKIP_AFTER_WASTE: u8 = 64;

/// The words this thread stopped spinning on, the most recent last: a handful, as a thread
/// waits on a few channels at most (a forgotten one only spins once more).
const SKIP_WORDS: usize = 8;

/// A word this thread stopped spinning on, and how many more waits on it sleep at once.
#[derive(Clone, Copy)]
struct Skip {
    word: usize,
    left: u8,
}

thread_local! {
    static SKIPS: std::cell::RefCell<Vec<Skip>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How one blocking send or receive waits before it sleeps in the kernel, learnt from how the
/// spin of earlier waits of the same thread on the same word went. Messages that come within
/// microseconds (a request and its answer, a stream) are taken by spinning and yielding, with
/// no system call on either side; but where the next message comes only after long (a receiver
/// serving requests that arrive every few milliseconds, a sender waiting for its receivers'
/// answers), a process that spins and yields for nothing keeps its CPU from the processes it
/// waits for wherever there are more of them than CPUs. So a wait that spun, yielded and still
/// slept while no message but its own passed makes the next [`SKIP_AFTER_WASTE`] waits of this
/// thread on its word sleep at once; then one probes by spinning again, and a spin that paid off
/// spins from then on. A wait that slept while others' messages passed (four producers and
/// four consumers on two CPUs, one of them preempted a while) was on a busy channel and keeps
/// spinning. Four receivers, each on a channel of its own, and their sender on two CPUs, each
/// receiver opening the 400 MB vector it is handed after every process slept 20 ms: 1.24-1.40×
/// the time of Python's receivers (which block at once) when every wait spun and yielded first,
/// 1.05-1.24× now (three runs of 61 hand-overs each way, each side's in turn); messages of 64 B
/// between two processes and between four and four pass at the same rate as before.
struct Backoff {
    word: usize,
    round: u32,
    spin: bool,
    /// The word's count when the wait first went to sleep in the kernel.
    slept_at: Option<u32>,
}

impl Backoff {
    fn start(word: *const AtomicU32) -> Backoff {
        let word = word as usize;
        let spin = SKIPS.with(
            |s| match s.borrow_mut().iter_mut().find(|k| k.word == word) {
                Some(k) if k.left > 0 => {
                    k.left -= 1;
                    false
                }
                _ => true,
            },
        );
        Backoff {
            word,
            round: 0,
            spin,
            slept_at: None,
        }
    }

    /// One round of waiting in user space; false once it is time to sleep in the kernel.
    fn round(&mut self) -> bool {
        if !self.spin {
            return false;
        }
        self.round += 1;
        if self.round <= SPIN_ROUNDS {
            for _ in 0..(8u32 << self.round) {
                std::hint::spin_loop();
            }
            true
        } else if self.round <= SPIN_ROUNDS + YIELD_ROUNDS {
            std::thread::yield_now();
            true
        } else {
            false
        }
    }

    /// Notes the word's count (`seq`) as the wait goes to sleep in the kernel, the first time.
    fn sleeps(&mut self, seq: u32) {
        self.slept_at.get_or_insert(seq);
    }

    /// Learns from a wait, if the call waited at all and spun; `count` reads the word's count
    /// now (only for a wait that slept: in a stream, that word changes hands all the time).
    fn finish(waited: Option<Backoff>, count: impl FnOnce() -> u32) {
        let Some(b) = waited.filter(|b| b.spin) else {
            return;
        };
        // Spun, yielded and slept, and at most one message (or free slot) came meanwhile: the
        // one it waited for. Where others took many meanwhile, the channel is busy and its
        // waits short once this process has a CPU again.
        let wasted = b.slept_at.is_some_and(|at| count().wrapping_sub(at) <= 1);
        SKIPS.with(|s| {
            let mut s = s.borrow_mut();
            s.retain(|k| k.word != b.word);
            if wasted {
                if s.len() == SKIP_WORDS {
                    s.remove(0);
                }
                s.push(Skip {
                    word: b.word,
                    left: SKIP_AFTER_WASTE,
                });
            }
        });
    }
}

fn ended() -> Error {
    Error::new(
        Code::Closed,
        "the channel was ended: no more messages can be sent on it",
    )
}

#[cfg(test)]
mod tests;
