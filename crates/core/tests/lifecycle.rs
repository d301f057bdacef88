//! Segments end to end in one process: create, open in both modes, release, free, sweep.
//! Cross-process behaviour is tested from JavaScript with real child processes.

use sharedobject_core::{registry, Code, CreateSpec, Kind, Mode};

fn spec(len: u64) -> CreateSpec<'static> {
    CreateSpec {
        kind: Some(Kind::Float64),
        length: len,
        byte_length: len * 8,
        reserve: true,
        ..Default::default()
    }
}

fn read_f64(v: &sharedobject_core::View, i: usize) -> f64 {
    assert!((i + 1) * 8 <= v.byte_length());
    // SAFETY: in bounds (checked above) and the view is not released yet.
    unsafe { (v.ptr() as *const f64).add(i).read_unaligned() }
}

fn write_f64(v: &sharedobject_core::View, i: usize, x: f64) {
    assert!((i + 1) * 8 <= v.byte_length());
    // SAFETY: as in read_f64; views are writable in both modes.
    unsafe { (v.ptr() as *mut f64).add(i).write_unaligned(x) }
}

fn bytes_of(xs: &[f64]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn created_data_is_read_back_through_a_second_mapping() {
    let owner = registry::create(&spec(3), Some(&bytes_of(&[1.5, 2.5, 3.5]))).unwrap();
    let other = registry::open_handle(owner.handle(), None, false).unwrap();
    assert_eq!(other.header().length, 3);
    assert_eq!(read_f64(&other, 2), 3.5);
    assert!(
        other.owner(),
        "the owning process stays the owner whichever view it uses"
    );
    assert_eq!(
        other.ptr(),
        owner.ptr(),
        "one mapping per segment and mode in a process"
    );
    let handle = owner.handle().to_string();
    drop(other);
    drop(owner);
    assert_eq!(
        registry::open_handle(&handle, None, false)
            .unwrap_err()
            .code,
        Code::NotFound,
        "the owner's last view went and the handle was never handed out: the segment is gone"
    );
}

#[test]
fn a_handed_out_segment_outlives_its_owners_views_until_freed() {
    let owner = registry::create(&spec(1), Some(&bytes_of(&[9.0]))).unwrap();
    let handle = owner.handle().to_string();
    assert!(registry::hand_out(&handle, None).unwrap());
    drop(owner);
    let again = registry::open_handle(&handle, None, false).unwrap();
    assert_eq!(read_f64(&again, 0), 9.0);
    drop(again);
    assert!(registry::free_handle(&handle).unwrap());
    assert_eq!(
        registry::open_handle(&handle, None, false)
            .unwrap_err()
            .code,
        Code::NotFound
    );
}

// Windows cannot replace a view's pages in place.
#[cfg(unix)]
#[test]
fn a_retired_mapping_reads_zeros_and_the_next_open_maps_afresh() {
    let owner = registry::create(&spec(2), Some(&bytes_of(&[1.0, 2.0]))).unwrap();
    let handle = owner.handle().to_string();
    registry::hand_out(&handle, None).unwrap();
    let other = registry::open_handle(&handle, None, false).unwrap();
    assert!(other.is_live());
    assert!(owner.retire());
    assert!(!other.is_live(), "closed for every view of the mapping");
    assert!(!owner.retire(), "retiring twice is a no-op");
    assert!(!other.retire(), "retiring twice is a no-op");
    drop(other);
    assert_eq!(
        read_f64(&owner, 1),
        0.0,
        "zero pages, never unmapped memory"
    );
    write_f64(&owner, 1, 5.0);
    let fresh = registry::open_handle(&handle, None, false).unwrap();
    assert_ne!(fresh.ptr(), owner.ptr());
    assert_eq!(
        read_f64(&fresh, 1),
        2.0,
        "writes to a retired view go nowhere"
    );
    let weak = owner.downgrade();
    registry::free_handle(&handle).unwrap();
    drop((fresh, owner));
    assert!(
        weak.upgrade().is_none(),
        "the retired range is given back with its last view"
    );
}

#[test]
fn copy_on_write_views_keep_their_writes_to_themselves() {
    // Three pages of doubles: the private write copies the first page only.
    let owner = registry::create(&spec(1536), None).unwrap();
    let private = registry::open_handle(owner.handle(), Some(Mode::CopyOnWrite), false).unwrap();
    assert_ne!(private.ptr(), owner.ptr());
    write_f64(&private, 0, 99.0);
    assert_eq!(read_f64(&owner, 0), 0.0);
    // Page by page on Linux and Windows; macOS copies the whole vector when it is opened.
    #[cfg(not(target_os = "macos"))]
    {
        write_f64(&owner, 1500, 7.0);
        assert_eq!(
            read_f64(&private, 1500),
            7.0,
            "pages not yet copied still show shared writes"
        );
    }
    write_f64(&owner, 1, 5.0);
    assert_eq!(read_f64(&private, 1), 0.0, "a copied page no longer does");
    drop(private);
    drop(owner);
}

#[test]
fn the_sharers_copy_on_write_choice_is_the_default_for_openers() {
    let s = CreateSpec {
        copy_on_write: true,
        ..spec(1)
    };
    let owner = registry::create(&s, None).unwrap();
    let opened = registry::open_handle(owner.handle(), None, false).unwrap();
    assert_eq!(opened.mode(), Mode::CopyOnWrite);
    let shared = registry::open_handle(owner.handle(), Some(Mode::Shared), false).unwrap();
    assert_eq!(shared.mode(), Mode::Shared);
    drop((shared, opened, owner));
}

#[test]
fn free_removes_the_name_but_mapped_views_keep_working() {
    let s = CreateSpec {
        named: true,
        ..spec(1)
    };
    let owner = registry::create(&s, Some(&bytes_of(&[42.0]))).unwrap();
    assert!(registry::free(owner.id()).unwrap());
    assert!(!registry::exists(owner.id()).unwrap());
    assert_eq!(read_f64(&owner, 0), 42.0);
    assert_eq!(
        registry::open_handle(owner.handle(), None, false)
            .unwrap_err()
            .code,
        Code::NotFound
    );
    drop(owner);
}

#[test]
fn persistent_segments_survive_their_owners_release() {
    let s = CreateSpec {
        persist: true,
        ..spec(1)
    };
    let owner = registry::create(&s, None).unwrap();
    let (id, handle) = (owner.id().to_string(), owner.handle().to_string());
    drop(owner);
    assert!(registry::exists(&id).unwrap());
    let again = registry::open_handle(&handle, None, false).unwrap();
    drop(again);
    assert!(registry::free(&id).unwrap());
}

#[test]
fn user_ids_are_exclusive_and_validated() {
    let s = CreateSpec {
        id: Some("core-test-exclusive"),
        ..spec(1)
    };
    let owner = registry::create(&s, None).unwrap();
    assert_eq!(registry::create(&s, None).unwrap_err().code, Code::Exists);
    drop(owner);
    let bad = CreateSpec {
        id: Some("../etc/passwd"),
        ..spec(1)
    };
    assert_eq!(registry::create(&bad, None).unwrap_err().code, Code::Name);
}

#[test]
fn developer_segments_follow_the_seed() {
    let id = registry::allocate(10, None).unwrap();
    assert!(registry::last_created().is_some());
    assert!(registry::exists(&id).unwrap());
    let v = registry::open_id(&id, Some(Mode::Shared)).unwrap();
    assert!(v.byte_length() >= 10);
    drop(v);
    assert!(registry::exists(&id).unwrap(), "unmapping does not free");
    assert!(registry::free(&id).unwrap());
    assert!(!registry::exists(&id).unwrap());

    let named = registry::allocate(10, Some("core-test-dev")).unwrap();
    assert_eq!(named, "core-test-dev");
    assert_eq!(
        registry::allocate(10, Some("core-test-dev")).unwrap(),
        "core-test-dev"
    );
    assert_eq!(
        registry::allocate(1_000_000, Some("core-test-dev"))
            .unwrap_err()
            .code,
        Code::Exists
    );
    assert!(registry::free("core-test-dev").unwrap());
}

#[test]
fn lengths_that_do_not_match_the_kind_are_refused() {
    let s = CreateSpec {
        byte_length: 7,
        ..spec(1)
    };
    assert_eq!(
        registry::create(&s, None).unwrap_err().code,
        Code::OutOfRange
    );
    let huge = CreateSpec {
        length: u64::MAX / 2,
        byte_length: u64::MAX / 2,
        kind: Some(Kind::Uint8),
        ..spec(0)
    };
    assert_eq!(
        registry::create(&huge, None).unwrap_err().code,
        Code::OutOfRange
    );
}

#[test]
fn our_own_live_segments_are_listed_and_never_swept() {
    let owner = registry::create(
        &CreateSpec {
            named: true,
            ..spec(1)
        },
        None,
    )
    .unwrap();
    #[cfg(target_os = "linux")]
    {
        let unnamed = registry::create(&spec(1), None).unwrap();
        let l = registry::list()
            .unwrap()
            .into_iter()
            .find(|l| l.id == unnamed.id())
            .expect("an unnamed segment is listed");
        assert!(!l.named);
    }
    let listed = registry::list()
        .unwrap()
        .into_iter()
        .find(|l| l.id == owner.id())
        .expect("listed");
    assert_eq!(listed.owner_alive, Some(true));
    assert_eq!(listed.header.kind, Kind::Float64);
    assert!(registry::sweep(false)
        .unwrap()
        .iter()
        .all(|l| l.id != owner.id()));
    assert!(registry::exists(owner.id()).unwrap());
    drop(owner);
}

#[cfg(target_os = "linux")]
#[test]
fn a_segment_that_is_not_ours_is_a_bad_header_and_is_left_alone() {
    let path = "/dev/shm/sobj.core-test-foreign";
    std::fs::write(path, vec![7u8; 4096]).unwrap();
    let err = registry::open_id("core-test-foreign", None).unwrap_err();
    assert_eq!(err.code, Code::BadHeader);
    assert!(registry::sweep(false)
        .unwrap()
        .iter()
        .all(|l| l.id != "core-test-foreign"));
    assert!(
        std::path::Path::new(path).exists(),
        "a failed open removes nothing"
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_name_freed_and_made_again_is_another_segment() {
    let s = CreateSpec {
        id: Some("core-test-reborn"),
        ..spec(1)
    };
    let first = registry::create(&s, Some(&bytes_of(&[1.0]))).unwrap();
    assert!(registry::free("core-test-reborn").unwrap());
    let second = registry::create(&s, Some(&bytes_of(&[2.0]))).unwrap();
    // The old handle names the freed segment, even in the process that still maps it.
    assert_eq!(
        registry::open_handle(first.handle(), None, false)
            .unwrap_err()
            .code,
        Code::NotFound
    );
    assert!(!registry::handle_is_current(first.handle()).unwrap());
    assert!(registry::handle_is_current(second.handle()).unwrap());
    // Releasing the old owner's view must not remove the new segment's name.
    drop(first);
    assert!(registry::exists("core-test-reborn").unwrap());
    let again = registry::open_handle(second.handle(), None, false).unwrap();
    assert_eq!(read_f64(&again, 0), 2.0);
    drop(again);
    drop(second);
    assert!(!registry::exists("core-test-reborn").unwrap());
}
