#!/usr/bin/env bash
# RTO of a boot-verified drill (issue #16 item 5, bench/drill-rto.ps1): a recovery plan of 10 real bootable test machines
# (tests/Boot: syslinux, the Debian kernel, busybox initramfs, ext4 data partition), each drilled from the vault and booted
# under QEMU (KVM if /dev/kvm is usable, else TCG) with its check; time from the run's start until every machine was ready.
#
#   bench/drill-rto.sh                              # 10 machines, plans "grouped" (1, 3, 6) and "flat" (all 10 at once), 3 rounds
#   bench/drill-rto.sh -Machines 4 -Rounds 1        # any drill-rto.ps1 parameter passes through
#
# Environment:
#   DRILL_RTO_BIN     where the Release module snapshot goes (default /tmp/asr-drill-rto-bin)
#   BENCH_NO_BUILD=1  reuse the snapshot already in DRILL_RTO_BIN
# Needs the Debian packages of tests/Boot/README.md (qemu-system-x86, qemu-utils, syslinux, mtools, dosfstools, fdisk,
# cpio, busybox-static, e2fsprogs) and chromium for the report's screenshot. Work dir: -WorkDir (default
# /tmp/asr-drill-rto); results.md, runs.csv, machines.csv, report.html, report.png stay there.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BIN=${DRILL_RTO_BIN:-/tmp/asr-drill-rto-bin}
command -v qemu-system-x86_64 > /dev/null || { echo "qemu-system-x86_64 is needed (apt-get install qemu-system-x86)" >&2; exit 2; }
source "$HERE/pwsh.sh"
build_module_snapshot "$BIN" || exit 1
pinned_pwsh "$BIN/out" || { echo "the pinned pwsh did not start (cd $REPO && dotnet tool restore)" >&2; exit 1; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
exec "${PWSH[@]}" -File "$HERE/drill-rto.ps1" -BootScripts "$REPO/tests/Boot" "$@"
