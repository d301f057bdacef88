//! POSIX shared memory. On Linux, a named segment is a file in `/dev/shm` opened with
//! `O_NOFOLLOW | O_NONBLOCK` and checked (a regular file of this user) before anything is read,
//! and an unnamed one is a sealed memfd that other processes open through
//! `/proc/<owner pid>/fd/<fd>`. macOS has only `shm_open` and keeps no listing, so a directory of
//! empty marker files stands in for one.
//!
//! One file per concern: `file` opens and checks a segment's file, `map` holds every mapping and
//! its unsafe code, `create` makes named segments, `memfd` the unnamed ones (Linux), `names`
//! removes and lists names, `process` says who a process is, and `error` turns the OS's errors
//! into ours.

mod create;
mod error;
mod file;
mod map;
#[cfg(target_os = "linux")]
mod memfd;
mod names;
mod process;

pub(crate) use create::{create_named, memory_limit};
pub(crate) use file::{exists, open_named, File};
pub(crate) use map::{control, map_file, max_map_count, prefault, retire, Access, Map};
#[cfg(target_os = "linux")]
pub(crate) use memfd::{create_memfd, list_memfds, open_memfd};
pub(crate) use names::{list_ids, unlink, unlink_checked};
pub(crate) use process::{current_process, owner_alive};
