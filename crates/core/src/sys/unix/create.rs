//! Making a segment: sized (and on Linux its memory allocated), header and data written, then
//! mapped; a named one on Linux is made without a name and linked once whole.

use std::os::fd::OwnedFd;

#[cfg(target_os = "linux")]
use rustix::fs::Mode;
use rustix::io::Errno;

use super::error::{no_space, os_error};
use super::file::File;
use super::map::{map_file, Access, Map};
use super::names::unlink;
use super::os::{self, open_name, register_marker};
#[cfg(target_os = "linux")]
use super::os::{os_name, retry};
use super::How;
use crate::error::Result;
use crate::sys::NewSegment;

/// Gives the segment its size. With `reserve`, every page is allocated now, so a full tmpfs (or
/// memory) is an error here rather than a SIGBUS at some later write.
fn size_segment(fd: &OwnedFd, total: u64, reserve: bool, id: &str, named: bool) -> Result<()> {
    rustix::fs::ftruncate(fd, total).map_err(|e| match e {
        Errno::FBIG | Errno::NOSPC | Errno::NOMEM => no_space(id, total, Some(fd), named),
        e => os_error(e, "size", id),
    })?;
    os::allocate(fd, total, reserve, id, named)
}

/// Sizes a new segment and writes its header (with attributes) first, then its data: a crash
/// part-way leaves a segment whose header names its owner, which the sweep can judge.
pub(super) fn filled(fd: OwnedFd, id: &str, new: &NewSegment<'_>, named: bool) -> Result<File> {
    size_segment(&fd, new.total, new.reserve, id, named)?;
    let file = File {
        fd,
        size: new.total,
        id: id.to_string(),
        named,
        // Counted as whole: what it holds is its creator's to choose (`reserve`).
        blocks: new.total.div_ceil(512),
    };
    file.write_at(new.head, 0)?;
    if let Some(data) = new.init.filter(|d| !d.is_empty()) {
        file.write_at(data, new.data_offset)?;
    }
    Ok(file)
}

/// Creates named segment `id` exclusively with mode 0600, writes its header and data, and maps
/// it shared. On failure nothing is left behind.
///
/// On Linux the file is made without a name (`O_TMPFILE`), filled, and only then linked under
/// its name, so a crash at any point leaves either nothing or a whole segment: never a file
/// without a header.
pub(crate) fn create_named(id: &str, new: &NewSegment<'_>) -> Result<(File, Map)> {
    #[cfg(target_os = "linux")]
    if let Some(made) = create_linked(id, new) {
        return made;
    }
    let fd = open_name(id, How::Create).map_err(|e| os_error(e, "create", id))?;
    let made = filled(fd, id, new, true)
        .and_then(|file| Ok((map_file(&file, Access::Shared, false)?, file)));
    match made {
        Ok((map, file)) => {
            register_marker(id);
            Ok((file, map))
        }
        Err(e) => {
            let _ = unlink(id);
            Err(e)
        }
    }
}

/// The `O_TMPFILE` way of `create_named`; `None` where /dev/shm or /proc cannot do it.
#[cfg(target_os = "linux")]
fn create_linked(id: &str, new: &NewSegment<'_>) -> Option<Result<(File, Map)>> {
    use rustix::fs::{AtFlags, OFlags};
    let path = os_name(id);
    let fd = retry(|| {
        rustix::fs::openat(
            rustix::fs::CWD,
            "/dev/shm",
            OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
    })
    .ok()?;
    // Refuse a clash before copying anything; the link below is what makes it exclusive.
    if rustix::fs::statat(rustix::fs::CWD, path.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
        return Some(Err(os_error(Errno::EXIST, "create", id)));
    }
    let file = match filled(fd, id, new, true) {
        Ok(file) => file,
        Err(e) => return Some(Err(e)), // the file has no name: closing it frees it
    };
    let proc_path = format!("/proc/self/fd/{}", file.raw_fd());
    match rustix::fs::linkat(
        rustix::fs::CWD,
        proc_path.as_str(),
        rustix::fs::CWD,
        path.as_str(),
        AtFlags::SYMLINK_FOLLOW,
    ) {
        Ok(()) => {}
        Err(Errno::NOENT) => return None, // no /proc: make it the old way
        Err(e) => return Some(Err(os_error(e, "create", id))),
    }
    Some(match map_file(&file, Access::Shared, false) {
        Ok(map) => Ok((file, map)),
        Err(e) => {
            let _ = unlink(id);
            Err(e)
        }
    })
}
