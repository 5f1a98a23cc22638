#!/usr/bin/env bash
# Requests per cycle on a blob vault (Azurite) as an item's points accumulate, for one or more module builds in turn
# (issue #15: retention re-read every kept point's manifest after each cycle; bench/README.md "cycle-requests").
#
#   bench/cycle-requests.sh MODULE_ROOT [MODULE_ROOT ...]     # roots holding AsrModule/ (see bench/first-cycle.sh)
#   CR_CYCLES=40 (default)
# Prints each build's per-cycle lines and a summary: requests of cycles 1-5 and of the last 5 (median).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
source "$HERE/pwsh.sh"
CYCLES=${CR_CYCLES:-40}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for root in "$@"; do
    root=$(realpath "$root")
    pinned_pwsh "$root"
    out=$("${PWSH[@]}" -File "$HERE/cycle-requests.ps1" -Cycles "$CYCLES" | grep '^CYCLE')
    echo "== $root"; echo "$out"
    first=$(echo "$out" | head -5 | sed -n 's/.* requests=\([0-9]*\).*/\1/p' | median)
    last=$(echo "$out" | tail -5 | sed -n 's/.* requests=\([0-9]*\).*/\1/p' | median)
    lastget=$(echo "$out" | tail -5 | sed -n 's/.* gets=\([0-9]*\).*/\1/p' | median)
    echo "SUMMARY $root: requests per cycle, median of cycles 1-5: $first; of cycles $((CYCLES-4))-$CYCLES: $last (GETs $lastget)"
done
