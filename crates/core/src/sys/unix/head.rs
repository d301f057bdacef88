//! A segment's header and control word, read or changed without a view: through its descriptor
//! on Linux, through a short mapping on macOS (whose shared memory cannot be read()).

#[cfg(not(target_os = "linux"))]
use std::fs::File as StdFile;
#[cfg(not(target_os = "linux"))]
use std::os::fd::AsFd;

#[cfg(not(target_os = "linux"))]
use memmap2::MmapOptions;

use super::file::File;
#[cfg(target_os = "linux")]
use super::file::{read_exact_at, write_all_at};
#[cfg(not(target_os = "linux"))]
use super::map::{map_file, Access};
use crate::error::Result;
#[cfg(not(target_os = "linux"))]
use crate::error::{Code, Error};
use crate::header;

/// The header and attributes at the start of a segment, read without mapping it.
pub(crate) fn read_head(file: &File) -> Result<Vec<u8>> {
    #[cfg(target_os = "linux")]
    {
        let mut fixed = vec![0u8; header::FIXED_SIZE];
        read_exact_at(file, &mut fixed, 0)?;
        let attrs = u32::from_le_bytes(fixed[52..56].try_into().expect("4 bytes")) as u64;
        let attrs = attrs.min(header::MAX_ATTRIBUTES as u64 + 1);
        if header::FIXED_SIZE as u64 + attrs > file.size {
            return Ok(fixed); // decode reports the bad header against the real size
        }
        let mut rest = vec![0u8; attrs as usize];
        read_exact_at(file, &mut rest, header::FIXED_SIZE as u64)?;
        fixed.extend_from_slice(&rest);
        Ok(fixed)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // macOS shared memory cannot be read(): map it read-only and copy the header out.
        let map = map_file(file, Access::Peek, false)?;
        let attrs = {
            let mut w = [0u8; 4];
            // SAFETY: the map holds at least FIXED_SIZE bytes (checked when opened).
            unsafe { std::ptr::copy_nonoverlapping(map.ptr().add(52), w.as_mut_ptr(), 4) };
            u32::from_le_bytes(w) as usize
        };
        let n = (header::FIXED_SIZE + attrs.min(header::MAX_ATTRIBUTES + 1)).min(map.len());
        let mut out = vec![0u8; n];
        // SAFETY: n <= map.len(), and the bytes are copied out while `map` keeps them mapped.
        unsafe { std::ptr::copy_nonoverlapping(map.ptr(), out.as_mut_ptr(), n) };
        Ok(out)
    }
}

/// Sets flag bits in a segment's header, through its descriptor (Linux) or a mapping.
pub(crate) fn set_flags(file: &File, bits: u16) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        let mut b = [0u8; 2];
        read_exact_at(file, &mut b, 14)?;
        let flags = u16::from_le_bytes(b) | bits;
        write_all_at(
            &file.fd,
            &flags.to_le_bytes(),
            14,
            &file.id,
            file.size,
            file.named,
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        let map = map_file(file, Access::Shared, false)?;
        // SAFETY: the map holds at least FIXED_SIZE bytes; two bytes at 14 are the flags.
        unsafe {
            let p = map.ptr().add(14);
            let flags = u16::from_le_bytes([*p, *p.add(1)]) | bits;
            std::ptr::copy_nonoverlapping(flags.to_le_bytes().as_ptr(), p, 2);
        }
        Ok(())
    }
}

/// Reads the control word at `offset` of an open segment (a plain read: it only grows).
pub(crate) fn read_control(file: &File, offset: u64) -> Result<u64> {
    #[cfg(target_os = "linux")]
    {
        if offset.saturating_add(header::CONTROL_SIZE) > file.size {
            return Ok(0);
        }
        let mut b = [0u8; 8];
        read_exact_at(file, &mut b, offset)?;
        Ok(u64::from_le_bytes(b))
    }
    #[cfg(not(target_os = "linux"))]
    {
        // macOS shared memory cannot be read(): map the word's page, read-only (the owner may
        // hold a read-only descriptor).
        if !offset.is_multiple_of(8) || offset.saturating_add(header::CONTROL_SIZE) > file.size {
            return Ok(0);
        }
        let page = rustix::param::page_size() as u64;
        let start = offset & !(page - 1);
        let mut opts = MmapOptions::new();
        opts.offset(start).len((offset - start) as usize + 8);
        let f =
            StdFile::from(file.fd.as_fd().try_clone_to_owned().map_err(|e| {
                Error::new(Code::Os, format!("cannot map segment {:?}: {e}", file.id))
            })?);
        // SAFETY: the window lies inside the segment's size; it is only read, atomically.
        let map = unsafe { opts.map(&f) }
            .map_err(|e| Error::new(Code::Os, format!("cannot map segment {:?}: {e}", file.id)))?;
        // SAFETY: the word is inside the window, 8-byte aligned, and lives as long as `map`.
        let word = unsafe {
            &*(map.as_ptr().add((offset - start) as usize) as *const std::sync::atomic::AtomicU64)
        };
        Ok(word.load(std::sync::atomic::Ordering::Acquire))
    }
}
