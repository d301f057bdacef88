//! Removing and listing the names of segments (on macOS, through the markers that stand in for
//! a listing: see `macos`).

use rustix::io::Errno;

use super::error::os_error;
#[cfg(not(target_os = "linux"))]
use super::file::exists;
use super::file::{open_named, File};
#[cfg(target_os = "linux")]
use super::os::os_name;
use super::os::{listing_dir, unlink_name, unregister_marker};
use crate::error::{Code, Error, Result};
use crate::name::PREFIX;

/// Removes `id`'s name if `ours` says the segment under it is the one meant, with no window in
/// which a segment made again under that name could be removed instead: the file is locked
/// (every remover of this package locks it first), checked, and unlinked only while the name
/// still leads to that very file. Returns whether the name was removed.
pub(crate) fn unlink_checked(id: &str, ours: impl FnOnce(&File) -> Result<bool>) -> Result<bool> {
    // Writable where allowed, so that `ours` can mark the segment.
    let opened = match open_named(id, true) {
        Err(e) if e.code == Code::Permission => open_named(id, false),
        r => r,
    };
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.code == Code::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{AtFlags, FlockOperation};
        // A remover that got here first holds the lock for a few system calls at most.
        while let Err(e) = rustix::fs::flock(&file.fd, FlockOperation::LockExclusive) {
            if e != Errno::INTR {
                return Err(os_error(e, "lock", id));
            }
        }
        if !ours(&file)? {
            return Ok(false);
        }
        let mine = rustix::fs::fstat(&file.fd).map_err(|e| os_error(e, "inspect", id))?;
        // Another remover may have taken the name away while this one waited for the lock, and
        // someone else may have made a new segment under it since: only our file is removed.
        match rustix::fs::statat(
            rustix::fs::CWD,
            os_name(id).as_str(),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if st.st_ino == mine.st_ino && st.st_dev == mine.st_dev => {}
            _ => return Ok(false),
        }
        unlink(id)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // macOS offers neither locks on shared memory nor a way to compare what a name leads to.
        if !ours(&file)? {
            return Ok(false);
        }
        drop(file);
        unlink(id)
    }
}

/// Removes the name. Processes that mapped the segment keep their pages.
pub(crate) fn unlink(id: &str) -> Result<bool> {
    match unlink_name(id) {
        Ok(()) => {
            unregister_marker(id);
            Ok(true)
        }
        Err(Errno::NOENT) => {
            unregister_marker(id);
            Ok(false)
        }
        Err(e) => Err(os_error(e, "remove", id)),
    }
}

/// An error listing a directory: running out of descriptors is said, not taken for "nothing".
pub(super) fn listing_error(e: std::io::Error, what: &str) -> Option<Error> {
    match Errno::from_io_error(&e) {
        Some(errno @ (Errno::MFILE | Errno::NFILE | Errno::NOMEM)) => {
            Some(os_error(errno, "list", what))
        }
        _ => None,
    }
}

/// The ids of every named segment of this package on the machine.
pub(crate) fn list_ids() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(listing_dir()) {
        Ok(d) => d,
        Err(e) => return listing_error(e, "segments").map_or(Ok(Vec::new()), Err),
    };
    let mut ids: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix(PREFIX).map(str::to_string))
        .filter(|id| crate::name::validate_id(id).is_ok())
        .collect::<Vec<String>>();
    // A marker outlives its segment when the owner died or another process removed it.
    #[cfg(not(target_os = "linux"))]
    ids.retain(|id| {
        exists(id).unwrap_or(true) || {
            unregister_marker(id);
            false
        }
    });
    ids.sort();
    Ok(ids)
}
