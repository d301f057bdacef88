#!/usr/bin/env bash
# The builds ahead: what the platform scripts need before they can run (system packages, Node
# builds and runtimes, the Windows, arm64 and musl addons and Rust tests, clippy for the targets
# no machine here runs), made at the lowest priority while the Linux suites run, so that the
# platform scripts find them made. Each script's `build` phase is the same code its full run
# starts with; a build that fails here fails again there, where it is counted. Output: the log
# given as $1.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
exec > "$1" 2>&1
for script in node-versions runtimes wine qemu-arm64 musl cross-clippy; do
  t0=$(date +%s)
  nice -n 19 bash ".ci/$script.sh" build || echo "($script: its build failed here; its run builds again)"
  echo "($script build: $(($(date +%s) - t0)) s)"
done
