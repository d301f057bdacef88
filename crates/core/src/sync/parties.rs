//! A table of the threads (of any process) that take part in one synchronisation object, kept
//! in its segment so that any party can tell whether another is dead and undo what it left
//! half done: the channel's claimed slots, the semaphore's permits, the barrier's arrivals.
//!
//! Each entry is 32 bytes: the holder word of [`Holder`] (0 when the entry is free), its process
//! start time and pid namespace, and one word the object uses for itself (`extra`).
//!
//! An entry is claimed with one compare-and-swap of its holder word from 0; the start time and
//! namespace are stored after it, so a checker that reads them as 0 judges the party by its pid
//! and thread alone (what [`Holder::alive`] does with unknown values). Entries are never freed
//! while their party runs; a dead party's entry is taken over only after the object undid its
//! work (see `reuse` in [`Parties::mine`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use super::Holder;

/// Bytes of one entry.
pub const PARTY_SIZE: usize = 32;

/// One entry. Every field is atomic: other processes read and write them at any time.
#[repr(C)]
pub(crate) struct Party {
    /// SeqCst: the claim and the take-over of an entry are ordered with the object's own words
    /// (a slot's stamp names the entry's index), so a party seen dead has its writes seen too.
    pub(crate) word: AtomicU64,
    pub(crate) start: AtomicU64,
    pub(crate) pidns: AtomicU64,
    /// The object's own word for this party.
    pub(crate) extra: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Party>() == PARTY_SIZE);

/// The entries of one object, over shared memory.
pub(crate) struct Parties<'a> {
    pub(crate) entries: &'a [Party],
}

thread_local! {
    /// This thread's entry in each table it used, keyed by the table's address. A table unmapped
    /// and another mapped at the same address is caught by checking the entry still names us.
    static MINE: RefCell<HashMap<usize, u32>> = RefCell::new(HashMap::new());
    /// The table this thread used last and its entry there, asked before `MINE`: a thread that
    /// sends or receives a stream of messages asks about one table again and again, and hashing
    /// its address each time was a tenth of a small message's send.
    static LAST: Cell<(usize, u32)> = const { Cell::new((0, 0)) };
}

impl<'a> Parties<'a> {
    /// The table of `count` entries at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be 8-aligned and point to `count * PARTY_SIZE` bytes of shared memory that stay
    /// mapped for `'a` and that everyone changes only atomically.
    pub(crate) unsafe fn at(ptr: *const u8, count: usize) -> Parties<'a> {
        // SAFETY: the caller's contract; `Party` is four atomics, valid for any bit pattern.
        let entries = unsafe { std::slice::from_raw_parts(ptr.cast::<Party>(), count) };
        Parties { entries }
    }

    fn key(&self) -> usize {
        self.entries.as_ptr() as usize
    }

    /// The index of this thread's entry, claiming one if it has none. When every entry is
    /// taken, the entry of a dead party is taken over after `reuse(index)` undid its work;
    /// `None` when every entry belongs to a live party.
    pub(crate) fn mine(&self, reuse: impl Fn(u32)) -> Option<u32> {
        let me = Holder::me();
        let key = self.key();
        let cached = match LAST.get() {
            (k, i) if k == key => Some(i),
            _ => MINE.with(|m| m.borrow().get(&key).copied()),
        };
        if let Some(i) = cached {
            let e = self.entries.get(i as usize)?;
            if e.word.load(SeqCst) == me.word {
                LAST.set((key, i));
                return Some(i);
            }
        }
        let found = self.find(&me, reuse)?;
        MINE.with(|m| m.borrow_mut().insert(key, found));
        LAST.set((key, found));
        Some(found)
    }

    fn find(&self, me: &Holder, reuse: impl Fn(u32)) -> Option<u32> {
        // An entry of ours may exist already: this thread used the table through another view.
        if let Some(i) = self
            .entries
            .iter()
            .position(|e| e.word.load(SeqCst) == me.word)
        {
            return Some(i as u32);
        }
        for (i, e) in self.entries.iter().enumerate() {
            if e.word.load(SeqCst) == 0
                && e.word.compare_exchange(0, me.word, SeqCst, SeqCst).is_ok()
            {
                self.fill(e, me);
                return Some(i as u32);
            }
        }
        for (i, e) in self.entries.iter().enumerate() {
            let w = e.word.load(SeqCst);
            if w != 0 && self.dead_word(e, w) {
                reuse(i as u32);
                if e.word.compare_exchange(w, me.word, SeqCst, SeqCst).is_ok() {
                    self.fill(e, me);
                    return Some(i as u32);
                }
            }
        }
        None
    }

    fn fill(&self, e: &Party, me: &Holder) {
        e.extra.store(0, SeqCst);
        e.start.store(me.start, SeqCst);
        e.pidns.store(me.pidns, SeqCst);
    }

    fn dead_word(&self, e: &Party, w: u64) -> bool {
        !Holder::alive(w, e.start.load(SeqCst), e.pidns.load(SeqCst), 0, 0)
    }

    /// Whether entry `i` belongs to a party known to be dead (a free entry is not dead).
    pub(crate) fn dead(&self, i: u32) -> bool {
        let Some(e) = self.entries.get(i as usize) else {
            return false;
        };
        let w = e.word.load(SeqCst);
        w != 0 && self.dead_word(e, w)
    }

    /// Frees entry `i` if it still belongs to the party whose holder word is `w`.
    pub(crate) fn release(&self, i: u32, w: u64) -> bool {
        self.entries
            .get(i as usize)
            .is_some_and(|e| e.word.compare_exchange(w, 0, SeqCst, SeqCst).is_ok())
    }
}
