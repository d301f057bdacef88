//! The memory of big received channel messages, kept for the next ones.
//!
//! A received message is a copy in memory of its own. Made fresh each time (a Buffer), a
//! megabyte message costs its page faults: fresh pages are faulted in and zeroed by the kernel,
//! which on this kind of machine costs as much as the copy itself, and the allocator hands back
//! fresh pages whenever the engine frees its buffers late or in a batch (Node 26 does, for
//! about a third of the pages of every 1 MB message in a loop; Node 22 reuses them all). So a
//! big message is a SharedArrayBuffer over a block of this pool: its finalizer runs when every
//! thread has released the memory, on whichever thread that is, and puts the block back for the
//! next message, its pages still in place. A block goes back to the allocator when the pool
//! already keeps [`KEEP`] bytes, and once it has been kept unused for a while (see [`trim`]):
//! a process that received a burst of big messages does not keep their memory.
//!
//! A SharedArrayBuffer's bytes are not counted by the engine: each message reports its block's
//! size (as a shared vector's creator does, see `crate::ledger_entry`), so that a loop that
//! receives and drops messages makes the engine collect, and the blocks come back.

use std::alloc::{alloc, dealloc, Layout};
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Messages of at least this many bytes come in a block of the pool; smaller ones cost little
/// to make fresh, and the allocator keeps their memory.
pub(crate) const MIN: usize = 64 * 1024;
/// Bytes of free blocks kept at most (past them, a released block is freed). The engine
/// collects the messages a loop dropped about every 64 MiB of them, and gives back their blocks
/// all at once: a pool of less would free some and take fresh ones for the next messages.
const KEEP: usize = 128 << 20;
/// Blocks are page-aligned and a whole number of this many bytes.
const GRAIN: usize = 64 * 1024;

/// A block of memory of the pool: `cap` bytes at `ptr`, from `alloc` with [`layout`].
pub(crate) struct Block {
    ptr: NonNull<u8>,
    cap: usize,
}

// SAFETY: a block is plain memory owned by whoever holds the Block (the pool, or one message's
// finalizer hint); it is never reached through two Blocks.
unsafe impl Send for Block {}

impl Block {
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc` with this very layout (see `take`) and is freed once,
        // here, with the one Block that owns it.
        unsafe { dealloc(self.ptr.as_ptr(), layout(self.cap)) }
    }
}

fn layout(cap: usize) -> Layout {
    // A multiple of GRAIN far below isize::MAX (messages are at most 2 GiB): always valid.
    Layout::from_size_align(cap, 4096).expect("a block's layout")
}

/// The free blocks, each with when it came back, and their bytes.
static FREE: Mutex<(Vec<(Block, Instant)>, usize)> = Mutex::new((Vec::new(), 0));
/// Blocks lent to messages, not yet back.
static LENT: AtomicUsize = AtomicUsize::new(0);

/// A block of at least `len` bytes (`len >= MIN`): a kept one no more than twice as big, or a
/// new one; `None` when the allocator has no memory for it.
pub(crate) fn take(len: usize) -> Option<Block> {
    {
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        let (blocks, bytes) = &mut *free;
        if let Some(i) = blocks
            .iter()
            .position(|(b, _)| b.cap >= len && b.cap / 2 <= len)
        {
            let (b, _) = blocks.swap_remove(i);
            *bytes -= b.cap;
            LENT.fetch_add(1, Ordering::Relaxed);
            return Some(b);
        }
    }
    let cap = len.div_ceil(GRAIN).checked_mul(GRAIN)?;
    // SAFETY: a layout of non-zero size (`len >= MIN`).
    let ptr = NonNull::new(unsafe { alloc(layout(cap)) })?;
    LENT.fetch_add(1, Ordering::Relaxed);
    Some(Block { ptr, cap })
}

/// Gives a block back: kept for the next message, or freed when the pool keeps enough.
pub(crate) fn put(b: Block) {
    LENT.fetch_sub(1, Ordering::Relaxed);
    let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
    let (blocks, bytes) = &mut *free;
    if *bytes + b.cap <= KEEP {
        *bytes += b.cap;
        blocks.push((b, Instant::now()));
    }
    // Otherwise `b` is freed as it drops (after the lock: the guard drops last).
}

/// Frees the blocks kept unused for `idle` or longer; returns how many blocks are still kept or
/// lent (while any are, the caller asks again later: lent ones come back when collected).
pub(crate) fn trim(idle: Duration) -> usize {
    let stale: Vec<(Block, Instant)> = {
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        let (blocks, bytes) = &mut *free;
        let (stale, kept) = std::mem::take(blocks)
            .into_iter()
            .partition(|(_, at)| at.elapsed() >= idle);
        *blocks = kept;
        *bytes = blocks.iter().map(|(b, _)| b.cap).sum();
        stale
    };
    // Freed outside the lock.
    drop(stale);
    FREE.lock().unwrap_or_else(|p| p.into_inner()).0.len() + LENT.load(Ordering::Relaxed)
}

/// What a message's finalizer gets back: its block, and the bytes reported to the receiving
/// thread's engine.
pub(crate) struct Lent {
    pub(crate) block: Block,
    pub(crate) reported: (crate::Ledger, i64),
}

/// A big message's SharedArrayBuffer finalizer: runs once the memory is released by every
/// thread, on whichever thread released it last, where no engine may be called.
///
/// # Safety
/// `hint` is a `Box<Lent>` handed to the engine with the buffer, which calls this exactly once.
pub(crate) unsafe extern "C" fn finalize(_data: *mut c_void, hint: *mut c_void) {
    // SAFETY: forwarded from the caller.
    let lent = unsafe { Box::from_raw(hint.cast::<Lent>()) };
    crate::give_back(&lent.reported);
    put(lent.block);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool is the process's: one test at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn a_block_is_reused_only_for_a_message_it_fits_well() {
        let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        // Whatever the other test left.
        trim(Duration::ZERO);
        let a = take(MIN + 1).unwrap();
        assert_eq!(a.cap(), 2 * GRAIN);
        let p = a.ptr();
        put(a);
        // Too big for it: a new block.
        let b = take(3 * GRAIN).unwrap();
        assert_ne!(b.ptr(), p);
        // Fits, and the block is at most twice the message: the kept one.
        let c = take(GRAIN + 10).unwrap();
        assert_eq!(c.ptr(), p);
        put(b);
        put(c);
    }

    #[test]
    fn the_pool_keeps_at_most_keep_bytes_and_frees_what_stays_unused() {
        let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        // Whatever the other test left.
        trim(Duration::ZERO);
        let blocks: Vec<Block> = (0..(KEEP / (8 << 20)) + 2)
            .map(|_| take(8 << 20).unwrap())
            .collect();
        for b in blocks {
            put(b);
        }
        assert!(FREE.lock().unwrap().1 <= KEEP);
        let kept = |cap: usize| {
            FREE.lock()
                .unwrap()
                .0
                .iter()
                .filter(|(b, _)| b.cap == cap)
                .count()
        };
        assert_eq!(kept(8 << 20), KEEP / (8 << 20), "kept up to KEEP bytes");
        trim(Duration::from_secs(3600));
        assert_eq!(kept(8 << 20), KEEP / (8 << 20), "recently used blocks stay");
        trim(Duration::ZERO);
        assert_eq!(kept(8 << 20), 0, "idle blocks go");
        assert_eq!(FREE.lock().unwrap().1, 0);
    }
}
