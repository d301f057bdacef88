//! A segment's file before it is mapped: opened by its handle and checked, its header read,
//! marked freed, its name removed. Nothing here maps a segment for a view.

use std::sync::atomic::Ordering;

use crate::error::{Code, Error, Result};
use crate::header::{self, Header};
use crate::name::{self, Place};
use crate::sys;

fn gone(id: &str) -> Error {
    Error::new(
        Code::NotFound,
        format!(
            "no segment with id {id:?}: it was freed, its owner released it, or it never existed"
        ),
    )
}

/// Decodes the header and attributes read from a segment of `size` bytes.
pub(super) fn decode_head(head: &[u8], size: u64) -> Result<(Header, String)> {
    let h = Header::decode(head, size)?;
    let end = header::FIXED_SIZE + h.attributes_len as usize;
    let attrs = head.get(header::FIXED_SIZE..end).ok_or_else(|| {
        Error::new(
            Code::BadHeader,
            "segment attributes run past the header read",
        )
    })?;
    let attrs = String::from_utf8(attrs.to_vec())
        .map_err(|_| Error::new(Code::BadHeader, "segment attributes are not UTF-8"))?;
    Ok((h, attrs))
}

/// Opens the file of the segment at `place`, for writing when `write`.
fn open_place(id: &str, place: &Place, write: bool) -> Result<sys::File> {
    match *place {
        Place::Named => sys::open_named(id, write),
        #[cfg(target_os = "linux")]
        Place::Memfd { pid, fd, pidns } => sys::open_memfd(id, pid, fd, pidns, write),
        #[cfg(not(target_os = "linux"))]
        Place::Memfd { .. } => Err(Error::new(
            Code::NotFound,
            "unnamed segments of Linux processes open only on Linux",
        )),
    }
}

/// Opens and checks the segment a handle names: the header must decode against the real size,
/// carry the handle's generation, not be freed, and (for a memfd) name the owner that holds it.
pub(super) fn open_checked(
    id: &str,
    generation: Option<u64>,
    place: &Place,
    write: bool,
) -> Result<(sys::File, Header, String)> {
    let file = match open_place(id, place, write) {
        Err(e) if write && e.code == Code::Permission && matches!(place, Place::Named) => {
            // Read-only access still serves copy-on-write and inspection.
            return Err(e);
        }
        r => r?,
    };
    let head = sys::read_head(&file)?;
    let (h, attributes) = decode_head(&head, file.size())?;
    if generation.is_some_and(|g| g != h.generation) {
        return Err(Error::new(
            Code::NotFound,
            format!("the segment this handle named was freed; id {id:?} now names another one"),
        ));
    }
    if h.flags & header::FLAG_FREED != 0 {
        return Err(gone(id));
    }
    // A memfd was reached through its owner's own descriptor table, its link naming this
    // segment's random id: the process at `pid` holds it now, so the owner is alive. A pid reused
    // since would hold it only if the segment's descriptor had been passed to it, and would then
    // be keeping it alive just as its owner did. Asking the owner's start time as well (three
    // system calls and the kernel's whole task stat) would only tell those two apart, at a tenth
    // of an open's time.
    if let Place::Memfd { pid, .. } = *place {
        if h.owner_pid != pid {
            return Err(gone(id));
        }
    }
    Ok((file, h, attributes))
}

/// Refuses to map a segment with pages that have no memory behind them: reading one where the
/// filesystem is full is a SIGBUS, which no reader can catch. Our segments are made whole
/// (`fallocate`), unless their creator chose `reserve: false`, which the header records and the
/// reader must accept; anything else with holes was punched or truncated by another writer.
pub(super) fn check_allocated(
    id: &str,
    file: &sys::File,
    h: &Header,
    unreserved: bool,
) -> Result<()> {
    let Some(allocated) = file.allocated() else {
        return Ok(());
    };
    let total = h.total_size();
    if allocated >= total || file.size() < total {
        // A file shorter than its header says is refused by `decode` before this.
        return Ok(());
    }
    if h.flags & header::FLAG_UNRESERVED != 0 {
        if unreserved {
            return Ok(());
        }
        return Err(Error::new(
            Code::BadHeader,
            format!(
                "segment {id:?} was made with reserve: false and {} of its {} bytes have no memory behind them yet; \
                 reading one where /dev/shm is full would kill this process (SIGBUS). open(handle, {{ reserve: false }}) \
                 maps it anyway, accepting that risk",
                total - allocated,
                total
            ),
        ));
    }
    Err(Error::new(
        Code::BadHeader,
        format!(
            "segment {id:?} has {} of its {} bytes without memory behind them (holes punched or the file cut and regrown by \
             another writer): it is not mapped, since reading a hole where /dev/shm is full kills the reader (SIGBUS)",
            total - allocated,
            total
        ),
    ))
}

/// Counts an open by a process other than the owner in the segment's control word (a segment
/// made by an older version has none: nothing is counted). Best effort: a segment this process
/// may only read is not counted.
pub(super) fn count_open(file: &sys::File, h: &Header) {
    if h.segment_size() > file.size() {
        return;
    }
    if let Ok(c) = sys::control(file, h.control_offset()) {
        c.word().fetch_add(1, Ordering::AcqRel);
    }
}

/// Marks a segment freed: its header's flag (every `open` honours it) and its control word's
/// bit (its owner looks at that).
pub(super) fn mark_freed(f: &sys::File, h: &Header) -> Result<()> {
    sys::set_flags(f, header::FLAG_FREED)?;
    if h.segment_size() <= f.size() {
        if let Ok(c) = sys::control(f, h.control_offset()) {
            c.word().fetch_or(header::CONTROL_FREED, Ordering::AcqRel);
        }
    }
    Ok(())
}

/// Whether the open named segment `f` is a segment of ours of `generation` (any, if `None`);
/// if so it is marked freed (best effort: a read-only one is removed all the same).
pub(super) fn ours_marked(f: &sys::File, generation: Option<u64>) -> Result<bool> {
    let head = sys::read_head(f)?;
    let h = Header::decode(&head, f.size())?;
    if generation.is_some_and(|g| g != h.generation) {
        return Ok(false);
    }
    let _ = mark_freed(f, &h);
    Ok(true)
}

/// Removes `id`'s name only while it still names generation `generation`: a name freed and
/// created again by someone else is never removed on the old owner's behalf.
pub(super) fn unlink_generation(id: &str, generation: u64) -> bool {
    sys::unlink_checked(id, |f| {
        let head = sys::read_head(f)?;
        Ok(Header::decode(&head, f.size())?.generation == generation)
    })
    .unwrap_or(false)
}

/// The path of the segment a handle names, for readers in other languages.
pub fn path_of(handle: &str) -> Option<String> {
    let (_id, _, place) = name::parse_handle(handle).ok()?;
    match place {
        #[cfg(target_os = "linux")]
        Place::Named => Some(format!("/dev/shm/{}{_id}", name::PREFIX)),
        #[cfg(not(target_os = "linux"))]
        Place::Named => None,
        Place::Memfd { pid, fd, .. } => Some(format!("/proc/{pid}/fd/{fd}")),
    }
}
