#!/usr/bin/env bash
# Linux musl, x64 and arm64: the addon built as the GitHub workflow builds it (napi build -x:
# cargo-zigbuild with zig, both from PyPI), and the core crate's Rust tests as static musl
# executables (arm64 under qemu). No musl build of Node.js is in the registries CI reaches,
# so the ava specs run on musl in the workflow's Alpine job only. `musl.sh build`: builds only.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
apt_install python3-venv qemu-user file
rust_targets x86_64-unknown-linux-musl aarch64-unknown-linux-musl
V=$WORK/venv
if [ ! -x "$V/bin/cargo-zigbuild" ]; then
  python3 -m venv "$V"
  PIP_CACHE_DIR=$CACHE/pip "$V/bin/pip" install -q "ziglang==$ZIG_VERSION" cargo-zigbuild
fi
# cargo-zigbuild runs zig as `python3 -m ziglang` when no zig is on PATH: the venv's python.
export PATH=$V/bin:$PATH
export CARGO_TARGET_DIR=$CROSS_TARGET
# build TARGET ARCH: the addon, as the workflow makes it (into .ci-work, leaving the checkout
# alone), and the core crate's tests; what went wrong is kept in $WORK/musl/failed-TARGET.
build() {
  local failed=$WORK/musl/failed-$1
  mkdir -p "$WORK/musl" && rm -f "$failed"
  note "napi build -x --target $1"
  if npx napi build --platform --release --target "$1" -x --manifest-path crates/napi/Cargo.toml \
    --package-json-path package.json --output-dir "$WORK/musl" --no-js > "$LOGS/musl-build-$1.log" 2>&1; then
    file -b "$WORK/musl/sharedobject.linux-$2-musl.node"
  else
    tail -20 "$LOGS/musl-build-$1.log"
    echo "$LOGS/musl-build-$1.log" > "$failed"
  fi
  if [ "$2" = x64 ]; then
    cargo test -q --release --target "$1" -p sharedobject-core --no-run 2> "$LOGS/musl-build-$1-tests.log" || true
  else
    cargo-zigbuild test -q --release --target "$1" -p sharedobject-core --no-run 2> "$LOGS/musl-build-$1-tests.log" || true
  fi
}

for p in x64:x86_64 arm64:aarch64; do build "${p#*:}-unknown-linux-musl" "${p%%:*}"; done
build_only "${1:-}" && exit 0

rc=0
for p in x64:x86_64 arm64:aarch64; do
  arch=${p%%:*} target=${p#*:}-unknown-linux-musl
  # The builds above did nothing when the builds ahead (builds.sh) had made them already.
  L=$LOGS/musl-$arch-rust.log
  if [ "$arch" = x64 ]; then
    note "core tests for $target"
    private_shm cargo test --release --target "$target" -p sharedobject-core --no-fail-fast > "$L" 2>&1 || true
    platform=linux-x64-musl
  else
    note "core tests for $target, under qemu"
    arm64_namespace cargo-zigbuild test --release --target "$target" -p sharedobject-core --no-fail-fast > "$L" 2>&1 || true
    platform="linux-arm64-musl (qemu)"
  fi
  grep -E '^test result' "$L" || true
  # An addon build that failed adds its one failure (its log has no test results) to the tests' counts.
  if [ -f "$WORK/musl/failed-$target" ]; then counts=$(node scripts/counts.mjs "cargo=$L" "cargo=$(cat "$WORK/musl/failed-$target")"); else counts=$(node scripts/counts.mjs "cargo=$L"); fi
  summary "$platform" cargo "$counts" || rc=1
done
exit $rc
