#!/usr/bin/env bash
# Puts the glibc 2.17 cross toolchain for TARGET where `napi build --use-napi-cross` looks for
# it (~/.napi-rs/cross-toolchain/<@napi-rs/cross-toolchain version>/TARGET), taken from a
# version of the toolchain package that the registry has: @napi-rs/cross-toolchain 1.0.5 asks
# for target packages @1.0.5, which were never published for these targets (ETARGET).
# Usage (after npm ci): seed-napi-cross.sh x86_64-unknown-linux-gnu|aarch64-unknown-linux-gnu
set -euo pipefail
target=${1:?target triple}
cd "$(dirname "$0")/.."
case "$(uname -m):$target" in
  x86_64:x86_64-unknown-linux-gnu) pkg=@napi-rs/cross-toolchain-x64-target-x86_64@1.0.0 ;;
  x86_64:aarch64-unknown-linux-gnu) pkg=@napi-rs/cross-toolchain-x64-target-aarch64@1.0.3 ;;
  *) echo "no known toolchain package for $target on $(uname -m)" >&2; exit 1 ;;
esac
version=$(node -p 'require("@napi-rs/cross-toolchain/package.json").version')
dest=$HOME/.napi-rs/cross-toolchain/$version/$target
if [ -f "$dest/package.json" ]; then
  echo "$dest is there already"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$pkg" >/dev/null && tar -xzf ./*.tgz)
mkdir -p "$dest"
tar -xJf "$tmp/package/$target.tar.xz" -C "$dest"
echo "seeded $dest from $pkg"
