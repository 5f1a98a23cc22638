#!/usr/bin/env bash
# Ten agents on one blob vault (issue #15 item 2): TA_AGENTS agents (host names h00.., each its own process) protecting
# TA_ITEMS items each on one blob vault served by Azurite, for TA_MINUTES of cycles at their policy's cadence, while a
# writer process keeps changing random blocks of random disks. Measures points per minute, failed cycles, cycle
# times (p50/p95/p99 from the agents' ReplicationCycle jobs), Azurite requests per cycle (Azurite's own debug log:
# one 'RequestMethod=' line per request), stalled hosts (a heartbeat PUT of agents/<host>.json more than 15 s = 3
# heartbeat intervals after the previous one, or Get-AsrAgent not Running in a sample), lease/lock trouble (agent
# logs, events); then checks that no point was lost (every sequence 1..LastPointSequence of every item is listed)
# and verifies points with Test-AsrRecoveryPoint.
#
#   bench/ten-agents.sh     # TA_AGENTS=10 TA_ITEMS=100 (per agent) TA_MINUTES=30 TA_FREQ_SECONDS=300 TA_DISK_KB=256
#                           # TA_WRITES=20 (4 KiB blocks rewritten per second, each on a random disk of a random item)
#                           # TA_SAMPLE=30 (s between Get-AsrAgent samples) TA_SETUP_PAR=4 (Enable processes at once)
#                           # TA_VERIFY=sample (every point of TA_VERIFY_ITEMS=100 random items + the latest point of
#                           # every item) or all (every point of every item); TA_VERIFY_PAR=2; TA_DIR=/tmp/asr-ten-agents
#   TA_AGENTS=2 TA_ITEMS=10 TA_MINUTES=3 TA_FREQ_SECONDS=30 bench/ten-agents.sh     # a quick look
#   touch $TA_DIR/stop      # ends the run phase early (agents stopped, then the analysis and verification run)
# Results: $TA_DIR/results.md (also printed); raw: samples.csv, cycles.csv, events.csv, items.csv, points-*.jsonl,
# tests-*.jsonl, agents/*.log, azurite/debug.log.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
W=${TA_DIR:-/tmp/asr-ten-agents}
AGENTS=${TA_AGENTS:-10}; PER=${TA_ITEMS:-100}; MINUTES=${TA_MINUTES:-30}; FREQ=${TA_FREQ_SECONDS:-300}
DISK_KB=${TA_DISK_KB:-256}; WRITES=${TA_WRITES:-20}; SAMPLE=${TA_SAMPLE:-30}; SETUP_PAR=${TA_SETUP_PAR:-4}
VERIFY=${TA_VERIFY:-sample}; VERIFY_ITEMS=${TA_VERIFY_ITEMS:-100}; VERIFY_PAR=${TA_VERIFY_PAR:-2}
ITEMS=$((AGENTS * PER))
analyse() { # the tables, from the files in $W (START and END: the run window)
python3 - "$W" "$START" "$END" "$FREQ" "$AGENTS" "$PER" "$DISK_KB" "$WRITES" "$VERIFY" << 'PY' 
import csv, glob, json, os, re, statistics, sys
from collections import Counter
from datetime import datetime
W, start, end, freq, agents, per, disk_kb, writes, vmode = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), sys.argv[9]
def ts(s): return datetime.fromisoformat(s.replace('Z', '+00:00'))
def pct(v, p):
    if not v: return float('nan')
    v = sorted(v); k = (len(v) - 1) * p / 100; f = int(k); c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)
t0, t1 = ts(start), ts(end); minutes = (t1 - t0).total_seconds() / 60
S, E = start[:23], end[:23]
rows = list(csv.DictReader(open(os.path.join(W, 'cycles.csv'))))
inwin = [r for r in rows if r['start'] and S <= r['start'][:23] <= E]
ok = [r for r in inwin if r['state'] == 'Succeeded']; failed = [r for r in rows if r['state'] == 'Failed']
other = [r for r in inwin if r['state'] not in ('Succeeded', 'Failed')]
secs = [float(r['seconds']) for r in ok if r['seconds']]
events = list(csv.DictReader(open(os.path.join(W, 'events.csv'))))
evtypes = {}
for e in events: evtypes[e['type']] = evtypes.get(e['type'], 0) + 1
cyc_failed_ev = [e for e in events if e['type'] == 'CycleFailed']
samples = list(csv.DictReader(open(os.path.join(W, 'samples.csv'))))
last = {}
for s in samples: last[s['host']] = s
notrunning = [s for s in samples if s['state'] != 'Running']
agents_rows = list(csv.DictReader(open(os.path.join(W, 'agents.csv'))))
items = {r['item']: r for r in csv.DictReader(open(os.path.join(W, 'items.csv')))}
# points: every listed point, sequences 1..last_sequence expected (retention keeps every point of the last 2 hours)
pts, lost, perr = {}, [], []
for f in glob.glob(os.path.join(W, 'points-*.jsonl')):
    for line in open(f):
        p = json.loads(line); pts[p['item']] = p
        seqs = set(p['sequences'] or [])
        miss = [s for s in range(1, int(p['last_sequence']) + 1) if s not in seqs]
        if miss: lost.append((p['item'], miss))
        if p['errors']: perr.append((p['item'], p['errors']))
win_points = sum(1 for p in pts.values() for t in (p['times'] or []) if S <= t[:23] <= E)
per_item = [sum(1 for t in (p['times'] or []) if S <= t[:23] <= E) for p in pts.values()]
gaps = []
for p in pts.values():
    tt = [ts(t) for t in (p['times'] or []) if S <= t[:23] <= E]
    gaps += [(b - a).total_seconds() for a, b in zip(tt, tt[1:])]
cons = {}
for p in pts.values():
    for c, t in zip(p['consistency'] or [], p['times'] or []):
        if S <= t[:23] <= E: cons[c] = cons.get(c, 0) + 1
tests = [json.loads(l) for f in glob.glob(os.path.join(W, 'tests-*.jsonl')) for l in open(f)]
tbad = [t for t in tests if not t['verified']]
# Azurite: requests in the window, by kind; heartbeat gaps per host; lease calls
req = 0; kinds = {}; hb = {}; lease = 0; thirds = [0, 0, 0]; span = (t1 - t0).total_seconds()
def third(t): return min(2, int(3 * (ts(t) - t0).total_seconds() / span)) if span > 0 else 0
rx = re.compile(r'RequestMethod=(\S+) RequestURL=\S+?/devstoreaccount1/vault/?([^?\s]*)(\?\S*)?')
pending = {}; codes = {}; lat = []
for line in open(os.path.join(W, 'azurite', 'debug.log'), errors='replace'):
    if 'End response.' in line:
        rid = line[25:61]; k = pending.pop(rid, None)
        if k is None: continue
        cm = re.search(r'TotalTimeInMS=(\d+) StatusCode=(\d+)', line)
        if cm:
            lat.append(int(cm.group(1)))
            if cm.group(2)[0] != '2': codes[f'{k} -> {cm.group(2)}'] = codes.get(f'{k} -> {cm.group(2)}', 0) + 1
        continue
    if 'RequestMethod=' not in line: continue
    t = line[:23]
    if t < S or t > E: continue
    req += 1; thirds[third(line[:24])] += 1
    m = rx.search(line)
    if not m: kinds['other'] = kinds.get('other', 0) + 1; continue
    meth, path, q = m.group(1), m.group(2), m.group(3) or ''
    top = path.split('/')[0] or ('(list)' if 'comp=list' in q else '(container)')
    if 'comp=list' in q:
        pm = re.search(r'prefix=([^&\s]*)', q); top = 'list ' + (pm.group(1).replace('%2F', '/').split('/')[0] if pm else '')
    if 'comp=lease' in q: lease += 1; top += ' lease'
    k = f'{meth} {top}'; kinds[k] = kinds.get(k, 0) + 1
    pending[line[25:61]] = k
    hm = re.match(r'agents/(h\d+)\.json$', path)
    if meth == 'PUT' and hm: hb.setdefault(hm.group(1), []).append(ts(line[:24]))
hbgap = {h: max(((b - a).total_seconds() for a, b in zip(v, v[1:])), default=0) for h, v in hb.items()}
stalled = {h: g for h, g in hbgap.items() if g > 15}
logtrouble = {}
for f in sorted(glob.glob(os.path.join(W, 'agents', '*.log'))):
    level = ''
    for line in open(f, errors='replace'):
        hm = re.match(r'^(info|warn|fail|crit|dbug|trce): ', line)
        if hm: level = hm.group(1); continue
        msg = line.strip()
        if level in ('warn', 'fail', 'crit') or re.search(r'lease|lock|AlreadyRunning|ProtectedItemBusy|CycleFailed', msg, re.I):
            key = level + ': ' + re.sub(r'vm\d{4}|h\d\d\b|[0-9a-f]{8}-[0-9a-f-]{27}|\d+(\.\d+)?', '#', msg)[:200]
            logtrouble[key] = logtrouble.get(key, 0) + 1
load = [float(s['load1']) for s in samples if s['load1']]
cpu = {h: float(s['cpu_s']) for h, s in last.items() if s['cpu_s']}
rss = [int(s['rss_mib']) for s in samples if s['rss_mib']]
writer = open(os.path.join(W, 'writer.txt')).read().strip() if os.path.exists(os.path.join(W, 'writer.txt')) else ''
due_rate = agents * per * 60 / freq
print(f'# ten-agents: {agents} agents x {per} items, a point every {freq} s, {disk_kb} KiB disks, {writes} block writes/s\n')
print(f'window {start} .. {end} ({minutes:.1f} min); load average (1 min) during the run: min {min(load, default=0):.1f} / median {statistics.median(load) if load else 0:.1f} / max {max(load, default=0):.1f}; writer: {writer}\n')
print('| measure | value |\n|---|---|')
print(f'| points published in the window | {win_points} = **{win_points / minutes:.1f} per minute** (cadence asks {due_rate:.1f}/min); per item min / median / max {min(per_item, default=0)} / {statistics.median(per_item) if per_item else 0} / {max(per_item, default=0)} |')
print(f'| interval between an item\'s points (s), p50 / p95 / max | {pct(gaps, 50):.0f} / {pct(gaps, 95):.0f} / {max(gaps, default=0):.0f} (policy: {freq}) |')
print(f'| point consistency | {", ".join(f"{k} {v}" for k, v in sorted(cons.items()))} |')
print(f'| cycles (jobs started in the window) | {len(ok)} succeeded, {len([r for r in inwin if r["state"] == "Failed"])} failed, {len(other)} other ({", ".join(sorted(set(r["state"] for r in other))) or "-"}); failed jobs in the vault overall: {len(failed)} |')
print(f'| failed cycles, agents\' counters / CycleFailed events | {sum(int(a["cycles_failed"] or 0) for a in agents_rows)} / {len(cyc_failed_ev)} (agents\' succeeded: {sum(int(a["cycles_succeeded"] or 0) for a in agents_rows)}) |')
print(f'| **cycle time (s)** p50 / p95 / p99 / max | **{pct(secs, 50):.2f} / {pct(secs, 95):.2f} / {pct(secs, 99):.2f}** / {max(secs, default=0):.2f} |')
print(f'| Azurite requests in the window | {req} = {req / (minutes * 60):.1f}/s; **{req / max(1, len(ok)):.1f} per succeeded cycle** (everything included: ticks, heartbeats, lease renewals, the sampler\'s Get-AsrAgent) |')
okth = [0, 0, 0]
for r in ok: okth[third(r['start'][:24])] += 1
print(f'| requests per succeeded cycle in each third of the window (points per item grow) | {" / ".join(f"{a / max(1, b):.1f}" for a, b in zip(thirds, okth))} ({" / ".join(str(b) for b in okth)} cycles) |')
print(f'| lease calls (locks) | {lease} |')
print(f'| Azurite time per request (its TotalTimeInMS) p50 / p99 / max | {pct(lat, 50):.0f} / {pct(lat, 99):.0f} / {max(lat, default=0)} ms |')
print(f'| responses not 2xx, by request kind | {"; ".join(f"{k} x{v}" for k, v in sorted(codes.items(), key=lambda kv: -kv[1])) or "none"} |')
print(f'| stalled hosts (heartbeat gap > 15 s) | {len(stalled)}{": " + ", ".join(f"{h} {g:.0f} s" for h, g in sorted(stalled.items())) if stalled else ""}; largest gap per host max {max(hbgap.values(), default=0):.1f} s; samples not Running: {len(notrunning)} |')
print(f'| agents\' CPU over the run (s, all agents) / RSS max MiB | {sum(cpu.values()):.0f} / {max(rss, default=0)} |')
print(f'| lost points (a sequence 1..LastPointSequence not listed) | {sum(len(m) for _, m in lost)} in {len(lost)} items{"; " + "; ".join(f"{i}: {m[:10]}" for i, m in lost[:10]) if lost else ""} |')
print(f'| listing errors | {len(perr)}{"; " + "; ".join(f"{i}: {e}" for i, e in perr[:5]) if perr else ""} |')
print(f'| verification ({vmode}) | {len(tests)} points tested, {len(tests) - len(tbad)} verified, **{len(tbad)} failed**; median {pct([t["ms"] for t in tests], 50):.0f} ms per point |')
print(f'| items at the end (state/health) | {len(items)}: ' + ', '.join(f'{k} {v}' for k, v in sorted(Counter(r['state'] + '/' + r['health'] for r in items.values()).items())) + ' |')
print(f'| events since the start | {", ".join(f"{k} {v}" for k, v in sorted(evtypes.items()))} |')
print('\nper agent (final record):\n\n| host | cycles succeeded | failed | largest heartbeat gap s | CPU s | last error |\n|---|---|---|---|---|---|')
for a in agents_rows:
    print(f'| {a["host"]} | {a["cycles_succeeded"]} | {a["cycles_failed"]} | {hbgap.get(a["host"], 0):.1f} | {cpu.get(a["host"], 0):.0f} | {a["last_error"][:120]} |')
print('\nrequests in the window by kind (top 25):\n\n| kind | requests | per succeeded cycle |\n|---|---|---|')
for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:25]:
    print(f'| {k} | {v} | {v / max(1, len(ok)):.2f} |')
if tbad:
    print('\nfailed verifications:\n')
    for t in tbad[:30]: print(f'- {t["item"]} point {t["sequence"]} ({t["time"]}): {t["error"]}')
if failed or cyc_failed_ev:
    print('\nfailed cycles (jobs; first 20):\n')
    for r in failed[:20]: print(f'- {r["item"]} {r["start"]} {r["owner_host"]}: {r["errors"][:300]}')
    for e in cyc_failed_ev[:20]: print(f'- event {e["time"]} {e["item"]} {e["host"]}: {e["message"][:300]}')
if logtrouble:
    print('\nagent log entries at warn/fail/crit, or mentioning a lease or lock (numbers and names replaced by #; counts):\n')
    for k, v in sorted(logtrouble.items(), key=lambda kv: -kv[1])[:20]: print(f'- {v} x {k}')
PY
}
if [[ "${TA_ANALYSE_ONLY:-0}" == 1 ]]; then # re-run the analysis of a finished run: TA_ANALYSE_ONLY=1 TA_DIR=... (same TA_* as the run)
    START=$(grep '^MARK start' "$W/run.log" | cut -d' ' -f3); END=$(grep '^MARK end' "$W/run.log" | cut -d' ' -f3)
    analyse | tee "$W/results.md"; exit 0
fi
command -v azurite-blob > /dev/null || { echo "azurite-blob is needed (npm install -g azurite)" >&2; exit 2; }
command -v python3 > /dev/null || { echo "python3 is needed (writer, analysis)" >&2; exit 2; }
. "$HERE/pwsh.sh"
rm -rf "$W" && mkdir -p "$W/azurite" "$W/disks" "$W/agents"
cleanup() {
    [[ -n "${WRITER_PID:-}" ]] && kill "$WRITER_PID" 2> /dev/null || true
    [[ -n "${AZ_PID:-}" ]] && kill "$AZ_PID" 2> /dev/null || true
}
trap cleanup EXIT
T0=$(date +%s)
echo "ten-agents: $AGENTS agents x $PER items, $MINUTES min, a point every $FREQ s, disks of $DISK_KB KiB, $WRITES block writes/s; $(date -u '+%F %T') UTC, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$W/bench.log"

echo "building the module under test (ReadyToRun) ..."
for try in 1 2 3; do # a concurrent build or restore in the same tree can break one (NETSDK1047): retry
    dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true "$REPO/src/AsrModule" -p:ModuleOutDir="$W/new/AsrModule/" -nologo > "$W/build.log" 2>&1 && break
    [[ $try == 3 ]] && { echo "build failed: $W/build.log" >&2; exit 1; }
    echo "  build failed ($(grep -m1 -o 'error [A-Z0-9]*' "$W/build.log")); retrying in 30 s"; sleep 30
done
pinned_pwsh "$W/new" || { echo "the pinned pwsh did not start (cd $REPO && dotnet tool restore)" >&2; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
azurite-blob --blobHost 127.0.0.1 --blobPort "$PORT" --location "$W/azurite" --debug "$W/azurite/debug.log" --skipApiVersionCheck --silent > "$W/azurite.out" 2>&1 &
AZ_PID=$!
sleep 3
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
CS="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$KEY;BlobEndpoint=http://127.0.0.1:$PORT/devstoreaccount1;"
step() { "${PWSH[@]}" -File "$HERE/ten-agents.ps1" -ConnectionString "$CS" -Container vault -Work "$W" -Agents "$AGENTS" -Items "$ITEMS" "$@"; }

echo "== setup: $ITEMS disks of $DISK_KB KiB (seeded random), vault, policy, Enable-AsrReplication in $SETUP_PAR processes (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$W/bench.log"
python3 - "$W/disks" "$ITEMS" "$DISK_KB" << 'PY'
import os, random, sys
d, n, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(15)
for i in range(n):
    with open(os.path.join(d, f'vm{i:04d}.img'), 'wb') as f: f.write(rng.randbytes(kb * 1024))
PY
S0=$(date +%s)
step -Step policy -FrequencySeconds "$FREQ" | tee -a "$W/bench.log"
pids=()
for ((p = 0; p < SETUP_PAR; p++)); do step -Step enable -Part "$p" -Parts "$SETUP_PAR" > "$W/enable-$p.log" 2>&1 & pids+=($!); done
# progress: the parts' own lines, every 30 s
while :; do
    alive=0; for pid in "${pids[@]}"; do kill -0 "$pid" 2> /dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    for ((k = 0; k < 6; k++)); do sleep 5; alive=0; for pid in "${pids[@]}"; do kill -0 "$pid" 2> /dev/null && alive=1; done; [[ $alive == 0 ]] && break; done
    echo "  $(( $(date +%s) - S0 )) s: $(cat "$W"/enable-*.log | grep -c 'items protected') x 50 items done (load $(cut -d' ' -f1 /proc/loadavg))"
done
for pid in "${pids[@]}"; do wait "$pid" || { echo "an Enable part failed:" >&2; tail -5 "$W"/enable-*.log >&2; exit 1; }; done
grep -h '^BENCH' "$W"/enable-*.log | tee -a "$W/bench.log"
echo "BENCH step=setup items=$ITEMS seconds=$(( $(date +%s) - S0 ))" | tee -a "$W/bench.log"

# The writer: every second TA_WRITES random 4 KiB blocks of fresh random data, each at a random block of a random
# disk (pwrite, no fsync); counts in writer.txt when it is stopped.
python3 - "$W/disks" "$ITEMS" "$DISK_KB" "$WRITES" "$W/writer.txt" << 'PY' &
import os, random, signal, sys, time
d, n, kb, per, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = random.Random(); writes = 0; late = 0; ticks = 0; touched = set()
def stop(*_):
    with open(out, 'w') as f: f.write(f'writes={writes} disks_touched={len(touched)} ticks={ticks} late_ticks={late}\n')
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
fds = {}
nxt = time.monotonic()
while True:
    for _ in range(per):
        i = rng.randrange(n)
        fd = fds.get(i) or fds.setdefault(i, os.open(os.path.join(d, f'vm{i:04d}.img'), os.O_WRONLY))
        os.pwrite(fd, rng.randbytes(4096), rng.randrange(kb // 4) * 4096)
        writes += 1; touched.add(i)
    ticks += 1; nxt += 1
    delay = nxt - time.monotonic()
    if delay > 0: time.sleep(delay)
    else: late += 1
PY
WRITER_PID=$!

echo "== run: $AGENTS agents for $MINUTES min (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$W/bench.log"
R0=$(date +%s); RUN_SINCE=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
step -Step run -Minutes "$MINUTES" -SampleSeconds "$SAMPLE" 2>&1 | tee "$W/run.log"
kill "$WRITER_PID" 2> /dev/null || true; wait "$WRITER_PID" 2> /dev/null || true; WRITER_PID=
START=$(grep '^MARK start' "$W/run.log" | cut -d' ' -f3); END=$(grep '^MARK end' "$W/run.log" | cut -d' ' -f3)
[[ -n "$START" && -n "$END" ]] || { echo "the run step did not complete" >&2; exit 1; }
echo "BENCH step=run seconds=$(( $(date +%s) - R0 )) writer: $(cat "$W/writer.txt" 2> /dev/null)" | tee -a "$W/bench.log"

echo "== collect: cycle jobs, events, agents, items"
step -Step collect -Since "$RUN_SINCE" | tee -a "$W/bench.log"
# every point of TA_VERIFY_ITEMS random items (or of all), the latest point of the others
python3 - "$ITEMS" "$VERIFY" "$VERIFY_ITEMS" > "$W/verify-all.txt" << 'PY'
import random, sys
n, mode, k = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
names = [f'vm{i:04d}' for i in range(n)]
print('\n'.join(names if mode == 'all' else sorted(random.Random(2).sample(names, min(k, n)))))
PY
echo "== verify ($VERIFY: every point of $(wc -l < "$W/verify-all.txt") items, the latest point of the others) in $VERIFY_PAR processes (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$W/bench.log"
V0=$(date +%s); pids=()
for ((p = 0; p < VERIFY_PAR; p++)); do step -Step verify -Part "$p" -Parts "$VERIFY_PAR" > "$W/verify-$p.log" 2>&1 & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid" || echo "a verify part failed: see $W/verify-*.log" >&2; done
grep -h '^BENCH' "$W"/verify-*.log | tee -a "$W/bench.log" || true
echo "BENCH step=verify seconds=$(( $(date +%s) - V0 ))" | tee -a "$W/bench.log"

analyse | tee "$W/results.md"
echo "(total $(( $(date +%s) - T0 )) s; log: $W/bench.log; results: $W/results.md)"
