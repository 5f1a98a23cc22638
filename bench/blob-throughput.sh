#!/usr/bin/env bash
# Throughput of the vault backends, side by side on the same disk: local directory vs Azure Blob (Azurite).
#
#   bench/blob-throughput.sh            # 2 GiB, 3 runs; BENCH_SIZE_MB=512 BENCH_RUNS=1 for a quick look
#
# Environment:
#   BENCH_DIR         work dir (default /tmp/asr-blob-bench); must be empty, absent, or an earlier run's dir
#   BENCH_SIZE_MB     disk size in MiB (default 2048)
#   BENCH_RUNS        repetitions of the whole set (default 3); the summary gives median and min-max
#   BENCH_FRACTION    share of the disk rewritten before the delta (default 0.10)
#   BENCH_NO_RESTIC=1 skip the restic reference
#   BENCH_NO_BUILD=1  reuse the module snapshot already in $BENCH_DIR/bin
#   BENCH_KEEP=1      keep images, vaults, Azurite data and restores
#
# What it does:
#   1. v1.img: BENCH_SIZE_MB MiB of seeded pseudo-random bytes (incompressible); v2.img: v1 with
#      BENCH_FRACTION of it rewritten with random data in non-overlapping runs of 64 KiB-1 MiB scattered
#      over the disk (bench/make-image.py create-random / mutate-runs). Both with SHA-256.
#   2. Per run and per backend (the order alternates between runs): v1 is copied to src/disk.img (a fresh
#      file); (a) initial replication: Enable-AsrReplication into a new encrypted vault (policy default:
#      zstd-1, AES-256-GCM); v2 is copied over the same file; (b) one delta cycle: Invoke-AsrReplication;
#      (c) full restore: Export-AsrRecoveryPoint of the latest point, then sha256sum of the restored disk
#      against v2 (untimed). Each step is one pwsh process (bench/bench.ps1); the page cache
#      is dropped before each (root). Backends: 'local' = a vault directory on the work dir's disk;
#      'azurite' = a container in a fresh azurite-blob on 127.0.0.1 (plain http, its data folder on the
#      same disk), opened with New-AsrVault/Connect-AsrVault -ConnectionString -Container.
#   3. restic (if installed): backup v1 to a fresh local repo, backup v2, restore latest + sha256sum.
#   4. Raw rows in results.tsv; results.md with the per-step median [min-max] over the runs.
# MiB/s = disk size / cmdlet seconds (the disk's bytes processed: read+hashed for replication, written for
# the restore). "stored" = the job's BytesStored; "vault +" = growth of the vault's objects (listed through the
# store: the same measure for both backends); for Azurite also the growth of its data folder on disk.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
W=${BENCH_DIR:-/tmp/asr-blob-bench}
SIZE_MB=${BENCH_SIZE_MB:-2048}
RUNS=${BENCH_RUNS:-3}
FRACTION=${BENCH_FRACTION:-0.10}
KEEP=${BENCH_KEEP:-0}
KEY='bench-passphrase-0123456789'
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='   # Azurite's well-known key
SRC="$W/src/disk.img"
LOG="$W/bench.log"
TSV="$W/results.tsv"
TICK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- work dir
if [[ -e "$W" && ! -f "$W/.asr-blob-bench" ]] && [[ -n "$(ls -A "$W" 2>/dev/null)" ]]; then
    echo "refusing to use $W: not empty and not an earlier blob-throughput dir (no .asr-blob-bench marker)" >&2
    exit 2
fi
mkdir -p "$W"
if [[ -f "$W/.asr-blob-bench" ]]; then
    find "$W" -mindepth 1 -maxdepth 1 ! -name bin ! -name .asr-blob-bench -exec rm -rf {} +
fi
mkdir -p "$W/src"
touch "$W/.asr-blob-bench"
: > "$LOG"
printf 'run\ttool\tstep\tcmdlet_s\twall_s\tuser_s\tsys_s\tserver_cpu_s\tstored_b\tvault_growth_b\tserver_disk_growth_b\tverified\tload1\n' > "$TSV"

AZ_PID=""
stop_azurite() {
    if [[ -n "$AZ_PID" ]] && kill -0 "$AZ_PID" 2>/dev/null; then
        kill -TERM "$AZ_PID" 2>/dev/null || true       # SIGTERM: Azurite saves its metadata
        for _ in $(seq 150); do kill -0 "$AZ_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$AZ_PID" 2>/dev/null || true
        wait "$AZ_PID" 2>/dev/null || true
    fi
    AZ_PID=""
}
cleanup() {
    stop_azurite
    if [[ "$KEEP" != 1 && -d "$W" ]]; then
        find "$W" -mindepth 1 -maxdepth 1 ! -name results.md ! -name results.tsv ! -name bench.log ! -name bin ! -name .asr-blob-bench -exec rm -rf {} +
    fi
}
trap cleanup EXIT

say() { echo "$*"; echo "$*" >> "$LOG"; }
log() { echo "$*" >> "$LOG"; }
DROPPED=unknown
drop_caches() {
    sync
    if { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null; then [[ "$DROPPED" == no ]] || DROPPED=yes; else DROPPED=no; fi
}
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
dir_bytes() { if [[ -e "$1" ]]; then du -sb "$1" | cut -f1; else echo 0; fi; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
put_src() { rm -f "$SRC"; cp --sparse=never "$1" "$SRC"; sync; }          # fresh file (initial replication)
swap_src() { cp --sparse=never "$1" "$SRC"; sync; }                        # same file, new content (delta)
cpu_ticks() { if [[ -n "${1:-}" && -r /proc/$1/stat ]]; then awk '{ print $14 + $15 }' "/proc/$1/stat"; else echo 0; fi; }
load1() { cut -d' ' -f1 /proc/loadavg; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $2"; }

# ---------------------------------------------------------------- build
# The module is built into its own directory (-p:ModuleOutDir), so concurrent builds of out/AsrModule in the
# repository cannot change it mid-run.
BIN="$W/bin"
if [[ "${BENCH_NO_BUILD:-0}" != 1 || ! -f "$BIN/out/AsrModule/Dependencies/AsrModule.dll" ]]; then
    rm -rf "$BIN"
    mkdir -p "$BIN/out"
    say "== building the module (Release) into $BIN ..."
    if ! dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true "$REPO/src/AsrModule" -p:ModuleOutDir="$BIN/out/AsrModule/" -nologo > "$BIN/build.log" 2>&1; then
        # A failed help generation (HelpGen, MSB3073) leaves the packaged module usable; anything else does not.
        if grep -E ' error ' "$BIN/build.log" | grep -vE 'HELPGEN|MSB3073' | head -5 | grep . ; then
            echo "build failed (see $BIN/build.log)" >&2; exit 1
        fi
        say "  (help generation failed; the module itself built)"
    fi
    [[ -f "$BIN/out/AsrModule/Dependencies/AsrModule.dll" ]] || { echo "no module in $BIN/out (see $BIN/build.log)" >&2; exit 1; }
fi
# Each step: a fresh process of the pinned pwsh (bench/pwsh.sh) that imports the module snapshot.
source "$HERE/pwsh.sh"
pinned_pwsh "$BIN/out" || { echo "the pinned pwsh did not start (cd $REPO && dotnet tool restore)" >&2; exit 1; }
STEP=("${PWSH[@]}" -File "$HERE/bench.ps1")

# ---------------------------------------------------------------- images
say "== images: $SIZE_MB MiB of random bytes; then $FRACTION of it rewritten in scattered 64 KiB-1 MiB runs"
t0=$(now)
IMG1=$(python3 "$HERE/make-image.py" create-random "$W/v1.img" "$SIZE_MB" 1)
IMG2=$(python3 "$HERE/make-image.py" mutate-runs "$W/v1.img" "$W/v2.img" "$FRACTION" 64 1024 2)
say "  $IMG1"
say "  $IMG2"
say "  (generated in $(elapsed "$t0" "$(now)") s)"
SHA1=$(field sha256 "$IMG1"); SHA2=$(field sha256 "$IMG2")
REWRITTEN=$(field bytes_rewritten "$IMG2"); NRUNS=$(field runs "$IMG2")
[[ "$(sha "$W/v1.img")" == "$SHA1" && "$(sha "$W/v2.img")" == "$SHA2" ]] || { say "image hash mismatch"; exit 1; }
verify() { if [[ -f "$1" && "$(sha "$1")" == "$SHA2" ]]; then echo yes; else echo NO; fi; }

# ---------------------------------------------------------------- Azurite
start_azurite() { # data dir -> sets AZ_PID, AZ_PORT, AZURE_STORAGE_CONNECTION_STRING
    local data=$1
    command -v azurite-blob > /dev/null || { say "azurite-blob not found: npm install -g azurite"; exit 2; }
    mkdir -p "$data"
    AZ_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    azurite-blob --blobHost 127.0.0.1 --blobPort "$AZ_PORT" --location "$data" --skipApiVersionCheck --loose --silent --disableTelemetry \
        >> "$W/azurite.log" 2>&1 &
    AZ_PID=$!
    for _ in $(seq 300); do
        if (exec 3<> "/dev/tcp/127.0.0.1/$AZ_PORT") 2> /dev/null; then break; fi
        kill -0 "$AZ_PID" 2>/dev/null || { say "azurite-blob exited; see $W/azurite.log"; exit 1; }
        sleep 0.1
    done
    export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZ_KEY;BlobEndpoint=http://127.0.0.1:$AZ_PORT/devstoreaccount1;"
    log "azurite pid $AZ_PID port $AZ_PORT data $data"
}

# ---------------------------------------------------------------- AsrModule, one backend
bench_asr() { # run backend(local|azurite)
    local run=$1 tool=$2 backend vault data="" dest="$W/restore" step rc line state secs wall t0 t1 tf
    local a0 a1 d0 d1 vb0=0 vb1 stored growth sdisk scpu verified l
    if [[ $tool == local ]]; then
        backend=Local; vault="$W/vault-local-$run"
    else
        backend=Blob; vault="bench-run-$run"; data="$W/azurite-$run"
        start_azurite "$data"
    fi
    say "== run $run: AsrModule, $tool vault"
    put_src "$W/v1.img"
    for step in init delta export; do
        [[ $step != delta ]] || swap_src "$W/v2.img"
        rm -rf "$dest"
        local marker="---- run $run $tool $step ----"
        log "$marker"
        d0=$(dir_bytes "$data"); a0=$(cpu_ticks "$AZ_PID"); tf="$W/time.txt"; l=$(load1)
        drop_caches
        rc=0; t0=$(now)
        case $step in
            init)   /usr/bin/time -f '%e %U %S' -o "$tf" "${STEP[@]}" init -Backend "$backend" -Vault "$vault" -Key "$KEY" -Target "$SRC" >> "$LOG" 2>&1 || rc=$? ;;
            delta)  /usr/bin/time -f '%e %U %S' -o "$tf" "${STEP[@]}" delta -Backend "$backend" -Vault "$vault" -Key "$KEY" >> "$LOG" 2>&1 || rc=$? ;;
            export) /usr/bin/time -f '%e %U %S' -o "$tf" "${STEP[@]}" export -Backend "$backend" -Vault "$vault" -Key "$KEY" -Target "$dest" >> "$LOG" 2>&1 || rc=$? ;;
        esac
        t1=$(now); wall=$(elapsed "$t0" "$t1")
        a1=$(cpu_ticks "$AZ_PID"); d1=$(dir_bytes "$data")
        line=$(sed -n "/^$marker\$/,\$p" "$LOG" | grep '^BENCH ' | tail -1 || true)
        state=$(field state "$line"); secs=$(field seconds "$line")
        if [[ $rc -ne 0 || "$state" != Succeeded ]]; then
            say "  $tool $step FAILED (exit $rc, job state '${state:-none}'); its output:"
            sed -n "/^$marker\$/,\$p" "$LOG" | tail -40 | sed 's/^/    | /'
            exit 1
        fi
        vb1=$(field vault_bytes "$line"); stored=$(field stored "$line"); growth=$((vb1 - vb0)); vb0=$vb1
        scpu=$(awk -v a="$a0" -v b="$a1" -v t="$TICK" 'BEGIN { printf "%.2f", (b - a) / t }')
        sdisk=$((d1 - d0))
        verified=-
        if [[ $step == export ]]; then verified=$(verify "$(field files "$line" | cut -d';' -f1)"); fi
        read -r _ usr sys < "$tf"
        [[ $tool == azurite ]] || { scpu=-; sdisk=-; }
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "AsrModule $tool" "$step" "$secs" "$wall" "$usr" "$sys" "$scpu" "${stored:--}" "$growth" "$sdisk" "$verified" "$l" >> "$TSV"
        say "  $step: cmdlet $secs s, process $wall s (user $usr s, sys $sys s); stored ${stored:--} B; vault +$growth B$( [[ $tool == azurite ]] && echo "; azurite cpu $scpu s, data folder +$sdisk B" ); verified $verified; load $l"
        [[ "$verified" != NO ]] || { say "  restore does not match v2"; exit 1; }
    done
    rm -rf "$dest"
    if [[ $tool == azurite ]]; then stop_azurite; fi
    if [[ "$KEEP" != 1 ]]; then if [[ $tool == local ]]; then rm -rf "$vault"; else rm -rf "$data"; fi; fi
}

# ---------------------------------------------------------------- restic (reference)
bench_restic() { # run
    local run=$1 repo="$W/restic-repo-$run" dest="$W/restore-restic" b0 b1 t0 wall tf="$W/time.txt" l usr sys v
    export RESTIC_REPOSITORY="$repo" RESTIC_PASSWORD="$KEY" RESTIC_CACHE_DIR="$W/restic-cache"
    say "== run $run: restic $(restic version | awk '{print $2}') to a local repo"
    put_src "$W/v1.img"
    restic init >> "$LOG" 2>&1
    b0=$(dir_bytes "$repo")
    for step in init delta export; do
        [[ $step != delta ]] || swap_src "$W/v2.img"
        rm -rf "$dest"
        l=$(load1); drop_caches; t0=$(now)
        case $step in
            init|delta) /usr/bin/time -f '%e %U %S' -o "$tf" restic backup --host bench "$SRC" >> "$LOG" 2>&1 ;;
            export)     /usr/bin/time -f '%e %U %S' -o "$tf" restic restore latest --target "$dest" >> "$LOG" 2>&1 ;;
        esac
        wall=$(elapsed "$t0" "$(now)")
        b1=$(dir_bytes "$repo")
        read -r _ usr sys < "$tf"
        v=-; [[ $step != export ]] || v=$(verify "$dest$SRC")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "restic" "$step" "$wall" "$wall" "$usr" "$sys" - - "$((b1 - b0))" - "$v" "$l" >> "$TSV"
        say "  $step: $wall s (user $usr s, sys $sys s); repo +$((b1 - b0)) B; verified $v; load $l"
        b0=$b1
    done
    unset RESTIC_REPOSITORY RESTIC_PASSWORD RESTIC_CACHE_DIR
    rm -rf "$dest"
    [[ "$KEEP" == 1 ]] || rm -rf "$repo" "$W/restic-cache"
}

START=$(date -u '+%Y-%m-%d %H:%M UTC')
for run in $(seq "$RUNS"); do
    if (( run % 2 == 1 )); then order=(local azurite); else order=(azurite local); fi
    for tool in "${order[@]}"; do bench_asr "$run" "$tool"; done
    if [[ "${BENCH_NO_RESTIC:-0}" != 1 ]] && command -v restic > /dev/null; then bench_restic "$run"; fi
done
END=$(date -u '+%H:%M UTC')

# ---------------------------------------------------------------- summary
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
MEM=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FS=$(df -T "$W" | awk 'NR == 2 { print $2 " on " $1 }')
{
    echo "# AsrModule vault backends: throughput, $START - $END"
    echo
    echo "machine: nproc=$(nproc), CPU: ${CPU:-unknown}, RAM $MEM, work dir $W ($FS); shared with other sessions' builds and tests"
    echo "disk: $SIZE_MB MiB random (incompressible), sha256 $SHA1; delta: $REWRITTEN B ($(awk -v b="$REWRITTEN" 'BEGIN { printf "%.1f", b / 1048576 }') MiB) rewritten in $NRUNS runs of 64 KiB-1 MiB"
    echo "vault: encrypted (AES-256-GCM), policy default (zstd-1); Azurite $(azurite-blob --version 2>/dev/null | tail -1), http on 127.0.0.1, data on the same disk; $RUNS runs, backend order alternating; page cache dropped before each step: $DROPPED"
    echo "restic: $(restic version 2>/dev/null | awk '{print $2}' || echo -), local repo (v2, compression auto)"
    echo
    python3 - "$TSV" "$SIZE_MB" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
size_mib = float(sys.argv[2])
def num(v):
    try: return float(v)
    except ValueError: return None
def agg(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals: return "-"
    m = statistics.median(vals)
    return f"{fmt(m)} [{fmt(min(vals))}-{fmt(max(vals))}]" if len(vals) > 1 else fmt(m)
f1 = lambda v: f"{v:.1f}"
f2 = lambda v: f"{v:.2f}"
f0 = lambda v: f"{v:.0f}"
mib = lambda b: None if b is None else b / 1048576
names = {"init": "(a) initial replication", "delta": "(b) delta cycle", "export": "(c) full restore"}
tools = list(dict.fromkeys(r["tool"] for r in rows))
print("median [min-max] over the runs; MiB/s = disk MiB / seconds (cmdlet seconds for AsrModule, process wall for restic)")
print()
print("| step | tool | seconds | MiB/s of disk | MiB stored | vault/repo growth MiB | process wall s | client CPU s (user+sys) | Azurite CPU s | Azurite data folder growth MiB | restore verified |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for step in ("init", "delta", "export"):
    for tool in tools:
        rs = [r for r in rows if r["tool"] == tool and r["step"] == step]
        if not rs: continue
        secs = [num(r["cmdlet_s"]) for r in rs]
        rate = [size_mib / s for s in secs if s]
        stored = [mib(num(r["stored_b"])) for r in rs] if step != "export" else []
        growth = [mib(num(r["vault_growth_b"])) for r in rs] if step != "export" else []
        cpu = [num(r["user_s"]) + num(r["sys_s"]) for r in rs]
        scpu = [num(r["server_cpu_s"]) for r in rs]
        sdisk = [mib(num(r["server_disk_growth_b"])) for r in rs] if step != "export" else []
        ver = ", ".join(sorted(set(r["verified"] for r in rs))) if step == "export" else "-"
        print(f"| {names[step]} | {tool} | {agg(secs, f2)} | {agg(rate, f0)} | {agg(stored, f1)} | {agg(growth, f1)} | "
              f"{agg([num(r['wall_s']) for r in rs], f2)} | {agg(cpu, f1)} | {agg(scpu, f1)} | {agg(sdisk, f1)} | {ver} |")
print()
print("per run (seconds; MiB/s):")
print()
print("| run | tool | initial s (MiB/s) | delta s (MiB/s) | restore s (MiB/s) | load1 at start of each step |")
print("|---|---|---|---|---|---|")
for run in sorted(set(r["run"] for r in rows), key=int):
    for tool in tools:
        rs = {r["step"]: r for r in rows if r["run"] == run and r["tool"] == tool}
        if not rs: continue
        cell = lambda s: f"{float(rs[s]['cmdlet_s']):.2f} ({size_mib / float(rs[s]['cmdlet_s']):.0f})" if s in rs else "-"
        print(f"| {run} | {tool} | {cell('init')} | {cell('delta')} | {cell('export')} | {' / '.join(rs[s]['load1'] for s in ('init', 'delta', 'export') if s in rs)} |")
PY
} > "$W/results.md"
echo
cat "$W/results.md"
echo
echo "(written to $W/results.md; raw rows $TSV; full log $LOG)"
