//! What the creating process keeps for a segment and hands out: its name or descriptor, whether
//! its handle went to others, the `opens` it waits for; when it lets go, and at its exit.

use std::sync::Once;

#[cfg(target_os = "linux")]
use super::file::mark_freed;
use super::file::{ours_marked, unlink_generation};
#[cfg(unix)]
use super::REGISTRY;
use super::{with, SegKey};
use crate::error::{Code, Result};
use crate::header::{self, Header};
use crate::name;
use crate::sys;

/// A segment this process created, and what keeps it nameable.
pub(super) struct Owned {
    pub(super) named: bool,
    pub(super) persistent: bool,
    pub(super) handed_out: bool,
    /// With `opens: n`: the count of other processes' opens at which the owner may let it go.
    pub(super) opens_target: Option<u64>,
    /// In `Registry::watch`: the owner looks at its control word from time to time.
    pub(super) watched: bool,
    /// Live (not retired) mappings of it in this process.
    pub(super) live: usize,
    /// Bytes the segment occupies.
    pub(super) size: u64,
    /// Where its control word lies; 0 for none.
    pub(super) control: u64,
    /// The memfd of an unnamed segment: other processes open it through /proc while it is open.
    #[cfg(target_os = "linux")]
    pub(super) file: Option<sys::File>,
    /// Windows ends a mapping with its last handle: the owner keeps one while the segment must
    /// stay nameable.
    #[cfg(windows)]
    pub(super) keeper: Option<sys::Map>,
}

static EXIT_HOOK: Once = Once::new();

/// Lets an owner's record go (a function, so that what dropping it closes is said once).
fn drop_owned(o: Owned) {
    let _closed = o;
}

/// The owner's bookkeeping when one of its mappings of `key` goes (dropped or retired).
pub(super) fn mapping_gone(key: &SegKey) {
    let release = with(|r| {
        let o = r.owned.get_mut(key)?;
        o.live = o.live.saturating_sub(1);
        if o.live > 0 || o.handed_out || o.persistent {
            return None;
        }
        r.owned.remove(key)
    });
    if let Some(o) = release {
        release_owned_segment(key, o);
    }
}

/// Lets go of a segment this process owns: a named one loses its name, a memfd its descriptor.
fn release_owned_segment(key: &SegKey, o: Owned) {
    if o.named {
        unlink_generation(&key.0, key.1);
    }
    // `o` drops here: that closes the memfd (Linux) or the keeper (Windows).
}

/// Records that a segment's handle was handed out: the owner keeps it nameable until `free` (by
/// any process) or its exit, whatever its garbage collector does; with `opens: Some(n)`, until
/// `n` more opens by other processes (see `reap`). Returns whether this process owns it.
pub fn hand_out(handle: &str, opens: Option<u64>) -> Result<bool> {
    let (id, generation, _) = name::parse_handle(handle)?;
    let key = (id, generation);
    #[cfg(windows)]
    let keeper = if with(|r| r.owned.get(&key).is_some_and(|o| o.keeper.is_none())) {
        sys::open_named(&key.0, false)
            .and_then(|f| sys::map_file(&f, sys::Access::Peek, false))
            .ok()
    } else {
        None
    };
    let owned = with(|r| {
        let Some(o) = r.owned.get_mut(&key) else {
            return false;
        };
        #[cfg(windows)]
        if o.keeper.is_none() {
            o.keeper = keeper;
        }
        if let Some(n) = opens {
            let base = match o.opens_target {
                Some(t) => Some(t),
                None => control_word(&key, o).map(|w| w & header::CONTROL_OPENS),
            };
            // A segment freed or gone already has nothing to wait for.
            if let Some(base) = base {
                o.opens_target = Some(base.saturating_add(n));
            }
        }
        o.handed_out = true;
        // A persistent segment stays until freed: it is watched only when it waits for opens.
        if !o.watched && (!o.persistent || o.opens_target.is_some()) {
            o.watched = true;
            r.watch.push_back(key.clone());
        }
        true
    });
    Ok(owned)
}

/// The control word of a segment this process owns, as the owner reads it; `None` when the
/// segment is gone (its name removed or taken by another segment).
fn control_word(key: &SegKey, o: &Owned) -> Option<u64> {
    if o.control == 0 {
        return Some(0);
    }
    #[cfg(target_os = "linux")]
    if let Some(f) = &o.file {
        return Some(sys::read_control(f, o.control).unwrap_or(0));
    }
    #[cfg(windows)]
    if let Some(k) = &o.keeper {
        // The keeper maps the whole segment (a plain read: the word only grows).
        let mut w = [0u8; 8];
        if sys::read_map(k, o.control, &mut w).is_some() {
            return Some(u64::from_le_bytes(w));
        }
    }
    if !o.named {
        return Some(0);
    }
    let f = match sys::open_named(&key.0, false) {
        Ok(f) => f,
        Err(e) if e.code == Code::NotFound => return None,
        Err(_) => return Some(0),
    };
    match sys::read_head(&f).and_then(|head| Header::decode(&head, f.size())) {
        Ok(h) if h.generation == key.1 => Some(sys::read_control(&f, o.control).unwrap_or(0)),
        Ok(_) => None,
        Err(_) => Some(0),
    }
}

/// The owner looks at up to `limit` of the segments it handed out (the ones it looked at longest
/// ago first) and lets go of those another process freed or that have had their `opens`.
/// Returns how many segments it released and how many it still watches.
pub fn reap(limit: usize) -> (usize, usize) {
    let mut released = Vec::new();
    let left = with(|r| {
        let n = limit.min(r.watch.len());
        for _ in 0..n {
            let Some(key) = r.watch.pop_front() else {
                break;
            };
            let Some(o) = r.owned.get_mut(&key) else {
                continue;
            };
            let word = control_word(&key, o);
            let freed = word.is_none_or(|w| w & header::CONTROL_FREED != 0);
            let opened = match (word, o.opens_target) {
                (Some(w), Some(t)) => w & header::CONTROL_OPENS >= t,
                _ => false,
            };
            // Once its opens have happened nobody else is meant to open it: the owner lets go
            // of its descriptor, name or keeper now (its own views keep working), so that
            // nothing waits for its garbage collector.
            if freed || opened {
                if let Some(o) = r.owned.remove(&key) {
                    released.push((key, o));
                }
                continue;
            }
            r.watch.push_back(key);
        }
        r.watch.len()
    });
    let count = released.len();
    for (key, o) in released {
        let _ = let_go(&key, o);
    }
    (count, left)
}

/// The owner lets go of a segment it no longer keeps openable: marked freed (so that nobody
/// opens it again, on every platform), its memfd or keeper closed, its name removed. Returns
/// whether it is gone for others.
pub(super) fn let_go(key: &SegKey, o: Owned) -> Result<bool> {
    let named = o.named;
    #[cfg(target_os = "linux")]
    if let Some(f) = &o.file {
        // Processes that hold its /proc path already must not open it again either.
        if let Ok(head) = sys::read_head(f) {
            if let Ok(h) = Header::decode(&head, f.size()) {
                let _ = mark_freed(f, &h);
            }
        }
    }
    // Dropping it closes the memfd (Linux) or the keeper (Windows).
    drop_owned(o);
    if named {
        // Windows keeps a section while any process holds it: the mark is what makes it
        // unopenable there, so it counts as freed.
        #[cfg(windows)]
        return Ok(sys::unlink_checked(&key.0, |f| ours_marked(f, Some(key.1))).is_ok());
        #[cfg(not(windows))]
        return sys::unlink_checked(&key.0, |f| ours_marked(f, Some(key.1)));
    }
    Ok(true)
}

/// The id of the last segment this process created.
pub fn last_created() -> Option<String> {
    with(|r| r.last_created.clone())
}

/// Removes the names of the segments this process owns, as its exit would (on a signal, or
/// `releaseSharedObjectPackageData`). Views keep working. Returns how many names were removed.
pub fn release_owned() -> usize {
    let owned: Vec<SegKey> = with(|r| {
        let keys: Vec<SegKey> = r
            .owned
            .iter()
            .filter(|(_, o)| o.named && !o.persistent)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            r.owned.remove(k);
        }
        keys
    });
    owned
        .iter()
        .filter(|(id, g)| unlink_generation(id, *g))
        .count()
}

pub(super) fn install_exit_hook() {
    #[cfg(unix)]
    EXIT_HOOK.call_once(|| {
        extern "C" fn at_exit() {
            // Called by exit(): remove what this process owns. A lock held by a thread that is
            // being torn down must not hang the exit, so only try it.
            let guard = match REGISTRY.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            if let Some(r) = guard.as_ref() {
                for (k, o) in &r.owned {
                    if o.named && !o.persistent {
                        unlink_generation(&k.0, k.1);
                    }
                }
            }
        }
        // SAFETY: at_exit is a plain extern "C" fn that neither unwinds nor calls exit.
        unsafe { libc::atexit(at_exit) };
    });
    #[cfg(windows)]
    EXIT_HOOK.call_once(|| {});
}
