//! A SIGBUS handler for this package's own mappings (Linux).
//!
//! A named segment is a file that any process of the same user can cut short (`ftruncate`) or
//! punch holes in while others map it; a reader that then touches a page past the new end, or a
//! hole that a full `/dev/shm` cannot fill, gets SIGBUS, which kills a Node process. Memfd
//! segments are sealed against that; files cannot be. So a fault at an address inside a range
//! this package mapped is answered by mapping zero pages over the faulting stretch (the same
//! replacement `close` makes) and letting the access run again: the reader lives and reads zeros
//! there, and `faults()` counts it. A fault anywhere else goes to the handler that was installed
//! before, or kills the process as it would have.

/// How many SIGBUS faults inside this package's mappings were answered with zero pages.
pub fn faults() -> u64 {
    imp::FAULTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Watches the range of a new mapping of a segment.
pub(crate) fn watch(ptr: *const u8, len: usize) {
    imp::watch(ptr as usize, len)
}

/// Stops watching the mapping that starts at `ptr`, before it is unmapped.
pub(crate) fn unwatch(ptr: *const u8) {
    imp::unwatch(ptr as usize)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::OnceLock;

    pub(super) static FAULTS: AtomicU64 = AtomicU64::new(0);

    /// One watched range; `start == 0` is a free slot. Fixed-size and lock-free, because the
    /// handler may run at any instant on any thread, including inside `watch` or `unwatch`.
    struct Slot {
        start: AtomicUsize,
        len: AtomicUsize,
    }
    /// As many ranges as the mapping budget lets a process hold (half of vm.max_map_count's
    /// default); a mapping past them is simply not watched.
    const SLOTS: usize = 1 << 15;
    static TABLE: [Slot; SLOTS] = [const {
        Slot {
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
        }
    }; SLOTS];
    /// One past the highest slot ever used: the handler scans no further.
    static HIGH: AtomicUsize = AtomicUsize::new(0);
    /// Replaced at most this much at a time: a cut file faults again further on, a lone hole
    /// costs its neighbours no more than this.
    const STRETCH: usize = 2 << 20;

    struct Previous(libc::sigaction);
    // SAFETY: a sigaction is plain data (a function address, flags, a mask), written once before
    // the handler is installed and only read afterwards.
    unsafe impl Sync for Previous {}
    unsafe impl Send for Previous {}
    static PREVIOUS: OnceLock<Option<Previous>> = OnceLock::new();

    /// Serialises `watch` and `unwatch` (the handler never takes it: it only reads the table).
    static WRITERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    pub(super) fn watch(start: usize, len: usize) {
        if start == 0 || len == 0 {
            return;
        }
        PREVIOUS.get_or_init(install);
        let _writer = WRITERS.lock().unwrap_or_else(|p| p.into_inner());
        for (i, slot) in TABLE.iter().enumerate() {
            if slot.start.load(Ordering::Relaxed) == 0 && slot.len.load(Ordering::Relaxed) == 0 {
                // The length first: a slot is matched only once its start is set too.
                slot.len.store(len, Ordering::Release);
                if slot
                    .start
                    .compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    HIGH.fetch_max(i + 1, Ordering::AcqRel);
                    return;
                }
            }
        }
    }

    pub(super) fn unwatch(start: usize) {
        let _writer = WRITERS.lock().unwrap_or_else(|p| p.into_inner());
        let high = HIGH.load(Ordering::Acquire);
        for slot in &TABLE[..high] {
            if slot
                .start
                .compare_exchange(start, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.len.store(0, Ordering::Release);
                return;
            }
        }
    }

    /// The watched range holding `addr`, if any.
    fn range_of(addr: usize) -> Option<(usize, usize)> {
        let high = HIGH.load(Ordering::Acquire);
        TABLE[..high].iter().find_map(|slot| {
            let start = slot.start.load(Ordering::Acquire);
            let len = slot.len.load(Ordering::Acquire);
            (start != 0 && addr >= start && addr - start < len).then_some((start, len))
        })
    }

    fn install() -> Option<Previous> {
        // SAFETY: sigaction with a zeroed struct as the output and a handler that is an
        // `extern "C"` function which only does async-signal-safe work (atomic loads, mmap).
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            // PREVIOUS is being initialised by this very call: the handler finds it unset (and
            // restores the default) only for a fault that lands in this instant, outside our ranges.
            if libc::sigaction(libc::SIGBUS, &new, &mut old) != 0 {
                return None;
            }
            Some(Previous(old))
        }
    }

    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for a SA_SIGINFO handler.
        let addr = unsafe { (*info).si_addr() } as usize;
        if let Some((start, len)) = range_of(addr) {
            let page = rustix::param::page_size();
            let from = addr & !(page - 1);
            let to = (from + STRETCH).min(start + len);
            // SAFETY: [from, to) lies inside a mapping of this package (a watched range), which
            // is not unmapped while watched; MAP_FIXED swaps those pages for zero pages in one
            // step, exactly as `close` does for a whole mapping. The access is then retried.
            let replaced = unsafe {
                rustix::mm::mmap_anonymous(
                    from as *mut libc::c_void,
                    to - from,
                    rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                    rustix::mm::MapFlags::PRIVATE
                        | rustix::mm::MapFlags::FIXED
                        | rustix::mm::MapFlags::NORESERVE,
                )
            };
            if replaced.is_ok() {
                FAULTS.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        // Not ours (or no memory to answer it): what would have happened without this handler.
        match PREVIOUS.get().and_then(Option::as_ref) {
            Some(Previous(old))
                if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN =>
            {
                // SAFETY: the previous handler was installed for SIGBUS with these flags; it is
                // called as the kernel would have called it.
                unsafe {
                    if old.sa_flags & libc::SA_SIGINFO != 0 {
                        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                            std::mem::transmute(old.sa_sigaction);
                        f(sig, info, ctx);
                    } else {
                        let f: extern "C" fn(libc::c_int) = std::mem::transmute(old.sa_sigaction);
                        f(sig);
                    }
                }
            }
            _ => {
                // SAFETY: restoring the default action; returning re-runs the faulting access,
                // which then ends the process with SIGBUS as if no handler had been installed.
                unsafe {
                    let mut dfl: libc::sigaction = std::mem::zeroed();
                    dfl.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) static FAULTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    pub(super) fn watch(_start: usize, _len: usize) {}
    pub(super) fn unwatch(_start: usize) {}
}
