#!/usr/bin/env bash
# RPO of the replication agent under a sustained write load (bench/agent-rpo.ps1), on a Release build.
#
#   bench/agent-rpo.sh                                   # 4 GiB disk, 10 MiB/s, 300 s (the issue's figures)
#   bench/agent-rpo.sh -SizeGB 1 -DurationSeconds 90     # quick check; any agent-rpo.ps1 parameter passes through
#   bench/agent-rpo.sh -FileSystem xfs -FrequencySeconds 5 -RpoGoalSeconds 15   # disk on a loop-mounted XFS (reflink=1):
#                                                        # reflink clone + FIEMAP cycles, a point every 5 s (root; xfsprogs)
#
# Environment:
#   AGENT_RPO_BIN     where the Release module snapshot goes (default /tmp/asr-agent-rpo-bin)
#   BENCH_NO_BUILD=1  reuse the snapshot already in AGENT_RPO_BIN
# The module is built into its own directory (-p:ModuleOutDir), so concurrent builds of out/AsrModule in
# the repository cannot change it mid-run; agent-rpo.ps1 runs in the pinned pwsh (.config/dotnet-tools.json)
# with that snapshot first on PSModulePath. Needs python3 (the writer). Work dir: -WorkDir (default
# /tmp/asr-agent-rpo); results.md, samples.csv, cycles.csv and the logs stay there.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BIN=${AGENT_RPO_BIN:-/tmp/asr-agent-rpo-bin}
command -v python3 > /dev/null || { echo "python3 is needed for the writer process" >&2; exit 2; }

source "$HERE/pwsh.sh"
build_module_snapshot "$BIN" || exit 1
pinned_pwsh "$BIN/out" || { echo "the pinned pwsh did not start (cd $REPO && dotnet tool restore)" >&2; exit 1; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
exec "${PWSH[@]}" -File "$HERE/agent-rpo.ps1" "$@"
