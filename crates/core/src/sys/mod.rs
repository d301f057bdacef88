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
pub(crate) const RETIRE_REPLACES: bool = false;

#[cfg(windows)]
pub(crate) fn discard(_map: &Map) {}

#[cfg(windows)]
pub(crate) fn max_map_count() -> usize {
    65530
}
