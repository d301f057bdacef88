//! What this process holds now, counted by state.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::mapping::{Mapping, LIVE};
use super::with;

/// Mappings this process holds (registered and alive) and live mappings (neither retired nor
/// released) overall.
pub fn stats() -> (usize, usize) {
    let alive = with(|r| r.mappings.values().filter(|w| w.strong_count() > 0).count());
    (alive, LIVE.load(Ordering::Relaxed))
}

/// Segments and bytes in one state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub segments: usize,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.segments += 1;
        self.bytes += bytes;
    }
}

/// What this process holds now, by state.
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    /// Every segment held, owned or opened.
    pub all: Tally,
    /// Descriptors held to keep segments openable (Linux memfds, Windows keepers).
    pub descriptors: usize,
    /// Owned, not handed out (or no longer openable by others), and mapped here.
    pub live: Tally,
    /// Handed out, and a view of it here is still referenced.
    pub handed_out: Tally,
    /// Handed out (with no `opens` pending) and no view of it here is referenced any more: kept
    /// until some process frees it, or this one exits.
    pub dropped: Tally,
    /// Handed out with `opens`, not all of which have happened yet.
    pub waiting: Tally,
    /// Opened here, owned by another process.
    pub opened: Tally,
}

/// What this process holds now: segments, bytes, descriptors, by state.
pub fn holdings() -> Holdings {
    let held = with(|r| {
        let mut out = Holdings::default();
        for o in r.owned.values() {
            out.all.add(o.size);
            #[cfg(target_os = "linux")]
            if o.file.is_some() {
                out.descriptors += 1;
            }
            #[cfg(windows)]
            if o.keeper.is_some() {
                out.descriptors += 1;
            }
            if o.opens_target.is_some() {
                out.waiting.add(o.size);
            } else if o.handed_out && o.live > 0 {
                out.handed_out.add(o.size);
            } else if o.handed_out {
                out.dropped.add(o.size);
            } else {
                out.live.add(o.size);
            }
        }
        // Upgraded under the lock, read and dropped outside it: dropping the last reference to
        // a mapping takes the lock again.
        let opened: Vec<Arc<Mapping>> = r
            .mappings
            .iter()
            .filter(|((key, _), _)| !r.owned.contains_key(key))
            .filter_map(|(_, w)| w.upgrade())
            .collect();
        (out, opened)
    });
    let (mut out, opened) = held;
    let mut seen = std::collections::HashSet::new();
    for m in &opened {
        if m.retired.load(Ordering::Acquire) || !seen.insert(m.key.clone()) {
            continue;
        }
        out.all.add(m.map.len() as u64);
        // An owner's vector over a segment it let go of (freed, or its opens done) is live here.
        if m.owner {
            out.live.add(m.map.len() as u64);
        } else {
            out.opened.add(m.map.len() as u64);
        }
    }
    drop(opened);
    out
}
