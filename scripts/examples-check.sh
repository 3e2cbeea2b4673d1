#!/usr/bin/env bash
# Runs every script in examples/ at a small budget (NFM_EXAMPLE_STEPS, default 20 training steps) in a scratch
# folder, so that no example can rot; prints one "[examples] NAME: passed|FAILED (S s)" line per script and exits
# non-zero when any failed. Needs the Release build (scripts/test.sh makes it). The MNIST examples (those that use
# _load.fsx's mnistFolder) run on NFM_MNIST or ../shared/data/mnist and are skipped (not counted) on a machine that has neither.
set -uo pipefail
cd "$(dirname "$0")/.."
export NFM_EXAMPLE_STEPS=${NFM_EXAMPLE_STEPS:-20}
rc=0
for script in examples/*.fsx; do
  name=$(basename "$script")
  [ "$name" = "_load.fsx" ] && continue
  if grep -q mnistFolder "$script" && [ ! -d "${NFM_MNIST:-../shared/data/mnist}" ]; then
    echo "[examples] $name: skipped (no MNIST folder: set NFM_MNIST)"; continue
  fi
  out=$(mktemp -d)
  start=$SECONDS
  if NFM_EXAMPLE_OUT="$out" NFM_PROGRESS=lines dotnet fsi "$script" > "$out/log" 2>&1; then
    echo "[examples] $name: passed ($((SECONDS - start)) s)"
  else
    echo "[examples] $name: FAILED ($((SECONDS - start)) s)"; tail -n 15 "$out/log"; rc=1
  fi
  rm -rf "$out"
done
exit $rc
