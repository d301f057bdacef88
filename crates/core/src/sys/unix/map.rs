//! Every mapping this package makes, and all of its unsafe code: a whole segment for a view,
//! the copy-on-write kinds, giving a mapping's pages back in place (`retire`), and the small
//! shared window onto a control word.

use std::os::fd::OwnedFd;

use memmap2::{Mmap, MmapMut, MmapOptions};

use super::file::File;
use crate::error::{Code, Error, Result};
use crate::header;

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

/// Maps all of an open segment. With `populate`, the pages are mapped now rather than at first
/// touch (see `prefault`).
pub(crate) fn map_file(file: &File, access: Access, populate: bool) -> Result<Map> {
    let len = usize::try_from(file.size)
        .map_err(|_| Error::new(Code::OutOfRange, "segment larger than the address space"))?;
    // memmap2 maps from the descriptor itself (a mapping outlives it): no second one is needed.
    let f = &file.fd;
    let mut opts = MmapOptions::new();
    opts.len(len);
    // SAFETY (all three): the mapping covers exactly the segment's size as fstat gave it. Named
    // segments are created at their final size and never truncated by this package; memfd
    // segments are sealed against shrinking, so every mapped byte stays backed. memmap2 unmaps
    // on drop, and views hold the Map alive (see registry).
    let mapped = unsafe {
        match access {
            Access::Shared => opts.map_mut(f).map(Map::Writable),
            Access::CopyOnWrite => private_copy(&opts, f),
            Access::Peek => opts.map(f).map(Map::ReadOnly),
        }
    };
    // Populated by read faults after mapping rather than MAP_POPULATE (see `prefault`): that is
    // faster, and a private writable mapping is not copied page by page.
    let mapped = mapped.inspect(|m| {
        if populate {
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
unsafe fn private_copy(opts: &MmapOptions, file: &OwnedFd) -> std::io::Result<Map> {
    // SAFETY: forwarded from the caller.
    unsafe { opts.map_copy(file) }.map(Map::Writable)
}

/// macOS refuses MAP_PRIVATE for POSIX shared memory (EINVAL), so a copy-on-write open there is
/// an eager private copy: anonymous memory filled from a read-only shared mapping.
///
/// # Safety
/// As for `map_file`: `opts` covers exactly the segment's current size.
#[cfg(target_os = "macos")]
unsafe fn private_copy(opts: &MmapOptions, file: &OwnedFd) -> std::io::Result<Map> {
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
/// data takes no page faults: for a copy-on-write mapping nothing is copied (see `prefault_range`).
/// Elsewhere than Linux, or when the kernel refuses, pages are mapped at first touch as usual.
pub(crate) fn prefault(map: &Map) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = prefault_range(map, 0, map.len());
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = map;
}

/// What read-faulting one range of a mapping in (`prefault_range`) came to.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Populated {
    /// Every page of the range is mapped.
    Done,
    /// This kernel can populate by neither way (MADV_POPULATE_READ came in Linux 5.14, and
    /// process_vm_readv may be filtered out): asking again is pointless.
    Unsupported,
    /// The kernel refused this range (no memory, a range changed under us): stop quietly.
    Refused,
}

/// How far apart the bytes are that `touch` reads: one read fault on a shared file mapping maps
/// the aligned 64 KiB around it (the kernel's `fault_around_bytes`, 64 KiB unless changed), so
/// one byte per 64 KiB maps every page; where the kernel maps less, the rest is mapped at first
/// touch as usual.
#[cfg(any(target_os = "linux", target_os = "android"))]
const FAULT_AROUND: usize = 64 << 10;

/// Set once `process_vm_readv` was refused to this process (a seccomp filter, as in some
/// containers, or a kernel without it): from then on only MADV_POPULATE_READ is tried.
#[cfg(any(target_os = "linux", target_os = "android"))]
static NO_TOUCH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Addresses read per `process_vm_readv` call (64 windows: 4 MiB of mapping): few calls, and
/// short stack buffers.
#[cfg(any(target_os = "linux", target_os = "android"))]
const BATCH: usize = 64;

/// Read-faults `len` bytes of `map` from byte `at` into this process, for `populate: true` and
/// for a prefault done in chunks from another thread. It never touches a page itself, so nothing
/// it does can raise a signal: where the kernel cannot map a page (a named segment cut short by
/// someone else), the call fails and the rest is left to first touch.
///
/// The way: the kernel reads one byte per `FAULT_AROUND` of the range on this process's behalf
/// (`process_vm_readv` on itself), and each read fault maps the 16 pages around it, as a plain
/// first touch would. MADV_POPULATE_READ does the same job but walks and marks every page
/// accessed on its way (promoting a fresh segment's pages on the kernel's LRU lists one by one):
/// on Linux 6.18 it took 30-50 ms over 400 MB where these reads take 20 ms. It remains the way
/// where `process_vm_readv` is filtered out.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn prefault_range(map: &Map, at: usize, len: usize) -> Populated {
    use std::sync::atomic::Ordering;
    let len = len.min(map.len().saturating_sub(at));
    if len == 0 {
        return Populated::Done;
    }
    if !NO_TOUCH.load(Ordering::Relaxed) {
        match touch(map, at, len) {
            Some(done) => return done,
            None => NO_TOUCH.store(true, Ordering::Relaxed),
        }
    }
    populate_read(map, at, len)
}

/// `prefault_range` by MADV_POPULATE_READ (Linux 5.14 and later).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn populate_read(map: &Map, at: usize, len: usize) -> Populated {
    let len = len.min(map.len().saturating_sub(at));
    if len == 0 {
        return Populated::Done;
    }
    // madvise takes whole pages: from the start of the page that holds byte `at`.
    let back = at % rustix::param::page_size();
    // SAFETY: the range lies inside a mapping this process owns (clamped above, and a mapping
    // starts on a page) and the caller holds the mapping alive for the call, so it cannot be
    // unmapped or reused meanwhile. MADV_POPULATE_READ only read-faults pages in, which changes
    // no byte; an error (EFAULT, ENOMEM, EINVAL) is returned rather than raised as a signal.
    match unsafe {
        rustix::mm::madvise(
            map.ptr().add(at - back).cast(),
            len + back,
            rustix::mm::Advice::LinuxPopulateRead,
        )
    } {
        Ok(()) => Populated::Done,
        Err(rustix::io::Errno::INVAL) => Populated::Unsupported,
        Err(_) => Populated::Refused,
    }
}

/// `prefault_range` by `process_vm_readv`: `None` where this process may not use it.
///
/// A read fault maps the pages around it only where they hold data already: a page of a
/// segment nobody has written yet (reserved by `alloc` and never filled, or a hole) is mapped
/// alone, by the fault that reads it. So after each batch, the first and last 64 KiB of it are
/// looked up in `/proc/self/pagemap`; where a page there is missing, the whole batch is, and each
/// missing page is read on its own. A written segment costs two small lookups per batch.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn touch(map: &Map, at: usize, len: usize) -> Option<Populated> {
    let len = len.min(map.len().saturating_sub(at));
    let start = map.ptr() as usize + at;
    let end = start + len;
    let page = rustix::param::page_size();
    let pagemap = Pagemap::open();
    let mut missing = Vec::new();
    let mut batch = [0usize; BATCH];
    let mut addr = start;
    while addr < end {
        let from = addr;
        let mut n = 0;
        while n < BATCH && addr < end {
            batch[n] = addr;
            n += 1;
            addr = (addr & !(FAULT_AROUND - 1)) + FAULT_AROUND;
        }
        let to = addr.min(end);
        match read_one_byte_at(&batch[..n])? {
            Populated::Done => {}
            other => return Some(other),
        }
        let Some(pm) = &pagemap else { continue };
        let edges = [
            (from, (from + FAULT_AROUND).min(to)),
            (to.saturating_sub(FAULT_AROUND).max(from), to),
        ];
        if edges
            .iter()
            .all(|&(a, b)| pm.missing(a, b, page, &mut missing) == Some(0))
        {
            continue;
        }
        if pm.missing(from, to, page, &mut missing).is_none() {
            continue;
        }
        match read_one_byte_at(&missing)? {
            Populated::Done => {}
            other => return Some(other),
        }
    }
    Some(Populated::Done)
}

/// Has the kernel read one byte at each address on this process's behalf, faulting its page in
/// (see `touch`). `None` where `process_vm_readv` is refused to this process (a seccomp filter,
/// no such call); `Some(Refused)` where a page cannot be mapped.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn read_one_byte_at(addrs: &[usize]) -> Option<Populated> {
    let me = super::process::current_pid() as libc::pid_t;
    let mut sink = [0u8; BATCH];
    let mut remote = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    for some in addrs.chunks(BATCH) {
        for (r, &a) in remote.iter_mut().zip(some) {
            *r = libc::iovec {
                iov_base: a as *mut libc::c_void,
                iov_len: 1,
            };
        }
        let local = libc::iovec {
            iov_base: sink.as_mut_ptr().cast(),
            iov_len: some.len(),
        };
        // SAFETY: `local` is `some.len()` bytes of our own stack buffer, which the kernel writes;
        // every remote address lies inside a mapping this process owns (the caller's range,
        // clamped to its mapping) that the caller holds alive for the call. The kernel reads
        // those bytes through its own page-table walk: a page it cannot map ends the call with a
        // short count or EFAULT, never a signal, and no byte of the mapping changes.
        let got =
            unsafe { libc::process_vm_readv(me, &local, 1, remote.as_ptr(), some.len() as _, 0) };
        if got < 0 {
            return match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::ENOSYS | libc::EPERM | libc::EACCES) => None,
                _ => Some(Populated::Refused),
            };
        }
        if got as usize != some.len() {
            return Some(Populated::Refused);
        }
    }
    Some(Populated::Done)
}

/// This process's `/proc/self/pagemap`, which tells which pages of a range are mapped.
#[cfg(any(target_os = "linux", target_os = "android"))]
struct Pagemap(std::fs::File);

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Pagemap {
    /// `None` where it cannot be read (no /proc): then nothing is looked up, and pages a read
    /// fault did not map are left to first touch.
    fn open() -> Option<Pagemap> {
        std::fs::File::open("/proc/self/pagemap").ok().map(Pagemap)
    }

    /// Collects into `out` the pages of `from..to` not mapped into this process, and counts them;
    /// `None` where the kernel would not say.
    fn missing(&self, from: usize, to: usize, page: usize, out: &mut Vec<usize>) -> Option<usize> {
        use std::os::unix::fs::FileExt;
        out.clear();
        let first = from / page;
        let pages = to.div_ceil(page).saturating_sub(first);
        let mut entries = [0u8; 8 * 512];
        let mut done = 0;
        while done < pages {
            let n = (pages - done).min(512);
            let buf = &mut entries[..8 * n];
            self.0
                .read_exact_at(buf, ((first + done) * 8) as u64)
                .ok()?;
            for (i, e) in buf.chunks_exact(8).enumerate() {
                // Bit 63 of an entry: the page is present in this process's page tables.
                if e[7] & 0x80 == 0 {
                    out.push((first + done + i) * page);
                }
            }
            done += n;
        }
        Some(out.len())
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
    let f = &file.fd;
    let mut opts = MmapOptions::new();
    opts.offset(start).len((offset - start) as usize + 8);
    // SAFETY: the window lies inside the segment's size as fstat gave it; segments are never
    // shrunk (memfds are sealed, named files are created at their final size), so it stays
    // backed. Only the control word is accessed through it, atomically.
    let map = unsafe { opts.map_mut(f) }
        .map_err(|e| Error::new(Code::Os, format!("cannot map segment {:?}: {e}", file.id)))?;
    Ok(Control {
        map,
        at: (offset - start) as usize,
    })
}

/// macOS shared memory cannot be read() or written(): a segment's bytes are reached through a
/// mapping of it, read-only to read (the caller may hold a read-only descriptor).
#[cfg(not(target_os = "linux"))]
impl File {
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let map = map_file(self, Access::Peek, false)?;
        crate::sys::read_map(&map, offset, buf).ok_or_else(|| self.short())
    }
    pub(crate) fn write_at(&self, data: &[u8], offset: u64) -> Result<()> {
        let map = map_file(self, Access::Shared, false)?;
        crate::sys::write_map(&map, offset, data).ok_or_else(|| self.short())
    }
    fn short(&self) -> Error {
        Error::new(
            Code::BadHeader,
            format!("segment {:?} ends inside its header", self.id),
        )
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    const LEN: usize = 8 << 20;

    /// One way of prefaulting; `None` where it cannot be used here.
    type Way = fn(&Map, usize, usize) -> Option<Populated>;

    /// Both ways: read faults by `process_vm_readv`, and MADV_POPULATE_READ.
    const WAYS: [Way; 2] = [touch, |m, at, len| Some(populate_read(m, at, len))];

    /// A memfd of `LEN` bytes, each page holding its index, mapped read-only and shared, with
    /// no page of the mapping touched yet.
    fn fresh() -> (OwnedFd, Map) {
        let fd =
            rustix::fs::memfd_create("prefault-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let page = vec![0u8; 4096];
        for i in 0..LEN / 4096 {
            let mut p = page.clone();
            p[..8].copy_from_slice(&(i as u64).to_le_bytes());
            rustix::io::pwrite(&fd, &p, (i * 4096) as u64).unwrap();
        }
        // SAFETY: the mapping covers the file's size, and the tests shrink the file only where
        // they then never touch the pages past its new end themselves.
        let m = unsafe { MmapOptions::new().len(LEN).map(&fd) }.unwrap();
        (fd, Map::ReadOnly(m))
    }

    /// Bytes of `map` mapped into this process now (its VMA's Rss in /proc/self/smaps).
    fn resident(map: &Map) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{:x}-", map.ptr() as usize);
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
        assert!(lines.next().is_some(), "no mapping at {start}");
        let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
        let kb: usize = rss.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb << 10
    }

    fn page(map: &Map, i: usize) -> u64 {
        // SAFETY: the page lies inside the mapping and the file (checked by the callers).
        unsafe { (map.ptr().add(i * 4096) as *const u64).read_unaligned() }
    }

    /// Whether this kernel maps pages on request at all: the one capability these tests need.
    /// qemu-user, under which the arm64 suite runs, answers MADV_POPULATE_READ with success and
    /// maps nothing, and has no process_vm_readv; there prefaulting changes nothing (pages are
    /// mapped at first touch) and these tests say so and end.
    fn kernel_populates() -> bool {
        let (_fd, map) = fresh();
        // SAFETY: the range is exactly the mapping just made; populating changes no byte.
        let asked = unsafe {
            rustix::mm::madvise(
                map.ptr().cast(),
                1 << 20,
                rustix::mm::Advice::LinuxPopulateRead,
            )
        };
        let yes = asked.is_ok() && resident(&map) > 0;
        if !yes {
            eprintln!("skipped: this kernel does not map pages on request (MADV_POPULATE_READ)");
        }
        yes
    }

    /// Whether `got` bytes mapped cover a range of `want`: all of it but the odd page the
    /// kernel's fault-around skipped because something else held it locked that instant (the
    /// reader maps those at first touch), and at most the 64 KiB windows around the range's
    /// ends beyond it (a read fault maps the window around it, by either way).
    fn covers(got: usize, want: usize) -> bool {
        got >= want - want / 64 && got <= want + 2 * FAULT_AROUND
    }

    #[test]
    fn both_ways_of_prefaulting_map_the_pages_of_the_range_and_no_others() {
        if !kernel_populates() {
            return;
        }
        for way in WAYS {
            let (_fd, map) = fresh();
            assert_eq!(resident(&map), 0);
            // From an unaligned byte to the end of the first 3 MiB.
            let got = way(&map, 5000, (3 << 20) - 5000);
            if got.is_none() {
                // process_vm_readv filtered out here: populate_read is the way, tested too.
                continue;
            }
            assert_eq!(got, Some(Populated::Done));
            let r = resident(&map);
            assert!(covers(r, 3 << 20), "{r} bytes mapped");
            assert_eq!(way(&map, 3 << 20, LEN), Some(Populated::Done));
            let r = resident(&map);
            assert!(covers(r, LEN), "{r} bytes mapped");
            assert_eq!(page(&map, LEN / 4096 - 1), (LEN / 4096 - 1) as u64);
            // A range past the end is empty, not an error.
            assert_eq!(way(&map, LEN, 1 << 20), Some(Populated::Done));
        }
    }

    /// Pages nobody has written yet (reserved, or a hole) are mapped one fault each, not 16: the
    /// pagemap lookups find them and each is read on its own.
    #[test]
    fn pages_never_written_are_mapped_too() {
        if !kernel_populates() {
            return;
        }
        for reserve in [true, false] {
            let fd =
                rustix::fs::memfd_create("prefault-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
            rustix::fs::ftruncate(&fd, LEN as u64).unwrap();
            if reserve {
                rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, LEN as u64)
                    .unwrap();
            }
            // One page written, in the middle: the rest has never been.
            rustix::io::pwrite(&fd, &7u64.to_le_bytes(), (LEN / 2) as u64).unwrap();
            // SAFETY: the mapping covers the file's size, which stays.
            let map = Map::ReadOnly(unsafe { MmapOptions::new().len(LEN).map(&fd) }.unwrap());
            let got = touch(&map, 0, LEN);
            if got.is_none() {
                continue;
            }
            assert_eq!(got, Some(Populated::Done));
            let r = resident(&map);
            assert!(covers(r, LEN), "reserve {reserve}: {r} bytes mapped");
            assert_eq!(page(&map, LEN / 8192), 7);
            assert_eq!(page(&map, 3), 0);
        }
    }

    #[test]
    fn a_file_cut_short_under_its_mapping_ends_a_prefault_with_no_signal() {
        if !kernel_populates() {
            return;
        }
        for way in WAYS {
            let (fd, map) = fresh();
            rustix::fs::ftruncate(&fd, (LEN / 2) as u64).unwrap();
            let got = way(&map, 0, LEN);
            if got.is_none() {
                continue;
            }
            // The pages past the end cannot be mapped: the call says so (a SIGBUS would have
            // ended this test binary) and the half that exists is mapped and right.
            assert_eq!(got, Some(Populated::Refused));
            let r = resident(&map);
            assert!(covers(r, LEN / 2), "{r} bytes mapped");
            assert_eq!(page(&map, LEN / 8192 - 1), (LEN / 8192 - 1) as u64);
            assert_eq!(prefault_range(&map, 0, LEN / 2), Populated::Done);
        }
    }
}
