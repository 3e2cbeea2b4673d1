#!/usr/bin/env bash
# The demo's comparison over five seeds: `nfm compare --data checkerboard --budget quick --seed S` for S = 0..4 into
# results/demo-seeds/seed-S/ (two at a time on two cores; each uses one libtorch thread). The README's seed table is
# generated from these files by `nfm report readme`. Usage: bash scripts/demo-seeds.sh [OUT_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${1:-results/demo-seeds}"
bash "$root/scripts/nfm.sh" --version >/dev/null   # builds once before the runs start
mkdir -p "$out"
run() { dotnet "$root/Nfm.Cli/bin/Release/net10.0/nfm.dll" compare --data checkerboard --budget quick --seed "$1" \
          --out "$out/seed-$1" > "$out/seed-$1.log" 2>&1 && echo "seed $1 done" || { echo "seed $1 failed, see $out/seed-$1.log"; return 1; }; }
pids=()
for s in 0 1 2 3 4; do
  run "$s" & pids+=($!)
  if [ $(( ${#pids[@]} % 2 )) -eq 0 ]; then wait "${pids[@]}"; pids=(); fi
done
[ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
