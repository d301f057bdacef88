//! The limits this process's memory is bounded by, checked before a segment is made or mapped.
//!
//! The machine's RAM is the loosest of them: a container's memory cgroup, `RLIMIT_AS` and the
//! shared-memory filesystem are usually far tighter, and the kernel answers a segment that
//! overruns its cgroup with the OOM killer (while its pages are allocated), not with an error.
//! So a size is checked against each, and the refusal names the one that refused.

use crate::error::{Code, Error, Result};

/// One limit: how many more bytes it leaves this process, and what it is, for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub room: u64,
    pub what: String,
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// Values at or past this are "no limit" (cgroup v1 writes 2^63 rounded down to a page).
#[cfg(unix)]
const UNLIMITED: u64 = 1 << 62;

#[cfg(target_os = "linux")]
fn read_u64(path: &std::path::Path) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// The directories of this process's memory cgroup and of each of its ancestors, innermost first,
/// with the names of the limit and usage files they hold (v2 `memory.max`/`memory.current`, v1
/// `memory.limit_in_bytes`/`memory.usage_in_bytes`). Found once: a process rarely changes cgroup,
/// and the limits themselves are read afresh at every check.
#[cfg(target_os = "linux")]
fn cgroup_dirs() -> &'static [(std::path::PathBuf, &'static str, &'static str)] {
    use std::path::{Path, PathBuf};
    static DIRS: std::sync::OnceLock<Vec<(PathBuf, &'static str, &'static str)>> =
        std::sync::OnceLock::new();
    DIRS.get_or_init(|| {
        let mut out = Vec::new();
        let Ok(groups) = std::fs::read_to_string("/proc/self/cgroup") else {
            return out;
        };
        let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return out;
        };
        // mountinfo: id parent major:minor root mount-point options... - fstype source super-options
        let mount_of = |v2: bool| -> Option<(String, String)> {
            mounts.lines().find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                let f: Vec<&str> = left.split(' ').collect();
                let r: Vec<&str> = right.split(' ').collect();
                let ok = if v2 {
                    r.first() == Some(&"cgroup2")
                } else {
                    r.first() == Some(&"cgroup")
                        && r.get(2)
                            .is_some_and(|o| o.split(',').any(|x| x == "memory"))
                };
                if !ok {
                    return None;
                }
                Some((f.get(3)?.to_string(), f.get(4)?.to_string()))
            })
        };
        for line in groups.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (v2, files) = if controllers.is_empty() {
                (true, ("memory.max", "memory.current"))
            } else if controllers.split(',').any(|c| c == "memory") {
                (false, ("memory.limit_in_bytes", "memory.usage_in_bytes"))
            } else {
                continue;
            };
            let Some((root, mount)) = mount_of(v2) else {
                continue;
            };
            let rel = path.strip_prefix(root.as_str()).unwrap_or(path);
            let mut dir = PathBuf::from(&mount);
            dir.extend(rel.split('/').filter(|c| !c.is_empty() && *c != ".."));
            // The cgroup and every ancestor up to the mount bound the process.
            let mut at: Option<&Path> = Some(dir.as_path());
            while let Some(d) = at {
                if d.join(files.0).exists() {
                    out.push((d.to_path_buf(), files.0, files.1));
                }
                if d == Path::new(&mount) {
                    break;
                }
                at = d.parent();
            }
        }
        out
    })
}

/// The memory cgroup limits on this process: for each level with a limit, what it leaves.
#[cfg(target_os = "linux")]
fn cgroup_limits(out: &mut Vec<Limit>) {
    for (dir, max_file, used_file) in cgroup_dirs() {
        let Some(max) = read_u64(&dir.join(max_file)).filter(|&m| m < UNLIMITED) else {
            continue;
        };
        // Inactive file pages count as used but are given back under pressure (as `docker
        // stats` reckons): they do not stand in a new segment's way.
        let reclaimable = std::fs::read_to_string(dir.join("memory.stat"))
            .ok()
            .and_then(|stat| {
                stat.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == "total_inactive_file" || k == "inactive_file")
                        .then(|| v.trim().parse::<u64>().ok())?
                })
            })
            .unwrap_or(0);
        let used = read_u64(&dir.join(used_file))
            .unwrap_or(0)
            .saturating_sub(reclaimable);
        out.push(Limit {
            room: max.saturating_sub(used),
            what: format!(
                "the memory cgroup {} ({max_file} {}, {} in use)",
                dir.display(),
                mib(max),
                mib(used)
            ),
        });
    }
}

/// This process's `RLIMIT_AS` (`ulimit -v`), where it has one.
pub fn address_space_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::As)
            .current
            .filter(|&m| m < UNLIMITED)
    }
    #[cfg(not(unix))]
    None
}

/// How far this process's address space reaches, where it can be told: on Linux the stacks sit
/// at its top (the main thread's just below it, other threads' in the mapping area under it), so
/// the power of two above a stack address is its size: 2^47 on x86-64, 2^39 or 2^48 on arm64.
pub fn address_space_size() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let probe = 0u8;
        let at = std::ptr::addr_of!(probe) as u64;
        Some(at.checked_next_power_of_two().unwrap_or(u64::MAX))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// The kernel's commit limit where it is enforced (`vm.overcommit_memory` 2): there a private
/// writable mapping is charged its whole size, whether or not it is ever touched.
pub fn strict_commit_limit() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let mode = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").ok()?;
        if mode.trim() != "2" {
            return None;
        }
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib = info
            .lines()
            .find_map(|l| l.strip_prefix("CommitLimit:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kib.saturating_mul(1024))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// `RLIMIT_AS` less the address space this process uses already.
fn address_space(out: &mut Vec<Limit>) {
    #[cfg(unix)]
    {
        let Some(max) = address_space_limit() else {
            return;
        };
        #[cfg(target_os = "linux")]
        let used = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .map(|pages| pages.saturating_mul(rustix::param::page_size() as u64))
            .unwrap_or(0);
        #[cfg(not(target_os = "linux"))]
        let used = 0;
        out.push(Limit {
            room: max.saturating_sub(used),
            what: format!(
                "RLIMIT_AS (ulimit -v: {} of address space, {} in use)",
                mib(max),
                mib(used)
            ),
        });
    }
    #[cfg(not(unix))]
    let _ = out;
}

/// Free space on the shared-memory filesystem, where named segments live.
fn shm_space(out: &mut Vec<Limit>) {
    #[cfg(target_os = "linux")]
    if let Ok(s) = rustix::fs::statvfs("/dev/shm") {
        let unit = s.f_frsize.max(1);
        out.push(Limit {
            room: s.f_bavail.saturating_mul(unit),
            what: format!(
                "/dev/shm ({} free of {}; give a container more with docker run --shm-size=2g)",
                mib(s.f_bavail.saturating_mul(unit)),
                mib(s.f_blocks.saturating_mul(unit))
            ),
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = out;
}

/// Every limit that bounds a new segment of this process: named ones also by the filesystem.
pub fn limits(named: bool) -> Vec<Limit> {
    let mut out = Vec::new();
    #[cfg(target_os = "linux")]
    cgroup_limits(&mut out);
    address_space(&mut out);
    if named {
        shm_space(&mut out);
    }
    if let Some(ram) = crate::sys::memory_limit() {
        out.push(Limit {
            room: ram,
            what: format!("this machine's memory ({} of RAM and swap)", mib(ram)),
        });
    }
    out
}

/// The tightest limit, if any.
pub fn least(named: bool) -> Option<Limit> {
    limits(named).into_iter().min_by_key(|l| l.room)
}

/// Refuses a new segment of `needed` bytes that a limit of this process cannot hold.
/// `what` names the segment in the message ("segment \"x\"", "a new segment").
pub fn check_create(what: &str, needed: u64, named: bool) -> Result<()> {
    match least(named) {
        Some(l) if needed > l.room => Err(Error::new(
            Code::NoSpace,
            format!(
                "not enough memory for {what}: it needs {}, and {} leaves {}. Free or close vectors you no \
                 longer need, or give the process or container more memory.",
                mib(needed),
                l.what,
                mib(l.room)
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuses a mapping of `needed` bytes that this process's address space cannot hold: mapping
/// someone else's pages costs address space, not memory.
pub fn check_map(id: &str, needed: u64) -> Result<()> {
    let mut out = Vec::new();
    address_space(&mut out);
    match out.into_iter().next() {
        Some(l) if needed > l.room => Err(Error::new(
            Code::NoSpace,
            format!(
                "cannot map segment {id:?} of {}: {} leaves {}",
                mib(needed),
                l.what,
                mib(l.room)
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    // A 64-bit Linux process's stacks are far above 4 GiB (under qemu's user mode too), in the
    // main thread and in any other.
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn the_address_space_size_is_a_power_of_two_past_4_gib() {
        for size in [
            address_space_size(),
            std::thread::spawn(address_space_size).join().unwrap(),
        ] {
            let size = size.unwrap();
            assert!(size.is_power_of_two() && size > 1 << 32, "{size:#x}");
        }
    }

    // Linux always knows its RAM, so there is a least limit to find.
    #[test]
    fn the_least_limit_is_named() {
        let all = limits(true);
        assert!(!all.is_empty(), "RAM at least");
        let l = least(true).unwrap();
        assert!(all.iter().all(|x| x.room >= l.room));
        let e = check_create("x", u64::MAX / 2, true).unwrap_err();
        assert_eq!(e.code, Code::NoSpace);
        assert!(e.message.contains(&l.what), "{}", e.message);
        assert!(check_create("x", 4096, false).is_ok());
    }
}

/// Whether this process has used up (or all but a few of) its descriptors. A segment that could
/// not be made or opened for want of one may succeed once the engine has collected the vectors
/// nobody holds any more, each of which may hold a descriptor until then.
#[cfg(target_os = "linux")]
pub fn descriptors_exhausted() -> bool {
    let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current else {
        return false;
    };
    match std::fs::read_dir("/proc/self/fd") {
        // read_dir holds one descriptor itself while it counts.
        Ok(d) => d.count() as u64 + 8 >= limit,
        // Not even one descriptor left to count them with.
        Err(e) => matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)),
    }
}

/// Descriptors are not a limit this package meets outside Linux (no memfds are held).
#[cfg(not(target_os = "linux"))]
pub fn descriptors_exhausted() -> bool {
    false
}
