//! The per-process registry: the one place where the lifecycle rules live.
//!
//! - A [`View`] owns a share of one [`Mapping`] (an `Arc`): the mapping is unmapped when the last
//!   view of it drops, never before, so no safe call can leave a pointer to unmapped memory.
//! - A process maps a segment once per mode; the registry keeps only weak references, so it
//!   never keeps a mapping alive by itself.
//! - The owner (creating process) releases a segment when its last view drops, unless the
//!   segment's handle was handed out (then it stays until `free` or the owner's exit) or it is
//!   persistent (then it stays until `free`). Releasing removes a named segment's name, or closes
//!   the owner's descriptor of a memfd segment (the kernel frees it with its last mapping).
//! - A receiver's `free` marks the segment (its header's freed flag, and the control word) and,
//!   for a named one, removes its name; the owner sees the mark when it next looks ([`reap`]) and
//!   lets go of what it holds for the segment. With `opens: n` the owner lets go the same way once
//!   `n` other processes have opened it (they count in the control word); views keep working.
//! - `close` retires a mapping: its pages are given back at once, replaced by private zero pages
//!   at the same addresses, and the range itself is unmapped when the last view drops. A mapping
//!   is live, then retired, then released (unmapped): [`View::is_live`] and [`View::retire`] are
//!   the state machine's two questions, asked of the mapping itself, never of a name.
//! - Every mapping this process holds, live or retired, counts against one budget (half of
//!   `vm.max_map_count`), so the kernel's map count never runs out under the engine.
//!
//! Each concern has its file: `mapping` the mappings and their state machine (all the unsafe
//! code over mapped memory), `file` a segment's file before it is mapped, `owner` what the
//! creating process keeps and hands out, `create` and `open` the two ways to a view,
//! `catalog` the segments on the machine (list, free, sweep), `holdings` what this process
//! holds. This file keeps the table they share.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, Weak};

mod catalog;
mod create;
mod file;
mod holdings;
mod mapping;
mod open;
mod owner;
mod prefault;

pub use catalog::{exists, free, free_handle, list, peek, sweep, Listing};
pub use create::{allocate, create, CreateSpec};
pub use file::path_of;
pub use holdings::{holdings, stats, Holdings, Tally};
pub use mapping::{
    closes_counter, find, mapped, mapping_budget, over_mapping_budget, populate, populate_as,
    retired_bytes, Mapping, Mode, View, WeakView,
};
pub use open::{
    forget_located, handle_is_current, locate, locate_for_open, open_handle, open_handle_with,
    open_id, read_copy, Located,
};
pub use owner::{hand_out, last_created, reap, release_owned};
pub use prefault::{
    prefault_in_background, prefault_stats, PrefaultStats, CHUNK as PREFAULT_CHUNK,
};

use owner::Owned;

/// Identifies one segment: its id and generation (ids can be reused; generations are random).
pub type SegKey = (String, u64);

#[derive(Default)]
struct Registry {
    mappings: HashMap<(SegKey, Mode), Weak<Mapping>>,
    owned: HashMap<SegKey, Owned>,
    /// Handed-out segments whose control word the owner looks at, oldest look first.
    watch: VecDeque<SegKey>,
    last_created: Option<String>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    // A panic while holding the lock leaves plain data behind; it is still consistent enough to use.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut guard = registry();
    f(guard.get_or_insert_with(Registry::default))
}
