#!/usr/bin/env bash
# Initial replication and export against restic's first backup and restore, in alternated rounds: medians and ratios.
#
#   bench/paired-rounds.sh
#
# Why: run-bench.sh times each tool once; on this shared VM the same step varies by 15-25 % from one minute to the next
# (restic's first backup 8.8-11.8 s, ours 3.0-3.7 s across today's runs), so one run cannot say whether a ratio near
# its goal (issue #15 item 4: initial >= 3x restic, export >= 2x restic's restore) is met. Here both tools run the same
# two steps on the same 2 GiB image BENCH_ROUNDS times, alternating which goes first (ABBA), every step after a page
# cache drop and BENCH_SETTLE seconds (see run-bench.sh), a fresh repository and vault each round; the summary gives each
# step's median, the ratio of the medians, and the median of the per-round ratios.
#
# Environment: BENCH_DIR (default /tmp/asr-rounds, must be absent, empty or an earlier one), BENCH_ROUNDS (default 5),
#   BENCH_SETTLE (default 5), BENCH_SIZE_MB (default 2048), BENCH_NO_BUILD=1 (reuse $BENCH_DIR/bin), BENCH_KEEP=1.
# AsrModule: bench.ps1 steps init and export (fresh pwsh each; the cmdlet's seconds), encrypted local vault, zstd-1.
# restic: `restic backup` and `restic restore latest` wall seconds, local repository. Every export and restore is
# compared with the image by SHA-256.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
W=${BENCH_DIR:-/tmp/asr-rounds}
ROUNDS=${BENCH_ROUNDS:-5}
SIZE_MB=${BENCH_SIZE_MB:-2048}
export BENCH_SETTLE=${BENCH_SETTLE:-5}
KEY='bench-passphrase-0123456789'
source "$HERE/pwsh.sh"

if [[ -e "$W" && ! -f "$W/.asr-rounds" && -n "$(ls -A "$W" 2>/dev/null)" ]]; then
    echo "refusing to use $W: not empty and not an earlier paired-rounds dir" >&2; exit 2
fi
mkdir -p "$W/src"; touch "$W/.asr-rounds"
LOG="$W/rounds.log"; : > "$LOG"
command -v restic > /dev/null || { echo "restic is not installed (apt-get install restic)" >&2; exit 2; }
cleanup() { [[ "${BENCH_KEEP:-0}" == 1 ]] || rm -rf "$W/src" "$W/vault" "$W/repo" "$W/export" "$W/restore" "$W/restic-cache"; }
trap cleanup EXIT

drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; sleep "$BENCH_SETTLE"; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

[[ -f "$W/v1.img" ]] || python3 "$HERE/make-image.py" create "$W/v1.img" "$SIZE_MB" 1 >> "$LOG"
SHA=$(sha256sum "$W/v1.img" | cut -d' ' -f1)
rm -f "$W/src/disk.img"; cp --sparse=never "$W/v1.img" "$W/src/disk.img"
build_module_snapshot "$W/bin" >> "$LOG" 2>&1 || { echo "module build failed (see $LOG)" >&2; exit 1; }
pinned_pwsh "$W/bin/out" 2>> "$LOG"

asr_step() { # step target -> seconds (the BENCH line's), or exits
    local line
    line=$("${PWSH[@]}" -File "$HERE/bench.ps1" -Step "$1" -Vault "$W/vault" -Key "$KEY" -Target "$2" 2>> "$LOG" | tee -a "$LOG" | grep '^BENCH ' | tail -1)
    [[ "$line" == *state=Succeeded* ]] || { echo "AsrModule $1 failed (see $LOG)" >&2; exit 1; }
    sed -n 's/.* seconds=\([^ ]*\).*/\1/p' <<< "$line"
}
check() { [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$SHA" ]] || { echo "$2 does not equal the image" >&2; exit 1; }; }

run_asr() {
    rm -rf "$W/vault" "$W/export"
    drop; A_INIT=$(asr_step init "$W/src/disk.img")
    drop; A_EXP=$(asr_step export "$W/export")
    check "$W/export/disk.img" "AsrModule's export"
}
run_restic() {
    rm -rf "$W/repo" "$W/restore" "$W/restic-cache"
    export RESTIC_REPOSITORY="$W/repo" RESTIC_PASSWORD="$KEY" RESTIC_CACHE_DIR="$W/restic-cache"
    restic init >> "$LOG" 2>&1
    local t0
    drop; t0=$(now); restic backup --host bench "$W/src/disk.img" >> "$LOG" 2>&1; R_INIT=$(elapsed "$t0" "$(now)")
    drop; t0=$(now); restic restore latest --target "$W/restore" >> "$LOG" 2>&1; R_REST=$(elapsed "$t0" "$(now)")
    check "$W/restore$W/src/disk.img" "restic's restore"
    unset RESTIC_REPOSITORY RESTIC_PASSWORD RESTIC_CACHE_DIR
}

echo "paired rounds: $ROUNDS, image ${SIZE_MB} MiB (random/text/zero/zero), settle ${BENCH_SETTLE} s, $(restic version | awk '{print $1, $2}')"
printf '%-6s %-12s %10s %10s %10s %10s %8s %8s\n' round first asr_init restic_init asr_export restic_rest init_x export_x
AI=() RI=() AE=() RR=() XI=() XE=()
for ((r = 1; r <= ROUNDS; r++)); do
    if (( r % 2 )); then first=AsrModule; run_asr; run_restic; else first=restic; run_restic; run_asr; fi
    xi=$(awk -v a="$R_INIT" -v b="$A_INIT" 'BEGIN { printf "%.2f", a / b }')
    xe=$(awk -v a="$R_REST" -v b="$A_EXP" 'BEGIN { printf "%.2f", a / b }')
    AI+=("$A_INIT"); RI+=("$R_INIT"); AE+=("$A_EXP"); RR+=("$R_REST"); XI+=("$xi"); XE+=("$xe")
    printf '%-6s %-12s %10.2f %10.2f %10.2f %10.2f %8s %8s\n' "$r" "$first" "$A_INIT" "$R_INIT" "$A_EXP" "$R_REST" "$xi" "$xe"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mi=$(median "${AI[@]}"); mr=$(median "${RI[@]}"); me=$(median "${AE[@]}"); mt=$(median "${RR[@]}")
echo "medians: AsrModule initial $mi s, restic backup $mr s -> $(awk -v a="$mr" -v b="$mi" 'BEGIN { printf "%.2f", a / b }')x (median of the rounds' ratios $(median "${XI[@]}")x; goal >= 3)"
echo "medians: AsrModule export $me s, restic restore $mt s -> $(awk -v a="$mt" -v b="$me" 'BEGIN { printf "%.2f", a / b }')x (median of the rounds' ratios $(median "${XE[@]}")x; goal >= 2)"
echo "every export and restore equals the image (sha256 $SHA)"
