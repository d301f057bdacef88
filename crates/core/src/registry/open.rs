//! Opening a segment by its handle or id: a view of this process's live mapping of it, or a new
//! mapping; and reading a private copy without mapping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use super::file::{check_allocated, count_open, open_checked};
use super::mapping::{check_mapping_budget, view_key, Mapping, Mode, View, LIVE, MAPPED};
use super::{with, SegKey};
use crate::error::{Code, Error, Result};
use crate::header::Header;
use crate::name::{self, Place};
use crate::sys;

/// What `locate` finds: the segment a handle names, without mapping it.
#[derive(Debug, Clone)]
pub struct Located {
    pub key: String,
    pub header: Header,
    pub mode: Mode,
}

/// Finds the segment a handle names and checks it can still be opened, without mapping it.
/// `mode: None` takes the sharer's default.
pub fn locate(handle: &str, mode: Option<Mode>) -> Result<Located> {
    let (id, generation, place) = name::parse_handle(handle)?;
    let (_, h, _) = open_checked(&id, Some(generation), &place, false)?;
    Ok(located(id, generation, h, mode))
}

fn located(id: String, generation: u64, h: Header, mode: Option<Mode>) -> Located {
    let mode = mode.unwrap_or_else(|| Mode::of_header(&h));
    Located {
        key: view_key(&(id, generation), mode),
        header: h,
        mode,
    }
}

/// A segment [`locate_for_open`] found and opened, kept for the [`open_handle_with`] of the
/// same handle and mode that follows it.
struct Found {
    handle: String,
    mode: Option<Mode>,
    opened: (sys::File, Header, String),
}

thread_local! {
    /// What this thread's last `locate_for_open` found, until its open takes it or
    /// [`forget_located`] drops it: at most one descriptor, never kept past the caller's call.
    static FOUND: std::cell::RefCell<Option<Found>> = const { std::cell::RefCell::new(None) };
}

/// As [`locate`], opening the segment as [`open_handle_with`] will (writable where allowed) and
/// keeping it for that open: finding and checking a segment is most of the system calls an open
/// makes (a memfd's link, its header, its owner's liveness), and they are then made once. The
/// caller either opens the same handle with the same mode next, or calls [`forget_located`]: a
/// descriptor kept longer would keep a freed segment's memory alive.
pub fn locate_for_open(handle: &str, mode: Option<Mode>) -> Result<Located> {
    forget_located();
    let (id, generation, place) = name::parse_handle(handle)?;
    let opened = open_for_mapping(&id, Some(generation), &place, mode)?;
    let found = located(id, generation, opened.1.clone(), mode);
    FOUND.with(|f| {
        *f.borrow_mut() = Some(Found {
            handle: handle.to_string(),
            mode,
            opened,
        })
    });
    Ok(found)
}

/// Drops what [`locate_for_open`] kept, if its open did not take it.
pub fn forget_located() {
    // Taken out first: the file closes outside the borrow.
    drop(FOUND.with(|f| f.borrow_mut().take()));
}

/// What [`locate_for_open`] kept for this handle and mode, if it kept it.
fn take_located(handle: &str, mode: Option<Mode>) -> Option<(sys::File, Header, String)> {
    let found = FOUND.with(|f| f.borrow_mut().take())?;
    (found.handle == handle && found.mode == mode).then_some(found.opened)
}

/// Opens a segment for mapping: writable where allowed (copy-on-write too, so that the open can
/// be counted); a segment this user may only read still opens copy-on-write.
fn open_for_mapping(
    id: &str,
    generation: Option<u64>,
    place: &Place,
    mode: Option<Mode>,
) -> Result<(sys::File, Header, String)> {
    match open_checked(id, generation, place, true) {
        Err(e) if mode != Some(Mode::Shared) && e.code == Code::Permission => {
            open_checked(id, generation, place, false)
        }
        r => r,
    }
}

/// Whether the segment a handle names can still be opened by it (not freed, not replaced).
pub fn handle_is_current(handle: &str) -> Result<bool> {
    match locate(handle, None) {
        Ok(_) => Ok(true),
        Err(e) if e.code == Code::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens the segment a handle names. `mode: None` takes the sharer's default. With `populate`,
/// every page is mapped into this process now (MAP_POPULATE, or read-faulted in for a mapping
/// that exists already or is copy-on-write), so that a first pass over the data takes no page
/// faults; it costs the same time up front. Opening has no side effect on the segment, whatever
/// happens.
pub fn open_handle(handle: &str, mode: Option<Mode>, populate: bool) -> Result<View> {
    open_handle_with(handle, mode, populate, false)
}

/// `open_handle`, and with `unreserved`, a segment made with `reserve: false` maps even when
/// some of its pages have no memory behind them (the caller accepts that touching one may be a
/// SIGBUS where the filesystem is full).
pub fn open_handle_with(
    handle: &str,
    mode: Option<Mode>,
    populate: bool,
    unreserved: bool,
) -> Result<View> {
    let kept = take_located(handle, mode);
    let (id, generation, place) = name::parse_handle(handle)?;
    open_at(
        &id,
        Some(generation),
        &place,
        mode,
        populate,
        unreserved,
        kept,
    )
}

/// Opens named segment `id`, whatever its generation (the developer API's `mapSharedMemory`).
pub fn open_id(id: &str, mode: Option<Mode>) -> Result<View> {
    name::validate_id(id)?;
    open_at(id, None, &Place::Named, mode, false, false, None)
}

fn open_at(
    id: &str,
    generation: Option<u64>,
    place: &Place,
    mode: Option<Mode>,
    populate: bool,
    unreserved: bool,
    kept: Option<(sys::File, Header, String)>,
) -> Result<View> {
    let (file, h, attributes) = match kept {
        Some(k) => k,
        None => open_for_mapping(id, generation, place, mode)?,
    };
    let mode = mode.unwrap_or_else(|| Mode::of_header(&h));
    let key: SegKey = (id.to_string(), h.generation);
    if let Some(m) = with(|r| r.mappings.get(&(key.clone(), mode)).and_then(Weak::upgrade)) {
        if !m.retired.load(Ordering::Acquire) {
            if populate {
                sys::prefault(&m.map);
            }
            return Ok(View { mapping: m });
        }
    }
    check_mapping_budget()?;
    check_allocated(id, &file, &h, unreserved)?;
    // The kernel refuses a mapping past the address space the process may have (RLIMIT_AS)
    // with ENOMEM; only then is the limit asked, to name it.
    let map = sys::map_file(&file, mode.access(), populate).map_err(|e| {
        if e.code == Code::NoSpace {
            crate::limits::check_map(id, file.size()).err().unwrap_or(e)
        } else {
            e
        }
    })?;
    // The handle a view gives is the one it was opened by, or the named one for an id.
    let handle = match place {
        Place::Named => name::format_handle(id, h.generation, place),
        p => name::format_handle(id, h.generation, p),
    };
    let pid = sys::current_pid();
    let owner = h.owner_pid == pid && with(|r| r.owned.contains_key(&key));
    crate::guard::watch(map.ptr(), map.len());
    let mapping = Arc::new(Mapping {
        map: std::mem::ManuallyDrop::new(map),
        header: h,
        attributes,
        key: key.clone(),
        mode,
        handle,
        owner,
        retired: AtomicBool::new(false),
        counted_retired: AtomicBool::new(false),
    });
    LIVE.fetch_add(1, Ordering::Relaxed);
    MAPPED.fetch_add(1, Ordering::Relaxed);
    // Two threads may race to map the same segment: the first mapping registered wins, and the
    // other is dropped (unmapped) right away.
    let mut counted = false;
    let winner = with(|r| {
        if let Some(existing) = r.mappings.get(&(key.clone(), mode)).and_then(Weak::upgrade) {
            if !existing.retired.load(Ordering::Acquire) {
                return Some(existing);
            }
        }
        // Counted here, before the mapping is registered: no other thread can have closed (and
        // so zeroed) it yet.
        counted = !owner && count_through(&mapping);
        r.mappings
            .insert((key.clone(), mode), Arc::downgrade(&mapping));
        if owner {
            if let Some(o) = r.owned.get_mut(&key) {
                o.live += 1;
            }
        }
        None
    });
    match winner {
        Some(existing) => {
            mapping.retired.store(true, Ordering::Release);
            LIVE.fetch_sub(1, Ordering::Relaxed);
            drop(mapping);
            Ok(View { mapping: existing })
        }
        None => {
            if !owner && !counted {
                count_open(&file, &mapping.header);
            }
            Ok(View { mapping })
        }
    }
}

/// Counts an open of the segment through the new mapping itself, where it is shared and holds
/// the control word: a second mapping, only for that word, is four system calls. False where it
/// cannot (copy-on-write: a write would stay private).
fn count_through(m: &Mapping) -> bool {
    let at = m.header.control_offset();
    if m.mode != Mode::Shared
        || m.header.segment_size() > m.map.len() as u64
        || !at.is_multiple_of(8)
        || at.saturating_add(8) > m.map.len() as u64
    {
        return false;
    }
    // SAFETY: `at` + 8 lies inside the mapping (checked above), which `m` keeps mapped for this
    // call and which no other thread can have replaced yet (the caller has not registered it);
    // the address is 8-aligned (a page-aligned mapping plus a multiple of 8). Every process
    // changes the control word only with atomic operations.
    let word = unsafe { &*(m.map.ptr().add(at as usize) as *const std::sync::atomic::AtomicU64) };
    word.fetch_add(1, Ordering::AcqRel);
    true
}

/// A private copy of the segment a handle names: header, attributes and data bytes. For runtimes
/// that cannot view external memory; nothing stays mapped. The data's size is checked against
/// the file and allocated fallibly, so a lying header is an error, not an abort.
pub fn read_copy(handle: &str, max_bytes: u64) -> Result<(Header, String, Vec<u8>)> {
    let (id, generation, place) = name::parse_handle(handle)?;
    let (file, h, attributes) = match open_checked(&id, Some(generation), &place, true) {
        Err(e) if e.code == Code::Permission => open_checked(&id, Some(generation), &place, false)?,
        r => r?,
    };
    let pid = sys::current_pid();
    if !(h.owner_pid == pid && with(|r| r.owned.contains_key(&(id.clone(), generation)))) {
        count_open(&file, &h);
    }
    if h.byte_length > max_bytes {
        return Err(Error::new(
            Code::OutOfRange,
            format!("segment {id:?} holds {} bytes, more than this runtime can hold in one buffer ({max_bytes})", h.byte_length),
        ));
    }
    let mut data = Vec::new();
    data.try_reserve_exact(h.byte_length as usize)
        .map_err(|_| {
            Error::new(
                Code::NoSpace,
                format!(
                    "not enough memory for a private copy of segment {id:?} ({} bytes)",
                    h.byte_length
                ),
            )
        })?;
    // Read, not mapped for a view: on Linux a hole reads as zeros and a file cut short under us
    // is an error, where a mapping would be a SIGBUS.
    data.resize(h.byte_length as usize, 0);
    file.read_at(&mut data, h.data_offset)?;
    Ok((h, attributes, data))
}
