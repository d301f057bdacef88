//! Making a segment: its header, its file (named, or a memfd), the owner's first view.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::catalog::peek;
use super::mapping::{check_mapping_budget, Mapping, Mode, View, LIVE, MAPPED};
use super::owner::{install_exit_hook, Owned};
use super::{with, SegKey};
use crate::error::{Code, Error, Result};
use crate::header::{self, Header};
use crate::kind::Kind;
use crate::name::{self, Place};
use crate::sys;

/// What a new segment holds.
#[derive(Debug, Clone, Default)]
pub struct CreateSpec<'a> {
    /// A user-chosen id; a random one when `None`. A named segment is a file in `/dev/shm`.
    pub id: Option<&'a str>,
    pub kind: Option<Kind>,
    /// Elements.
    pub length: u64,
    /// Data bytes; must be `length` × element size for fixed-width kinds.
    pub byte_length: u64,
    /// JSON text stored with the segment.
    pub attributes: &'a str,
    pub copy_on_write: bool,
    pub persist: bool,
    /// Make a named segment (a file in `/dev/shm`) even without an id.
    pub named: bool,
    /// Allocate every page now (see `sys::create_named`).
    pub reserve: bool,
    pub developer: bool,
    pub aux: [u64; header::AUX_WORDS],
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Creates a segment, fills it with `init` (or zeros), and returns the owner's first view.
pub fn create(spec: &CreateSpec<'_>, init: Option<&[u8]>) -> Result<View> {
    let kind = spec
        .kind
        .ok_or_else(|| Error::new(Code::InvalidArgument, "no kind given"))?;
    if let Some(size) = kind.element_size() {
        if spec.length.checked_mul(size) != Some(spec.byte_length) {
            return Err(Error::new(
                Code::OutOfRange,
                format!(
                    "{} elements of {} need {} bytes",
                    spec.length,
                    kind.name(),
                    spec.length.saturating_mul(size)
                ),
            ));
        }
    }
    if spec.byte_length > isize::MAX as u64 / 2 {
        return Err(Error::new(
            Code::OutOfRange,
            format!(
                "{} bytes is more than one segment can hold",
                spec.byte_length
            ),
        ));
    }
    if let Some(limit) = sys::memory_limit().filter(|&l| spec.byte_length > l) {
        return Err(Error::new(
            Code::OutOfRange,
            format!(
                "{} bytes is more than this machine's memory ({limit} bytes of RAM and swap) can hold",
                spec.byte_length
            ),
        ));
    }
    if spec.attributes.len() > header::MAX_ATTRIBUTES {
        return Err(Error::new(
            Code::OutOfRange,
            format!(
                "attributes take {} bytes; at most {} are allowed",
                spec.attributes.len(),
                header::MAX_ATTRIBUTES
            ),
        ));
    }
    if init.is_some_and(|i| i.len() as u64 > spec.byte_length) {
        return Err(Error::new(
            Code::OutOfRange,
            "initial data larger than the segment",
        ));
    }
    if let Some(id) = spec.id {
        name::validate_id(id)?;
    }
    check_mapping_budget()?;
    let (pid, start, pidns) = sys::current_process();
    let mut flags = 0;
    if spec.copy_on_write {
        flags |= header::FLAG_COPY_ON_WRITE;
    }
    if spec.persist {
        flags |= header::FLAG_PERSIST;
    }
    if spec.developer {
        flags |= header::FLAG_DEVELOPER;
    }
    if !spec.reserve {
        flags |= header::FLAG_UNRESERVED;
    }
    let h = Header {
        kind,
        flags,
        length: spec.length,
        byte_length: spec.byte_length,
        data_offset: Header::data_offset_for(spec.attributes.len()),
        generation: name::generate_generation(),
        owner_pid: pid,
        attributes_len: spec.attributes.len() as u32,
        owner_start: start,
        owner_pidns: pidns,
        created_ms: now_ms(),
        aux: spec.aux,
    };
    let mut head = h.encode().to_vec();
    head.extend_from_slice(spec.attributes.as_bytes());
    let named = spec.id.is_some() || spec.persist || spec.named || !cfg!(target_os = "linux");
    crate::limits::check_create(
        &spec.id.map_or_else(
            || "a new segment".to_string(),
            |id| format!("segment {id:?}"),
        ),
        h.total_size(),
        named,
    )?;
    let new = sys::NewSegment {
        head: &head,
        data_offset: h.data_offset,
        total: h.segment_size(),
        init,
        reserve: spec.reserve,
    };
    let make = |id: &str| {
        #[cfg(target_os = "linux")]
        if !named {
            return sys::create_memfd(id, &new);
        }
        sys::create_named(id, &new)
    };
    let (id, file, map) = match spec.id {
        Some(id) => {
            let (f, m) = make(id)?;
            (id.to_string(), f, m)
        }
        None => {
            // 80 random bits make a clash all but impossible; retry the odd one anyway.
            let mut tries = 0;
            loop {
                let id = name::generate_id();
                match make(&id) {
                    Err(e) if e.code == Code::Exists && tries < 8 => tries += 1,
                    r => {
                        let (f, m) = r?;
                        break (id, f, m);
                    }
                }
            }
        }
    };
    install_exit_hook();
    let key: SegKey = (id.clone(), h.generation);
    let mode = Mode::of_header(&h);
    // The copy-on-write view is made before the shared one goes, so the segment never has no
    // holder (on Windows that would end it).
    let map = match mode {
        Mode::Shared => map,
        Mode::CopyOnWrite => match sys::map_file(&file, sys::Access::CopyOnWrite, false) {
            Ok(m) => m,
            Err(e) => {
                if named {
                    let _ = sys::unlink(&id);
                }
                return Err(e);
            }
        },
    };
    #[cfg(target_os = "linux")]
    let handle = if named {
        name::format_handle(&id, h.generation, &Place::Named)
    } else {
        let place = Place::Memfd {
            pid,
            fd: file.raw_fd(),
            pidns,
        };
        name::format_handle(&id, h.generation, &place)
    };
    #[cfg(not(target_os = "linux"))]
    let handle = name::format_handle(&id, h.generation, &Place::Named);
    crate::guard::watch(map.ptr(), map.len());
    let mapping = Arc::new(Mapping {
        map: std::mem::ManuallyDrop::new(map),
        header: h.clone(),
        attributes: spec.attributes.to_string(),
        key: key.clone(),
        mode,
        handle,
        owner: true,
        retired: AtomicBool::new(false),
        counted_retired: AtomicBool::new(false),
    });
    LIVE.fetch_add(1, Ordering::Relaxed);
    MAPPED.fetch_add(1, Ordering::Relaxed);
    #[cfg(windows)]
    let keeper = if spec.persist || spec.developer {
        sys::map_file(&file, sys::Access::Peek, false).ok()
    } else {
        None
    };
    let owned = Owned {
        named,
        persistent: spec.persist || spec.developer,
        handed_out: false,
        opens_target: None,
        watched: false,
        live: 1,
        size: h.segment_size(),
        control: h.control_offset(),
        #[cfg(target_os = "linux")]
        file: (!named).then_some(file),
        #[cfg(windows)]
        keeper,
    };
    #[cfg(not(target_os = "linux"))]
    drop(file);
    with(|r| {
        r.last_created = Some(id);
        r.owned.insert(key.clone(), owned);
        r.mappings.insert((key, mode), Arc::downgrade(&mapping));
    });
    Ok(View { mapping })
}

/// The developer API's allocation: an untyped, persistent segment of `size` bytes that nobody
/// maps yet. An existing developer segment of that name and at least that size is accepted.
/// Returns the id it made or accepted (never another thread's).
pub fn allocate(size: u64, id: Option<&str>) -> Result<String> {
    if let Some(id) = id {
        name::validate_id(id)?;
        match peek(id) {
            Ok((h, _, _)) if h.developer() && h.byte_length >= size => return Ok(id.to_string()),
            Ok(_) => {
                return Err(Error::new(
                    Code::Exists,
                    format!("segment {id:?} exists and is smaller than your request or not a developer segment"),
                ))
            }
            Err(e) if e.code == Code::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let spec = CreateSpec {
        id,
        kind: Some(Kind::Bytes),
        length: size,
        byte_length: size,
        persist: true,
        developer: true,
        reserve: true,
        ..Default::default()
    };
    let view = create(&spec, None)?;
    let made = view.id().to_string();
    drop(view); // persistent: it stays until freed
    Ok(made)
}
