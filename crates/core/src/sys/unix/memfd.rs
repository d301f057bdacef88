//! Unnamed segments (Linux): a sealed memfd that its owner holds and other processes of the same
//! user open through `/proc/<owner pid>/fd/<fd>`.

use rustix::fs::Mode;
use rustix::io::Errno;

use super::create::filled;
use super::error::os_error;
use super::file::{checked, File};
use super::map::{map_file, Access, Map};
use super::names::listing_error;
use super::os::retry;
use super::process::current_process;
use crate::error::{Code, Error, Result};
use crate::name::PREFIX;
use crate::sys::NewSegment;

/// Opens the memfd that process `pid` holds as descriptor `fd`, checking first that it is the
/// memfd of segment `id`.
#[cfg(target_os = "linux")]
pub(crate) fn open_memfd(id: &str, pid: u32, fd: i32, pidns: u64, write: bool) -> Result<File> {
    use rustix::fs::OFlags;
    let link = format!("/proc/{pid}/fd/{fd}");
    let unreachable = |e: Errno| -> Error {
        let (_, _, ours) = current_process();
        let hint = "share with { named: true } (or setOptions({ named: true })) so that segments are files in /dev/shm";
        match e {
            Errno::MFILE | Errno::NFILE | Errno::NOMEM => os_error(e, "open", id),
            Errno::ACCESS | Errno::PERM => Error::new(
                Code::Permission,
                format!("segment {id:?} belongs to a process of another user (pid {pid}); only the same user can open it"),
            ),
            _ if pidns != 0 && ours != 0 && pidns != ours => Error::new(
                Code::NotFound,
                format!("segment {id:?} is held by pid {pid} in another pid namespace (another container?), which this process cannot reach through /proc; {hint}"),
            ),
            _ => Error::new(
                Code::NotFound,
                format!("no segment {id:?}: its owner (pid {pid}) exited or freed it. If the owner runs in another container, or /proc is mounted with hidepid, {hint}"),
            ),
        }
    };
    let target = rustix::fs::readlink(link.as_str(), Vec::new()).map_err(unreachable)?;
    let expected = format!("/memfd:{PREFIX}{id} (deleted)");
    if target.as_bytes() != expected.as_bytes() {
        // The owner freed the segment and the descriptor number now names something else.
        return Err(unreachable(Errno::NOENT));
    }
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    let flags = access | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let opened = retry(|| rustix::fs::openat(rustix::fs::CWD, link.as_str(), flags, Mode::empty()))
        .map_err(unreachable)?;
    checked(opened, id, false)
}

/// Creates an unnamed segment: a memfd sealed against shrinking and growing, with its header and
/// data written, mapped shared. The kernel frees it when the last descriptor and mapping go.
#[cfg(target_os = "linux")]
pub(crate) fn create_memfd(id: &str, new: &NewSegment<'_>) -> Result<(File, Map)> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(
        format!("{PREFIX}{id}").as_str(),
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| os_error(e, "create", id))?;
    let file = filled(fd, id, new, false)?;
    rustix::fs::fcntl_add_seals(
        &file.fd,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
    )
    .map_err(|e| os_error(e, "seal", id))?;
    let map = map_file(&file, Access::Shared, false)?;
    Ok((file, map))
}

/// The memfd segments this user's processes hold: (id, pid, fd).
#[cfg(target_os = "linux")]
pub(crate) fn list_memfds() -> Result<Vec<(String, u32, i32)>> {
    let me = rustix::process::geteuid().as_raw();
    let mut out = Vec::new();
    let procs = match std::fs::read_dir("/proc") {
        Ok(d) => d,
        Err(e) => return listing_error(e, "unnamed segments").map_or(Ok(out), Err),
    };
    for p in procs.filter_map(|e| e.ok()) {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        if p.metadata().map(|m| m.uid() != me).unwrap_or(true) {
            continue;
        }
        let fds = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
            Ok(d) => d,
            Err(e) => match listing_error(e, "unnamed segments") {
                Some(err) => return Err(err),
                None => continue,
            },
        };
        for f in fds.filter_map(|e| e.ok()) {
            let Ok(target) = std::fs::read_link(f.path()) else {
                continue;
            };
            let Some(t) = target.to_str() else { continue };
            let Some(id) = t
                .strip_prefix("/memfd:")
                .and_then(|s| s.strip_prefix(PREFIX))
                .and_then(|s| s.strip_suffix(" (deleted)"))
            else {
                continue;
            };
            if let Some(fd) = f.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                if crate::name::validate_id(id).is_ok() {
                    out.push((id.to_string(), pid, fd));
                }
            }
        }
    }
    Ok(out)
}
