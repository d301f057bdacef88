//! Background prefault in one process: it covers a mapping left open, and it stops, touching
//! nothing unmapped, when mappings are closed or dropped under it. Its own test binary, so the
//! process-wide counters move only for this file's test (one test: they are shared by threads).
#![cfg(target_os = "linux")]

use std::time::Duration;

use sharedobject_core::{registry, CreateSpec, Kind, Mode};

const LEN: u64 = (64 << 20) / 8;

fn read_f64(v: &sharedobject_core::View, i: usize) -> f64 {
    assert!((i + 1) * 8 <= v.byte_length());
    // SAFETY: in bounds (checked above) and the view is held.
    unsafe { (v.ptr() as *const f64).add(i).read_unaligned() }
}

/// Waits for every started job to end and every thread to leave; a hang fails the test run.
fn settled() -> registry::PrefaultStats {
    loop {
        let s = registry::prefault_stats();
        if s.threads == 0 && s.ended == s.started {
            return s;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// MADV_POPULATE_READ came with Linux 5.14.
fn kernel_populates() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (5, 14)
}

#[test]
fn background_prefault_covers_an_open_mapping_and_stops_at_close_or_drop() {
    let spec = CreateSpec {
        kind: Some(Kind::Float64),
        length: LEN,
        byte_length: LEN * 8,
        reserve: true,
        ..Default::default()
    };
    let bytes: Vec<u8> = (0..LEN).flat_map(|i| (i as f64).to_le_bytes()).collect();
    let owner = registry::create(&spec, Some(&bytes)).unwrap();
    let chunks_per_mapping = (LEN * 8) as usize / registry::PREFAULT_CHUNK;

    // Left open: the whole mapping is populated, and the thread then leaves.
    let v = registry::open_handle(owner.handle(), Some(Mode::CopyOnWrite), false).unwrap();
    assert!(registry::prefault_in_background(&v) || !kernel_populates());
    let done = settled();
    if kernel_populates() {
        assert!(done.chunks as usize >= chunks_per_mapping);
    }
    assert_eq!(read_f64(&v, LEN as usize - 1), (LEN - 1) as f64);
    assert!(v.retire());
    drop(v);

    // Closed or dropped at once, 100 times: every job ends, no thread is left, nothing faults.
    let before = registry::prefault_stats();
    let reps = 100;
    for i in 0..reps {
        let v = registry::open_handle(owner.handle(), Some(Mode::CopyOnWrite), false).unwrap();
        registry::prefault_in_background(&v);
        let at = (i * 4099) % LEN as usize;
        assert_eq!(read_f64(&v, at), at as f64);
        if i % 2 == 0 {
            v.retire();
        }
        drop(v);
    }
    let after = settled();
    assert_eq!(after.threads, 0);
    if kernel_populates() {
        assert_eq!(after.started - before.started, reps as u64);
        assert!(
            ((after.chunks - before.chunks) as usize) < reps * chunks_per_mapping,
            "closes and drops stopped the threads early"
        );
    }
    drop(owner);
}
