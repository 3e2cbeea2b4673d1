#!/usr/bin/env bash
# Proves the packages work outside this repository, on this machine:
#   1. packs Nfm.Core, Nfm.Plots, Nfm.FSharp, Nfm.Laws and the nfm tool (Nfm.Cli) into artifacts/ (gitignored), and
#      checks that no library package names a native backend and that Nfm.FSharp does not pull FsCheck;
#   2. a scratch project in a temporary folder outside the repository references Nfm.FSharp and libtorch-cpu-linux-x64
#      from that local feed and runs a tiny NFM end to end (scripts/package-check/TinyNfm.fs: teacher, NFM coupling,
#      student, W2 to held-out data below 0.6 times that of plain noise); its publish folder runs too;
#   3. a scratch .fsx does the same through `#i "nuget: artifacts"` and `#r "nuget: Nfm.FSharp"` in `dotnet fsi`;
#   4. the `dotnet publish` output of Nfm.Cli runs `--version` and a tiny teacher + NFM student run with a loss plot;
#   5. `dotnet tool install --tool-path` installs the nfm tool from the feed, and it runs the same.
# One line per check, "[packages] NAME: passed" or "[packages] NAME: FAILED", then "N passed, N failed"; the exit code
# is non-zero when a check failed. NFM_PACK_NO_BUILD=1 packs without building (scripts/test.sh has just built).
# Our own packages are removed from the NuGet package cache first (same version 0.1.0, new contents); nothing else in
# that cache is touched.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
artifacts="$repo/artifacts"
work=$(mktemp -d /tmp/nfm-package-check.XXXXXX)
case "$work" in "$repo"/*) echo "the scratch folder must lie outside the repository"; exit 1 ;; esac
trap 'rm -rf "$work"' EXIT
export NFM_NATIVE_CACHE="$work/native-cache" # the patched libLibTorchSharp.so copy of the fsi check, made afresh
pass=0; fail=0
check() {
  local name=$1; shift
  local start=$SECONDS log="$work/log.$((pass + fail))"
  if "$@" > "$log" 2>&1; then echo "[packages] $name: passed ($((SECONDS - start)) s)"; pass=$((pass + 1))
  else echo "[packages] $name: FAILED ($((SECONDS - start)) s)"; tail -n 25 "$log" | sed 's/^/    /'; fail=$((fail + 1)); fi
  grep -h '^tiny NFM:' "$log" | sed 's/^/    /'
}
# Where the system libstdc++ lacks GLIBCXX_3.4.32 (Debian 12), a libLibTorchSharp.so that an application loads must be
# a patched copy (the version requirement weak), and the package cache's own copy must stay as TorchSharp shipped it.
needs_patch() { ! grep -qa GLIBCXX_3.4.32 /usr/lib/x86_64-linux-gnu/libstdc++.so.6 2>/dev/null; }
weak() { readelf -V "$1" 2>/dev/null | grep -E 'Name: GLIBCXX_3\.4\.32 +Flags: WEAK' > /dev/null; }
patched() {
  command -v readelf > /dev/null || return 0
  if needs_patch; then weak "$1" || { echo "$1: GLIBCXX_3.4.32 not marked weak"; return 1; }; fi
  local original="${NUGET_PACKAGES:-$HOME/.nuget/packages}/torchsharp/0.107.0/runtimes/linux-x64/native/libLibTorchSharp.so"
  if [ -f "$original" ] && weak "$original"; then echo "$original (the package cache) was modified"; return 1; fi
}
no_build=(); [ "${NFM_PACK_NO_BUILD:-0}" = "1" ] && no_build=(--no-build)

pack() (
  cd "$repo" &&
  rm -rf "$artifacts" && mkdir -p "$artifacts" &&
  dotnet pack Nfm.Functional.sln -c Release -nologo -v q -clp:ErrorsOnly "${no_build[@]}" -o "$artifacts" &&
  for p in Nfm.Core Nfm.Plots Nfm.FSharp Nfm.Laws Nfm.Cli; do [ -f "$artifacts/$p.0.1.0.nupkg" ] || { echo "missing $p.0.1.0.nupkg"; return 1; }; done &&
  # No library package names a native backend: the application picks it.
  for p in "$artifacts"/*.nupkg; do
    if unzip -p "$p" '*.nuspec' | grep -Ei 'id="(libtorch|[^"]*NativeAssets)'; then echo "$p depends on a native backend"; return 1; fi
  done &&
  # A plain user of Nfm.FSharp does not pull FsCheck (the laws are Nfm.Laws).
  if unzip -p "$artifacts/Nfm.FSharp.0.1.0.nupkg" '*.nuspec' | grep 'id="FsCheck"'; then echo "Nfm.FSharp depends on FsCheck"; return 1; fi &&
  unzip -l "$artifacts/Nfm.Core.0.1.0.nupkg" | grep 'buildTransitive/GlibcxxPatch.cs' > /dev/null
)
check "dotnet pack into artifacts/ (no library package depends on a native backend)" pack

nuget_root=${NUGET_PACKAGES:-$HOME/.nuget/packages}
for p in nfm.core nfm.plots nfm.fsharp nfm.laws nfm.cli; do rm -rf "${nuget_root:?}/$p/0.1.0"; done

scratch_project() (
  mkdir -p "$work/scratch" && cd "$work/scratch" &&
  cp "$repo/scripts/package-check/TinyNfm.fs" "$repo/scripts/package-check/Program.fs" . &&
  cp "$repo/scripts/package-check/Scratch.fsproj.in" Scratch.fsproj &&
  cat > nuget.config <<XML &&
<configuration><packageSources><add key="nfm-local" value="$artifacts" /></packageSources></configuration>
XML
  dotnet run -c Release -nologo -v q &&
  if grep '"FsCheck/' obj/project.assets.json; then echo "the scratch project pulled FsCheck"; exit 1; fi &&
  patched bin/Release/net10.0/runtimes/linux-x64/native/libLibTorchSharp.so &&
  # The package's buildTransitive targets patch the publish folder too.
  dotnet publish -c Release -nologo -v q --no-build -o pub &&
  patched pub/runtimes/linux-x64/native/libLibTorchSharp.so &&
  dotnet pub/Scratch.dll
)
check "a scratch project outside the repository runs a tiny NFM from the packages (built and published)" scratch_project

scratch_script() (
  mkdir -p "$work/fsx" && cd "$work/fsx" &&
  cp "$repo/scripts/package-check/TinyNfm.fs" . &&
  sed "s|@ARTIFACTS@|$artifacts|" "$repo/scripts/package-check/check.fsx" > check.fsx &&
  dotnet fsi check.fsx &&
  if needs_patch; then patched "$NFM_NATIVE_CACHE"/*/libLibTorchSharp.so; fi
)
check "a scratch .fsx (#r \"nuget: Nfm.FSharp\") runs a tiny NFM in dotnet fsi" scratch_script

# A tiny run of a CLI program: version, a 2-D teacher, a student on its NFM coupling with a loss plot (Skia natives).
tiny_cli() {
  local nfm=$1 out=$2
  "$nfm" --version && "$nfm" --version | grep '^nfm 0\.1\.0' > /dev/null &&
  "$nfm" --threads 1 teacher train --data moons --n 2000 --steps 100 --out "$out/t.ckpt" &&
  "$nfm" --threads 1 student train --data moons --n 2000 --coupling "teacher:$out/t.ckpt" --steps 100 --out "$out/s.ckpt" --loss-png "$out/loss.png" &&
  [ -s "$out/loss.png" ]
}
published() (
  cd "$repo" &&
  dotnet publish Nfm.Cli -c Release -nologo -v q -clp:ErrorsOnly "${no_build[@]}" -o "$work/publish" &&
  mkdir -p "$work/publish-run" && tiny_cli "$work/publish/nfm" "$work/publish-run" &&
  patched "$work/publish/runtimes/linux-x64/native/libLibTorchSharp.so"
)
check "the dotnet publish output of Nfm.Cli runs (--version, teacher, NFM student)" published

tool() (
  dotnet tool install --tool-path "$work/tool" --add-source "$artifacts" Nfm.Cli --version 0.1.0 &&
  mkdir -p "$work/tool-run" && tiny_cli "$work/tool/nfm" "$work/tool-run"
)
check "dotnet tool install --tool-path of the nfm tool, and it runs" tool

echo
echo "${pass} passed, ${fail} failed"
[ "$fail" -eq 0 ]
