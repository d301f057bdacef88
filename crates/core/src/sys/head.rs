//! A segment's header and control word, read or changed without a view of it: through its
//! descriptor on Linux, through a short-lived mapping where the OS has no read() for shared
//! memory (macOS, Windows). `File::read_at` and `File::write_at` are the platform's part.

use crate::error::Result;
use crate::header;

use super::File;

/// The header and attributes at the start of a segment, read without mapping it for a view.
pub(crate) fn read_head(file: &File) -> Result<Vec<u8>> {
    let mut fixed = vec![0u8; header::FIXED_SIZE];
    file.read_at(&mut fixed, 0)?;
    let attrs = u32::from_le_bytes(fixed[52..56].try_into().expect("4 bytes")) as u64;
    let attrs = attrs.min(header::MAX_ATTRIBUTES as u64 + 1);
    if header::FIXED_SIZE as u64 + attrs > file.size() {
        return Ok(fixed); // decode reports the bad header against the real size
    }
    let mut rest = vec![0u8; attrs as usize];
    file.read_at(&mut rest, header::FIXED_SIZE as u64)?;
    fixed.extend_from_slice(&rest);
    Ok(fixed)
}

/// Sets flag bits in a segment's header (two bytes at 14).
pub(crate) fn set_flags(file: &File, bits: u16) -> Result<()> {
    let mut b = [0u8; 2];
    file.read_at(&mut b, 14)?;
    let flags = u16::from_le_bytes(b) | bits;
    file.write_at(&flags.to_le_bytes(), 14)
}

/// Reads the control word at `offset` of an open segment (a plain read: it only grows); 0 when
/// the segment is too short to hold one.
pub(crate) fn read_control(file: &File, offset: u64) -> Result<u64> {
    if offset.saturating_add(header::CONTROL_SIZE) > file.size() {
        return Ok(0);
    }
    let mut b = [0u8; 8];
    file.read_at(&mut b, offset)?;
    Ok(u64::from_le_bytes(b))
}
