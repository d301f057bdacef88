//! `include/sharedobject.h` against the core: a C program built with the header prints its
//! constants, its kind table and the fields it reads from a header the core encoded, and every
//! line must equal what the core itself says. A flag, kind, offset or version added on one side
//! only fails here, and so does a header one side accepts and the other refuses.
#![cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use sharedobject_core::header::{self, Header};
use sharedobject_core::Kind;

const PROGRAM: &str = r#"
#include <stdio.h>
#include <inttypes.h>
#include "sharedobject.h"

int main(int argc, char **argv) {
  unsigned char seg[SOBJ_HEADER_SIZE];
  FILE *f;
  unsigned i;
  if (argc != 2 || !(f = fopen(argv[1], "rb")) || fread(seg, 1, sizeof seg, f) != sizeof seg) return 2;
  fclose(f);
  sobj_header h;
  printf("magic %s\n", SOBJ_MAGIC);
  printf("table_magic %s %u\n", SOBJ_TABLE_MAGIC, (unsigned)(sizeof SOBJ_TABLE_MAGIC - 1));
  printf("version %u\n", (unsigned)SOBJ_VERSION);
  printf("oldest_version %u\n", (unsigned)SOBJ_OLDEST_VERSION);
  printf("arrow_control_offset %u\n", (unsigned)SOBJ_ARROW_CONTROL_OFFSET);
  printf("header_size %u\n", (unsigned)SOBJ_HEADER_SIZE);
  printf("data_align %u\n", (unsigned)SOBJ_DATA_ALIGN);
  printf("max_attributes %u\n", (unsigned)SOBJ_MAX_ATTRIBUTES);
  printf("aux_words %u\n", (unsigned)SOBJ_AUX_WORDS);
  printf("flag_copy_on_write %u\n", (unsigned)SOBJ_FLAG_COPY_ON_WRITE);
  printf("flag_persist %u\n", (unsigned)SOBJ_FLAG_PERSIST);
  printf("flag_developer %u\n", (unsigned)SOBJ_FLAG_DEVELOPER);
  printf("flag_freed %u\n", (unsigned)SOBJ_FLAG_FREED);
  printf("flag_unreserved %u\n", (unsigned)SOBJ_FLAG_UNRESERVED);
  printf("known_flags %u\n", (unsigned)SOBJ_KNOWN_FLAGS);
  printf("kind_count %u\n", (unsigned)SOBJ_KIND_COUNT);
  for (i = 0; i < SOBJ_KIND_COUNT + 4u; i++) {
    const char *name = sobj_kind_name((uint16_t)i);
    if (name) printf("kind %u %s %" PRIu64 "\n", i, name, sobj_kind_element_size((uint16_t)i));
  }
  printf("field kind %u\n", (unsigned)sobj_field_kind(seg));
  printf("field flags %u\n", (unsigned)sobj_field_flags(seg));
  printf("field length %" PRIu64 "\n", sobj_field_length(seg));
  printf("field byte_length %" PRIu64 "\n", sobj_field_byte_length(seg));
  printf("field data_offset %" PRIu64 "\n", sobj_field_data_offset(seg));
  printf("field generation %" PRIu64 "\n", sobj_field_generation(seg));
  printf("field owner_pid %u\n", (unsigned)sobj_field_owner_pid(seg));
  printf("field attributes_len %u\n", (unsigned)sobj_field_attributes_len(seg));
  printf("field owner_start %" PRIu64 "\n", sobj_field_owner_start(seg));
  printf("field owner_pidns %" PRIu64 "\n", sobj_field_owner_pidns(seg));
  printf("field created_ms %" PRIu64 "\n", sobj_field_created_ms(seg));
  for (i = 0; i < SOBJ_AUX_WORDS; i++) printf("field aux%u %" PRIu64 "\n", i, sobj_field_aux(seg, i));
  printf("check %d\n", sobj_header_check(seg, UINT64_MAX / 2, &h));
  if (sobj_header_check(seg, UINT64_MAX / 2, &h) == SOBJ_OK) {
    printf("control_offset %" PRIu64 "\n", sobj_control_offset(&h));
    printf("segment_size %" PRIu64 "\n", sobj_segment_size(&h));
  }
  return 0;
}
"#;

/// What the C program must print, from the core's own constants and a header it encoded.
fn expected(h: &Header) -> String {
    let mut s = String::new();
    let magic = std::str::from_utf8(&header::MAGIC).unwrap();
    writeln!(s, "magic {magic}").unwrap();
    let table = std::str::from_utf8(&header::ARROW_MAGIC).unwrap();
    writeln!(s, "table_magic {} 8", table.trim_end_matches('\0')).unwrap();
    writeln!(s, "version {}", header::VERSION).unwrap();
    writeln!(s, "oldest_version {}", header::OLDEST_VERSION).unwrap();
    writeln!(s, "arrow_control_offset {}", header::ARROW_CONTROL_OFFSET).unwrap();
    writeln!(s, "header_size {}", header::FIXED_SIZE).unwrap();
    writeln!(s, "data_align {}", header::DATA_ALIGN).unwrap();
    writeln!(s, "max_attributes {}", header::MAX_ATTRIBUTES).unwrap();
    writeln!(s, "aux_words {}", header::AUX_WORDS).unwrap();
    writeln!(s, "flag_copy_on_write {}", header::FLAG_COPY_ON_WRITE).unwrap();
    writeln!(s, "flag_persist {}", header::FLAG_PERSIST).unwrap();
    writeln!(s, "flag_developer {}", header::FLAG_DEVELOPER).unwrap();
    writeln!(s, "flag_freed {}", header::FLAG_FREED).unwrap();
    writeln!(s, "flag_unreserved {}", header::FLAG_UNRESERVED).unwrap();
    writeln!(s, "known_flags {}", header::KNOWN_FLAGS).unwrap();
    let count = Kind::ALL.iter().map(|k| *k as u16 + 1).max().unwrap();
    writeln!(s, "kind_count {count}").unwrap();
    for k in Kind::ALL {
        let size = k.element_size().unwrap_or(0);
        writeln!(s, "kind {} {} {size}", k as u16, k.name()).unwrap();
    }
    writeln!(s, "field kind {}", h.kind as u16).unwrap();
    writeln!(s, "field flags {}", h.flags).unwrap();
    writeln!(s, "field length {}", h.length).unwrap();
    writeln!(s, "field byte_length {}", h.byte_length).unwrap();
    writeln!(s, "field data_offset {}", h.data_offset).unwrap();
    writeln!(s, "field generation {}", h.generation).unwrap();
    writeln!(s, "field owner_pid {}", h.owner_pid).unwrap();
    writeln!(s, "field attributes_len {}", h.attributes_len).unwrap();
    writeln!(s, "field owner_start {}", h.owner_start).unwrap();
    writeln!(s, "field owner_pidns {}", h.owner_pidns).unwrap();
    writeln!(s, "field created_ms {}", h.created_ms).unwrap();
    for (i, w) in h.aux.iter().enumerate() {
        writeln!(s, "field aux{i} {w}").unwrap();
    }
    // Every flag the core defines is one the C reader accepts.
    writeln!(s, "check 0").unwrap();
    writeln!(s, "control_offset {}", h.control_offset()).unwrap();
    writeln!(s, "segment_size {}", h.segment_size()).unwrap();
    s
}

/// What the C program's `check` line says of a header, and whether the core accepts it too.
fn check_line(out: &str) -> i32 {
    out.lines()
        .find_map(|l| l.strip_prefix("check "))
        .expect("a check line")
        .parse()
        .unwrap()
}

#[test]
fn the_c_header_states_the_cores_constants_kinds_and_offsets() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::temp_dir().join(format!("sobj-c-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Every field distinct, so a field read at another field's offset shows; every flag set.
    let h = Header {
        kind: Kind::Float64,
        flags: header::KNOWN_FLAGS,
        length: 3,
        byte_length: 24,
        data_offset: Header::data_offset_for(5),
        generation: 0x0102_0304_0506_0708,
        owner_pid: 0x1122_3344,
        attributes_len: 5,
        owner_start: 0x2233_4455_6677_8899,
        owner_pidns: 0x3344_5566_7788_99aa,
        created_ms: 0x0000_0190_0000_0001,
        aux: [0; header::AUX_WORDS],
    };
    let src = dir.join("print_header.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let exe = dir.join("print_header");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(root.join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("{cc} is needed to check the C header: {e}"));
    assert!(
        built.status.success(),
        "the header does not compile: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let print = |bytes: &[u8]| -> String {
        let seg = dir.join("header.bin");
        std::fs::write(&seg, bytes).unwrap();
        let out = Command::new(&exe).arg(&seg).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let table = Header {
        kind: Kind::Arrow,
        byte_length: 4242,
        ..h.clone()
    };
    for h in [&h, &table] {
        let got = print(&h.encode());
        let want = expected(h);
        for (g, w) in got.lines().zip(want.lines()) {
            assert_eq!(g, w, "include/sharedobject.h disagrees with the core");
        }
        assert_eq!(got.lines().count(), want.lines().count(), "{got}");
    }
    // Both sides accept, or both refuse, each of these: a table whose control word counts opens,
    // version 1 of other kinds; a version 1 table (SOBJ_E_VERSION), a magic of another kind
    // than the kind code's (SOBJ_E_MAGIC).
    let patched = |h: &Header, at: usize, bytes: &[u8]| {
        let mut b = h.encode();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    let mut old_table = patched(&table, 0, &header::MAGIC);
    old_table[8..10].copy_from_slice(&1u16.to_le_bytes());
    let cases: [(&str, [u8; header::FIXED_SIZE], i32); 5] = [
        (
            "counted table",
            patched(&table, 120, &(3u64 | 1 << 63).to_le_bytes()),
            0,
        ),
        ("version 1 float64", patched(&h, 8, &1u16.to_le_bytes()), 0),
        ("version 1 table", old_table, -4),
        (
            "table with SHAREDOB",
            patched(&table, 0, &header::MAGIC),
            -3,
        ),
        (
            "float64 with ARROW1",
            patched(&h, 0, &header::ARROW_MAGIC),
            -3,
        ),
    ];
    for (what, bytes, code) in cases {
        assert_eq!(check_line(&print(&bytes)), code, "{what}: the C check");
        assert_eq!(
            Header::decode(&bytes, u64::MAX / 2).is_ok(),
            code == 0,
            "{what}: the core"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
