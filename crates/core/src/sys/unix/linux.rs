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

/// Field `n` (0 is the state) of the fields that follow the command name in the `/proc` stat of
/// task `tid` of process `pid`; `None` where the stat has fewer. The file is generated on each
/// read and is a few hundred bytes, so it is read in one call into a buffer on the stack (the growing
/// buffer of `read_to_string` took six). The command name may hold spaces and parentheses: the
/// fields resume after the last ')'.
pub(crate) fn task_stat_field(pid: u32, tid: u32, n: usize) -> std::io::Result<Option<String>> {
    with_task_stat(pid, tid, |fields| {
        fields
            .nth(n)
            .map(|f| String::from_utf8_lossy(f).into_owned())
    })
}

/// Where a task's start time (the stat's 22nd field) and its process's stack address (the
/// 28th) are among the fields after the state's.
const START_FIELD: usize = 19;
const STACK_FIELD: usize = 25;

/// What the `/proc` stat of task `tid` of process `pid` says of it, from one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskStat {
    /// The state letter (`R`, `S`, `Z`...).
    pub(crate) state: u8,
    /// When the task started, in clock ticks since boot (the 22nd field).
    pub(crate) start: Option<u64>,
    /// Where its process's stack starts (the 28th field), folded as [`task_stack_image`] does.
    pub(crate) stack_image: Option<u32>,
}

/// The stat of task `tid` of process `pid`, read once; `None` where it holds too few fields.
pub(crate) fn task_stat(pid: u32, tid: u32) -> std::io::Result<Option<TaskStat>> {
    with_task_stat(pid, tid, |fields| {
        let fields: Vec<&[u8]> = fields.take(STACK_FIELD + 1).collect();
        let number =
            |i: usize| -> Option<u64> { std::str::from_utf8(fields.get(i)?).ok()?.parse().ok() };
        Some(TaskStat {
            state: *fields.first()?.first()?,
            start: number(START_FIELD),
            stack_image: number(STACK_FIELD).and_then(fold_stack),
        })
    })
}

/// A stack address folded to 32 bits, never 0 (0 is "unknown"); none for 0 (hidden).
fn fold_stack(at: u64) -> Option<u32> {
    (at != 0).then(|| ((at ^ (at >> 32)) as u32).max(1))
}

/// Hands the fields after the command name of task `tid`'s `/proc` stat to `f`.
fn with_task_stat<T>(
    pid: u32,
    tid: u32,
    read: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> Option<T>,
) -> std::io::Result<Option<T>> {
    use std::io::Read;
    let mut f = std::fs::File::open(format!("/proc/{pid}/task/{tid}/stat"))?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            // The kernel hands a stat over whole, ending with a newline, in one read: asking
            // again only to be told it ended is one more system call per look.
            Ok(k) if buf[len + k - 1] == b'\n' => {
                len += k;
                break;
            }
            Ok(k) => len += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let stat = &buf[..len];
    let Some(close) = stat.iter().rposition(|&c| c == b')') else {
        return Ok(None);
    };
    let mut fields = stat[close + 1..]
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty());
    Ok(read(&mut fields))
}

/// When task `tid` of process `pid` started, in clock ticks since boot: the stat's 22nd field,
/// the 20th after the state.
pub(crate) fn task_start_time(pid: u32, tid: u32) -> Option<u64> {
    task_stat_field(pid, tid, START_FIELD).ok()??.parse().ok()
}

/// Where the stack of process `pid` starts (the stat's 28th field, the 25th after the state),
/// folded to 32 bits; `None` where it is not shown. Only `exec` sets it, at a random address
/// where the kernel randomises the address space, so a value that changed says the process
/// exec'd: whatever it held before is gone though its pid, start time and main thread remain.
/// The kernel shows it only to those who may trace the process (its user, root); others read 0.
pub(crate) fn task_stack_image(pid: u32) -> Option<u32> {
    fold_stack(task_stat_field(pid, pid, STACK_FIELD).ok()??.parse().ok()?)
}

/// A process's start time (clock ticks since boot), from `/proc/<pid>/task/<pid>/stat`: qemu-user
/// fakes `/proc/<pid>/stat` for the processes it runs (a few ticks off, different per thread),
/// but passes the task's stat through unchanged.
pub(super) fn start_time(pid: u32) -> Option<u64> {
    task_start_time(pid, pid)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread whose name holds spaces and parentheses: its stat's fields are still found after
    /// the name, and its start time is the one the process stat's 22nd field gives its thread.
    #[test]
    fn task_stat_fields_follow_the_last_parenthesis() {
        let pid = std::process::id();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("a) b (c) 1 2".into())
            .spawn(move || {
                // SAFETY: gettid takes no arguments and cannot fail.
                tx.send(unsafe { libc::syscall(libc::SYS_gettid) } as u32)
                    .unwrap();
                done_rx.recv().ok();
            })
            .unwrap();
        let tid = rx.recv().unwrap();
        let state = task_stat_field(pid, tid, 0).unwrap().unwrap();
        assert!(matches!(state.as_str(), "R" | "S" | "D"), "state {state:?}");
        let raw = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
        assert!(raw.contains("(a) b (c) 1 2)"), "{raw}");
        let want: u64 = raw[raw.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .nth(19)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(task_start_time(pid, tid), Some(want));
        assert_eq!(task_stat_field(pid, tid, 10_000).unwrap(), None);
        // One read gives the same as one read per field.
        let whole = task_stat(pid, tid).unwrap().unwrap();
        assert!(
            matches!(whole.state, b'R' | b'S' | b'D'),
            "state {}",
            whole.state
        );
        assert_eq!(whole.start, Some(want));
        let main = task_stat(pid, pid).unwrap().unwrap();
        assert_eq!(main.start, task_start_time(pid, pid));
        assert_eq!(main.stack_image, task_stack_image(pid));
        done_tx.send(()).unwrap();
        t.join().unwrap();
        // A task that is gone is an error the callers tell apart (NotFound). The kernel reaps
        // a thread a moment after `join` returns (it wakes the joiner first): wait for that.
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let err = loop {
            match task_stat_field(pid, tid, 0) {
                Err(e) => break e,
                Ok(_) if std::time::Instant::now() < end => std::thread::yield_now(),
                Ok(s) => panic!("task {tid} still has a stat ({s:?}) 5 s after it ended"),
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
