//! The OS's errors, said as ours: a code, and what to do about it.

use std::os::fd::OwnedFd;

use rustix::io::Errno;

use crate::error::{Code, Error};

pub(super) fn os_error(e: Errno, what: &str, id: &str) -> Error {
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
