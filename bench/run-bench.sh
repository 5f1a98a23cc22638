#!/usr/bin/env bash
# Benchmark: AsrModule vs restic / borg / rsync on the PRODUCT.md workload.
#
#   bench/run-bench.sh
#
# Environment:
#   BENCH_DIR      work dir (default /tmp/asr-bench); must be empty, absent, or an earlier bench dir
#   BENCH_SIZE_MB  image size in MiB (default 2048)
#   BENCH_KEEP=1   keep images, vaults/repos and restores (otherwise only results.md and bench.log stay)
#   BENCH_NO_BUILD=1  use out/AsrModule as it is (no Release build first)
#   BENCH_SETTLE   seconds to wait after each page-cache drop before a timed step (default 5; see below)
#   BENCH_WARM=0   leave out the second AsrModule row (each step in a process that first ran the same kind of step on a
#                  64 MiB image, then dropped the page cache: what the agent or a long session pays; bench.ps1 -WarmUp)
#
# What it does, in one run:
#   1. v1.img: 1 MiB regions, i % 4 = random, text, zero, zero (bench/make-image.py), with SHA-256;
#      v2.img: a copy of v1 with 1% of its 4 KiB blocks rewritten at random with random data.
#   2. Every tool backs up the same path, $BENCH_DIR/src/disk.img: v1 is copied there, initial backup;
#      v2 is copied over it, delta backup; then the latest point is restored and compared with v2.
#      The copies are not timed; `sync; echo 3 > /proc/sys/vm/drop_caches` (failure ignored) runs
#      before every timed step of every tool, then BENCH_SETTLE seconds pass: this VM reports freed pages to its host
#      (free page reporting, 2 s after they are freed), after which the page cache refills through host page faults —
#      `dd` of the 2 GiB image takes 0.45 s within 1 s of a drop and 2.3-2.8 s from 2 s on (bench/README.md, "Settle").
#      Without the wait a tool that starts reading at once (dd, restic) got the cheap pages and a pwsh step, which
#      starts reading ~1 s later, the dear ones. Each tool gets a fresh repository directory (created
#      untimed), and "bytes added" is the growth of that directory (du -sb) across the step, the
#      first step counted from nothing (so it includes the repository's own metadata).
#   3. dd bs=4M reads src/disk.img (v1, then v2) to /dev/null, caches dropped the same way: the floor of a full scan.
#   4. Prints a summary table, and the ratios issue #15 item 4 sets goals for, and writes them to $BENCH_DIR/results.md.
# It installs nothing (but restores the pinned pwsh, .config/dotnet-tools.json); a missing peer is skipped
# with a line saying so.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
W=${BENCH_DIR:-/tmp/asr-bench}
SIZE_MB=${BENCH_SIZE_MB:-2048}
KEEP=${BENCH_KEEP:-0}
KEY='bench-passphrase-0123456789'
SRC="$W/src/disk.img"
LOG="$W/bench.log"
source "$HERE/pwsh.sh"

# ---------------------------------------------------------------- work dir
if [[ -e "$W" && ! -f "$W/.asr-bench" ]] && [[ -n "$(ls -A "$W" 2>/dev/null)" ]]; then
    echo "refusing to use $W: not empty and not an earlier bench dir (no .asr-bench marker)" >&2
    exit 2
fi
if [[ -f "$W/.asr-bench" ]]; then
    find "$W" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
fi
mkdir -p "$W/src"
touch "$W/.asr-bench"
: > "$LOG"

cleanup() {
    if [[ "$KEEP" != 1 && -d "$W" ]]; then
        find "$W" -mindepth 1 -maxdepth 1 ! -name results.md ! -name bench.log ! -name .asr-bench -exec rm -rf {} +
    fi
}
trap cleanup EXIT

say() { echo "$*"; echo "$*" >> "$LOG"; }
log() { echo "$*" >> "$LOG"; }

DROPPED=unknown
export BENCH_SETTLE=${BENCH_SETTLE:-5}   # also read by bench.ps1 -WarmUp, which drops the cache itself
drop_caches() {
    sync
    if { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
        [[ "$DROPPED" == no ]] || DROPPED=yes
        sleep "$BENCH_SETTLE"
    else
        DROPPED=no
    fi
}
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
dir_bytes() { if [[ -e "$1" ]]; then du -sb "$1" | cut -f1; else echo 0; fi; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
mb() { awk -v b="$1" 'BEGIN { if (b == "" || b == "-") print "-"; else printf "%.1f MB", b / 1e6 }'; }
put_src() { rm -f "$SRC"; cp --sparse=never "$1" "$SRC"; }          # fresh file (initial backup)
swap_src() { cp --sparse=never "$1" "$SRC"; }                        # same inode, new content (delta)

# Results: one row per tool, plus notes.
ROWS=()
NOTES=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 | $7 |"); }
note() { NOTES+=("$*"); say "  note: $*"; }

# Runs "$@" with output appended to the log; sets T to its wall seconds; returns its status.
timed() {
    local t0 t1 rc=0
    drop_caches
    t0=$(now)
    "$@" >> "$LOG" 2>&1 || rc=$?
    t1=$(now)
    T=$(elapsed "$t0" "$t1")
    return $rc
}

# ---------------------------------------------------------------- images
say "== images: ${SIZE_MB} MiB, 1 MiB regions (random, text, zero, zero); then 1% of 4 KiB blocks rewritten"
t0=$(now)
IMG1=$(python3 "$HERE/make-image.py" create "$W/v1.img" "$SIZE_MB" 1)
IMG2=$(python3 "$HERE/make-image.py" mutate "$W/v1.img" "$W/v2.img" 0.01 2)
say "  $IMG1"
say "  $IMG2"
say "  (generated in $(elapsed "$t0" "$(now)") s)"
SHA1=$(sed -n 's/.*sha256=\([0-9a-f]*\).*/\1/p' <<< "$IMG1")
SHA2=$(sed -n 's/.*sha256=\([0-9a-f]*\).*/\1/p' <<< "$IMG2")
REWRITTEN=$(sed -n 's/.*bytes_rewritten=\([0-9]*\).*/\1/p' <<< "$IMG2")
[[ "$(sha "$W/v1.img")" == "$SHA1" && "$(sha "$W/v2.img")" == "$SHA2" ]] || { say "image hash mismatch"; exit 1; }

verify() { # file -> "yes" / "NO (...)"
    if [[ -f "$1" && "$(sha "$1")" == "$SHA2" ]]; then echo yes; else echo "NO ($( [[ -f "$1" ]] && sha "$1" | cut -c1-12 || echo missing))"; fi
}

# ---------------------------------------------------------------- AsrModule
# bench_asr [warm]: each step in a fresh pwsh process; with "warm", each process first runs the same kind of step on a
# small image (bench.ps1 -WarmUp: JIT and fresh memory paid there) and drops the page cache before the timed step.
bench_asr() {
    local warm=${1:-} label=AsrModule
    [[ -z "$warm" ]] || label="AsrModule (warm process)"
    say "== $label (Release, encrypted vault, zstd default level)"
    local out="$W/asr-out" vault="$W/asr-vault$warm" dest="$W/restore-asr$warm"
    if [[ "${BENCH_NO_BUILD:-0}" != 1 && -z "$warm" ]]; then
        say "  building the module (Release: src/AsrModule -> out/AsrModule) ..."
        if ! dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true "$REPO/src/AsrModule" >> "$LOG" 2>&1; then
            say "  SKIP AsrModule: dotnet build -c Release src/AsrModule failed (see $LOG)"
            row AsrModule "build failed" - - - - -
            return
        fi
    fi
    # Snapshot the module so concurrent builds in the repo cannot change it mid-run; each step is a fresh process
    # of the pinned pwsh (bench/pwsh.sh) that imports the snapshot.
    mkdir -p "$out"
    [[ -d "$out/AsrModule" ]] || cp -a "$REPO/out/AsrModule" "$out/"
    if ! pinned_pwsh "$out" 2>> "$LOG"; then
        say "  SKIP AsrModule: the pinned pwsh did not start (cd $REPO && dotnet tool restore; see $LOG)"
        row AsrModule "no pwsh" - - - - -
        return
    fi
    local pwsh=("${PWSH[@]}" -File "$HERE/bench.ps1")
    [[ -z "$warm" ]] || pwsh+=(-WarmUp)

    local step wall line state secs c_init="" c_delta="" c_exp="" r_init r_delta verified=-
    local b0 b1 add_init add_delta walls=()
    put_src "$W/v1.img"
    for step in init delta export; do
        case $step in
            delta) swap_src "$W/v2.img" ;;
        esac
        b0=$(dir_bytes "$vault")
        local marker="---- $label $step ----"
        log "$marker"
        local rc=0
        case $step in
            init)   timed "${pwsh[@]}" init "$vault" "$KEY" "$SRC" || rc=$? ;;
            delta)  timed "${pwsh[@]}" delta "$vault" "$KEY" || rc=$? ;;
            export) timed "${pwsh[@]}" export "$vault" "$KEY" "$dest" || rc=$? ;;
        esac
        wall=$T
        b1=$(dir_bytes "$vault")
        line=$(sed -n "/^$marker\$/,\$p" "$LOG" | grep '^BENCH ' | tail -1 || true)
        state=$(sed -n 's/.*state=\([^ ]*\).*/\1/p' <<< "$line")
        secs=$(sed -n 's/.* seconds=\([^ ]*\).*/\1/p' <<< "$line")
        walls+=("$step $wall s")
        if [[ $rc -ne 0 || "$state" != Succeeded ]]; then
            local output; output=$(sed -n "/^$marker\$/,\$p" "$LOG" | tail -40 | sed 's/^/    | /')
            say "  $label $step FAILED (exit $rc, job state '${state:-none}'); its output:"
            say "$output"
            secs="FAILED"
        else
            say "  $step: $(printf '%.2f' "$secs") s in the cmdlet ($wall s process wall); vault +$((b1 - b0)) B; $line"
        fi
        case $step in
            init)   c_init=$secs; add_init=$((b1 - b0)); r_init=$line ;;
            delta)  c_delta=$secs; add_delta=$((b1 - b0)); r_delta=$line ;;
            export) c_exp=$secs
                    local f; f=$(sed -n 's/.*files=\([^; ]*\).*/\1/p' <<< "$line")
                    [[ "$secs" == FAILED ]] || verified=$(verify "${f:-$dest/disk.img}") ;;
        esac
        [[ "$secs" != FAILED ]] || break
    done
    fmt() { [[ "$1" == FAILED || -z "$1" ]] && echo "${1:--}" || printf '%.2f' "$1"; }
    if [[ -z "$warm" ]]; then ASR_INIT=$c_init ASR_DELTA=$c_delta ASR_EXP=$c_exp; else ASRW_INIT=$c_init ASRW_DELTA=$c_delta ASRW_EXP=$c_exp; fi
    row "$label" "$(fmt "$c_init")" "$(mb "$add_init")" "$(fmt "$c_delta")" "$(mb "${add_delta:-}")" "$(fmt "$c_exp")" "$verified"
    note "$label times are the cmdlet alone (Stopwatch inside the script); whole pwsh process incl. its start-up${warm:+ and warm-up}: ${walls[*]}"
    note "$label job results: initial $(grep -o 'scanned=[^ ]* changed=[^ ]* stored=[^ ]*' <<< "$r_init" || true); delta $(grep -o 'scanned=[^ ]* changed=[^ ]* stored=[^ ]*' <<< "${r_delta:-}" || true); module build $(grep -o 'config=[^ ]*' <<< "$r_init" || true)"
    [[ "$KEEP" == 1 ]] || rm -rf "$dest"
}

# ---------------------------------------------------------------- restic
bench_restic() {
    say "== restic"
    if ! command -v restic > /dev/null; then say "  SKIP restic: not installed"; row restic "not installed" - - - - -; return; fi
    local repo="$W/restic-repo" dest="$W/restore-restic" b0 b1 ti ai td ad tr v=-
    export RESTIC_REPOSITORY="$repo" RESTIC_PASSWORD="$KEY" RESTIC_CACHE_DIR="$W/restic-cache"
    put_src "$W/v1.img"
    log "---- restic $(restic version)"
    b0=$(dir_bytes "$repo")
    restic init >> "$LOG" 2>&1 || { say "  restic init FAILED (see $LOG)"; row restic FAILED - - - - -; return; }
    timed restic backup --host bench "$SRC" || { say "  restic initial FAILED (see $LOG)"; row restic FAILED - - - - -; return; }
    ti=$T; b1=$(dir_bytes "$repo"); ai=$((b1 - b0))
    say "  initial (backup v1): $ti s; repo +$ai B (incl. init)"
    swap_src "$W/v2.img"
    b0=$b1
    timed restic backup --host bench "$SRC" || { say "  restic delta FAILED"; row restic "$ti" "$(mb $ai)" FAILED - - -; return; }
    td=$T; b1=$(dir_bytes "$repo"); ad=$((b1 - b0))
    say "  delta (backup v2): $td s; repo +$ad B"
    if timed restic restore latest --target "$dest"; then tr=$T; v=$(verify "$dest$SRC"); else tr=FAILED; fi
    say "  restore latest: $tr s; matches v2: $v"
    log "$(restic cat config 2>&1 || true)"
    RESTIC_INIT=$ti RESTIC_DELTA=$td RESTIC_RESTORE=$tr
    row restic "$ti" "$(mb $ai)" "$td" "$(mb $ad)" "$tr" "$v"
    unset RESTIC_REPOSITORY RESTIC_PASSWORD RESTIC_CACHE_DIR
    [[ "$KEEP" == 1 ]] || rm -rf "$dest"
}

# ---------------------------------------------------------------- borg
bench_borg() {
    say "== borg"
    if ! command -v borg > /dev/null; then say "  SKIP borg: not installed"; row borg "not installed" - - - - -; return; fi
    local repo="$W/borg-repo" dest="$W/restore-borg" b0 b1 ti ai td ad tr v=-
    export BORG_REPO="$repo" BORG_PASSPHRASE="$KEY" BORG_BASE_DIR="$W/borg-home"
    put_src "$W/v1.img"
    log "---- $(borg --version)"
    b0=$(dir_bytes "$repo")
    borg init -e repokey >> "$LOG" 2>&1 || { say "  borg init FAILED (see $LOG)"; row borg FAILED - - - - -; return; }
    timed sh -c 'cd "$1" && borg create --stats --compression zstd,3 ::v1 src/disk.img' _ "$W" || { say "  borg initial FAILED (see $LOG)"; row borg FAILED - - - - -; return; }
    ti=$T; b1=$(dir_bytes "$repo"); ai=$((b1 - b0))
    say "  initial (create v1): $ti s; repo +$ai B (incl. init)"
    swap_src "$W/v2.img"
    b0=$b1
    timed sh -c 'cd "$1" && borg create --stats --compression zstd,3 ::v2 src/disk.img' _ "$W" || { say "  borg delta FAILED"; row borg "$ti" "$(mb $ai)" FAILED - - -; return; }
    td=$T; b1=$(dir_bytes "$repo"); ad=$((b1 - b0))
    say "  delta (create v2): $td s; repo +$ad B"
    mkdir -p "$dest"
    if timed sh -c 'cd "$1" && borg extract ::v2' _ "$dest"; then tr=$T; v=$(verify "$dest/src/disk.img"); else tr=FAILED; fi
    say "  extract v2: $tr s; matches v2: $v"
    row borg "$ti" "$(mb $ai)" "$td" "$(mb $ad)" "$tr" "$v"
    unset BORG_REPO BORG_PASSPHRASE BORG_BASE_DIR
    [[ "$KEEP" == 1 ]] || rm -rf "$dest"
}

# ---------------------------------------------------------------- dd (the read alone)
# What reading the image costs on this machine, with the cache dropped the same way: the floor of a full-scan
# delta cycle (issue #15 item 4 asks for a delta cycle within 2x of it). Timed on v1 and on v2 in src/disk.img,
# the file and the state the AsrModule initial and delta steps read.
bench_dd() {
    say "== dd bs=4M (read of the image to /dev/null: the floor of a full scan)"
    local ti td
    put_src "$W/v1.img"
    timed dd if="$SRC" of=/dev/null bs=4M || { say "  dd FAILED"; row "dd bs=4M (read only)" FAILED - - - - -; return; }
    ti=$T
    swap_src "$W/v2.img"
    timed dd if="$SRC" of=/dev/null bs=4M || { say "  dd FAILED"; row "dd bs=4M (read only)" "$ti" - FAILED - - -; return; }
    td=$T
    say "  read v1: $ti s; read v2: $td s"
    DD_V2=$td
    row "dd bs=4M (read only)" "$ti" "n/a" "$td" "n/a" "n/a" "n/a"
}

# ---------------------------------------------------------------- rsync (plain copy baseline)
bench_rsync() {
    say "== rsync (plain copy baseline: no compression, no encryption, no history)"
    if ! command -v rsync > /dev/null; then say "  SKIP rsync: not installed"; row rsync "not installed" - - - - -; return; fi
    local dest="$W/rsync-dest" b0 b1 ti ai td ad si sd v
    mkdir -p "$dest"
    put_src "$W/v1.img"
    b0=$(dir_bytes "$dest")
    timed rsync --stats "$SRC" "$dest/" || { say "  rsync initial FAILED"; row rsync FAILED - - - - -; return; }
    ti=$T; b1=$(dir_bytes "$dest"); ai=$((b1 - b0))
    si=$(grep 'Total bytes sent' "$LOG" | tail -1 | tr -dc '0-9')
    say "  initial copy of v1: $ti s; dest +$ai B; rsync sent $si B"
    swap_src "$W/v2.img"
    b0=$b1
    timed rsync --stats --ignore-times --inplace --no-whole-file "$SRC" "$dest/" || { say "  rsync delta FAILED"; row rsync "$ti" "$(mb $ai)" FAILED - - -; return; }
    td=$T; b1=$(dir_bytes "$dest"); ad=$((b1 - b0))
    sd=$(grep 'Total bytes sent' "$LOG" | tail -1 | tr -dc '0-9')
    v=$(verify "$dest/disk.img")
    say "  delta (--ignore-times --inplace --no-whole-file) of v2: $td s; dest +$ad B; rsync sent $sd B; copy matches v2: $v"
    row rsync "$ti" "$(mb $ai)" "$td" "$(mb $ad)" "n/a (is a copy)" "$v"
    note "rsync bytes sent (--stats): initial $(mb "$si"), delta $(mb "$sd"); its dest is a plain uncompressed, unencrypted copy with no history"
}

DD_V2="" ASR_INIT="" ASR_DELTA="" ASR_EXP="" ASRW_INIT="" ASRW_DELTA="" ASRW_EXP="" RESTIC_INIT="" RESTIC_DELTA="" RESTIC_RESTORE=""
bench_asr
[[ "${BENCH_WARM:-1}" == 0 ]] || bench_asr warm
bench_dd
bench_restic
bench_borg
bench_rsync

# ---------------------------------------------------------------- summary
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
MEM=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FS=$(df -T "$W" | awk 'NR == 2 { print $2 }')
{
    echo "# AsrModule benchmark $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "machine: nproc=$(nproc), CPU: ${CPU:-unknown}, RAM $MEM, work dir $W ($FS)"
    echo "image: $((SIZE_MB)) MiB ($((SIZE_MB * 1048576)) B), 1 MiB regions random/text/zero/zero; delta: 1% of 4 KiB blocks rewritten = $(mb "$REWRITTEN") ($REWRITTEN B)"
    echo "v1 sha256 $SHA1; v2 sha256 $SHA2; page cache dropped before each timed step: $DROPPED, then ${BENCH_SETTLE} s waited"
    echo "peers: restic $(restic version 2>/dev/null | awk '{print $2}' || echo -), borg $(borg --version 2>/dev/null | awk '{print $2}' || echo -), rsync $(rsync --version 2>/dev/null | awk 'NR == 1 {print $3}' || echo -); MB = 10^6 bytes"
    echo
    echo "| tool | initial s | initial bytes added | delta s | delta bytes added | restore s | restore verified |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    for n in "${NOTES[@]}"; do echo "- $n"; done
    # Issue #15 item 4's goals, as ratios of this run's figures (a ratio needs both figures as numbers).
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
    echo "- ratios: AsrModule delta / dd v2 = $(ratio "$ASR_DELTA" "$DD_V2") (goal <= 2); restic delta / AsrModule delta = $(ratio "$RESTIC_DELTA" "$ASR_DELTA") (goal >= 4);" \
        "restic initial / AsrModule initial = $(ratio "$RESTIC_INIT" "$ASR_INIT") (goal >= 3); restic restore / AsrModule export = $(ratio "$RESTIC_RESTORE" "$ASR_EXP") (goal >= 2)"
    [[ -z "$ASRW_INIT" ]] || echo "- ratios, warm process: AsrModule delta / dd v2 = $(ratio "$ASRW_DELTA" "$DD_V2") (goal <= 2); restic delta / AsrModule delta = $(ratio "$RESTIC_DELTA" "$ASRW_DELTA") (goal >= 4);" \
        "restic initial / AsrModule initial = $(ratio "$RESTIC_INIT" "$ASRW_INIT") (goal >= 3); restic restore / AsrModule export = $(ratio "$RESTIC_RESTORE" "$ASRW_EXP") (goal >= 2)"
    echo "- times exclude creating the repository (New-AsrVault/New-AsrPolicy, restic init, borg init) and the untimed copy of v1/v2 into src/disk.img; 'initial bytes added' = du -sb of the repo/vault/dest dir after the first backup, so it includes the repository's own metadata"
} > "$W/results.md"
echo
cat "$W/results.md"
echo
echo "(written to $W/results.md; full log $LOG)"
