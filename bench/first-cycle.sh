#!/usr/bin/env bash
# A session's first cycle, two module builds side by side (alternated, medians): a fresh pwsh process per run, the
# page cache dropped before each, on the PRODUCT.md benchmark image (bench/make-image.py: 2 GiB, 1% of blocks rewritten).
#
#   bench/first-cycle.sh A_ROOT B_ROOT          # module roots: directories holding AsrModule/ (e.g. two `build.ps1
#                                               # -Task Package` outputs' parents, or copies of out/)
#   FC_STEP=init bench/first-cycle.sh A_ROOT B_ROOT
#
# delta (default): one initial replication of v1 (build A, untimed) is kept as vault0; every run copies it back, puts v2
#   in place and times the first Invoke-AsrReplication of the process, then a second one in the same process (warm).
# init: every run times Enable-AsrReplication of v1 into a new vault.
# Environment: FC_ROUNDS=5  FC_SIZE_MB=2048  FC_DIR=/tmp/asr-first-cycle (images kept there between runs)
# Prints each run and then, per build, the median [all runs] and the ratio B/A of the medians.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
source "$HERE/pwsh.sh"
A=$(realpath "$1"); B=$(realpath "$2")
STEP=${FC_STEP:-delta}; ROUNDS=${FC_ROUNDS:-5}; SIZE_MB=${FC_SIZE_MB:-2048}; W=${FC_DIR:-/tmp/asr-first-cycle}
for m in "$A" "$B"; do [[ -f "$m/AsrModule/AsrModule.psd1" ]] || { echo "$m has no AsrModule/AsrModule.psd1" >&2; exit 2; }; done
mkdir -p "$W/src"
if [[ ! -f "$W/v2-$SIZE_MB.img" ]]; then
    python3 "$HERE/make-image.py" create "$W/v1-$SIZE_MB.img" "$SIZE_MB" 1
    python3 "$HERE/make-image.py" mutate "$W/v1-$SIZE_MB.img" "$W/v2-$SIZE_MB.img" 0.01 2
fi
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2> /dev/null || true; }
run() { # module_root step -> FIRSTCYCLE line
    pinned_pwsh "$1"
    "${PWSH[@]}" -File "$HERE/first-cycle.ps1" "$2" "$W/vault" "$W/src/disk.img" | grep '^FIRSTCYCLE'
}
if [[ $STEP == delta ]]; then
    rm -rf "$W/vault0" "$W/vault"; cp --sparse=never "$W/v1-$SIZE_MB.img" "$W/src/disk.img"
    pinned_pwsh "$A"; "${PWSH[@]}" -File "$HERE/first-cycle.ps1" init "$W/vault0" "$W/src/disk.img" | grep '^FIRSTCYCLE' | sed 's/^/vault0: /'
fi
declare -A S F
for r in $(seq "$ROUNDS"); do
    for label in A B; do
        root=$A; [[ $label == B ]] && root=$B
        rm -rf "$W/vault"
        if [[ $STEP == delta ]]; then cp -a "$W/vault0" "$W/vault"; cp --sparse=never "$W/v2-$SIZE_MB.img" "$W/src/disk.img"
        else cp --sparse=never "$W/v1-$SIZE_MB.img" "$W/src/disk.img"; fi
        drop
        line=$(run "$root" "$STEP") || { echo "round $r $label FAILED: $line"; exit 1; }
        echo "round $r $label: $line"
        S[$label]+="$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<< "$line") "
        F[$label]+="$(sed -n 's/.* second=\([0-9.]*\).*/\1/p' <<< "$line") "
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ma=$(echo "${S[A]}" | median); mb=$(echo "${S[B]}" | median)
echo "A ($A): $STEP median $ma s [${S[A]% }]$([[ $STEP == delta ]] && echo "; warm second cycle median $(echo "${F[A]}" | median) s")"
echo "B ($B): $STEP median $mb s [${S[B]% }]$([[ $STEP == delta ]] && echo "; warm second cycle median $(echo "${F[B]}" | median) s")"
awk -v a="$ma" -v b="$mb" -v s="$STEP" -v r="$ROUNDS" -v m="$SIZE_MB" 'BEGIN { printf "B/A = %.2f (%s, %d alternated rounds, %s MiB image)\n", b / a, s, r, m }'
