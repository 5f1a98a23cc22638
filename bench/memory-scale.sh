#!/usr/bin/env bash
# Agent memory at scale (issue #15 item 3): one agent protecting a big sparse raw image (default 1 TiB, `truncate`,
# holding MS_DATA_GIB GiB of random data in scattered MS_CHUNK_MIB chunks) plus MS_SMALLS small images (MS_SMALL_SIZE
# sparse, 1 MiB of data each), all on one agent host, a point every MS_FREQ_SECONDS, for MS_MINUTES; a writer process
# changes MS_CHURN_MB of the big image (random 4 KiB..1 MiB writes at random 4 KiB-aligned offsets, anywhere in the
# image or, MS_CHURN_AREA=data, inside its data chunks) and 64 KiB in 5 random small images after each new point of
# the big item. Measures the agent process's VmRSS and VmHWM (/proc/<pid>/status every MS_SAMPLE s), the cycle
# times of the big item (initial replication and each delta, from the job records) and of the small ones, failed
# cycles with their errors; then Test-AsrRecoveryPoint on the big item's newest point.
#
#   bench/memory-scale.sh                       # 1 TiB image, 3 GiB of data, 50 small items, 10 min, a point every 60 s
#   MS_BIG_SIZE=256G MS_MINUTES=6 bench/memory-scale.sh     # a disk size today's code handles
#
# Environment (defaults):
#   MS_BIG_SIZE=1T  MS_DATA_GIB=3  MS_CHUNK_MIB=64  MS_SMALLS=50  MS_SMALL_SIZE=64M  MS_MINUTES=10  MS_FREQ_SECONDS=60
#   MS_CHURN_MB=64  MS_CHURN_AREA=any|data  MS_SAMPLE=2 (s)  MS_SEED=1
#   MS_BACKEND=local|blob   local: the vault is a directory ($MS_DIR/vault); blob: a container on Azurite (azurite-blob)
#   MS_FS=root|xfs|ext4     where the images live: root = $MS_DIR/disks on the file system of MS_DIR (the big image is
#                           then read by a hash scan, its holes skipped); xfs/ext4 = a sparse file system image
#                           loop-mounted there (xfs: reflink=1, so the big image is cloned and tracked by FIEMAP;
#                           needs root, xfsprogs/e2fsprogs)
#   MS_VERIFY=1             0 skips Test-AsrRecoveryPoint; MS_VERIFY_MAX=600 s, then it is stopped and its time reported
#   MS_NICE=10              the niceness of everything the bench starts (the machine is shared)
#   MS_DIR=/tmp/asr-memory-scale   work dir: results.txt, rss.csv, jobs.csv, events.csv, points.csv, writer.csv, logs
#   MS_BIN=/tmp/asr-memory-scale-bin  the Release (ReadyToRun) module snapshot; MS_NO_BUILD=1 reuses it
#   MS_KEEP=1               keeps the images and the vault (removed on exit otherwise)
#   touch $MS_DIR/stop      ends the run phase early
# Results: $MS_DIR/results.txt (also printed), and the one-line summary (the last line).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
W=${MS_DIR:-/tmp/asr-memory-scale}
BIN=${MS_BIN:-/tmp/asr-memory-scale-bin}
BIG_SIZE=${MS_BIG_SIZE:-1T}; DATA_GIB=${MS_DATA_GIB:-3}; CHUNK_MIB=${MS_CHUNK_MIB:-64}
SMALLS=${MS_SMALLS:-50}; SMALL_SIZE=${MS_SMALL_SIZE:-64M}; MINUTES=${MS_MINUTES:-10}; FREQ=${MS_FREQ_SECONDS:-60}
CHURN_MB=${MS_CHURN_MB:-64}; CHURN_AREA=${MS_CHURN_AREA:-any}; SAMPLE=${MS_SAMPLE:-2}; SEED=${MS_SEED:-1}
BACKEND=${MS_BACKEND:-local}; FS=${MS_FS:-root}; VERIFY=${MS_VERIFY:-1}; VERIFY_MAX=${MS_VERIFY_MAX:-600}; NICE=${MS_NICE:-10}
command -v python3 > /dev/null || { echo "python3 is needed (image generator, writer, analysis)" >&2; exit 2; }
[[ $BACKEND == blob ]] && ! command -v azurite-blob > /dev/null && { echo "azurite-blob is needed for MS_BACKEND=blob (npm install -g azurite)" >&2; exit 2; }
BIG_BYTES=$(numfmt --from=iec "$BIG_SIZE"); SMALL_BYTES=$(numfmt --from=iec "$SMALL_SIZE")
N=(nice -n "$NICE")

rm -rf "$W" && mkdir -p "$W/disks"
cleanup() {
    set +e
    [[ -n "${WRITER_PID:-}" ]] && kill "$WRITER_PID" 2> /dev/null
    if [[ -f "$W/agent.pid" ]]; then # the agent this run started, if it is still there (Stop-AsrAgent ran unless the run step died)
        local apid; apid=$(cat "$W/agent.pid")
        if [[ -n "$apid" ]] && cat "/proc/$apid/cmdline" 2> /dev/null | tr '\0' ' ' | grep -q AsrModule.Agent; then
            echo "cleanup: stopping the agent process $apid"; kill "$apid"; sleep 5; kill -9 "$apid" 2> /dev/null
        fi
    fi
    [[ -n "${AZ_PID:-}" ]] && kill "$AZ_PID" 2> /dev/null
    if [[ "${MS_KEEP:-0}" != 1 ]]; then
        rm -rf "$W/disks"/* "$W/vault" "$W/azurite/__blobstorage__" "$W/azurite"/*.json 2> /dev/null
    fi
    if [[ -n "${LOOP:-}" ]]; then
        [[ "${MS_KEEP:-0}" == 1 ]] && echo "MS_KEEP=1: $W/disks stays mounted ($LOOP); umount $W/disks && losetup -d $LOOP" || {
            umount "$W/disks"; losetup -d "$LOOP"; rm -f "$W/fs.img"; }
    fi
}
trap cleanup EXIT

T0=$(date +%s); RUN_SINCE=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
say() { echo "$*" | tee -a "$W/bench.log"; }
say "memory-scale: big image $BIG_SIZE with $DATA_GIB GiB of data, $SMALLS small items of $SMALL_SIZE, $MINUTES min, a point every $FREQ s, churn $CHURN_MB MB ($CHURN_AREA) per point, vault $BACKEND, images on $FS; $(date -u '+%F %T') UTC, load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"

if [[ "${MS_NO_BUILD:-0}" != 1 ]]; then
    say "building the module under test (Release, ReadyToRun) into $BIN ..."
    rm -rf "$BIN" && mkdir -p "$BIN/out"
    for try in 1 2 3; do # a concurrent build or restore in the same tree can break one (NETSDK1047): retry
        "${N[@]}" dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true "$REPO/src/AsrModule" -p:ModuleOutDir="$BIN/out/AsrModule/" -nologo > "$BIN/build.log" 2>&1 && break
        if [[ -f "$BIN/out/AsrModule/Dependencies/AsrModule.dll" && -f "$BIN/out/AsrModule/agent/AsrModule.Agent.dll" ]] && ! grep -E ' error ' "$BIN/build.log" | grep -qvE 'HELPGEN|MSB3073'; then
            echo "  (help generation failed; the module itself built)"; break
        fi
        [[ $try == 3 ]] && { echo "build failed: $BIN/build.log" >&2; exit 1; }
        echo "  build failed ($(grep -m1 -o 'error [A-Z0-9]*' "$BIN/build.log")); retrying in 30 s"; sleep 30
    done
fi
[[ -f "$BIN/out/AsrModule/agent/AsrModule.Agent.dll" ]] || { echo "no module in $BIN/out (see $BIN/build.log)" >&2; exit 1; }
say "module under test: $BIN/out/AsrModule (source $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- src 2> /dev/null || echo ' + uncommitted changes'))"
. "$HERE/pwsh.sh"
pinned_pwsh "$BIN/out" || { echo "the pinned pwsh did not start (cd $REPO && dotnet tool restore)" >&2; exit 1; }

VAULT_ARGS=(-VaultPath "$W/vault")
if [[ $BACKEND == blob ]]; then
    mkdir -p "$W/azurite"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "${N[@]}" azurite-blob --blobHost 127.0.0.1 --blobPort "$PORT" --location "$W/azurite" --skipApiVersionCheck --silent > "$W/azurite.out" 2>&1 &
    AZ_PID=$!
    sleep 3
    KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
    VAULT_ARGS=(-ConnectionString "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$KEY;BlobEndpoint=http://127.0.0.1:$PORT/devstoreaccount1;" -Container vault)
fi
step() { "${N[@]}" "${PWSH[@]}" -File "$HERE/memory-scale.ps1" -Work "$W" "${VAULT_ARGS[@]}" "$@"; }

if [[ $FS != root ]]; then
    [[ $(id -u) == 0 ]] || { echo "MS_FS=$FS needs root (loop mount)" >&2; exit 2; }
    truncate -s $(( BIG_BYTES + BIG_BYTES / 4 + (SMALLS + 8) * SMALL_BYTES + (16 << 30) )) "$W/fs.img"
    case $FS in
        xfs) mkfs.xfs -q -f -m reflink=1 "$W/fs.img" ;;
        ext4) mkfs.ext4 -q -F "$W/fs.img" ;;
        *) echo "MS_FS: root, xfs or ext4" >&2; exit 2 ;;
    esac
    LOOP=$(losetup -f --show "$W/fs.img")
    mount "$LOOP" "$W/disks"
fi
say "images: $W/disks on $(findmnt -no FSTYPE,SOURCE -T "$W/disks" | tr -s ' ')"

# ---------------------------------------------------------------- images
G0=$(date +%s)
"${N[@]}" python3 - "$W/disks" "$BIG_BYTES" "$DATA_GIB" "$CHUNK_MIB" "$SMALLS" "$SMALL_BYTES" "$SEED" << 'PY'
import os, random, sys
d, size, gib, chunk_mib, smalls, small, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
rng = random.Random(seed); chunk = chunk_mib << 20
big = os.path.join(d, 'big.img')
with open(big, 'wb') as f: f.truncate(size)
n = int(gib * 1024 / chunk_mib); slots = size // chunk
chosen = sorted(rng.sample(range(slots), min(n, slots)))
fd = os.open(big, os.O_WRONLY)
for s in chosen:  # random data: incompressible, what is read is what is stored
    os.pwrite(fd, os.urandom(chunk), s * chunk)
os.fsync(fd); os.close(fd)
with open(os.path.join(d, '..', 'data-chunks.txt'), 'w') as f: f.write('\n'.join(str(s * chunk) for s in chosen) + '\n')
offs = []
for i in range(smalls):
    p = os.path.join(d, f's{i:02d}.img')
    with open(p, 'wb') as f: f.truncate(small)
    off = rng.randrange(0, max(1, (small - (1 << 20)) >> 12)) << 12
    fd = os.open(p, os.O_WRONLY); os.pwrite(fd, os.urandom(1 << 20), off); os.fsync(fd); os.close(fd)
    offs.append(off)
with open(os.path.join(d, '..', 'small-data.txt'), 'w') as f: f.write('\n'.join(map(str, offs)) + '\n')
print(f'big.img: {size} bytes, {len(chosen)} chunks of {chunk_mib} MiB of random data; {smalls} small images of {small} bytes, 1 MiB of data each')
PY
say "images written in $(( $(date +%s) - G0 )) s: $(du -h --apparent-size "$W/disks/big.img" | cut -f1) apparent, $(du -h "$W/disks/big.img" | cut -f1) allocated (big); $(du -sh "$W/disks" | cut -f1) in all"

# ---------------------------------------------------------------- vault, policy, protection
step -Step setup -FrequencySeconds "$FREQ" | tee -a "$W/bench.log"
say "== enable: $SMALLS small items, then the big one (initial replications in a pwsh session), load $(cut -d' ' -f1-3 /proc/loadavg)"
step -Step enable -Smalls "$SMALLS" -Big -BigDisk "$W/disks/big.img" | tee -a "$W/bench.log"

# ---------------------------------------------------------------- writer
"${N[@]}" python3 - "$W" "$BIG_BYTES" "$CHURN_MB" "$CHURN_AREA" "$CHUNK_MIB" "$SMALLS" "$SEED" << 'PY' > "$W/writer.log" 2>&1 &
import os, random, sys, time
W, size, churn_mb, area, chunk_mib, smalls, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
rng = random.Random(seed + 1); chunk = chunk_mib << 20
chunks = [int(l) for l in open(os.path.join(W, 'data-chunks.txt')) if l.strip()]
small_offs = [int(l) for l in open(os.path.join(W, 'small-data.txt')) if l.strip()]
big = os.open(os.path.join(W, 'disks', 'big.img'), os.O_WRONLY)
trigger, log = os.path.join(W, 'trigger'), os.path.join(W, 'writer.csv')
with open(log, 'w') as f: f.write('time,trigger,writes,bytes,seconds,small_writes\n')
last = None
while not os.path.exists(os.path.join(W, 'stop-writer')):
    try: t = open(trigger).read().strip()
    except FileNotFoundError: t = None
    if t is None or t == last: time.sleep(0.25); continue
    last = t; t0 = time.monotonic(); target = churn_mb * 1000 * 1000; done = writes = 0
    while done < target:
        n = min(rng.randrange(1, 257) << 12, ((target - done + 4095) >> 12) << 12)   # 4 KiB .. 1 MiB
        if area == 'data' and chunks:
            off = rng.choice(chunks) + (rng.randrange(0, ((chunk - n) >> 12) + 1) << 12)
        else:
            off = rng.randrange(0, (size - n) >> 12) << 12
        os.pwrite(big, os.urandom(n), off); done += n; writes += 1
    os.fdatasync(big)
    sw = 0
    for i in rng.sample(range(len(small_offs)), min(5, len(small_offs))):
        fd = os.open(os.path.join(W, 'disks', f's{i:02d}.img'), os.O_WRONLY)
        os.pwrite(fd, os.urandom(64 << 10), small_offs[i] + (rng.randrange(0, 16) << 16)); os.fdatasync(fd); os.close(fd); sw += 1
    with open(log, 'a') as f:
        f.write(f'{time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())},{t},{writes},{done},{time.monotonic() - t0:.2f},{sw}\n')
PY
WRITER_PID=$!

# ---------------------------------------------------------------- run
say "== run: the agent for $MINUTES min, sampled every $SAMPLE s (load $(cut -d' ' -f1-3 /proc/loadavg))"
step -Step run -Minutes "$MINUTES" -SampleSeconds "$SAMPLE" 2>&1 | tee "$W/run.log" | tee -a "$W/bench.log"
touch "$W/stop-writer"; sleep 1; kill "$WRITER_PID" 2> /dev/null || true; wait "$WRITER_PID" 2> /dev/null || true; WRITER_PID=
START=$(grep '^MARK start' "$W/run.log" | cut -d' ' -f3); END=$(grep '^MARK end' "$W/run.log" | cut -d' ' -f3)
[[ -n "$START" && -n "$END" ]] || { echo "the run step did not complete" >&2; exit 1; }

say "== collect"
step -Step collect -Since "$RUN_SINCE" | tee -a "$W/bench.log"
if [[ $VERIFY == 1 ]]; then
    say "== verify: Test-AsrRecoveryPoint on the big item's newest point (at most $VERIFY_MAX s; load $(cut -d' ' -f1-3 /proc/loadavg))"
    V0=$(date +%s)
    if ! timeout "$VERIFY_MAX" "${N[@]}" "${PWSH[@]}" -File "$HERE/memory-scale.ps1" -Step verify -Work "$W" "${VAULT_ARGS[@]}" > "$W/verify.log" 2>&1; then
        echo "BENCH step=verify verified=False seconds=$(( $(date +%s) - V0 )) error=\"stopped after $VERIFY_MAX s or failed: $(tail -c 300 "$W/verify.log" | tr '\n' ' ')\"" >> "$W/verify.log"
    fi
    grep '^BENCH' "$W/verify.log" | tee -a "$W/bench.log" || true
fi

# ---------------------------------------------------------------- analysis
python3 - "$W" "$START" "$END" "$BIG_SIZE" "$DATA_GIB" "$SMALLS" "$MINUTES" "$FREQ" "$CHURN_MB" "$BACKEND" "$FS" << 'PY' | tee "$W/results.txt"
import csv, os, re, statistics, sys
from datetime import datetime
W, start, end, big_size, data_gib, smalls, minutes, freq, churn, backend, fs = sys.argv[1:12]
def ts(s): return datetime.fromisoformat(s.replace('Z', '+00:00'))
def mib(kib): return int(kib) / 1024
log = open(os.path.join(W, 'bench.log')).read()
def bench(step):
    m = re.search(rf'^BENCH step={step} (.*)$', log, re.M)
    if not m: return {}
    return dict(re.findall(r'(\w+)=("[^"]*"|\S*)', m.group(1)))
rss = list(csv.DictReader(open(os.path.join(W, 'rss.csv'))))
jobs = list(csv.DictReader(open(os.path.join(W, 'jobs.csv'))))
points = list(csv.DictReader(open(os.path.join(W, 'points.csv'))))
writer = list(csv.DictReader(open(os.path.join(W, 'writer.csv')))) if os.path.exists(os.path.join(W, 'writer.csv')) else []
for j in jobs: j['t0'] = ts(j['start']) if j['start'] else None; j['t1'] = ts(j['end']) if j['end'] else None
for r in rss: r['t'] = ts(r['time'])
t_start, t_end = ts(start), ts(end)
bigjobs = sorted([j for j in jobs if j['item'] == 'big'], key=lambda j: j['t0'])
agentbig = [j for j in bigjobs if j['operation'] == 'ReplicationCycle' and j['t0'] and j['t0'] >= t_start]
smalljobs = [j for j in jobs if j['item'] != 'big' and j['operation'] == 'ReplicationCycle' and j['t0'] and j['t0'] >= t_start]
first_big = agentbig[0]['t0'] if agentbig else None
before = [r for r in rss if first_big is None or r['t'] < first_big]
base = before[-1] if before else (rss[0] if rss else None)
peak_hwm = max((int(r['hwm_kib']) for r in rss), default=0)
peak_rss = max((int(r['rss_kib']) for r in rss), default=0)
load = [float(r['load1']) for r in rss if r['load1']]
out = []
P = out.append
P(f'# memory-scale: {big_size} sparse image with {data_gib} GiB of data + {smalls} small items, one agent, {minutes} min, a point every {freq} s, {churn} MB churn per point; vault {backend}, images on {fs}')
P(f'run window {start} .. {end}; load average (1 min) during the run min / median / max: {min(load, default=0):.1f} / {statistics.median(load) if load else 0:.1f} / {max(load, default=0):.1f}; writer bursts: {len(writer)}')
eb = bench('enable-big')
P(f'\ninitial replication of big in a pwsh session (Enable-AsrReplication): {eb.get("state")}, {eb.get("seconds")} s, capture method {eb.get("capture")}, item state after: {eb.get("item_state")}; '
  f'session VmHWM {eb.get("session_hwm_mib_before")} MiB before -> {eb.get("session_hwm_mib_after")} MiB after')
for m in re.findall(r'^BENCH enable-big error: (.*)$', log, re.M): P(f'  error: {m}')
P('\n## agent memory (/proc/<pid>/status)\n')
if base:
    P(f'- base: VmRSS {mib(base["rss_kib"]):.0f} MiB (VmHWM {mib(base["hwm_kib"]):.0f} MiB) at +{float(base["elapsed_s"]):.0f} s, '
      + ('the last sample before the first cycle of big' if first_big else 'no cycle of big in the run: last sample'))
    P(f'- first sample (+{float(rss[0]["elapsed_s"]):.0f} s): VmRSS {mib(rss[0]["rss_kib"]):.0f} MiB')
first_end = min((j['t1'] for j in agentbig if j['t1']), default=None)
idle = [int(r['rss_kib']) / 1024 for r in rss if first_end and r['t'] > first_end and r['big_cycle'] == '0']
if idle: P(f'- between cycles of big (after the first one ended, no cycle of big in progress; a cycle\'s garbage stays until the next GC): VmRSS median {statistics.median(idle):.0f} MiB, min {min(idle):.0f}, max {max(idle):.0f} ({len(idle)} samples)')
P(f'- **peak VmHWM {mib(peak_hwm):.0f} MiB**; largest sampled VmRSS {peak_rss / 1024:.0f} MiB; final VmRSS {mib(rss[-1]["rss_kib"]) if rss else 0:.0f} MiB; samples {len(rss)} (rss.csv)')
P('\n## cycles of big (job records)\n')
P('| job | mode | start | seconds | state | point | scanned MiB | changed MiB | stored MiB | agent VmRSS max sampled in cycle (+1 after) MiB | VmHWM after MiB | error |')
P('|---|---|---|---|---|---|---|---|---|---|---|---|')
def during(j): # the samples within the cycle, and the first one after it (a cycle shorter than the sampling interval has none within)
    if not j['t0']: return []
    t1 = j['t1'] or t_end
    s = [r for r in rss if j['t0'] <= r['t'] <= t1]
    return s + [r for r in rss if r['t'] > t1][:1]
def m(x): return f'{int(x) / 1048576:.0f}' if x else ''
for j in bigjobs:
    s = during(j) if j['operation'] == 'ReplicationCycle' else []
    after = [r for r in rss if j['t1'] and r['t'] >= j['t1']]
    P(f'| {j["operation"]} | {j["mode"]} | {j["start"][11:19]} | {j["seconds"]} | {j["state"]} | {j["sequence"]} | {m(j["bytes_scanned"])} | {m(j["changed_bytes"])} | {m(j["bytes_stored"])} | '
      f'{max((int(r["rss_kib"]) for r in s), default=0) / 1024:.0f} | {mib(after[0]["hwm_kib"]) if after and j["operation"] == "ReplicationCycle" else 0:.0f} | {j["errors"][:400]} |')
ok_big = [float(j['seconds']) for j in agentbig if j['state'] == 'Succeeded' and j['seconds']]
failed_big = [j for j in agentbig if j['state'] == 'Failed']
P(f'\nagent cycles of big: {len(agentbig)} started, {len(ok_big)} succeeded, {len(failed_big)} failed; succeeded seconds median {statistics.median(ok_big) if ok_big else float("nan"):.1f}, max {max(ok_big, default=0):.1f}')
cons = {}
for p in points: cons[p['consistency']] = cons.get(p['consistency'], 0) + 1
P(f'points of big: {len(points)} ({", ".join(f"{k} {v}" for k, v in sorted(cons.items()))})')
ssec = [float(j['seconds']) for j in smalljobs if j['state'] == 'Succeeded' and j['seconds']]
sfail = [j for j in smalljobs if j['state'] == 'Failed']
P(f'\n## small items\n\n{len(smalljobs)} agent cycles started, {len(ssec)} succeeded, {len(sfail)} failed; seconds median {statistics.median(ssec) if ssec else float("nan"):.2f}, '
  f'p95 {sorted(ssec)[int(0.95 * (len(ssec) - 1))] if ssec else float("nan"):.2f}, max {max(ssec, default=0):.2f}')
errs = {}
for j in jobs:
    if j['state'] == 'Failed': errs.setdefault(re.sub(r'[0-9a-f]{8}-[0-9a-f-]{27}', '#', j['errors'])[:500], []).append(j['item'])
if errs:
    P('\n## failed jobs (distinct errors)\n')
    for e, items in errs.items(): P(f'- {len(items)} x ({", ".join(sorted(set(items)))[:80]}): {e}')
ag = list(csv.DictReader(open(os.path.join(W, 'agent.csv'))))
run = bench('run')
P(f'\nagent: {run.get("cycles_succeeded")} cycles succeeded, {run.get("cycles_failed")} failed (its counters); stopped in {run.get("stop_seconds")} s; agent process gone during the run: {run.get("agent_gone")}; last error: {run.get("last_error", "")[:300]}')
v = bench('verify')
if v:
    P(f'\n## verification\n\nTest-AsrRecoveryPoint big point {v.get("point")} ({v.get("consistency")}): verified={v.get("verified")} in {v.get("seconds")} s, session VmHWM {v.get("session_hwm_mib")} MiB; {v.get("error", "")[:400]}')
summary = (f'SUMMARY memory-scale {big_size}+{data_gib}GiB data+{smalls} small, {minutes} min: agent base RSS {mib(base["rss_kib"]) if base else 0:.0f} MiB, peak VmHWM {mib(peak_hwm):.0f} MiB; '
           f'big: initial {eb.get("state")} {eb.get("seconds")} s, agent cycles {len(ok_big)} ok / {len(failed_big)} failed, median {statistics.median(ok_big) if ok_big else float("nan"):.1f} s; '
           f'small: {len(ssec)} ok / {len(sfail)} failed, median {statistics.median(ssec) if ssec else float("nan"):.2f} s; verify: {v.get("verified", "skipped")} {v.get("seconds", "")} s')
P('\n' + summary)
print('\n'.join(out))
PY
say "(total $(( $(date +%s) - T0 )) s; log $W/bench.log, results $W/results.txt)"
