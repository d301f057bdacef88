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
