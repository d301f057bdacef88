//! The mappings of segments in this process, and all of the registry's unsafe code over mapped
//! memory: a [`Mapping`] is live, then retired (its pages given back, zero pages in their place),
//! then released (unmapped, when its last [`View`] drops). Every mapping counts against one
//! budget. The OS side of each step is in `sys` (`map_file`, `retire`, and the unmap on drop).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use super::file::path_of;
use super::owner::mapping_gone;
use super::{with, SegKey};
use crate::error::{Code, Error, Result};
use crate::header::Header;
use crate::sys;

/// How a process maps a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Writes are seen by every process at once.
    Shared,
    /// A write copies the touched page for this process alone.
    CopyOnWrite,
}

impl Mode {
    pub(super) fn access(self) -> sys::Access {
        match self {
            Mode::Shared => sys::Access::Shared,
            Mode::CopyOnWrite => sys::Access::CopyOnWrite,
        }
    }
    pub(super) fn of_header(h: &Header) -> Mode {
        if h.copy_on_write() {
            Mode::CopyOnWrite
        } else {
            Mode::Shared
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::Shared => "shared",
            Mode::CopyOnWrite => "cow",
        }
    }
}

/// One mapping of a segment in this process, shared by all its views in every thread.
pub struct Mapping {
    /// Unmapped on drop, except after `retire` replaced it in place (see Drop).
    pub(super) map: std::mem::ManuallyDrop<sys::Map>,
    pub(super) header: Header,
    pub(super) attributes: String,
    pub(super) key: SegKey,
    pub(super) mode: Mode,
    pub(super) handle: String,
    pub(super) owner: bool,
    /// Live → retired, once (Acquire/Release: a thread that sees `true` also sees the pages
    /// replaced by `retire`).
    pub(super) retired: AtomicBool,
    /// Retired by `retire` (not by losing a race to map): its bytes are in `RETIRED_BYTES`.
    pub(super) counted_retired: AtomicBool,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        crate::guard::unwatch(self.map.ptr());
        if !self.retired.swap(true, Ordering::AcqRel) {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            if self.owner {
                mapping_gone(&self.key);
            }
        } else if self.counted_retired.load(Ordering::Acquire) {
            RETIRED_BYTES.fetch_sub(self.map.len(), Ordering::Relaxed);
        }
        // The last view is gone, and a view is what every buffer over the range holds (the
        // binding keeps one for a detached buffer until the engine collects that buffer, so a
        // thread-pool job writing through it has ended): nothing can reach the range any more.
        // SAFETY: dropped exactly once, here; nothing uses `map` after the Mapping's drop.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.map) };
        MAPPED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A view that does not keep its mapping alive: asks whether it still exists.
#[derive(Clone, Default)]
pub struct WeakView {
    mapping: Weak<Mapping>,
}

impl WeakView {
    pub fn upgrade(&self) -> Option<View> {
        self.mapping.upgrade().map(|mapping| View { mapping })
    }
}

/// One view handed out: keeps its mapping alive until dropped. The pointer stays valid (the
/// segment's bytes, or zero pages once the mapping is retired) for the view's whole life.
pub struct View {
    pub(super) mapping: Arc<Mapping>,
}

// SAFETY: a view is process memory plus plain data; the registry it touches on drop is behind
// a mutex, so views may move to and drop on any thread (finalizers run on any thread).
unsafe impl Send for View {}
unsafe impl Sync for View {}
// SAFETY: as for View: the map is process memory, valid from any thread until unmapped on drop.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl View {
    /// A reference that does not keep the mapping mapped.
    pub fn downgrade(&self) -> WeakView {
        WeakView {
            mapping: Arc::downgrade(&self.mapping),
        }
    }
    /// Whether the mapping is live: not closed in this process (by any thread).
    pub fn is_live(&self) -> bool {
        !self.mapping.retired.load(Ordering::Acquire)
    }
    /// Closes this mapping in this process (every thread sees it): its pages are given back
    /// now and read as zeros, and the next `open` maps the segment afresh. The range itself is
    /// unmapped when the last view drops. Returns whether it was live.
    pub fn retire(&self) -> bool {
        retire_mapping(&self.mapping)
    }
    /// The first data byte.
    pub fn ptr(&self) -> *mut u8 {
        Self::data_ptr(&self.mapping)
    }
    fn data_ptr(m: &Mapping) -> *mut u8 {
        // SAFETY: data_offset + byte_length <= map.len() was checked by Header::decode against
        // the mapped size, so the pointer stays inside the mapping.
        unsafe { m.map.ptr().add(m.header.data_offset as usize) }
    }
    pub fn byte_length(&self) -> usize {
        self.mapping.header.byte_length as usize
    }
    pub fn header(&self) -> &Header {
        &self.mapping.header
    }
    pub fn attributes(&self) -> &str {
        &self.mapping.attributes
    }
    pub fn id(&self) -> &str {
        &self.mapping.key.0
    }
    pub fn handle(&self) -> &str {
        &self.mapping.handle
    }
    pub fn mode(&self) -> Mode {
        self.mapping.mode
    }
    pub fn owner(&self) -> bool {
        self.mapping.owner
    }
    /// `id:generation:mode`: the same for every view of this mapping.
    pub fn key(&self) -> String {
        view_key(&self.mapping.key, self.mapping.mode)
    }
    /// A file path another process of this user can open to read the segment, if there is one.
    pub fn path(&self) -> Option<String> {
        path_of(&self.mapping.handle)
    }
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("handle", &self.handle())
            .field("mode", &self.mode())
            .finish()
    }
}

pub(super) fn view_key(k: &SegKey, mode: Mode) -> String {
    format!("{}:{:016x}:{}", k.0, k.1, mode.name())
}

/// Mappings made and not yet retired or dropped, across threads.
pub(super) static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Mappings made and not yet unmapped, live or retired: every range the process holds.
pub(super) static MAPPED: AtomicUsize = AtomicUsize::new(0);
/// Bytes of mappings retired and not yet unmapped: address space held for buffers that may
/// still be reached.
static RETIRED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// How many mappings were ever retired: a thread that saw one value knows no mapping was closed
/// since, without asking each one.
static CLOSES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The counter of closes (see `CLOSES`), for readers that poll it cheaply; it lives as long as
/// the process.
pub fn closes_counter() -> &'static std::sync::atomic::AtomicU32 {
    &CLOSES
}

/// Refuses a new mapping when this process holds so many that the next could fail in the engine
/// itself (an abort, not an error): half of `vm.max_map_count` is ours to use.
pub(super) fn check_mapping_budget() -> Result<()> {
    if over_mapping_budget() {
        let budget = mapping_budget();
        return Err(Error::new(
            Code::NoSpace,
            format!(
                "this process holds {budget} mappings, half of what the OS allows (vm.max_map_count): close() vectors \
                 you no longer use, drop closed ones, or let the event loop turn so that dropped ones are released"
            ),
        ));
    }
    Ok(())
}

/// Retires `m` (see [`View::retire`]): unregisters it so the next `open` maps afresh, and gives
/// its pages back now.
fn retire_mapping(m: &Arc<Mapping>) -> bool {
    if m.retired.swap(true, Ordering::AcqRel) {
        return false;
    }
    with(|r| {
        let k = (m.key.clone(), m.mode);
        if r.mappings
            .get(&k)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(m)))
        {
            r.mappings.remove(&k);
        }
    });
    // Where the pages cannot be replaced (no memory for the new mapping, or Windows), the
    // segment's pages stay mapped until the last view drops: reads then see the data, not zeros.
    sys::retire(&m.map);
    RETIRED_BYTES.fetch_add(m.map.len(), Ordering::Relaxed);
    m.counted_retired.store(true, Ordering::Release);
    // Release: a thread that reads the new count also sees `retired`.
    CLOSES.fetch_add(1, Ordering::Release);
    LIVE.fetch_sub(1, Ordering::Relaxed);
    if m.owner {
        mapping_gone(&m.key);
    }
    true
}

/// A new view of the live mapping whose data starts at `ptr` and holds `len` bytes: for a buffer
/// over it that reached this thread from another (a SharedArrayBuffer posted to a worker).
pub fn find(ptr: *const u8, len: usize) -> Option<View> {
    // Upgraded under the lock, compared and dropped outside it: dropping the last reference to
    // a mapping takes the lock again.
    let all: Vec<Arc<Mapping>> = with(|r| r.mappings.values().filter_map(Weak::upgrade).collect());
    all.into_iter()
        .find(|m| {
            !m.retired.load(Ordering::Acquire)
                && m.header.byte_length as usize == len
                && std::ptr::eq(View::data_ptr(m), ptr)
        })
        .map(|mapping| View { mapping })
}

/// Maps every page of the live mapping a view key names into this process now (see
/// `open_handle`). Returns whether there was one.
pub fn populate(view_key_text: &str) -> bool {
    populate_as(view_key_text, false)
}

/// `populate`, or with `background`, starts populating on a thread of the package and returns
/// at once (see `prefault_in_background`).
pub fn populate_as(view_key_text: &str, background: bool) -> bool {
    let found = with(|r| {
        r.mappings
            .iter()
            .find(|((k, m), _)| view_key(k, *m) == view_key_text)
            .and_then(|(_, w)| w.upgrade())
    });
    match found {
        Some(m) if !m.retired.load(Ordering::Acquire) => {
            if background {
                super::prefault_in_background(&View { mapping: m });
            } else {
                sys::prefault(&m.map);
            }
            true
        }
        _ => false,
    }
}

/// How many mappings this process may hold: half of `vm.max_map_count`.
pub fn mapping_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| sys::max_map_count() / 2)
}

/// Whether a new mapping would pass the budget: a caller that can make its engine collect (and
/// so release buffers nobody holds) may do so and try again.
pub fn over_mapping_budget() -> bool {
    MAPPED.load(Ordering::Relaxed) >= mapping_budget()
}

/// Bytes of address space held by mappings that were closed and are not yet unmapped.
pub fn retired_bytes() -> usize {
    RETIRED_BYTES.load(Ordering::Relaxed)
}

/// Every mapping this process holds now, live or retired (what the mapping budget counts).
pub fn mapped() -> usize {
    MAPPED.load(Ordering::Relaxed)
}
