//! POSIX shared memory: `shm_open` objects mapped with memmap2. On Linux they are files in
//! `/dev/shm` (a tmpfs), which is also how `list` finds them; macOS keeps no listing, so a
//! directory of empty marker files stands in for one.

use std::fs::File;
use std::os::fd::OwnedFd;

use memmap2::{Mmap, MmapMut, MmapOptions};
use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::shm;

use crate::error::{Code, Error, Result};
use crate::name::PREFIX;

fn os_name(id: &str) -> String {
    format!("/{PREFIX}{id}")
}

fn os_error(e: Errno, what: &str, id: &str) -> Error {
    let code = match e {
        Errno::NOENT => Code::NotFound,
        Errno::EXIST => Code::Exists,
        Errno::ACCESS | Errno::PERM => Code::Permission,
        Errno::NOSPC | Errno::NOMEM => Code::NoSpace,
        Errno::NAMETOOLONG | Errno::INVAL => Code::Name,
        _ => Code::Os,
    };
    let message = match code {
        Code::NotFound => format!(
            "no segment with id {id:?}: it was freed, its owner released it, or it never existed"
        ),
        Code::Exists => format!("a segment with id {id:?} exists already"),
        Code::Permission => {
            format!("the OS refused to {what} segment {id:?} ({e}): it belongs to another user")
        }
        _ => format!("cannot {what} segment {id:?}: {e}"),
    };
    Error::new(code, message)
}

/// The error for a segment the filesystem cannot hold, with what it has and how to get more.
pub(crate) fn no_space(id: &str, needed: u64, fd: Option<&OwnedFd>) -> Error {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let room = fd
        .and_then(|fd| rustix::fs::fstatvfs(fd).ok())
        .map(|s| {
            let unit = s.f_frsize.max(1);
            format!(
                " /dev/shm has {:.1} MiB free of {:.1} MiB.",
                mib(s.f_bavail * unit),
                mib(s.f_blocks * unit)
            )
        })
        .unwrap_or_default();
    Error::new(
    Code::NoSpace,
    format!(
      "not enough shared memory for segment {id:?}: it needs {:.1} MiB.{room} Free segments you no longer need (sharedobject gc), \
       or give the machine or container more: docker run --shm-size=2g, or a Kubernetes emptyDir with medium: Memory.",
      mib(needed)
    ),
  )
}

/// A mapping of a whole segment. Unmapped when dropped; no descriptor is kept.
pub(crate) enum Map {
    Writable(MmapMut),
    ReadOnly(Mmap),
}

impl Map {
    pub(crate) fn ptr(&self) -> *mut u8 {
        match self {
            Map::Writable(m) => m.as_ptr() as *mut u8,
            Map::ReadOnly(m) => m.as_ptr() as *mut u8,
        }
    }
    pub(crate) fn len(&self) -> usize {
        match self {
            Map::Writable(m) => m.len(),
            Map::ReadOnly(m) => m.len(),
        }
    }
}

/// How a segment is mapped.
#[derive(Clone, Copy)]
pub(crate) enum Access {
    /// MAP_SHARED: writes reach every process.
    Shared,
    /// MAP_PRIVATE: a write copies the page it touches for this process alone.
    CopyOnWrite,
    /// Read-only, to inspect a header.
    Peek,
}

fn map_fd(fd: OwnedFd, len: u64, access: Access, id: &str) -> Result<Map> {
    let len = usize::try_from(len)
        .map_err(|_| Error::new(Code::OutOfRange, "segment larger than the address space"))?;
    let file = File::from(fd);
    let mut opts = MmapOptions::new();
    opts.len(len);
    // SAFETY (all three): the mapping covers exactly the segment's current size, checked by the
    // caller against fstat. Segments are only ever created at their final size and never
    // truncated by this package, so every mapped byte stays backed. memmap2 unmaps on drop, and
    // the registry hands out pointers only while the Map is alive.
    let mapped = unsafe {
        match access {
            Access::Shared => opts.map_mut(&file).map(Map::Writable),
            Access::CopyOnWrite => private_copy(&opts, &file),
            Access::Peek => opts.map(&file).map(Map::ReadOnly),
        }
    };
    // `file` drops here: the descriptor is closed once mapped, so live segments cost none.
    mapped.map_err(|e| {
        let code = if e.raw_os_error() == Some(libc::ENOMEM) {
            Code::NoSpace
        } else {
            Code::Os
        };
        Error::new(code, format!("cannot map segment {id:?}: {e}"))
    })
}

/// A copy-on-write mapping: MAP_PRIVATE, so a write copies just the page it touches.
///
/// # Safety
/// As for `map_fd`: `opts` covers exactly the segment's current size.
#[cfg(not(target_os = "macos"))]
unsafe fn private_copy(opts: &MmapOptions, file: &File) -> std::io::Result<Map> {
    // SAFETY: forwarded from the caller.
    unsafe { opts.map_copy(file) }.map(Map::Writable)
}

/// macOS refuses MAP_PRIVATE for POSIX shared memory (EINVAL), so a copy-on-write open there is
/// an eager private copy: anonymous memory filled from a read-only shared mapping.
///
/// # Safety
/// As for `map_fd`: `opts` covers exactly the segment's current size.
#[cfg(target_os = "macos")]
unsafe fn private_copy(opts: &MmapOptions, file: &File) -> std::io::Result<Map> {
    // SAFETY: forwarded from the caller; the shared mapping lives until the copy is made.
    let shared = unsafe { opts.map(file) }?;
    let mut private = MmapOptions::new().len(shared.len()).map_anon()?;
    private.copy_from_slice(&shared);
    Ok(Map::Writable(private))
}

fn write_all_at(
    fd: &OwnedFd,
    mut data: &[u8],
    mut offset: u64,
    id: &str,
    total: u64,
) -> Result<()> {
    while !data.is_empty() {
        match rustix::io::pwrite(fd, data, offset) {
            Ok(0) | Err(Errno::NOSPC) => return Err(no_space(id, total, Some(fd))),
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

/// Gives the segment its size. With `reserve`, every page is allocated now, so a full tmpfs is
/// an error here rather than a SIGBUS at some later write.
fn size_segment(fd: &OwnedFd, total: u64, reserve: bool, id: &str) -> Result<()> {
    #[cfg(target_os = "linux")]
    if reserve {
        match rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), 0, total) {
            Ok(()) => return Ok(()),
            Err(Errno::NOSPC) | Err(Errno::FBIG) => return Err(no_space(id, total, Some(fd))),
            // A filesystem without fallocate: fall through to ftruncate after a free-space check.
            Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) => {
                if let Ok(s) = rustix::fs::fstatvfs(fd) {
                    if s.f_bavail.saturating_mul(s.f_frsize) < total {
                        return Err(no_space(id, total, Some(fd)));
                    }
                }
            }
            Err(e) => return Err(os_error(e, "reserve space for", id)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = reserve; // macOS backs shared memory with swappable VM: there is no tmpfs to overfill.
    rustix::fs::ftruncate(fd, total).map_err(|e| match e {
        Errno::FBIG | Errno::NOSPC | Errno::NOMEM => no_space(id, total, Some(fd)),
        e => os_error(e, "size", id),
    })
}

/// Creates segment `id` exclusively with mode 0600, writes `head` (header and attributes) at 0
/// and `init` at `data_offset`, and maps it shared. On failure nothing is left behind.
pub(crate) fn create(
    id: &str,
    head: &[u8],
    data_offset: u64,
    total: u64,
    init: Option<&[u8]>,
    reserve: bool,
) -> Result<Map> {
    let fd = shm::open(
        os_name(id).as_str(),
        shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| os_error(e, "create", id))?;
    let filled = fill(&fd, id, head, data_offset, total, init, reserve);
    let result = filled.and_then(|pending| {
        let map = map_fd(fd, total, Access::Shared, id)?;
        if let Some((head, init)) = pending {
            // SAFETY: the map is `total` bytes, head fits before data_offset and init after it
            // (checked by the caller); nobody else knows this segment's handle yet.
            unsafe { super::fill_map(&map, head, data_offset, init) };
        }
        Ok(map)
    });
    match result {
        Ok(map) => {
            register_marker(id);
            Ok(map)
        }
        Err(e) => {
            let _ = shm::unlink(os_name(id).as_str());
            Err(e)
        }
    }
}

/// Writes what can be written through the descriptor. Linux writes header and data with
/// `pwrite`, which allocates each page as it copies (one pass, and a full tmpfs answers
/// ENOSPC). Other systems cannot `write` to shared memory; what is left to copy after mapping
/// is returned.
#[allow(clippy::type_complexity)]
fn fill<'a>(
    fd: &OwnedFd,
    id: &str,
    head: &'a [u8],
    data_offset: u64,
    total: u64,
    init: Option<&'a [u8]>,
    reserve: bool,
) -> Result<Option<(&'a [u8], &'a [u8])>> {
    #[cfg(target_os = "linux")]
    {
        match init {
            Some(data) if !data.is_empty() => {
                write_all_at(fd, data, data_offset, id, total)?;
                if data_offset + (data.len() as u64) < total {
                    size_segment(fd, total, reserve, id)?;
                }
            }
            _ => size_segment(fd, total, reserve, id)?,
        }
        write_all_at(fd, head, 0, id, total)?;
        Ok(None)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (write_all_at, data_offset);
        size_segment(fd, total, reserve, id)?;
        Ok(Some((head, init.unwrap_or(&[]))))
    }
}

/// Opens segment `id` and maps all of it. The caller validates the header before any view.
pub(crate) fn open(id: &str, access: Access) -> Result<Map> {
    let flags = match access {
        Access::Shared => shm::OFlags::RDWR,
        Access::CopyOnWrite | Access::Peek => shm::OFlags::RDONLY,
    };
    let fd = shm::open(os_name(id).as_str(), flags, Mode::empty())
        .map_err(|e| os_error(e, "open", id))?;
    let size = rustix::fs::fstat(&fd)
        .map_err(|e| os_error(e, "inspect", id))?
        .st_size as u64;
    if size < crate::header::FIXED_SIZE as u64 {
        return Err(Error::new(
            Code::BadHeader,
            format!("segment {id:?} is too small to be a sharedobject segment"),
        ));
    }
    map_fd(fd, size, access, id)
}

pub(crate) fn exists(id: &str) -> bool {
    match shm::open(os_name(id).as_str(), shm::OFlags::RDONLY, Mode::empty()) {
        Ok(_) => true,
        Err(e) => e != Errno::NOENT,
    }
}

/// Removes the name. Processes that mapped the segment keep their pages.
pub(crate) fn unlink(id: &str) -> Result<bool> {
    match shm::unlink(os_name(id).as_str()) {
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

/// The ids of every segment of this package on the machine.
pub(crate) fn list_ids() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(listing_dir()) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix(PREFIX).map(str::to_string))
        .filter(|id| crate::name::validate_id(id).is_ok())
        .collect();
    // A marker outlives its segment when the owner died or another process removed it.
    #[cfg(not(target_os = "linux"))]
    ids.retain(|id| {
        exists(id) || {
            unregister_marker(id);
            false
        }
    });
    ids.sort();
    ids
}

#[cfg(target_os = "linux")]
fn listing_dir() -> std::path::PathBuf {
    std::path::PathBuf::from("/dev/shm")
}
#[cfg(target_os = "linux")]
fn register_marker(_id: &str) {}
#[cfg(target_os = "linux")]
fn unregister_marker(_id: &str) {}

#[cfg(not(target_os = "linux"))]
fn listing_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "sharedobject-{}",
        rustix::process::getuid().as_raw()
    ))
}
#[cfg(not(target_os = "linux"))]
fn register_marker(id: &str) {
    use std::os::unix::fs::DirBuilderExt;
    let dir = listing_dir();
    let _ = std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir);
    let _ = std::fs::File::create(dir.join(format!("{PREFIX}{id}")));
}
#[cfg(not(target_os = "linux"))]
fn unregister_marker(id: &str) {
    let _ = std::fs::remove_file(listing_dir().join(format!("{PREFIX}{id}")));
}

/// Who this process is: pid, start time, pid namespace.
pub(crate) fn current_process() -> (u32, u64, u64) {
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    (pid, start_time(pid).unwrap_or(0), pid_namespace())
}

/// Whether the process that created a segment still runs: `None` when this process cannot
/// tell (another pid namespace), which callers treat as alive.
pub(crate) fn owner_alive(pid: u32, start: u64, pidns: u64) -> Option<bool> {
    let ours = pid_namespace();
    if pidns != 0 && ours != 0 && pidns != ours {
        return None;
    }
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Some(false);
    };
    match rustix::process::test_kill_process(p) {
        Ok(()) | Err(Errno::PERM) => {}
        Err(Errno::SRCH) => return Some(false),
        Err(_) => return None,
    }
    // A live pid with another start time is a reused pid: the owner is gone.
    match start_time(pid) {
        Some(now) if start != 0 => Some(now == start),
        _ => Some(true),
    }
}

/// The start time of `pid`, from its main thread's stat file: the same number as
/// `/proc/<pid>/stat`, which qemu-user fakes for its own processes (off by a few ticks, and
/// different per thread), so that others would judge a live owner dead. The task file passes
/// through unchanged.
#[cfg(target_os = "linux")]
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(target_os = "linux")]
fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0)
}

#[cfg(target_os = "macos")]
fn start_time(pid: u32) -> Option<u64> {
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

#[cfg(target_os = "macos")]
fn pid_namespace() -> u64 {
    0
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn start_time(_pid: u32) -> Option<u64> {
    None
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn pid_namespace() -> u64 {
    0
}
