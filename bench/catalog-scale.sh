#!/usr/bin/env bash
# Catalog at scale (issue #15 item 1): one blob vault on Azurite holding CS_ITEMS items (default 1,000) assigned to
# CS_HOSTS agent hosts (default 10); the module under test (this tree, ReadyToRun) next to the module before issue #15
# (CS_BASE, default 0c76f88, built from a git worktree), alternated in one run:
#   - agents for every host run in turn until each has written its catalog snapshot (hosts/<host>/catalog.json)
#   - Get-AsrProtectedItem for all items (the module under test takes the snapshotted items from the snapshots), and -Name x (warm session: median of CS_ROUNDS / 4 x CS_ROUNDS calls)
#   - an idle agent for host0 (its share of the items, nothing due: 60-minute points): Azurite's requests over
#     CS_IDLE seconds, counted from Azurite's own debug log (one 'RequestMethod=' line per request), and its ticks
#     (the tick's first request: the listing of hosts/host0/ now, the stop-request check agents/host0.stop before)
#
#   bench/catalog-scale.sh             # CS_ITEMS=1000 CS_HOSTS=10 CS_ROUNDS=5 CS_IDLE=60 CS_SETTLE=20 CS_SETUP_PROCS=4
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
W=${CS_DIR:-/tmp/asr-catalog-scale}
ITEMS=${CS_ITEMS:-1000}; HOSTS=${CS_HOSTS:-10}; PROCS=${CS_SETUP_PROCS:-4}; ROUNDS=${CS_ROUNDS:-5}; IDLE=${CS_IDLE:-60}; SETTLE=${CS_SETTLE:-20}
BASE=${CS_BASE:-0c76f88}
command -v azurite-blob > /dev/null || { echo "azurite-blob is needed (npm install -g azurite)" >&2; exit 2; }
. "$HERE/pwsh.sh"
rm -rf "$W" && mkdir -p "$W/azurite"
cleanup() { [[ -n "${AZ_PID:-}" ]] && kill "$AZ_PID" 2> /dev/null || true; git -C "$REPO" worktree remove --force "$W/base-src" 2> /dev/null || true; }
trap cleanup EXIT

echo "building the module under test (ReadyToRun) and the one at $BASE ..."
dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true "$REPO/src/AsrModule" -p:ModuleOutDir="$W/new/AsrModule/" -nologo > "$W/build-new.log" 2>&1 || { echo "build failed: $W/build-new.log" >&2; exit 1; }
git -C "$REPO" worktree add -q --detach "$W/base-src" "$BASE"
dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true "$W/base-src/src/AsrModule" -p:ModuleOutDir="$W/base/AsrModule/" -nologo > "$W/build-base.log" 2>&1 || { echo "build failed: $W/build-base.log" >&2; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
azurite-blob --blobHost 127.0.0.1 --blobPort "$PORT" --location "$W/azurite" --debug "$W/azurite/debug.log" --skipApiVersionCheck --silent > "$W/azurite.out" 2>&1 &
AZ_PID=$!
sleep 3
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
CS="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$KEY;BlobEndpoint=http://127.0.0.1:$PORT/devstoreaccount1;"
step() { local mod=$1; shift; pinned_pwsh "$W/$mod"; "${PWSH[@]}" -File "$HERE/catalog-scale.ps1" -ConnectionString "$CS" -Container catalog -Work "$W" "$@"; }

echo "== setup: $ITEMS items on $HOSTS hosts (module under test, $PROCS processes), load $(cut -d' ' -f1-3 /proc/loadavg)"
step new -Step init | tee -a "$W/bench.log"
per=$(( (ITEMS + PROCS - 1) / PROCS )); pids=()
for ((p = 0; p < PROCS; p++)); do
    from=$((p * per)); count=$(( from + per > ITEMS ? ITEMS - from : per ))
    (( count > 0 )) && { step new -Step setup -From "$from" -Count "$count" -Hosts "$HOSTS" | tee -a "$W/bench.log" & pids+=($!); }
done
for pid in "${pids[@]}"; do wait "$pid"; done

count_requests() { # start end -> "requests ticks" between two ISO timestamps in Azurite's log
    python3 - "$W/azurite/debug.log" "$1" "$2" << 'PY'
import re, sys
log, start, end = sys.argv[1], sys.argv[2][:23], sys.argv[3][:23]
req = ticks = 0; ops = {}
tick = re.compile(r'prefix=hosts(%2F|/)host0(%2F|/)(&|\s)|/agents/host0\.stop\s')
with open(log, errors='replace') as f:
    for line in f:
        if 'RequestMethod=' not in line: continue
        t = line[:23]
        if t < start or t > end: continue
        req += 1
        if tick.search(line): ticks += 1
        m = re.search(r'RequestMethod=(\S+) RequestURL=\S+?/devstoreaccount1/catalog(\S*)', line)
        if m:
            path = m.group(2)
            kind = m.group(1) + (' list' if 'comp=list' in path else '')
            ops[kind] = ops.get(kind, 0) + 1
print(req, ticks, ' '.join(f'{k.replace(" ", "_")}={v}' for k, v in sorted(ops.items())))
PY
}

echo "== agents write their catalog snapshots (module under test), load $(cut -d' ' -f1-3 /proc/loadavg)"
step new -Step snapshots -Hosts "$HOSTS" | tee -a "$W/bench.log"

for r in 1 2; do
    order="new base"; [[ $r == 2 ]] && order="base new"
    for mod in $order; do
        echo "== round $r, module $mod: listing (load $(cut -d' ' -f1-3 /proc/loadavg))"
        step "$mod" -Step list -Items "$ITEMS" -Rounds "$ROUNDS" | tee -a "$W/bench.log"
        echo "== round $r, module $mod: idle agent for host0, ${IDLE} s"
        out=$(step "$mod" -Step agent -SettleSeconds "$SETTLE" -IdleSeconds "$IDLE")
        echo "$out" >> "$W/bench.log"
        start=$(grep '^MARK start' <<< "$out" | cut -d' ' -f3); end=$(grep '^MARK end' <<< "$out" | cut -d' ' -f3)
        read -r req ticks ops <<< "$(count_requests "$start" "$end")"
        per=$(python3 -c "print(f'{$req / max(1, $ticks):.2f}')")
        line="BENCH step=idle module=$mod round=$r seconds=$IDLE requests=$req ticks=$ticks requests_per_tick=$per $(grep '^BENCH step=agent' <<< "$out" | cut -d' ' -f3-) ops: $ops"
        echo "$line" | tee -a "$W/bench.log"
    done
done
echo "(log: $W/bench.log; Azurite's debug log: $W/azurite/debug.log)"
