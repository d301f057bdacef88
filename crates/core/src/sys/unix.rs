//! POSIX shared memory. On Linux, a named segment is a file in `/dev/shm` opened with
//! `O_NOFOLLOW | O_NONBLOCK` and checked (a regular file of this user) before anything is read,
//! and an unnamed one is a sealed memfd that other processes open through
//! `/proc/<owner pid>/fd/<fd>`. macOS has only `shm_open` and keeps no listing, so a directory of
//! empty marker files stands in for one.
//!
//! One file per concern: `file` opens and checks a segment's file, `map` holds every mapping and
//! its unsafe code, `create` makes named segments, `memfd` the unnamed ones (Linux), `names`
//! removes and lists names, `process` says who a process is, and `error` turns the OS's errors
//! into ours. What Linux and macOS do differently below those (names, allocation, markers,
//! process start times) is in `linux` and `macos`, the same small set of functions in each.

mod create;
mod error;
mod file;
mod map;
#[cfg(target_os = "linux")]
mod memfd;
mod names;
mod process;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as os;
#[cfg(not(target_os = "linux"))]
mod macos;
#[cfg(not(target_os = "linux"))]
use macos as os;

pub(crate) use create::create_named;
pub(crate) use file::{exists, open_named, File};
#[cfg(target_os = "linux")]
pub(crate) use linux::{task_stack_image, task_start_time, task_stat};
pub(crate) use map::{control, map_file, prefault, retire, Access, Map};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use map::{prefault_range, Populated};
#[cfg(target_os = "linux")]
pub(crate) use memfd::{create_memfd, list_memfds, open_memfd};
pub(crate) use names::{list_ids, unlink, unlink_checked};
pub(crate) use os::{max_map_count, memory_limit};
pub(crate) use process::{current_pid, current_process, owner_alive};

/// How a segment's name is opened (`os::open_name`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    Read,
    Write,
    /// A new one, exclusively, with mode 0600.
    Create,
}
