//! The operating-system surface, one file per platform with the same small set of functions,
//! and what every platform does alike over it: reading and changing a segment's header words
//! (`head`) and copying bytes in and out of a mapping (the only unsafe code here).

mod head;
pub(crate) use head::{read_control, read_head, set_flags};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

/// Whether `len` bytes at `at` lie inside `map`; the first of them as a pointer if they do.
fn range(map: &Map, at: u64, len: usize) -> Option<*mut u8> {
    let at = usize::try_from(at).ok()?;
    (at.checked_add(len)? <= map.len()).then(|| map.ptr().wrapping_add(at))
}

/// Copies the bytes at `at` of `map` into `out`; `None` (nothing copied) when they do not lie
/// inside the mapping.
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(crate) fn read_map(map: &Map, at: u64, out: &mut [u8]) -> Option<()> {
    let from = range(map, at, out.len())?;
    // SAFETY: the range lies inside the mapping, which stays mapped while `map` is borrowed;
    // `out` is this process's own memory, never part of a segment's mapping.
    unsafe { std::ptr::copy_nonoverlapping(from, out.as_mut_ptr(), out.len()) };
    Some(())
}

/// Copies `data` to `at` of `map`; `None` (nothing copied) when it does not fit inside.
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(crate) fn write_map(map: &Map, at: u64, data: &[u8]) -> Option<()> {
    let to = range(map, at, data.len())?;
    // SAFETY: as for `read_map`; other processes change a segment's header and data only in
    // ways its format allows (flags are only ever set, data is the user's).
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), to, data.len()) };
    Some(())
}

/// What a new segment is made of.
pub(crate) struct NewSegment<'a> {
    /// The header, with the attributes after it.
    pub(crate) head: &'a [u8],
    /// Where the data starts.
    pub(crate) data_offset: u64,
    /// Bytes the segment occupies.
    pub(crate) total: u64,
    /// The first bytes of the data; the rest are zeros.
    pub(crate) init: Option<&'a [u8]>,
    /// Allocate every page now (see `reserve` in the README); Windows always does.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) reserve: bool,
}
