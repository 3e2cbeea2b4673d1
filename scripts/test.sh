#!/usr/bin/env bash
# Runs every test: restores tools and packages, builds once, runs the property suites and the tests, then the figure
# checks, the examples and the package checks (each skippable, see below), and ends with one line "N passed, N failed"
# (the sum over all of them). Exit code non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
dotnet tool restore >/dev/null || exit 1
dotnet paket restore >/dev/null || exit 1
dotnet build Nfm.Functional.sln -c Release -nologo -v q -clp:ErrorsOnly || { echo "0 passed, 1 failed"; exit 1; }
total_pass=0; total_fail=0; rc=0
# Adds a suite's "N passed, N failed" line (from its log) to the totals; a log without one counts as a failure.
count_log() {
  local name=$1 log=$2 line f
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  if [ -z "$line" ]; then echo "$name: no summary line (crashed?)"; total_fail=$((total_fail + 1)); rc=1
  else total_pass=$((total_pass + ${line%% passed*})); f=${line#*, }; total_fail=$((total_fail + ${f%% failed})); fi
}
suites_start=$SECONDS
log=$(mktemp)
dotnet properties/bin/Release/net10.0/Nfm.Properties.dll "$@" 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
count_log properties "$log"
rm -f "$log"
# The tests run as NFM_TEST_SHARDS processes at once (default: one per core, at most 2), each with one libtorch thread
# and every N-th test; their output is shown shard by shard when all have finished.
shards=${NFM_TEST_SHARDS:-$(nproc 2>/dev/null || echo 1)}
[ "$shards" -ge 1 ] 2>/dev/null || shards=1
[ "$shards" -le 2 ] || shards=2
logs=(); pids=()
# Job control on: without it, bash starts background jobs with SIGINT ignored, .NET keeps an ignored SIGINT, and the
# tests that interrupt a training run with SIGINT would find it ignored.
set -m
for ((i = 0; i < shards; i++)); do
  logs[i]=$(mktemp)
  NFM_SHARD="$i/$shards" dotnet tests/bin/Release/net10.0/Nfm.Tests.dll "$@" > "${logs[i]}" 2>&1 &
  pids[i]=$!
done
for ((i = 0; i < shards; i++)); do
  wait "${pids[i]}" || rc=1
  echo "[tests] shard $i of $shards:"; cat "${logs[i]}"
  count_log "tests shard $i/$shards" "${logs[i]}"
  rm -f "${logs[i]}"
done
set +m
echo "[suites] the property suites and the tests took $((SECONDS - suites_start)) s"
# Figures that cannot go stale: a fresh `nfm demo` must reproduce the saved results/demo/results.json (every row's value
# and the teacher's figures within 1e-6; it is deterministic on one libtorch thread, per processor kind: see below),
# and every generated table in the README must match its results JSON. NFM_FIGURES=0 skips both (for quick local runs; CI always runs them).
nfm=Nfm.Cli/bin/Release/net10.0/nfm.dll
figure_check() {
  local name=$1; shift
  if "$@"; then echo "[figures] $name: passed"; total_pass=$((total_pass + 1))
  else echo "[figures] $name: FAILED"; total_fail=$((total_fail + 1)); rc=1; fi
}
# The saved run to match is the one made on this processor kind (model name and vector units, as results.json's
# machine.processor records it): results/demo/results.json (the README's figures) or results/demo/machines/*/results.json.
# On a kind with no saved run, bit-for-bit is out of reach (libtorch's kernels round differently), so the check is
# looser and says so: every figure within 0.05 of the README's (two kinds measured 0.015 apart at most, the 2-D W2
# values being 0.17 to 0.45); regenerate one with `nfm demo --out results/demo/machines/NAME` there.
processor_of() { sed -n 's/^ *"processor": "\(.*\)",\{0,1\}$/\1/p' "$1" | head -n 1; }
demo_check() {
  local out=$1 kind ref
  dotnet $nfm demo --out "$out" > "$out/log" 2>&1 || { tail -n 20 "$out/log"; return 1; }
  kind=$(processor_of "$out/results.json")
  for ref in results/demo/results.json results/demo/machines/*/results.json; do
    if [ -f "$ref" ] && [ "$(processor_of "$ref")" = "$kind" ]; then
      echo "[figures] this processor ($kind) made $ref: every figure within 1e-6"
      dotnet $nfm report diff --expected "$ref" --actual "$out/results.json"; return
    fi
  done
  echo "[figures] no saved demo from this processor kind ($kind): every figure within 0.05 of results/demo/results.json"
  dotnet $nfm report diff --expected results/demo/results.json --actual "$out/results.json" --tolerance 0.05
}
# The demo runs on one libtorch thread beside the examples (its figures do not depend on the load; its time does).
if [ "${NFM_FIGURES:-1}" != "0" ]; then
  figure_check "the generated tables of README.md, CONTRIBUTING.md and docs/ match their results JSON" dotnet "$nfm" report readme --check
  demo_out=$(mktemp -d)
  demo_start=$SECONDS
  ( demo_check "$demo_out" > "$demo_out.check" 2>&1; echo $? > "$demo_out.rc"; echo $((SECONDS - demo_start)) > "$demo_out.secs" ) &
  demo_pid=$!
fi

# Every script in examples/ at a small budget (scripts/examples-check.sh, one "[examples] NAME: passed|FAILED" line per
# script), so that no example can rot; each script counts. NFM_EXAMPLES=0 skips them (for quick local runs).
if [ "${NFM_EXAMPLES:-1}" != "0" ]; then
  log=$(mktemp)
  examples_start=$SECONDS
  bash scripts/examples-check.sh 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  echo "[examples] the examples took $((SECONDS - examples_start)) s"
  n_pass=$(grep -cE '^\[examples\] .*: passed' "$log"); n_fail=$(grep -cE '^\[examples\] .*: FAILED' "$log")
  total_pass=$((total_pass + n_pass)); total_fail=$((total_fail + n_fail))
  if [ $((n_pass + n_fail)) -eq 0 ]; then echo "scripts/examples-check.sh: no result lines (crashed?)"; total_fail=$((total_fail + 1)); rc=1; fi
  rm -f "$log"
fi

if [ "${NFM_FIGURES:-1}" != "0" ]; then
  wait "$demo_pid"
  cat "$demo_out.check"
  demo_passed() { [ "$(cat "$demo_out.rc" 2>/dev/null)" = "0" ]; }
  figure_check "a fresh nfm demo reproduces the saved demo of its processor kind" demo_passed
  echo "[figures] the demo took $(cat "$demo_out.secs" 2>/dev/null || echo '?') s (beside the examples)"
  rm -rf "$demo_out" "$demo_out.check" "$demo_out.rc" "$demo_out.secs"
fi

# The packages, used as a user outside the repository would (scripts/package-check.sh): pack into artifacts/, a scratch
# project and a scratch .fsx running a tiny NFM from the local feed, the dotnet publish output and the installed tool.
# Each check counts. NFM_PACKAGES=0 skips them (for quick local runs; CI always runs them).
if [ "${NFM_PACKAGES:-1}" != "0" ]; then
  log=$(mktemp)
  packages_start=$SECONDS
  NFM_PACK_NO_BUILD=1 bash scripts/package-check.sh 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  echo "[packages] the package checks took $((SECONDS - packages_start)) s"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  if [ -z "$line" ]; then echo "scripts/package-check.sh: no summary line (crashed?)"; total_fail=$((total_fail + 1)); rc=1
  else total_pass=$((total_pass + ${line%% passed*})); f=${line#*, }; total_fail=$((total_fail + ${f%% failed})); fi
  rm -f "$log"
fi

echo
echo "${total_pass} passed, ${total_fail} failed"
exit $rc
