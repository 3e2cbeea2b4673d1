#!/usr/bin/env bash
# Runs the nfm command line from a fresh clone: restores the tools and packages and builds (Release) on first use
# or when sources changed, then passes every argument to nfm. Example: bash scripts/nfm.sh demo --out demo-out
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
dotnet tool restore >/dev/null
dotnet paket restore >/dev/null
dotnet build Nfm.Cli/Nfm.Cli.fsproj -c Release -nologo -v q -clp:ErrorsOnly >&2
cd - >/dev/null
exec dotnet "$root/Nfm.Cli/bin/Release/net10.0/nfm.dll" "$@"
