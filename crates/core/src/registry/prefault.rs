//! Background prefault: after `open`, a thread of the package read-faults a mapping's pages in,
//! front first, in chunks, so that a reader's first pass finds them mapped instead of paying a
//! page fault every few pages, without `open` itself waiting for any of it.
//!
//! Safety rests on the mapping's own state machine (see `mapping`): a job holds only a weak
//! reference, upgraded for one chunk at a time and checked against `retired` first. While a chunk
//! runs, the strong reference keeps the range mapped (the unmap waits for the chunk to end); once
//! the mapping is closed or dropped, the next upgrade or check ends the job. A close during a
//! chunk replaces the pages with zero pages in one step, so the chunk at worst maps zero pages.
//! The kernel reports a range it cannot populate as an error (never a signal), and the job then
//! ends quietly: pages left unmapped are mapped at first touch as usual.
//!
//! Linux only (read faults by `process_vm_readv` on this process, or MADV_POPULATE_READ where
//! that is filtered out; see `sys::prefault_range`); elsewhere, or where the kernel can do
//! neither, nothing starts and nothing is touched from another thread.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::mapping::View;

/// Bytes populated per step: large enough that the call's overhead vanishes (512 pages), small
/// enough that a close waits for little and the reader's first pages are ready almost at once.
pub const CHUNK: usize = 2 << 20;

/// Threads populating now, in this process.
static THREADS: AtomicUsize = AtomicUsize::new(0);
/// Chunks populated, ever, in this process.
static CHUNKS: AtomicU64 = AtomicU64::new(0);
/// Jobs started and jobs ended (finished, stopped by a close, or refused), ever.
static STARTED: AtomicU64 = AtomicU64::new(0);
static ENDED: AtomicU64 = AtomicU64::new(0);

/// What background prefault has done in this process, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefaultStats {
    /// Threads populating now.
    pub threads: usize,
    /// Jobs started, ever (one per mapping asked for).
    pub started: u64,
    /// Jobs ended, ever: finished, stopped by a close, or refused by the kernel.
    pub ended: u64,
    /// Chunks of `CHUNK` bytes populated, ever.
    pub chunks: u64,
}

/// What background prefault has done in this process.
pub fn prefault_stats() -> PrefaultStats {
    PrefaultStats {
        threads: THREADS.load(Ordering::Acquire),
        started: STARTED.load(Ordering::Acquire),
        ended: ENDED.load(Ordering::Acquire),
        chunks: CHUNKS.load(Ordering::Acquire),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, Weak};

    use super::{CHUNK, CHUNKS, ENDED, STARTED, THREADS};
    use crate::registry::mapping::{Mapping, View};
    use crate::sys::{self, Populated};

    /// Set once the kernel said it has no MADV_POPULATE_READ: nothing is started after that.
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    /// Mappings waiting for a thread, oldest first. A thread takes the next when it ends one.
    static QUEUE: Mutex<VecDeque<Weak<Mapping>>> = Mutex::new(VecDeque::new());

    /// At most this many threads at once: one per core but the reader's, at least one, at most 4
    /// (the page-table work is serialised per process beyond a few).
    fn max_threads() -> usize {
        static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *N.get_or_init(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .clamp(1, 4)
        })
    }

    fn queue() -> std::sync::MutexGuard<'static, VecDeque<Weak<Mapping>>> {
        // The queue holds plain weak references: still consistent after a panic elsewhere.
        QUEUE.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn start(view: &View) -> bool {
        if UNSUPPORTED.load(Ordering::Relaxed) || view.mapping.map.len() == 0 || !view.is_live() {
            return false;
        }
        let job = Arc::downgrade(&view.mapping);
        let mut q = queue();
        if q.iter().any(|w| Weak::ptr_eq(w, &job)) {
            return true;
        }
        STARTED.fetch_add(1, Ordering::AcqRel);
        q.push_back(job);
        // Counted under the queue's lock, as a thread's exit is: a job is never left in the
        // queue with no thread to take it.
        if THREADS.load(Ordering::Acquire) < max_threads() {
            THREADS.fetch_add(1, Ordering::AcqRel);
            let spawned = std::thread::Builder::new()
                .name("sharedobject-prefault".into())
                .stack_size(64 << 10)
                .spawn(work);
            if spawned.is_err() {
                // No thread to be had: the pages are mapped at first touch as usual.
                THREADS.fetch_sub(1, Ordering::AcqRel);
                if let Some(lost) = q.pop_back() {
                    drop(lost);
                    ENDED.fetch_add(1, Ordering::AcqRel);
                }
                return false;
            }
        }
        true
    }

    /// A thread's life: jobs from the queue until it is empty.
    fn work() {
        loop {
            let job = {
                let mut q = queue();
                match q.pop_front() {
                    Some(j) => j,
                    None => {
                        THREADS.fetch_sub(1, Ordering::AcqRel);
                        return;
                    }
                }
            };
            populate(&job);
            ENDED.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Populates one mapping front to back while it is live, one chunk per strong reference.
    fn populate(job: &Weak<Mapping>) {
        let mut at = 0usize;
        loop {
            // Dropped (unmapped) already, or closed: nothing more to do. The strong reference
            // lives to the end of this iteration, so the range stays mapped while the chunk runs.
            let Some(m) = job.upgrade() else { return };
            if m.retired.load(Ordering::Acquire) || at >= m.map.len() {
                return;
            }
            let n = CHUNK.min(m.map.len() - at);
            match sys::prefault_range(&m.map, at, n) {
                Populated::Done => {
                    CHUNKS.fetch_add(1, Ordering::AcqRel);
                }
                Populated::Unsupported => {
                    UNSUPPORTED.store(true, Ordering::Relaxed);
                    return;
                }
                Populated::Refused => return,
            }
            at += n;
        }
    }
}

/// Starts populating `view`'s mapping in the background (see the module), unless a job for it is
/// waiting already. Returns whether one was started or is waiting; `false` where the platform or
/// kernel cannot, which changes nothing but the first pass's speed. O(1) for the caller: no page
/// is touched on its thread.
pub fn prefault_in_background(view: &View) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        imp::start(view)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = view;
        false
    }
}
