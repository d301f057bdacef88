//! macOS (and any other Unix without Linux's `/dev/shm`): POSIX shared memory by `shm_open`
//! names. The OS keeps no listing of them, so a directory of empty marker files stands in for
//! one; its shared memory is backed by swappable virtual memory, so there is no tmpfs to
//! overfill and nothing to allocate ahead.

use std::os::fd::OwnedFd;

use rustix::fs::Mode;

use super::How;
use crate::error::Result;
use crate::name::PREFIX;

/// The `shm_open` name of named segment `id`.
pub(super) fn os_name(id: &str) -> String {
    format!("/{PREFIX}{id}")
}

/// Opens the name of segment `id`; a new one only where none of that name is.
pub(super) fn open_name(id: &str, how: How) -> rustix::io::Result<OwnedFd> {
    use rustix::shm::OFlags;
    let (flags, mode) = match how {
        How::Read => (OFlags::RDONLY, Mode::empty()),
        How::Write => (OFlags::RDWR, Mode::empty()),
        How::Create => (
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(0o600),
        ),
    };
    rustix::shm::open(os_name(id).as_str(), flags, mode)
}

/// Removes the name of segment `id`.
pub(super) fn unlink_name(id: &str) -> rustix::io::Result<()> {
    rustix::shm::unlink(os_name(id).as_str())
}

/// The OS does not count the pages of shared memory: a segment counts as whole.
pub(super) fn allocated_bytes(_fd: &OwnedFd, _blocks: u64) -> u64 {
    u64::MAX
}

/// Nothing to allocate ahead: the memory is swappable virtual memory, not a filesystem's.
pub(super) fn allocate(
    _fd: &OwnedFd,
    _total: u64,
    _reserve: bool,
    _id: &str,
    _named: bool,
) -> Result<()> {
    Ok(())
}

/// The directory of markers, one empty file per named segment: the user's own, under the
/// temporary directory.
pub(super) fn listing_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "sharedobject-{}",
        rustix::process::getuid().as_raw()
    ))
}

pub(super) fn register_marker(id: &str) {
    use std::os::unix::fs::DirBuilderExt;
    let dir = listing_dir();
    let _ = std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir);
    let _ = std::fs::File::create(dir.join(format!("{PREFIX}{id}")));
}

pub(super) fn unregister_marker(id: &str) {
    let _ = std::fs::remove_file(listing_dir().join(format!("{PREFIX}{id}")));
}

/// A process's start time (microseconds since the epoch), from `proc_pidinfo`.
#[cfg(target_os = "macos")]
pub(super) fn start_time(pid: u32) -> Option<u64> {
    // SAFETY: proc_pidinfo writes at most `size` bytes into `info`, a plain C struct for which
    // all-zero bytes are a valid value.
    unsafe {
        let mut info: libc::proc_bsdinfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
        let n = libc::proc_pidinfo(
            pid as libc::c_int,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        );
        (n == size).then(|| info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec)
    }
}

#[cfg(not(target_os = "macos"))]
pub(super) fn start_time(_pid: u32) -> Option<u64> {
    None
}

/// No pid namespaces here.
pub(super) fn pid_namespace() -> u64 {
    0
}

/// The most mappings a process may have: macOS has no such limit to read, so a conservative one.
pub(crate) fn max_map_count() -> usize {
    65530
}

/// Shared memory is bounded by the OS's virtual memory, with an error: no limit to check first.
pub(crate) fn memory_limit() -> Option<u64> {
    None
}
