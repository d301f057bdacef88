//! A segment's file: opened by name without following a link or blocking on a FIFO, checked to
//! be a regular file of this user before anything is read, and read or written by descriptor.

use std::os::fd::OwnedFd;

use rustix::io::Errno;

#[cfg(target_os = "linux")]
use super::error::no_space;
use super::error::os_error;
#[cfg(target_os = "linux")]
use super::os::os_name;
use super::os::{allocated_bytes, open_name};
use super::How;
use crate::error::{Code, Error, Result};
use crate::header;

/// An open segment: its descriptor, checked to be a regular file of this user, and its size.
pub(crate) struct File {
    pub(super) fd: OwnedFd,
    pub(super) size: u64,
    pub(super) id: String,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(super) named: bool,
    /// The file's `st_blocks` (512-byte units) when it was opened.
    pub(super) blocks: u64,
}

impl File {
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    /// Bytes with memory behind them, where the OS counts them (Linux tmpfs); `None` elsewhere.
    /// A file whose blocks cover its size counts as whole on any filesystem, so which one it is
    /// is asked (one more system call) only for a file with fewer blocks than bytes.
    pub(crate) fn allocated(&self) -> Option<u64> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let counted = self.blocks.saturating_mul(512);
        if counted >= self.size {
            return Some(counted);
        }
        Some(allocated_bytes(&self.fd, self.blocks))
    }
    /// Reads `buf.len()` bytes at `offset` without mapping: a hole reads as zeros and a file cut
    /// short is an error, never a SIGBUS.
    #[cfg(target_os = "linux")]
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        read_exact_at(self, buf, offset)
    }
    /// Writes all of `data` at `offset`; a full filesystem is `NoSpace`.
    #[cfg(target_os = "linux")]
    pub(crate) fn write_at(&self, data: &[u8], offset: u64) -> Result<()> {
        write_all_at(&self.fd, data, offset, &self.id, self.size, self.named)
    }
    #[cfg(target_os = "linux")]
    pub(crate) fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }
}

/// Checks what was opened: a regular file (not a FIFO, device or directory) owned by this user,
/// at least as large as a header.
pub(super) fn checked(fd: OwnedFd, id: &str, named: bool) -> Result<File> {
    let st = rustix::fs::fstat(&fd).map_err(|e| os_error(e, "inspect", id))?;
    let regular =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    // macOS reports shm objects with their own file type; only Linux files can be checked here.
    if cfg!(target_os = "linux") && !regular {
        return Err(Error::new(
            Code::Permission,
            format!("{id:?} is not a regular file, so it is not a sharedobject segment; nothing was read or removed"),
        ));
    }
    if st.st_uid != rustix::process::geteuid().as_raw() {
        return Err(Error::new(
            Code::Permission,
            format!("segment {id:?} belongs to another user (uid {}); only this user's segments are opened", st.st_uid),
        ));
    }
    let size = st.st_size as u64;
    if size < header::FIXED_SIZE as u64 {
        return Err(Error::new(
            Code::BadHeader,
            format!("segment {id:?} is too small to be a sharedobject segment"),
        ));
    }
    Ok(File {
        fd,
        size,
        id: id.to_string(),
        named,
        blocks: st.st_blocks as u64,
    })
}

/// Opens named segment `id`, never blocking on a FIFO and never following a link.
pub(crate) fn open_named(id: &str, write: bool) -> Result<File> {
    let how = if write { How::Write } else { How::Read };
    let fd = open_name(id, how).map_err(|e| match e {
        // Only Linux refuses links (ELOOP from O_NOFOLLOW); shm_open names are no paths.
        Errno::LOOP if cfg!(target_os = "linux") => Error::new(
            Code::Permission,
            format!("{id:?} is a symbolic link, so it is not a sharedobject segment; it was not followed"),
        ),
        e => os_error(e, "open", id),
    })?;
    checked(fd, id, true)
}

#[cfg(target_os = "linux")]
pub(super) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> Result<()> {
    while !buf.is_empty() {
        match rustix::io::pread(&file.fd, &mut *buf, offset) {
            Ok(0) => {
                return Err(Error::new(
                    Code::BadHeader,
                    format!("segment {:?} ends inside its header", file.id),
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(os_error(e, "read", &file.id)),
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn write_all_at(
    fd: &OwnedFd,
    mut data: &[u8],
    mut offset: u64,
    id: &str,
    total: u64,
    named: bool,
) -> Result<()> {
    while !data.is_empty() {
        match rustix::io::pwrite(fd, data, offset) {
            Ok(0) | Err(Errno::NOSPC) | Err(Errno::NOMEM) => {
                return Err(no_space(id, total, Some(fd), named))
            }
            Ok(n) => {
                data = &data[n..];
                offset += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(os_error(e, "write", id)),
        }
    }
    Ok(())
}

/// Whether named segment `id` exists: a regular file (a FIFO or a directory under that name is
/// not one). Running out of descriptors is an error, not an answer.
pub(crate) fn exists(id: &str) -> Result<bool> {
    #[cfg(target_os = "linux")]
    match rustix::fs::statat(
        rustix::fs::CWD,
        os_name(id).as_str(),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(st)
            if rustix::fs::FileType::from_raw_mode(st.st_mode)
                != rustix::fs::FileType::RegularFile =>
        {
            return Ok(false)
        }
        Ok(_) => {}
        Err(Errno::NOENT) => return Ok(false),
        Err(_) => {}
    }
    match open_named(id, false) {
        Ok(_) => Ok(true),
        Err(e) if e.code == Code::NoSpace => Err(e),
        Err(e) => Ok(e.code != Code::NotFound),
    }
}
