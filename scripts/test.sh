#!/usr/bin/env bash
# Runs every test: restores tools and packages, builds once, runs the property suites and the tests,
# and ends with one line "N passed, N failed" (the sum over both runners). Exit code non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
dotnet tool restore >/dev/null || exit 1
dotnet paket restore >/dev/null || exit 1
dotnet build Nfm.Functional.sln -c Release -nologo -v q -clp:ErrorsOnly || { echo "0 passed, 1 failed"; exit 1; }
total_pass=0; total_fail=0; rc=0
for suite in properties/bin/Release/net10.0/Nfm.Properties.dll tests/bin/Release/net10.0/Nfm.Tests.dll; do
  log=$(mktemp)
  dotnet "$suite" "$@" 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  if [ -z "$line" ]; then echo "$suite: no summary line (crashed?)"; total_fail=$((total_fail + 1)); rc=1
  else total_pass=$((total_pass + ${line%% passed*})); f=${line#*, }; total_fail=$((total_fail + ${f%% failed})); fi
  rm -f "$log"
done
echo
echo "${total_pass} passed, ${total_fail} failed"
exit $rc
