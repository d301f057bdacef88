//! Linux: a named segment is a file in `/dev/shm` (tmpfs), opened without following a link or
//! blocking on a FIFO; its pages can be allocated ahead (`fallocate`) and counted (`st_blocks`);
//! `/proc` tells who a process is. Unnamed segments (memfds) are in `memfd`.

use std::os::fd::OwnedFd;

use rustix::fs::Mode;
use rustix::io::Errno;

use super::error::{no_space, os_error};
use super::How;
use crate::error::Result;
use crate::header;
use crate::name::PREFIX;

/// The path of named segment `id`.
pub(super) fn os_name(id: &str) -> String {
    format!("/dev/shm/{PREFIX}{id}")
}

/// Opens the name of segment `id`: a link is never followed, a FIFO never blocks the open, and a
/// new file is made only where no file of that name is.
pub(super) fn open_name(id: &str, how: How) -> rustix::io::Result<OwnedFd> {
    use rustix::fs::OFlags;
    let (flags, mode) = match how {
        How::Read => (
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        ),
        How::Write => (
            OFlags::RDWR | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        ),
        How::Create => (
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(0o600),
        ),
    };
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    retry(|| rustix::fs::openat(rustix::fs::CWD, os_name(id).as_str(), flags, mode))
}

/// Removes the name of segment `id`.
pub(super) fn unlink_name(id: &str) -> rustix::io::Result<()> {
    rustix::fs::unlinkat(
        rustix::fs::CWD,
        os_name(id).as_str(),
        rustix::fs::AtFlags::empty(),
    )
}

pub(super) fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// Bytes of an open file with memory behind them: `st_blocks` on tmpfs (where `/dev/shm` files
/// and memfds live, and a hole is what a full filesystem answers with SIGBUS). Elsewhere blocks
/// say nothing reliable (compression, other allocation schemes), so the file counts as whole.
pub(super) fn allocated_bytes(fd: &OwnedFd, blocks: u64) -> u64 {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    // f_type is an i64 here, an i32 or u32 on other targets: the cast is for those.
    #[allow(clippy::unnecessary_cast)]
    match rustix::fs::fstatfs(fd) {
        Ok(fs) if fs.f_type as i64 == TMPFS_MAGIC => blocks.saturating_mul(512),
        _ => u64::MAX,
    }
}

/// Allocates a new segment's memory now, after it was given its size: all of it with `reserve`,
/// so that a full tmpfs (or memory) is an error here rather than a SIGBUS at some later write.
pub(super) fn allocate(
    fd: &OwnedFd,
    total: u64,
    reserve: bool,
    id: &str,
    named: bool,
) -> Result<()> {
    if reserve {
        loop {
            match rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), 0, total) {
                Ok(()) => break,
                Err(Errno::INTR) => continue,
                Err(Errno::NOSPC) | Err(Errno::FBIG) | Err(Errno::NOMEM) => {
                    return Err(no_space(id, total, Some(fd), named))
                }
                // A filesystem without fallocate: check free space instead.
                Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) => {
                    if let Ok(s) = rustix::fs::fstatvfs(fd) {
                        if s.f_bavail.saturating_mul(s.f_frsize) < total {
                            return Err(no_space(id, total, Some(fd), named));
                        }
                    }
                    break;
                }
                Err(e) => return Err(os_error(e, "reserve space for", id)),
            }
        }
    }
    // Without `reserve`, the last page still gets its memory now: the control word lies there,
    // and every opener writes it, so a reader that only reads never meets a hole in it.
    if !reserve && total >= header::CONTROL_SIZE {
        let at = total - header::CONTROL_SIZE;
        loop {
            match rustix::fs::fallocate(
                fd,
                rustix::fs::FallocateFlags::empty(),
                at,
                header::CONTROL_SIZE,
            ) {
                Ok(()) | Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) => break,
                Err(Errno::INTR) => continue,
                Err(Errno::NOSPC) | Err(Errno::FBIG) | Err(Errno::NOMEM) => {
                    return Err(no_space(id, total, Some(fd), named))
                }
                Err(e) => return Err(os_error(e, "reserve space for", id)),
            }
        }
    }
    Ok(())
}

/// Linux keeps no listing of its own beyond `/dev/shm` itself: no markers.
pub(super) fn listing_dir() -> std::path::PathBuf {
    std::path::PathBuf::from("/dev/shm")
}
pub(super) fn register_marker(_id: &str) {}
pub(super) fn unregister_marker(_id: &str) {}

/// A process's start time (clock ticks since boot), from `/proc/<pid>/task/<pid>/stat`: qemu-user
/// fakes `/proc/<pid>/stat` for the processes it runs (a few ticks off, different per thread),
/// but passes the task's stat through unchanged.
pub(super) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub(super) fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// The most mappings a process may have (`vm.max_map_count`), or a conservative default.
pub(crate) fn max_map_count() -> usize {
    if let Some(n) = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return n;
    }
    65530
}

/// Bytes of memory (RAM and swap) this machine has: a shared-memory segment lives in memory,
/// and an unnamed one (a memfd) is bounded by nothing smaller, so reserving more than this would
/// only end in the OOM killer.
pub(crate) fn memory_limit() -> Option<u64> {
    let info = rustix::system::sysinfo();
    let unit = u64::from(info.mem_unit.max(1));
    Some((info.totalram as u64 + info.totalswap as u64).saturating_mul(unit))
}
