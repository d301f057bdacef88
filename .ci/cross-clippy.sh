#!/usr/bin/env bash
# clippy -D warnings on the whole workspace (libraries, tests, build scripts) for the targets
# no machine here can run: macOS x64 and arm64, Windows MSVC x64 and arm64. Only compiles.
# `cross-clippy.sh build`: the same, without the summary lines (the builds ahead, builds.sh).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CARGO_TARGET_DIR=$CROSS_TARGET
rc=0
for p in darwin-x64:x86_64-apple-darwin darwin-arm64:aarch64-apple-darwin \
  win32-x64-msvc:x86_64-pc-windows-msvc win32-arm64-msvc:aarch64-pc-windows-msvc; do
  platform=${p%%:*} target=${p#*:}
  rust_targets "$target"
  L=$LOGS/clippy-$target.log
  if cargo clippy -q --workspace --all-targets --target "$target" -- -D warnings > "$L" 2>&1; then
    build_only "${1:-}" && continue
    summary "$platform" clippy "1 passed, 0 failed, 0 skipped"
  else
    build_only "${1:-}" && continue
    tail -30 "$L"
    summary "$platform" clippy "0 passed, 1 failed, 0 skipped" || rc=1
  fi
done
exit $rc
