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
    let mode = mode.unwrap_or_else(|| Mode::of_header(&h));
    Ok(Located {
        key: view_key(&(id, generation), mode),
        header: h,
        mode,
    })
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
    let (id, generation, place) = name::parse_handle(handle)?;
    open_at(&id, Some(generation), &place, mode, populate, unreserved)
}

/// Opens named segment `id`, whatever its generation (the developer API's `mapSharedMemory`).
pub fn open_id(id: &str, mode: Option<Mode>) -> Result<View> {
    name::validate_id(id)?;
    open_at(id, None, &Place::Named, mode, false, false)
}

fn open_at(
    id: &str,
    generation: Option<u64>,
    place: &Place,
    mode: Option<Mode>,
    populate: bool,
    unreserved: bool,
) -> Result<View> {
    // Opened writable where allowed (copy-on-write too), so that this open can be counted.
    let (file, h, attributes) = match open_checked(id, generation, place, true) {
        // A segment this user may only read still opens copy-on-write.
        Err(e) if mode != Some(Mode::Shared) && e.code == Code::Permission => {
            open_checked(id, generation, place, false)?
        }
        r => r?,
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
    crate::limits::check_map(id, file.size())?;
    let map = sys::map_file(&file, mode.access(), populate)?;
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
    let winner = with(|r| {
        if let Some(existing) = r.mappings.get(&(key.clone(), mode)).and_then(Weak::upgrade) {
            if !existing.retired.load(Ordering::Acquire) {
                return Some(existing);
            }
        }
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
            if !owner {
                count_open(&file, &mapping.header);
            }
            Ok(View { mapping })
        }
    }
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
