#!/usr/bin/env bash
# Windows x64 under Wine 10 with Node 24 (which aborts at start under Wine 8): Wine 10 comes
# from Debian 13 in a debootstrap chroot, run in a private mount namespace with its own
# /dev/shm. Runs the same Rust test executables and ava specs as wine.sh, on the same build.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
apt_install debootstrap
wine_setup 10 "$NODE_WIN_X64_WINE10"

# The chroot is a download: kept in the cache when there is one, made whole or not at all.
R=$CACHE/trixie
if [ ! -f "$R/.complete" ]; then
  note "debootstrap Debian 13 into $R, then Wine 10 in it"
  rm -rf "$R"
  debootstrap --variant=minbase trixie "$R" http://deb.debian.org/debian > "$LOGS/debootstrap.log" 2>&1
  cp /etc/resolv.conf "$R/etc/resolv.conf"
  chroot "$R" /usr/bin/env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin sh -c \
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wine wine64 >/dev/null'
  touch "$R/.complete"
fi

# in_trixie SCRIPT: runs SCRIPT in the chroot with /dev, /proc, a private /dev/shm, and this
# checkout at the same path; the variables it needs are passed by name.
in_trixie() {
  R=$R ROOT=$ROOT WORK=$WORK unshare -m --propagation private sh -c '
    mount --rbind /dev "$R/dev" && mount -t tmpfs -o size=2g tmpfs "$R/dev/shm"
    mount -t proc proc "$R/proc"
    mkdir -p "$R$ROOT" && mount --bind "$ROOT" "$R$ROOT"
    case "$WORK" in "$ROOT"/*) ;; *) mkdir -p "$R$WORK" && mount --bind "$WORK" "$R$WORK" ;; esac
    exec chroot "$R" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin LANG=C.UTF-8 \
      WINEPREFIX="$WINEPREFIX" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" \
      NODE_EXE="$NODE_EXE" L="$L" TESTS="$TESTS" ROOT="$ROOT" sh -c "$1"' sh "$1"
}

# Wine 10 has bcryptprimitives.dll and defaults to Windows 10: the prefix needs nothing more.
in_trixie_tests() {
  in_trixie 'cd "$ROOT" || exit 1
  [ -d "$WINEPREFIX/drive_c/windows/system32" ] || wineboot --init >/dev/null 2>&1'"$1"
}
wine_run "$(in_trixie 'wine --version' | sed 's/^wine-//; s/ .*//')" "$NODE_WIN_X64_WINE10" in_trixie_tests
