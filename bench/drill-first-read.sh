#!/usr/bin/env bash
# Drill time-to-first-read on 1 GiB and 8 GiB disks (PRODUCT.md mix), through a real NBD client.
#   bench/drill-first-read.sh          (BENCH_DIR, default /tmp/asr-drill-bench; needs qemu-utils)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
W=${BENCH_DIR:-/tmp/asr-drill-bench}
rm -rf "$W"; mkdir -p "$W"
command -v qemu-io >/dev/null || { echo "qemu-io missing: apt-get install qemu-utils" >&2; exit 2; }
dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true "$REPO/src/AsrModule" -v q -nologo >/dev/null     # packages out/AsrModule
source "$HERE/pwsh.sh"
pinned_pwsh "$REPO/out"                                                   # the pinned pwsh, importing out/AsrModule
for gib in 1 8; do python3 "$HERE/make-image.py" create "$W/disk${gib}g.img" $((gib * 1024)) >/dev/null; done
"${PWSH[@]}" -File "$HERE/drill-first-read.ps1" -WorkDir "$W" -Images "$W/disk1g.img,$W/disk8g.img" | grep '^BENCH'
rm -rf "$W"
