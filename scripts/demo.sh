#!/usr/bin/env bash
# The main job on a fresh clone: build, then `nfm demo` (results in demo-out/ unless --out is given).
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@")
[[ " ${args[*]-} " == *" --out "* ]] || args+=(--out demo-out)
exec bash scripts/nfm.sh demo "${args[@]}"
