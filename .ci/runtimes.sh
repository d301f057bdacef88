#!/usr/bin/env bash
# Deno and Bun on Linux x64: the runtime scenarios of __test__/runtimes/run.mjs (ava does not
# run under them) under each, in a private /dev/shm. The binaries come from the npm registry:
# the packages `deno` and `bun` fetch them in install scripts from their per-platform optional
# dependencies (@deno/linux-x64-glibc, @oven/bun-linux-x64), which are unpacked here directly,
# so no install script runs. Needs a built checkout (npm run build). Takes a few seconds a
# runtime. The scenarios (a forked and a spawned child, child.send on both channels with and
# without install(), a receiver's free, opens: 1, close, a mutex across processes, worker
# threads) are the promises a runtime of its own can break; the rest of the suite exercises
# the core and the facade, which are the same on every runtime. The same runner under Node is
# a check of the runner itself. `runtimes.sh build`: fetches the runtimes only.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
rc=0
deno=$(npm_unpack @deno/linux-x64-glibc "$DENO_VERSION")/deno
bun=$(npm_unpack @oven/bun-linux-x64 "$BUN_VERSION")/bin/bun
build_only "${1:-}" && exit 0
# Deno: -A for the addon (--allow-ffi) and for /dev/shm, /proc and child processes; its cache
# and no update check, inside .ci-work.
export DENO_DIR=$WORK/deno-dir DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
for r in deno bun; do
  log=$LOGS/linux-x64-$r.log
  if [ "$r" = deno ]; then cmd=("$deno" run -A); v=$("$deno" --version | head -1 | cut -d' ' -f2); else cmd=("$bun"); v=$("$bun" --version); fi
  note "$r $v: __test__/runtimes/run.mjs ($log)"
  # A hung runtime cannot hold CI: each scenario has its own 30 s bound, the whole run 80 s.
  timeout -k 5 80 bash -c 'source .ci/lib.sh; private_shm "$@"' sh "${cmd[@]}" __test__/runtimes/run.mjs > "$log" 2>&1 || true
  grep -E '^(# |ok - |not ok - |tests: )' "$log" || true
  summary linux-x64 "$r $v" "$(counts_of "$log")" || rc=1
done
exit $rc
