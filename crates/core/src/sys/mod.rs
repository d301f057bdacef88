//! The operating-system surface, one file per platform with the same small set of functions.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

/// Copies a new segment's header (with attributes) to its start and its data to `data_offset`,
/// through the owner's fresh mapping.
///
/// # Safety
/// `map` must be at least `data_offset + init.len()` bytes, `head` must end at or before
/// `data_offset`, and nobody else may know the segment's handle yet.
pub(crate) unsafe fn fill_map(map: &Map, head: &[u8], data_offset: u64, init: &[u8]) {
    // SAFETY: the ranges are inside the mapping and do not overlap (the caller's contract);
    // the sources are ordinary memory of this process.
    unsafe {
        std::ptr::copy_nonoverlapping(head.as_ptr(), map.ptr(), head.len());
        std::ptr::copy_nonoverlapping(
            init.as_ptr(),
            map.ptr().add(data_offset as usize),
            init.len(),
        );
    }
}

/// Windows opens a mapping by name each time it maps one: a `File` is the name, checked to exist.
#[cfg(windows)]
pub(crate) struct File {
    id: String,
    size: u64,
}

#[cfg(windows)]
impl File {
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    /// Windows commits a mapping's pages when it is created: there are no holes to count.
    pub(crate) fn allocated(&self) -> Option<u64> {
        None
    }
}

#[cfg(windows)]
pub(crate) fn open_named(id: &str, _write: bool) -> crate::Result<File> {
    let map = open(id, Access::Peek)?;
    Ok(File {
        id: id.to_string(),
        size: map.len() as u64,
    })
}

#[cfg(windows)]
pub(crate) fn read_head(file: &File) -> crate::Result<Vec<u8>> {
    let map = open(&file.id, Access::Peek)?;
    let n = map
        .len()
        .min(crate::header::FIXED_SIZE + crate::header::MAX_ATTRIBUTES);
    let mut out = vec![0u8; n];
    // SAFETY: n <= map.len(); the bytes are copied out while `map` keeps them mapped.
    unsafe { std::ptr::copy_nonoverlapping(map.ptr(), out.as_mut_ptr(), n) };
    Ok(out)
}

#[cfg(windows)]
pub(crate) fn map_file(file: &File, access: Access, _populate: bool) -> crate::Result<Map> {
    open(&file.id, access)
}

/// Windows maps a view's pages at first touch; there is nothing to ask for ahead of it.
#[cfg(windows)]
pub(crate) fn prefault(_map: &Map) {}

#[cfg(windows)]
pub(crate) fn create_named(
    id: &str,
    head: &[u8],
    data_offset: u64,
    total: u64,
    init: Option<&[u8]>,
    reserve: bool,
) -> crate::Result<(File, Map)> {
    let map = create(id, head, data_offset, total, init, reserve)?;
    Ok((
        File {
            id: id.to_string(),
            size: map.len() as u64,
        },
        map,
    ))
}

#[cfg(windows)]
pub(crate) fn set_flags(file: &File, bits: u16) -> crate::Result<()> {
    let map = open(&file.id, Access::Shared)?;
    // SAFETY: the map holds at least a header; two bytes at 14 are the flags.
    unsafe {
        let p = map.ptr().add(14);
        let flags = u16::from_le_bytes([*p, *p.add(1)]) | bits;
        std::ptr::copy_nonoverlapping(flags.to_le_bytes().as_ptr(), p, 2);
    }
    Ok(())
}

#[cfg(windows)]
pub(crate) fn max_map_count() -> usize {
    65530
}

/// A view onto a segment's control word (see `header`), shared and writable.
#[cfg(windows)]
pub(crate) struct Control {
    map: Map,
    at: usize,
}

#[cfg(windows)]
impl Control {
    pub(crate) fn word(&self) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: `at` + 8 lies inside the view (checked in `control`); views start on an
        // allocation-granularity boundary and `at` is a multiple of 8, so the word is aligned.
        // Every process changes it only with atomic operations.
        unsafe { &*(self.map.ptr().add(self.at) as *const std::sync::atomic::AtomicU64) }
    }
}

/// Maps the segment shared to reach its control word at `offset`.
#[cfg(windows)]
pub(crate) fn control(file: &File, offset: u64) -> crate::Result<Control> {
    if !offset.is_multiple_of(8) || offset.saturating_add(crate::header::CONTROL_SIZE) > file.size {
        return Err(crate::Error::new(
            crate::Code::BadHeader,
            format!("segment {:?} has no control word", file.id),
        ));
    }
    let map = open(&file.id, Access::Shared)?;
    if offset as usize + 8 > map.len() {
        return Err(crate::Error::new(
            crate::Code::BadHeader,
            format!("segment {:?} has no control word", file.id),
        ));
    }
    Ok(Control {
        map,
        at: offset as usize,
    })
}

#[cfg(windows)]
pub(crate) fn read_control(file: &File, offset: u64) -> crate::Result<u64> {
    Ok(control(file, offset)?
        .word()
        .load(std::sync::atomic::Ordering::Acquire))
}

/// Windows has no names to remove while anyone holds the segment: `ours` marks it, and this
/// process lets go of its own handles on it.
#[cfg(windows)]
pub(crate) fn unlink_checked(
    id: &str,
    ours: impl FnOnce(&File) -> crate::Result<bool>,
) -> crate::Result<bool> {
    let file = match open_named(id, true) {
        Ok(f) => f,
        Err(e) if e.code == crate::Code::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !ours(&file)? {
        return Ok(false);
    }
    drop(file);
    unlink(id)
}
