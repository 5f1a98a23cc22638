#!/usr/bin/env bash
# ReadyToRun: the same module built as IL only (`dotnet build -c Release`) and precompiled (`dotnet publish -r linux-x64
# -p:PublishReadyToRun=true`, what build.ps1 -Task Package ships), timed by hyperfine as whole fresh pwsh processes:
#   list  : Import-Module, Connect-AsrVault, Get-AsrProtectedItem -Name x
#   delta : Import-Module, Connect-AsrVault, one Invoke-AsrReplication after 1% of the image's 4 KiB blocks were rewritten
#           (hyperfine --prepare rewrites them and drops the page cache before every run)
#
#   bench/ready-to-run.sh            # R2R_SIZE_MB (default 512) image, R2R_RUNS (default 10) runs of each command
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
W=${R2R_DIR:-/tmp/asr-ready-to-run}
SIZE_MB=${R2R_SIZE_MB:-512}
RUNS=${R2R_RUNS:-10}
command -v hyperfine > /dev/null || { echo "hyperfine is needed (apt-get install -y hyperfine)" >&2; exit 2; }
. "$HERE/pwsh.sh"
rm -rf "$W" && mkdir -p "$W"
echo "building the module twice (IL, ReadyToRun) into $W ..."
dotnet build -c Release "$REPO/src/AsrModule" -p:ModuleOutDir="$W/il/AsrModule/" -nologo > "$W/build-il.log" 2>&1 || { echo "build failed: $W/build-il.log" >&2; exit 1; }
dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true "$REPO/src/AsrModule" -p:ModuleOutDir="$W/r2r/AsrModule/" -nologo > "$W/build-r2r.log" 2>&1 || { echo "publish failed: $W/build-r2r.log" >&2; exit 1; }
python3 "$HERE/make-image.py" create "$W/disk.img" "$SIZE_MB" > /dev/null
pinned_pwsh "$W/r2r"; "${PWSH[@]}" -File "$HERE/ready-to-run.ps1" -Step setup -Vault "$W/vault" -Disk "$W/disk.img"
cat > "$W/mutate.py" << 'PY'
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDWR); blocks = os.fstat(fd).st_size // 4096; rng = random.Random()
for b in rng.sample(range(blocks), blocks // 100): os.pwrite(fd, rng.randbytes(4096), b * 4096)
os.fsync(fd); os.close(fd)
PY
drop='sync; echo 3 > /proc/sys/vm/drop_caches 2> /dev/null || true'
cmd() { pinned_pwsh "$W/$1"; printf '%q ' "${PWSH[@]}" -File "$HERE/ready-to-run.ps1" -Step "$2" -Vault "$W/vault"; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine -N --runs "$RUNS" --warmup 1 --export-markdown "$W/list.md" -n il-list "$(cmd il list)" -n r2r-list "$(cmd r2r list)"
hyperfine --runs "$RUNS" --prepare "python3 $W/mutate.py $W/disk.img; $drop" --export-markdown "$W/delta.md" \
    -n il-delta "$(cmd il delta)" -n r2r-delta "$(cmd r2r delta)"
cat "$W/list.md" "$W/delta.md"
