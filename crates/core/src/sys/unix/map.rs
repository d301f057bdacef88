//! Every mapping this package makes, and all of its unsafe code: a whole segment for a view,
//! the copy-on-write kinds, giving a mapping's pages back in place (`retire`), and the small
//! shared window onto a control word.

use std::os::fd::OwnedFd;

use memmap2::{Mmap, MmapMut, MmapOptions};

use super::file::File;
use crate::error::{Code, Error, Result};
use crate::header;

/// A mapping of a whole segment. Unmapped when dropped.
pub(crate) enum Map {
    Writable(MmapMut),
    ReadOnly(Mmap),
}

impl Map {
    pub(crate) fn ptr(&self) -> *mut u8 {
        match self {
            Map::Writable(m) => m.as_ptr() as *mut u8,
            Map::ReadOnly(m) => m.as_ptr() as *mut u8,
        }
    }
    pub(crate) fn len(&self) -> usize {
        match self {
            Map::Writable(m) => m.len(),
            Map::ReadOnly(m) => m.len(),
        }
    }
}

/// How a segment is mapped.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// MAP_SHARED: writes reach every process.
    Shared,
    /// MAP_PRIVATE: a write copies the page it touches for this process alone.
    CopyOnWrite,
    /// Read-only, to inspect a header.
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    Peek,
}

/// Maps all of an open segment. With `populate`, the pages are mapped now rather than at first
/// touch (see `prefault`).
pub(crate) fn map_file(file: &File, access: Access, populate: bool) -> Result<Map> {
    let len = usize::try_from(file.size)
        .map_err(|_| Error::new(Code::OutOfRange, "segment larger than the address space"))?;
    // memmap2 maps from the descriptor itself (a mapping outlives it): no second one is needed.
    let f = &file.fd;
    let mut opts = MmapOptions::new();
    opts.len(len);
    // MAP_POPULATE on a private writable mapping would copy every page (it write-faults them),
    // so a copy-on-write mapping is read-faulted after mapping instead.
    if populate && access == Access::Shared {
        opts.populate();
    }
    // SAFETY (all three): the mapping covers exactly the segment's size as fstat gave it. Named
    // segments are created at their final size and never truncated by this package; memfd
    // segments are sealed against shrinking, so every mapped byte stays backed. memmap2 unmaps
    // on drop, and views hold the Map alive (see registry).
    let mapped = unsafe {
        match access {
            Access::Shared => opts.map_mut(f).map(Map::Writable),
            Access::CopyOnWrite => private_copy(&opts, f),
            Access::Peek => opts.map(f).map(Map::ReadOnly),
        }
    };
    let mapped = mapped.inspect(|m| {
        if populate && access != Access::Shared {
            prefault(m);
        }
    });
    mapped.map_err(|e| {
        let code = if e.raw_os_error() == Some(libc::ENOMEM) {
            Code::NoSpace
        } else {
            Code::Os
        };
        Error::new(code, format!("cannot map segment {:?}: {e}", file.id))
    })
}

/// A copy-on-write mapping: MAP_PRIVATE, so a write copies just the page it touches.
///
/// # Safety
/// As for `map_file`: `opts` covers exactly the segment's current size.
#[cfg(not(target_os = "macos"))]
unsafe fn private_copy(opts: &MmapOptions, file: &OwnedFd) -> std::io::Result<Map> {
    // SAFETY: forwarded from the caller.
    unsafe { opts.map_copy(file) }.map(Map::Writable)
}

/// macOS refuses MAP_PRIVATE for POSIX shared memory (EINVAL), so a copy-on-write open there is
/// an eager private copy: anonymous memory filled from a read-only shared mapping.
///
/// # Safety
/// As for `map_file`: `opts` covers exactly the segment's current size.
#[cfg(target_os = "macos")]
unsafe fn private_copy(opts: &MmapOptions, file: &OwnedFd) -> std::io::Result<Map> {
    // SAFETY: forwarded from the caller; the shared mapping lives until the copy is made.
    let shared = unsafe { opts.map(file) }?;
    let mut private = MmapOptions::new().len(shared.len()).map_anon()?;
    private.copy_from_slice(&shared);
    Ok(Map::Writable(private))
}

/// Gives this process's pages of `map` back now, leaving private zero pages at the same
/// addresses: anything that still writes there (a thread-pool job, a transferred buffer) writes
/// into memory nobody reads instead of faulting. The range is unmapped when `map` drops, which
/// the registry lets happen only once nothing can reach it.
pub(crate) fn retire(map: &Map) {
    if map.len() == 0 {
        return;
    }
    use rustix::mm::{MapFlags, ProtFlags};
    // SAFETY: the range is exactly a mapping this process made and still owns (memmap2 unmaps
    // it only on drop, which cannot run while `map` is borrowed). MAP_FIXED replaces it in one
    // step, so at no instant is the range unmapped: concurrent readers and writers see either
    // the segment or zero pages, never a fault.
    let replaced = unsafe {
        rustix::mm::mmap_anonymous(
            map.ptr().cast(),
            map.len(),
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::FIXED | MapFlags::NORESERVE,
        )
    };
    // On failure (no memory for the new mapping) the segment simply stays mapped until drop.
    let _ = replaced;
}

/// Maps every page of `map` into this process now, reading only, so that a first pass over the
/// data takes no page faults: for a copy-on-write mapping nothing is copied. Linux 5.14 and later;
/// elsewhere, or when the kernel refuses, pages are mapped at first touch as usual.
pub(crate) fn prefault(map: &Map) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if map.len() > 0 {
        // SAFETY: the range is exactly a mapping this process owns; MADV_POPULATE_READ only
        // read-faults its pages in, which changes no byte of it.
        let _ = unsafe {
            rustix::mm::madvise(
                map.ptr().cast(),
                map.len(),
                rustix::mm::Advice::LinuxPopulateRead,
            )
        };
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = map;
}

/// What read-faulting one range of a mapping in (`prefault_range`) came to.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Populated {
    /// Every page of the range is mapped.
    Done,
    /// This kernel has no MADV_POPULATE_READ (before Linux 5.14): asking again is pointless.
    Unsupported,
    /// The kernel refused this range (no memory, a range changed under us): stop quietly.
    Refused,
}

/// Read-faults `len` bytes of `map` from byte `at` into this process (MADV_POPULATE_READ), for
/// a prefault done in chunks from another thread. It never touches a page itself: where the
/// kernel cannot populate, the pages are simply left to be mapped at first touch, and a failure
/// is returned, never signalled.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn prefault_range(map: &Map, at: usize, len: usize) -> Populated {
    let len = len.min(map.len().saturating_sub(at));
    if len == 0 {
        return Populated::Done;
    }
    // SAFETY: the range lies inside a mapping this process owns (clamped above) and the caller
    // holds the mapping alive for the call, so it cannot be unmapped or reused meanwhile.
    // MADV_POPULATE_READ only read-faults pages in, which changes no byte; an error (EFAULT,
    // ENOMEM, EINVAL) is returned rather than raised as a signal.
    match unsafe {
        rustix::mm::madvise(
            map.ptr().add(at).cast(),
            len,
            rustix::mm::Advice::LinuxPopulateRead,
        )
    } {
        Ok(()) => Populated::Done,
        Err(rustix::io::Errno::INVAL) => Populated::Unsupported,
        Err(_) => Populated::Refused,
    }
}

/// A window onto a segment's control word (see `header`), mapped shared and writable so that any
/// process can change it atomically.
pub(crate) struct Control {
    map: MmapMut,
    at: usize,
}

impl Control {
    pub(crate) fn word(&self) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: `at` + 8 lies inside the mapping (checked in `control`), the address is 8-byte
        // aligned (a page-aligned mapping plus a multiple of 8), and the word lives as long as
        // the borrow of `self`. Every process changes it only with atomic operations.
        unsafe { &*(self.map.as_ptr().add(self.at) as *const std::sync::atomic::AtomicU64) }
    }
}

/// Maps the page that holds the control word at `offset` of an open segment, shared.
pub(crate) fn control(file: &File, offset: u64) -> Result<Control> {
    if !offset.is_multiple_of(8) || offset.saturating_add(header::CONTROL_SIZE) > file.size {
        return Err(Error::new(
            Code::BadHeader,
            format!("segment {:?} has no control word", file.id),
        ));
    }
    let page = rustix::param::page_size() as u64;
    let start = offset & !(page - 1);
    let f = &file.fd;
    let mut opts = MmapOptions::new();
    opts.offset(start).len((offset - start) as usize + 8);
    // SAFETY: the window lies inside the segment's size as fstat gave it; segments are never
    // shrunk (memfds are sealed, named files are created at their final size), so it stays
    // backed. Only the control word is accessed through it, atomically.
    let map = unsafe { opts.map_mut(f) }
        .map_err(|e| Error::new(Code::Os, format!("cannot map segment {:?}: {e}", file.id)))?;
    Ok(Control {
        map,
        at: (offset - start) as usize,
    })
}

/// macOS shared memory cannot be read() or written(): a segment's bytes are reached through a
/// mapping of it, read-only to read (the caller may hold a read-only descriptor).
#[cfg(not(target_os = "linux"))]
impl File {
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let map = map_file(self, Access::Peek, false)?;
        crate::sys::read_map(&map, offset, buf).ok_or_else(|| self.short())
    }
    pub(crate) fn write_at(&self, data: &[u8], offset: u64) -> Result<()> {
        let map = map_file(self, Access::Shared, false)?;
        crate::sys::write_map(&map, offset, data).ok_or_else(|| self.short())
    }
    fn short(&self) -> Error {
        Error::new(
            Code::BadHeader,
            format!("segment {:?} ends inside its header", self.id),
        )
    }
}
