#!/usr/bin/env bash
# RTO of a failover into Azure, our side (bench/azure-rto.ps1): a 10-machine recovery plan and a single failover
# against the FAKE Azure Resource Manager (tests/FakeArm, async LRO) with the disks' page blobs in a real Azurite.
#
#   bench/azure-rto.sh                                          # 10 machines, 256 MiB OS + 64 MiB data disks, 30% data, 3 rounds
#   bench/azure-rto.sh -Rounds 5 -OsDiskMB 1024 -DataDiskMB 256 # any azure-rto.ps1 parameter passes through
#
# Environment:
#   AZURE_RTO_BIN     where the Release module snapshot goes (default /tmp/asr-azure-rto-bin)
#   BENCH_NO_BUILD=1  reuse the snapshot already in AZURE_RTO_BIN (and the built fake)
# The module is built into its own directory (-p:ModuleOutDir), so concurrent builds of out/AsrModule in the
# repository cannot change it mid-run; the fake is built in Release (tests/FakeArm/bin/Release). Needs azurite-blob
# (npm install -g azurite). Work dir: -WorkDir (default /tmp/asr-azure-rto); results.md, runs.csv, machines.csv stay there.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BIN=${AZURE_RTO_BIN:-/tmp/asr-azure-rto-bin}
command -v azurite-blob > /dev/null || { echo "azurite-blob is needed (npm install -g azurite)" >&2; exit 2; }

if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
    rm -rf "$BIN"
    mkdir -p "$BIN/out"
    echo "building the module (Release) into $BIN and the fake ARM (Release) ..."
    if ! dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true "$REPO/src/AsrModule" -p:ModuleOutDir="$BIN/out/AsrModule/" -nologo > "$BIN/build.log" 2>&1; then
        # A failed help generation (HelpGen, MSB3073) leaves the packaged module usable; anything else does not.
        if grep -E ' error ' "$BIN/build.log" | grep -vE 'HELPGEN|MSB3073' | head -5 | grep . ; then
            echo "build failed (see $BIN/build.log)" >&2; exit 1
        fi
        echo "  (help generation failed; the module itself built)"
    fi
    dotnet build -c Release "$REPO/tests/FakeArm" -nologo > "$BIN/build-fakearm.log" 2>&1 || { echo "the fake ARM did not build (see $BIN/build-fakearm.log)" >&2; exit 1; }
    [[ -f "$BIN/out/AsrModule/Dependencies/AsrModule.Engine.Azure.dll" ]] || { echo "no module in $BIN/out (see $BIN/build.log)" >&2; exit 1; }
fi
source "$HERE/pwsh.sh"
pinned_pwsh "$BIN/out" || { echo "the pinned pwsh did not start (cd $REPO && dotnet tool restore)" >&2; exit 1; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
exec "${PWSH[@]}" -File "$HERE/azure-rto.ps1" "$@"
