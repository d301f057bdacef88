//! POSIX shared memory. On Linux, a named segment is a file in `/dev/shm` opened with
//! `O_NOFOLLOW | O_NONBLOCK` and checked (a regular file of this user) before anything is read,
//! and an unnamed one is a sealed memfd that other processes open through
//! `/proc/<owner pid>/fd/<fd>`. macOS has only `shm_open` and keeps no listing, so a directory of
//! empty marker files stands in for one.

use std::fs::File as StdFile;
use std::os::fd::{AsFd, OwnedFd};

use memmap2::{Mmap, MmapMut, MmapOptions};
use rustix::fs::Mode;
use rustix::io::Errno;

use crate::error::{Code, Error, Result};
use crate::header;
use crate::name::PREFIX;

fn os_error(e: Errno, what: &str, id: &str) -> Error {
    let code = match e {
        Errno::NOENT => Code::NotFound,
        Errno::EXIST => Code::Exists,
        Errno::ACCESS | Errno::PERM => Code::Permission,
        Errno::NOSPC | Errno::NOMEM | Errno::MFILE | Errno::NFILE => Code::NoSpace,
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
        Code::NoSpace if matches!(e, Errno::MFILE | Errno::NFILE) => {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .map_or_else(|| "no".to_string(), |n| n.to_string());
            let which = if e == Errno::NFILE {
                "the system has run out of open files".to_string()
            } else {
                format!("this process has reached its limit of {limit} open descriptors")
            };
            format!(
                "cannot {what} segment {id:?}: {which} ({e}). Each unnamed segment its owner keeps openable holds one \
                 descriptor until some process frees it: let receivers free(handle) or open(handle, {{ free: true }}), \
                 hand segments out with {{ opens: n }} (share, alloc, handleOf) so that they are released after n opens, \
                 close() or free() vectors you no longer need, or raise the limit (ulimit -n)"
            )
        }
        _ => format!("cannot {what} segment {id:?}: {e}"),
    };
    Error::new(code, message)
}

/// The error for a segment the system cannot hold, with what it has and how to get more.
pub(crate) fn no_space(id: &str, needed: u64, fd: Option<&OwnedFd>, named: bool) -> Error {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    if !named {
        return Error::new(
            Code::NoSpace,
            format!(
                "not enough memory for segment {id:?}: it needs {:.1} MiB. Free or close vectors you no longer need, \
                 or give the machine or container more memory.",
                mib(needed)
            ),
        );
    }
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
            "not enough shared memory for segment {id:?}: it needs {:.1} MiB.{room} Free segments you no longer need \
             (sharedobject gc), or give the machine or container more: docker run --shm-size=2g, or a Kubernetes \
             emptyDir with medium: Memory.",
            mib(needed)
        ),
    )
}

/// A mapping of a whole segment. Unmapped when dropped.
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
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// MAP_SHARED: writes reach every process.
    Shared,
    /// MAP_PRIVATE: a write copies the page it touches for this process alone.
    CopyOnWrite,
    /// Read-only, to inspect a header.
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    Peek,
}

/// An open segment: its descriptor, checked to be a regular file of this user, and its size.
pub(crate) struct File {
    fd: OwnedFd,
    size: u64,
    id: String,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    named: bool,
    /// Bytes of the file that have memory behind them (`st_blocks`), when it was opened.
    allocated: u64,
}

impl File {
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    /// Bytes with memory behind them, where the OS counts them (Linux tmpfs); `None` elsewhere.
    pub(crate) fn allocated(&self) -> Option<u64> {
        cfg!(target_os = "linux").then_some(self.allocated)
    }
    /// Reads `buf.len()` bytes at `offset` without mapping: a hole reads as zeros and a file cut
    /// short is an error, never a SIGBUS.
    #[cfg(target_os = "linux")]
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        read_exact_at(self, buf, offset)
    }
    #[cfg(target_os = "linux")]
    pub(crate) fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }
}

/// Bytes of an open file with memory behind them: `st_blocks` on tmpfs (where `/dev/shm` files
/// and memfds live, and a hole is what a full filesystem answers with SIGBUS). Elsewhere blocks
/// say nothing reliable (compression, other allocation schemes), so the file counts as whole.
fn allocated_bytes(fd: &OwnedFd, blocks: u64) -> u64 {
    #[cfg(target_os = "linux")]
    {
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        // f_type is an i64 here, an i32 or u32 on other targets: the cast is for those.
        #[allow(clippy::unnecessary_cast)]
        match rustix::fs::fstatfs(fd) {
            Ok(fs) if fs.f_type as i64 == TMPFS_MAGIC => blocks.saturating_mul(512),
            _ => u64::MAX,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (fd, blocks);
        u64::MAX
    }
}

/// Checks what was opened: a regular file (not a FIFO, device or directory) owned by this user,
/// at least as large as a header.
fn checked(fd: OwnedFd, id: &str, named: bool) -> Result<File> {
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
    let allocated = allocated_bytes(&fd, st.st_blocks as u64);
    Ok(File {
        fd,
        size,
        id: id.to_string(),
        named,
        allocated,
    })
}

#[cfg(target_os = "linux")]
fn named_path(id: &str) -> String {
    format!("/dev/shm/{PREFIX}{id}")
}

/// Opens named segment `id`, never blocking on a FIFO and never following a link.
pub(crate) fn open_named(id: &str, write: bool) -> Result<File> {
    #[cfg(target_os = "linux")]
    let fd = {
        use rustix::fs::OFlags;
        let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
        let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        retry(|| rustix::fs::openat(rustix::fs::CWD, named_path(id).as_str(), flags, Mode::empty()))
            .map_err(|e| match e {
                Errno::LOOP => Error::new(
                    Code::Permission,
                    format!("{id:?} is a symbolic link, so it is not a sharedobject segment; it was not followed"),
                ),
                e => os_error(e, "open", id),
            })?
    };
    #[cfg(not(target_os = "linux"))]
    let fd = {
        let access = if write {
            rustix::shm::OFlags::RDWR
        } else {
            rustix::shm::OFlags::RDONLY
        };
        rustix::shm::open(format!("/{PREFIX}{id}").as_str(), access, Mode::empty())
            .map_err(|e| os_error(e, "open", id))?
    };
    checked(fd, id, true)
}

/// Opens the memfd that process `pid` holds as descriptor `fd`, checking first that it is the
/// memfd of segment `id`.
#[cfg(target_os = "linux")]
pub(crate) fn open_memfd(id: &str, pid: u32, fd: i32, pidns: u64, write: bool) -> Result<File> {
    use rustix::fs::OFlags;
    let link = format!("/proc/{pid}/fd/{fd}");
    let unreachable = |e: Errno| -> Error {
        let ours = pid_namespace();
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

#[cfg(target_os = "linux")]
fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

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

#[cfg(target_os = "linux")]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> Result<()> {
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

/// Maps all of an open segment. With `populate`, the pages are mapped now rather than at first
/// touch (see `prefault`).
pub(crate) fn map_file(file: &File, access: Access, populate: bool) -> Result<Map> {
    let len = usize::try_from(file.size)
        .map_err(|_| Error::new(Code::OutOfRange, "segment larger than the address space"))?;
    let dup = file
        .fd
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| match Errno::from_io_error(&e) {
            Some(errno) => os_error(errno, "map", &file.id),
            None => Error::new(Code::Os, format!("cannot map segment {:?}: {e}", file.id)),
        })?;
    let f = StdFile::from(dup);
    let mut opts = MmapOptions::new();
    opts.len(len);
    // MAP_POPULATE on a private writable mapping would copy every page (it write-faults them),
    // so a copy-on-write mapping is read-faulted after mapping instead.
    if populate && access == Access::Shared {
        opts.populate();
    }
    // SAFETY (all three): the mapping covers exactly the segment's size as fstat gave it. Named
    // segments are created at their final size and never truncated by this package; memfd
    // segments are sealed against shrinking, so every mapped byte stays backed. memmap2 unmaps
    // on drop, and views hold the Map alive (see registry).
    let mapped = unsafe {
        match access {
            Access::Shared => opts.map_mut(&f).map(Map::Writable),
            Access::CopyOnWrite => private_copy(&opts, &f),
            Access::Peek => opts.map(&f).map(Map::ReadOnly),
        }
    };
    let mapped = mapped.inspect(|m| {
        if populate && access != Access::Shared {
            prefault(m);
        }
    });
    mapped.map_err(|e| {
        let code = if e.raw_os_error() == Some(libc::ENOMEM) {
            Code::NoSpace
        } else {
            Code::Os
        };
        Error::new(code, format!("cannot map segment {:?}: {e}", file.id))
    })
}

/// A copy-on-write mapping: MAP_PRIVATE, so a write copies just the page it touches.
///
/// # Safety
/// As for `map_file`: `opts` covers exactly the segment's current size.
#[cfg(not(target_os = "macos"))]
unsafe fn private_copy(opts: &MmapOptions, file: &StdFile) -> std::io::Result<Map> {
    // SAFETY: forwarded from the caller.
    unsafe { opts.map_copy(file) }.map(Map::Writable)
}

/// macOS refuses MAP_PRIVATE for POSIX shared memory (EINVAL), so a copy-on-write open there is
/// an eager private copy: anonymous memory filled from a read-only shared mapping.
///
/// # Safety
/// As for `map_file`: `opts` covers exactly the segment's current size.
#[cfg(target_os = "macos")]
unsafe fn private_copy(opts: &MmapOptions, file: &StdFile) -> std::io::Result<Map> {
    // SAFETY: forwarded from the caller; the shared mapping lives until the copy is made.
    let shared = unsafe { opts.map(file) }?;
    let mut private = MmapOptions::new().len(shared.len()).map_anon()?;
    private.copy_from_slice(&shared);
    Ok(Map::Writable(private))
}

/// Gives this process's pages of `map` back now, leaving private zero pages at the same
/// addresses: anything that still writes there (a thread-pool job, a transferred buffer) writes
/// into memory nobody reads instead of faulting. The range is unmapped when `map` drops, which
/// the registry lets happen only once nothing can reach it.
pub(crate) fn retire(map: &Map) {
    if map.len() == 0 {
        return;
    }
    use rustix::mm::{MapFlags, ProtFlags};
    // SAFETY: the range is exactly a mapping this process made and still owns (memmap2 unmaps
    // it only on drop, which cannot run while `map` is borrowed). MAP_FIXED replaces it in one
    // step, so at no instant is the range unmapped: concurrent readers and writers see either
    // the segment or zero pages, never a fault.
    let replaced = unsafe {
        rustix::mm::mmap_anonymous(
            map.ptr().cast(),
            map.len(),
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::FIXED | MapFlags::NORESERVE,
        )
    };
    // On failure (no memory for the new mapping) the segment simply stays mapped until drop.
    let _ = replaced;
}

/// Maps every page of `map` into this process now, reading only, so that a first pass over the
/// data takes no page faults: for a copy-on-write mapping nothing is copied. Linux 5.14 and later;
/// elsewhere, or when the kernel refuses, pages are mapped at first touch as usual.
pub(crate) fn prefault(map: &Map) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if map.len() > 0 {
        // SAFETY: the range is exactly a mapping this process owns; MADV_POPULATE_READ only
        // read-faults its pages in, which changes no byte of it.
        let _ = unsafe {
            rustix::mm::madvise(
                map.ptr().cast(),
                map.len(),
                rustix::mm::Advice::LinuxPopulateRead,
            )
        };
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = map;
}

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

/// Gives the segment its size. With `reserve`, every page is allocated now, so a full tmpfs (or
/// memory) is an error here rather than a SIGBUS at some later write.
fn size_segment(fd: &OwnedFd, total: u64, reserve: bool, id: &str, named: bool) -> Result<()> {
    rustix::fs::ftruncate(fd, total).map_err(|e| match e {
        Errno::FBIG | Errno::NOSPC | Errno::NOMEM => no_space(id, total, Some(fd), named),
        e => os_error(e, "size", id),
    })?;
    #[cfg(target_os = "linux")]
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
    #[cfg(target_os = "linux")]
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
    #[cfg(not(target_os = "linux"))]
    let _ = reserve; // macOS backs shared memory with swappable VM: there is no tmpfs to overfill.
    Ok(())
}

#[allow(clippy::too_many_arguments)]
/// Sizes a new segment and writes its header (with attributes) first, then its data: a crash
/// part-way leaves a segment whose header names its owner, which the sweep can judge.
fn fill(
    fd: &OwnedFd,
    id: &str,
    head: &[u8],
    data_offset: u64,
    total: u64,
    init: Option<&[u8]>,
    reserve: bool,
    named: bool,
) -> Result<()> {
    size_segment(fd, total, reserve, id, named)?;
    #[cfg(target_os = "linux")]
    {
        write_all_at(fd, head, 0, id, total, named)?;
        if let Some(data) = init.filter(|d| !d.is_empty()) {
            write_all_at(fd, data, data_offset, id, total, named)?;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (fd, head, data_offset, init, write_all_at);
    Ok(())
}

/// macOS cannot write() to shared memory: header, then data, are copied through the mapping.
fn fill_mapping(map: &Map, head: &[u8], data_offset: u64, init: Option<&[u8]>) {
    if cfg!(target_os = "linux") {
        return;
    }
    // SAFETY: the map is the whole new segment, head fits before data_offset and init after it
    // (checked by the caller); nobody else knows this segment's handle yet.
    unsafe { super::fill_map(map, head, data_offset, init.unwrap_or(&[])) };
}

/// Creates named segment `id` exclusively with mode 0600, writes its header and data, and maps
/// it shared. On failure nothing is left behind.
///
/// On Linux the file is made without a name (`O_TMPFILE`), filled, and only then linked under
/// its name, so a crash at any point leaves either nothing or a whole segment: never a file
/// without a header.
pub(crate) fn create_named(
    id: &str,
    head: &[u8],
    data_offset: u64,
    total: u64,
    init: Option<&[u8]>,
    reserve: bool,
) -> Result<(File, Map)> {
    #[cfg(target_os = "linux")]
    if let Some(made) = create_linked(id, head, data_offset, total, init, reserve) {
        return made;
    }
    #[cfg(target_os = "linux")]
    let fd = {
        use rustix::fs::OFlags;
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        retry(|| {
            rustix::fs::openat(
                rustix::fs::CWD,
                named_path(id).as_str(),
                flags,
                Mode::from_raw_mode(0o600),
            )
        })
        .map_err(|e| os_error(e, "create", id))?
    };
    #[cfg(not(target_os = "linux"))]
    let fd = rustix::shm::open(
        format!("/{PREFIX}{id}").as_str(),
        rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| os_error(e, "create", id))?;
    let made = fill(&fd, id, head, data_offset, total, init, reserve, true).and_then(|()| {
        let file = File {
            fd,
            size: total,
            id: id.to_string(),
            named: true,
            allocated: total,
        };
        let map = map_file(&file, Access::Shared, false)?;
        fill_mapping(&map, head, data_offset, init);
        Ok((file, map))
    });
    match made {
        Ok(m) => {
            register_marker(id);
            Ok(m)
        }
        Err(e) => {
            let _ = unlink(id);
            Err(e)
        }
    }
}

/// The `O_TMPFILE` way of `create_named`; `None` where /dev/shm or /proc cannot do it.
#[cfg(target_os = "linux")]
fn create_linked(
    id: &str,
    head: &[u8],
    data_offset: u64,
    total: u64,
    init: Option<&[u8]>,
    reserve: bool,
) -> Option<Result<(File, Map)>> {
    use rustix::fs::{AtFlags, OFlags};
    let path = named_path(id);
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
    if let Err(e) = fill(&fd, id, head, data_offset, total, init, reserve, true) {
        return Some(Err(e)); // the file has no name: closing it frees it
    }
    let file = File {
        fd,
        size: total,
        id: id.to_string(),
        named: true,
        allocated: total,
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

/// Creates an unnamed segment: a memfd sealed against shrinking and growing, with its header and
/// data written, mapped shared. The kernel frees it when the last descriptor and mapping go.
#[cfg(target_os = "linux")]
pub(crate) fn create_memfd(
    id: &str,
    head: &[u8],
    data_offset: u64,
    total: u64,
    init: Option<&[u8]>,
    reserve: bool,
) -> Result<(File, Map)> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(
        format!("{PREFIX}{id}").as_str(),
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| os_error(e, "create", id))?;
    fill(&fd, id, head, data_offset, total, init, reserve, false)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        .map_err(|e| os_error(e, "seal", id))?;
    let file = File {
        fd,
        size: total,
        id: id.to_string(),
        named: false,
        allocated: total,
    };
    let map = map_file(&file, Access::Shared, false)?;
    Ok((file, map))
}

/// Whether named segment `id` exists: a regular file (a FIFO or a directory under that name is
/// not one). Running out of descriptors is an error, not an answer.
pub(crate) fn exists(id: &str) -> Result<bool> {
    #[cfg(target_os = "linux")]
    match rustix::fs::statat(
        rustix::fs::CWD,
        named_path(id).as_str(),
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

/// A window onto a segment's control word (see `header`), mapped shared and writable so that any
/// process can change it atomically.
pub(crate) struct Control {
    map: MmapMut,
    at: usize,
}

impl Control {
    pub(crate) fn word(&self) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: `at` + 8 lies inside the mapping (checked in `control`), the address is 8-byte
        // aligned (a page-aligned mapping plus a multiple of 8), and the word lives as long as
        // the borrow of `self`. Every process changes it only with atomic operations.
        unsafe { &*(self.map.as_ptr().add(self.at) as *const std::sync::atomic::AtomicU64) }
    }
}

/// Maps the page that holds the control word at `offset` of an open segment, shared.
pub(crate) fn control(file: &File, offset: u64) -> Result<Control> {
    if !offset.is_multiple_of(8) || offset.saturating_add(header::CONTROL_SIZE) > file.size {
        return Err(Error::new(
            Code::BadHeader,
            format!("segment {:?} has no control word", file.id),
        ));
    }
    let page = rustix::param::page_size() as u64;
    let start = offset & !(page - 1);
    let dup = file
        .fd
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| match Errno::from_io_error(&e) {
            Some(errno) => os_error(errno, "map", &file.id),
            None => Error::new(Code::Os, format!("cannot map segment {:?}: {e}", file.id)),
        })?;
    let f = StdFile::from(dup);
    let mut opts = MmapOptions::new();
    opts.offset(start).len((offset - start) as usize + 8);
    // SAFETY: the window lies inside the segment's size as fstat gave it; segments are never
    // shrunk (memfds are sealed, named files are created at their final size), so it stays
    // backed. Only the control word is accessed through it, atomically.
    let map = unsafe { opts.map_mut(&f) }
        .map_err(|e| Error::new(Code::Os, format!("cannot map segment {:?}: {e}", file.id)))?;
    Ok(Control {
        map,
        at: (offset - start) as usize,
    })
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
            named_path(id).as_str(),
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
    #[cfg(target_os = "linux")]
    let r = rustix::fs::unlinkat(
        rustix::fs::CWD,
        named_path(id).as_str(),
        rustix::fs::AtFlags::empty(),
    );
    #[cfg(not(target_os = "linux"))]
    let r = rustix::shm::unlink(format!("/{PREFIX}{id}").as_str());
    match r {
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
fn listing_error(e: std::io::Error, what: &str) -> Option<Error> {
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

/// A process's start time (clock ticks since boot), from `/proc/<pid>/task/<pid>/stat`: qemu-user
/// fakes `/proc/<pid>/stat` for the processes it runs (a few ticks off, different per thread),
/// but passes the task's stat through unchanged.
#[cfg(target_os = "linux")]
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(target_os = "linux")]
pub(crate) fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0)
}

#[cfg(target_os = "macos")]
pub(crate) fn start_time(pid: u32) -> Option<u64> {
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
pub(crate) fn pid_namespace() -> u64 {
    0
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) fn start_time(_pid: u32) -> Option<u64> {
    None
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) fn pid_namespace() -> u64 {
    0
}

/// The most mappings a process may have (`vm.max_map_count`), or a conservative default.
pub(crate) fn max_map_count() -> usize {
    #[cfg(target_os = "linux")]
    if let Some(n) = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return n;
    }
    65530
}

/// Bytes of memory (RAM and swap) this machine has, where the OS says: a shared-memory segment
/// lives in memory, and an unnamed one (a memfd) is bounded by nothing smaller, so reserving more
/// than this would only end in the OOM killer.
pub(crate) fn memory_limit() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let info = rustix::system::sysinfo();
        let unit = u64::from(info.mem_unit.max(1));
        Some((info.totalram as u64 + info.totalswap as u64).saturating_mul(unit))
    }
    #[cfg(not(target_os = "linux"))]
    None
}
