#!/usr/bin/env bash
# The Windows x64 addon and the core crate's Rust test executables, cross-built with MinGW
# (x86_64-pc-windows-gnu), for the Wine runs, in $CROSS_TARGET (the Wine runs install the addon
# as dist/sharedobject.win32-x64-msvc.node, the name dist/binding.js loads on an official
# node.exe). Writes the test executables' paths to $WORK/win/tests.txt.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
apt_install gcc-mingw-w64-x86-64 mingw-w64-x86-64-dev
rust_targets x86_64-pc-windows-gnu
W=$WORK/win
mkdir -p "$W"

# napi-build panics on *-windows-gnu unless it finds a libnode.dll to link (-lnode). The addon
# is built with napi/dyn-symbols (it finds Node-API in the host process at load time, as the
# MSVC builds always do), so it imports nothing from node: an empty DLL name and an empty
# import archive satisfy the build script.
mkdir -p "$W/libnode"
: > "$W/libnode/libnode.dll"
[ -f "$W/libnode/libnode.dll.a" ] || x86_64-w64-mingw32-ar rcs "$W/libnode/libnode.dll.a"
export LIBNODE_PATH=$W/libnode CARGO_TARGET_DIR=$CROSS_TARGET

note "cargo build: the addon for x86_64-pc-windows-gnu"
cargo build -q --release --target x86_64-pc-windows-gnu -p sharedobject-napi --features napi/dyn-symbols
x86_64-w64-mingw32-objdump -p "$CROSS_TARGET/x86_64-pc-windows-gnu/release/sharedobject_napi.dll" | grep 'DLL Name' | sort -u | tr -s '\t ' ' '

note "cargo test --no-run: the core crate's tests for x86_64-pc-windows-gnu"
cargo test -q --release --target x86_64-pc-windows-gnu -p sharedobject-core --no-run --message-format=json \
  | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      for (const l of s.split("\n")) { try { const m = JSON.parse(l); if (m.executable && m.profile?.test) console.log(m.executable) } catch {} } })' \
  > "$W/tests.txt"
cat "$W/tests.txt"
