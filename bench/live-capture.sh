#!/usr/bin/env bash
# Live capture (issue #14): (a) a delta cycle by reflink clone + FIEMAP (XFS reflink=1) vs a full scan (ext4) of the
# same image after the same writes; (b) initial replication of a large sparse image vs a dense one of the same data.
#
#   bench/live-capture.sh                          # (a) 5 alternated rounds + btrfs once, (b) 3 rounds on ext4 and xfs
#   LC_ROUNDS=3 LC_SPARSE_ROUNDS=2 bench/live-capture.sh
#
# Environment:
#   LC_DIR            work dir (default /tmp/asr-live-capture); must be empty, absent, or an earlier live-capture dir
#   LC_BIN            where the Release module snapshot goes (default /tmp/asr-live-capture-bin)
#   BENCH_NO_BUILD=1  reuse the snapshot already in LC_BIN
#   LC_PARTS          which parts to run: "ab" (default), "a" or "b"
#   LC_SIZE_MB        benchmark image size in MiB (default 2048; PRODUCT.md mix, bench/make-image.py create)
#   LC_ROUNDS         (a) rounds, xfs/ext4 order alternated per round (default 5)
#   LC_FRACTION       (a) fraction of the 4 KiB blocks rewritten in place before each cycle (default 0.01)
#   LC_BTRFS_ROUNDS   (a) how many of the first rounds also run the same cycle on btrfs (default 1; 0 = none)
#   LC_SPARSE_GB      (b) apparent size of the sparse image in GiB (default 100)
#   LC_SPARSE_CHUNKS  (b) the image's content is written as this many equal chunks at scattered offsets (default 4)
#   LC_SPARSE_FS      (b) file systems to run it on (default "ext4 xfs")
#   LC_SPARSE_ROUNDS  (b) rounds, sparse/dense order alternated per round (default 3)
#   LC_FS_GB          size of each loop file system (default 12)
#   LC_DROP=0         do not drop the page cache before the timed steps (default: sync; echo 3 > drop_caches)
#   LC_KEEP=1         keep images, vaults and mounts' contents (the mounts are still unmounted)
#
# What it does (root: loop devices, mounts, drop_caches):
#   - One loop-mounted file system each for xfs (mkfs.xfs -m reflink=1), ext4 and (if used) btrfs, their backing
#     files and mount points in the work dir under /tmp; the loop devices use direct I/O (no second page cache
#     under the file system). Vaults (encrypted, zstd-1) and exports are in the work dir, off the loop file systems.
#     Everything is unmounted and detached on exit (trap), only the loop devices this script attached.
#   - (a) The benchmark image is copied (zeros written out) onto each file system and protected
#     (Enable-AsrReplication, recorded, untimed for the comparison). Each round r, for each file system in turn
#     (xfs first in odd rounds, ext4 first in even ones): rewrite LC_FRACTION of the disk's 4 KiB blocks in place
#     with random data (pwrite + fsync; the same seeded blocks and bytes on every file system), drop the page cache,
#     time Invoke-AsrReplication (cmdlet Stopwatch, fresh pwsh process), record the job's BytesScanned /
#     ChangedBytes / BytesStored and the item's CaptureMethod; then (untimed) sha256sum of the source, export of
#     the latest point (Export-AsrRecoveryPoint) and sha256sum of the export: they must match.
#   - (b) On each file system of LC_SPARSE_FS: sparse.img, an LC_SPARSE_GB GiB sparse file holding the benchmark
#     image's content in LC_SPARSE_CHUNKS chunks at scattered offsets (written out, zeros included), and dense.img,
#     the same image as a plain file. Each round, in alternated order: a fresh vault, drop the page cache, time
#     Enable-AsrReplication (the initial replication) and record BytesScanned and the step process's peak RSS.
#     In the last round the sparse point is exported (onto the same loop file system: sparse) and compared with
#     the source by a hole-aware compare (python3, SEEK_DATA/SEEK_HOLE).
#   Prints the tables and writes $LC_DIR/results.md; raw rows in $LC_DIR/results.tsv, step output in bench.log.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
W=${LC_DIR:-/tmp/asr-live-capture}
BIN=${LC_BIN:-/tmp/asr-live-capture-bin}
PARTS=${LC_PARTS:-ab}
SIZE_MB=${LC_SIZE_MB:-2048}
ROUNDS=${LC_ROUNDS:-5}
FRACTION=${LC_FRACTION:-0.01}
BTRFS_ROUNDS=${LC_BTRFS_ROUNDS:-1}
SPARSE_GB=${LC_SPARSE_GB:-100}
SPARSE_CHUNKS=${LC_SPARSE_CHUNKS:-4}
SPARSE_FS=${LC_SPARSE_FS:-ext4 xfs}
SPARSE_ROUNDS=${LC_SPARSE_ROUNDS:-3}
FS_GB=${LC_FS_GB:-12}
DROP=${LC_DROP:-1}
KEEP=${LC_KEEP:-0}
KEY='bench-passphrase-0123456789'
LOG="$W/bench.log"
TSV="$W/results.tsv"

[[ $(id -u) == 0 ]] || { echo "needs root (loop devices, mounts, drop_caches)" >&2; exit 2; }
for t in python3 losetup mkfs.xfs mkfs.ext4 sha256sum; do command -v $t > /dev/null || { echo "$t is needed" >&2; exit 2; }; done
if [[ "$BTRFS_ROUNDS" -gt 0 ]] && ! command -v mkfs.btrfs > /dev/null; then echo "no mkfs.btrfs: btrfs skipped"; BTRFS_ROUNDS=0; fi

# ---------------------------------------------------------------- work dir, mounts, cleanup
LOOPS=()
MOUNTS=()
release_mounts() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2> /dev/null || { sleep 1; umount "${MOUNTS[i]}" 2> /dev/null; } || umount -l "${MOUNTS[i]}" || true
    done
    MOUNTS=()
    for d in "${LOOPS[@]}"; do losetup -d "$d" 2> /dev/null || true; done
    LOOPS=()
}
cleanup() {
    local rc=$?
    release_mounts
    if [[ "$KEEP" != 1 && -d "$W" ]]; then
        find "$W" -mindepth 1 -maxdepth 1 ! -name results.md ! -name results.tsv ! -name bench.log ! -name .asr-live-capture -exec rm -rf {} + || true
    fi
    exit $rc
}
if [[ -e "$W" && ! -f "$W/.asr-live-capture" ]] && [[ -n "$(ls -A "$W" 2> /dev/null)" ]]; then
    echo "refusing to use $W: not empty and not an earlier live-capture dir (no .asr-live-capture marker)" >&2
    exit 2
fi
if [[ -f "$W/.asr-live-capture" ]]; then
    # A killed earlier run may have left its mounts and loop devices: release those under $W only.
    while read -r _ mnt _; do [[ "$mnt" == "$W"/* ]] && { umount "$mnt" || umount -l "$mnt" || true; }; done < /proc/mounts
    for f in "$W"/*.fs; do [[ -f "$f" ]] && losetup -j "$f" | cut -d: -f1 | while read -r d; do losetup -d "$d" || true; done; done
    find "$W" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
fi
mkdir -p "$W"
touch "$W/.asr-live-capture"
: > "$LOG"
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*"; echo "$*" >> "$LOG"; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
drop_caches() { sync; if [[ "$DROP" == 1 ]]; then echo 3 > /proc/sys/vm/drop_caches; fi; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $2"; }

declare -A MNT
make_fs() { # fs -> MNT[fs]
    local fs=$1 img="$W/$1.fs" mnt="$W/mnt-$1" dev
    truncate -s "${FS_GB}G" "$img"
    case $fs in
        xfs) mkfs.xfs -q -f -m reflink=1 "$img" ;;
        ext4) mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img" ;;
        btrfs) mkfs.btrfs -q -f "$img" > /dev/null ;;
    esac
    dev=$(losetup -f --show --direct-io=on "$img")
    LOOPS+=("$dev")
    mkdir -p "$mnt"
    mount "$dev" "$mnt"
    MOUNTS+=("$mnt")
    MNT[$fs]=$mnt
    say "  $fs: $img (${FS_GB} GiB) on $dev mounted at $mnt ($(findmnt -no FSTYPE,OPTIONS "$mnt"))"
}

# Runs one step in a fresh pwsh: STEP_LINE (the BENCH line), STEP_WALL (process wall s); returns the step's status.
run_step() {
    local t0 rc=0 n0
    echo "---- $* ----" >> "$LOG"
    n0=$(wc -l < "$LOG")
    t0=$(now)
    "${PWSH[@]}" -File "$HERE/live-capture.ps1" "$@" >> "$LOG" 2>&1 || rc=$?
    STEP_WALL=$(elapsed "$t0" "$(now)")
    STEP_OUT=$(tail -n +$((n0 + 1)) "$LOG")
    STEP_LINE=$(grep '^BENCH ' <<< "$STEP_OUT" | tail -1 || true)
    if [[ $rc -ne 0 || "$(field state "$STEP_LINE")" != Succeeded ]]; then
        say "  STEP FAILED (exit $rc): $*"
        tail -30 <<< "$STEP_OUT" | sed 's/^/    | /'
        return 1
    fi
}

# ---------------------------------------------------------------- helpers in python
cat > "$W/helpers.py" << 'EOF'
import os, random, sys
BS = 4096
def mutate(path, fraction, seed):
    # Rewrites `fraction` of the 4 KiB blocks in place (same blocks, same bytes for the same seed and size), then fsync.
    fd = os.open(path, os.O_RDWR)
    blocks = os.fstat(fd).st_size // BS
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(blocks), max(1, int(blocks * fraction))))
    for b in chosen:
        os.pwrite(fd, rng.randbytes(BS), b * BS)
    os.fsync(fd)
    os.close(fd)
    print(f"blocks_rewritten={len(chosen)} bytes_rewritten={len(chosen) * BS} of_blocks={blocks}")
def data_ranges(fd, size):
    out, pos = [], 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        out.append((start, end))
        pos = end
    return out
def sparse_compare(a, b):
    # Equal iff same size and equal bytes over the union of both files' data ranges (elsewhere both are holes: zeros).
    fa, fb = os.open(a, os.O_RDONLY), os.open(b, os.O_RDONLY)
    sa, sb = os.fstat(fa).st_size, os.fstat(fb).st_size
    if sa != sb:
        print(f"equal=no size {sa} != {sb}"); return
    ra, rb = data_ranges(fa, sa), data_ranges(fb, sb)
    union = sorted(ra + rb)
    merged = []
    for s, e in union:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    compared = 0
    for s, e in merged:
        pos = s
        while pos < e:
            n = min(8 << 20, e - pos)
            if os.pread(fa, n, pos) != os.pread(fb, n, pos):
                print(f"equal=no first_difference_in=[{pos},{pos + n})"); return
            pos += n
            compared += n
    alloc_a, alloc_b = sum(e - s for s, e in ra), sum(e - s for s, e in rb)
    print(f"equal=yes size={sa} compared={compared} data_src={alloc_a} data_export={alloc_b} ranges_src={len(ra)} ranges_export={len(rb)}")
if sys.argv[1] == "mutate":
    mutate(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
elif sys.argv[1] == "compare":
    sparse_compare(sys.argv[2], sys.argv[3])
EOF
helper() { python3 "$W/helpers.py" "$@"; }

# ---------------------------------------------------------------- module snapshot, pwsh
if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
    rm -rf "$BIN"
    mkdir -p "$BIN/out"
    say "building the module (Release) into $BIN ..."
    if ! dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true "$REPO/src/AsrModule" -p:ModuleOutDir="$BIN/out/AsrModule/" -nologo > "$BIN/build.log" 2>&1; then
        # A failed help generation (HelpGen, MSB3073) leaves the packaged module usable; anything else does not.
        if grep -E ' error ' "$BIN/build.log" | grep -vE 'HELPGEN|MSB3073' | head -5 | grep . ; then
            echo "build failed (see $BIN/build.log)" >&2; exit 1
        fi
        say "  (help generation failed; the module itself built)"
    fi
fi
[[ -f "$BIN/out/AsrModule/Dependencies/AsrModule.dll" ]] || { echo "no module in $BIN/out (see $BIN/build.log)" >&2; exit 1; }
source "$HERE/pwsh.sh"
pinned_pwsh "$BIN/out" || { echo "the pinned pwsh did not start (cd $REPO && dotnet tool restore)" >&2; exit 1; }

START=$(date -u '+%Y-%m-%d %H:%M')
say "== live-capture $START UTC, work dir $W; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo -e "part\tround\tfs\torder\tkind\tseconds\twall\tscanned\tchanged\tstored\tcapture\tconsistency\tverified\tpeak_rss_mib\tload1" > "$TSV"
row() { echo -e "$*\t$(cut -d' ' -f1 /proc/loadavg)" >> "$TSV"; }

say "== images: ${SIZE_MB} MiB benchmark image (1 MiB regions random, text, zero, zero)"
BASE="$W/base.img"
IMG=$(python3 "$HERE/make-image.py" create "$BASE" "$SIZE_MB" 1)
say "  $IMG"
SIZE=$((SIZE_MB * 1048576))

FSES=()
[[ "$PARTS" == *a* ]] && FSES+=(xfs ext4)
[[ "$PARTS" == *a* && "$BTRFS_ROUNDS" -gt 0 ]] && FSES+=(btrfs)
if [[ "$PARTS" == *b* ]]; then for fs in $SPARSE_FS; do [[ " ${FSES[*]} " == *" $fs "* ]] || FSES+=("$fs"); done; fi
say "== loop file systems"
for fs in "${FSES[@]}"; do make_fs "$fs"; done

# ---------------------------------------------------------------- (a) delta cycle: reflink + FIEMAP vs full scan
if [[ "$PARTS" == *a* ]]; then
    say "== (a) delta cycle after ${FRACTION} of the 4 KiB blocks rewritten: xfs (reflink + FIEMAP) vs ext4 (full scan), $ROUNDS rounds"
    A_FS=(xfs ext4); [[ "$BTRFS_ROUNDS" -gt 0 ]] && A_FS+=(btrfs)
    for fs in "${A_FS[@]}"; do
        cp --sparse=never "$BASE" "${MNT[$fs]}/disk.img"
        sync
        drop_caches
        run_step init "$W/vault-$fs" "$KEY" -Item "live-$fs" -Disk "${MNT[$fs]}/disk.img" || exit 1
        say "  $fs: initial replication $(printf '%.2f' "$(field seconds "$STEP_LINE")") s, scanned $(field scanned "$STEP_LINE") B, capture $(field capture "$STEP_LINE"), point $(field consistency "$STEP_LINE"); $(grep '^CAPTURE ' <<< "$STEP_OUT" | tail -1)"
        row "a0\t0\t$fs\t0\tinitial\t$(field seconds "$STEP_LINE")\t$STEP_WALL\t$(field scanned "$STEP_LINE")\t$(field changed "$STEP_LINE")\t$(field stored "$STEP_LINE")\t$(field capture "$STEP_LINE")\t$(field consistency "$STEP_LINE")\t-\t$(field peak_rss_mib "$STEP_LINE")"
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        if ((r % 2)); then order=(xfs ext4); else order=(ext4 xfs); fi
        ((r <= BTRFS_ROUNDS)) && order+=(btrfs)
        pos=0
        for fs in "${order[@]}"; do
            pos=$((pos + 1))
            disk="${MNT[$fs]}/disk.img"
            m=$(helper mutate "$disk" "$FRACTION" $((1000 + r)))
            drop_caches
            run_step delta "$W/vault-$fs" "$KEY" -Item "live-$fs" || exit 1
            line=$STEP_LINE; dwall=$STEP_WALL; dnote=$(grep '^NOTE ' <<< "$STEP_OUT" | tail -1 | cut -c6-)
            src_sha=$(sha "$disk")
            exp="$W/export-$fs"
            rm -rf "$exp"
            run_step export "$W/vault-$fs" "$KEY" -Item "live-$fs" -Destination "$exp" || exit 1
            f=$(field files "$STEP_LINE")
            if [[ -f "$f" && "$(sha "$f")" == "$src_sha" ]]; then v=yes; else v="NO"; fi
            rm -rf "$exp"
            say "  round $r $fs: $(printf '%.2f' "$(field seconds "$line")") s (process $dwall s), scanned $(field scanned "$line") B, changed $(field changed "$line") B, stored $(field stored "$line") B, capture $(field capture "$line"), point $(field point "$line") $(field consistency "$line"); export matches source (sha256): $v; rewritten: $m${dnote:+; note: $dnote}"
            row "a\t$r\t$fs\t$pos\tdelta\t$(field seconds "$line")\t$dwall\t$(field scanned "$line")\t$(field changed "$line")\t$(field stored "$line")\t$(field capture "$line")\t$(field consistency "$line")\t$v\t$(field peak_rss_mib "$line")"
            [[ "$v" == yes ]] || { say "  VERIFY FAILED: $fs round $r: the exported point differs from the source (sha256 $src_sha)"; exit 1; }
        done
    done
fi

# ---------------------------------------------------------------- (b) initial replication: sparse vs dense
if [[ "$PARTS" == *b* ]]; then
    CHUNK_MB=$((SIZE_MB / SPARSE_CHUNKS))
    say "== (b) initial replication: ${SPARSE_GB} GiB sparse image holding ${SIZE_MB} MiB in $SPARSE_CHUNKS chunks vs the dense ${SIZE_MB} MiB image, $SPARSE_ROUNDS rounds, on: $SPARSE_FS"
    for fs in $SPARSE_FS; do
        sp="${MNT[$fs]}/sparse.img"
        rm -f "$sp"
        truncate -s "${SPARSE_GB}G" "$sp"
        offs=()
        for ((k = 0; k < SPARSE_CHUNKS; k++)); do
            # Chunk k at about k/(n-1) of the file (the last one ends at its end), on a 1 MiB boundary plus k * 7 MiB.
            if ((SPARSE_CHUNKS == 1)); then off=0; else off=$(( (SPARSE_GB * 1024 - CHUNK_MB) * k / (SPARSE_CHUNKS - 1) )); fi
            ((k > 0 && k < SPARSE_CHUNKS - 1)) && off=$((off + k * 7))
            offs+=("$off")
            dd if="$BASE" of="$sp" bs=1M skip=$((k * CHUNK_MB)) seek="$off" count="$CHUNK_MB" conv=notrunc status=none
        done
        cp --sparse=never "$BASE" "${MNT[$fs]}/dense.img"
        sync
        say "  $fs: sparse.img $(du -B1 --apparent-size "$sp" | cut -f1) B apparent, $(du -B1 "$sp" | cut -f1) B allocated, chunks of $CHUNK_MB MiB at MiB offsets ${offs[*]}; dense.img $(du -B1 "${MNT[$fs]}/dense.img" | cut -f1) B allocated"
        for ((r = 1; r <= SPARSE_ROUNDS; r++)); do
            if ((r % 2)); then order=(sparse dense); else order=(dense sparse); fi
            pos=0
            for kind in "${order[@]}"; do
                pos=$((pos + 1))
                vault="$W/vault-b-$fs-$kind"
                rm -rf "$vault"
                drop_caches
                run_step init "$vault" "$KEY" -Item "b-$kind" -Disk "${MNT[$fs]}/$kind.img" || exit 1
                line=$STEP_LINE; bwall=$STEP_WALL
                v=-
                if [[ $kind == sparse && $r == "$SPARSE_ROUNDS" ]]; then
                    exp="${MNT[$fs]}/export-sparse"
                    rm -rf "$exp"
                    if run_step export "$vault" "$KEY" -Item "b-$kind" -Destination "$exp"; then
                        c=$(helper compare "$sp" "$(field files "$STEP_LINE")")
                        say "    export of the sparse point ($(printf '%.2f' "$(field seconds "$STEP_LINE")") s) vs source, hole-aware: $c"
                        [[ "$c" == equal=yes* ]] && v=yes || v=NO
                    else
                        v="export failed"
                    fi
                    rm -rf "$exp"
                fi
                say "  $fs round $r $kind: $(printf '%.2f' "$(field seconds "$line")") s, scanned $(field scanned "$line") B, stored $(field stored "$line") B, capture $(field capture "$line"), step process peak RSS $(field peak_rss_mib "$line") MiB"
                row "b\t$r\t$fs\t$pos\t$kind\t$(field seconds "$line")\t$bwall\t$(field scanned "$line")\t$(field changed "$line")\t$(field stored "$line")\t$(field capture "$line")\t$(field consistency "$line")\t$v\t$(field peak_rss_mib "$line")"
                # This item's clones (xfs/btrfs) and its vault are not needed any more.
                id=$(field itemid "$line"); [[ -n "$id" ]] && rm -rf "${MNT[$fs]}/.asr-capture/$id"
                rm -rf "$vault"
                [[ "$v" == - || "$v" == yes ]] || { say "  VERIFY FAILED: sparse export on $fs"; exit 1; }
            done
        done
    done
fi

# ---------------------------------------------------------------- summary
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
python3 - "$TSV" "$SIZE" "$W/results.md" "$START" "$(nproc)" "$CPU" "$FRACTION" "$SPARSE_GB" "$SIZE_MB" "$DROP" "$(cut -d' ' -f1-3 /proc/loadavg)" << 'EOF'
import csv, statistics, sys
tsv, size, out, start, cores, cpu, fraction, sparse_gb, size_mb, drop, load_end = sys.argv[1:12]
size = int(size)
rows = list(csv.DictReader(open(tsv), delimiter="\t"))
L = []
def med(xs): return statistics.median(xs) if xs else float("nan")
def f2(x): return f"{x:.2f}"
L.append(f"### live-capture {start} UTC")
L.append("")
L.append(f"machine: {cores} cores ({cpu}); page cache dropped before each timed step: {'yes' if drop == '1' else 'no'}; load average at the end {load_end}")
L.append("")
a = [r for r in rows if r["part"] == "a"]
if a:
    init = [r for r in rows if r["part"] == "a0"]
    L.append(f"(a) delta cycle after {float(fraction) * 100:g}% of the 4 KiB blocks rewritten in place, {size_mb} MiB image (PRODUCT.md mix); "
             f"median [min-max] over rounds; cmdlet seconds (Stopwatch)")
    L.append("")
    L.append("| file system | capture | rounds | delta s | MiB scanned | % of disk read | MiB changed | MiB stored | exports verified |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    by = {}
    for r in a: by.setdefault(r["fs"], []).append(r)
    for fs, rs in by.items():
        s = [float(r["seconds"]) for r in rs]; sc = [int(r["scanned"]) for r in rs]
        ch = [int(r["changed"]) for r in rs]; st = [int(r["stored"]) for r in rs]
        ok = sum(r["verified"] == "yes" for r in rs)
        L.append(f"| {fs} | {rs[0]['capture']} | {len(rs)} | {f2(med(s))} [{f2(min(s))}-{f2(max(s))}] | {med(sc) / 2**20:.1f} [{min(sc) / 2**20:.1f}-{max(sc) / 2**20:.1f}] | "
                 f"{100 * med(sc) / size:.2f}% | {med(ch) / 2**20:.1f} | {med(st) / 2**20:.1f} | {ok}/{len(rs)} |")
    if "xfs" in by and "ext4" in by:
        x = {r["round"]: float(r["seconds"]) for r in by["xfs"]}; e = {r["round"]: float(r["seconds"]) for r in by["ext4"]}
        paired = sorted(e[k] / x[k] for k in x if k in e)
        ratio = med(list(e.values())) / med(list(x.values()))
        xs = med([int(r["scanned"]) for r in by["xfs"]])
        L.append("")
        L.append(f"full scan (ext4) / reflink delta (xfs), medians: **{ratio:.1f}x** (paired per round: median {med(paired):.1f}x, min {paired[0]:.1f}x, max {paired[-1]:.1f}x); "
                 f"goal >= 4x: {'met' if ratio >= 4 else 'NOT met'}; xfs read {100 * xs / size:.2f}% of the disk (goal <= 5%: {'met' if xs <= 0.05 * size else 'NOT met'})")
    if init:
        L.append("")
        L.append("initial replications (once, before the rounds): " + "; ".join(
            f"{r['fs']} {f2(float(r['seconds']))} s, {int(r['scanned']) / 2**20:.0f} MiB scanned, capture {r['capture']}, point {r['consistency']}" for r in init))
    L.append("")
b = [r for r in rows if r["part"] == "b"]
if b:
    L.append(f"(b) initial replication (Enable-AsrReplication): {sparse_gb} GiB sparse image holding the {size_mb} MiB image's content vs the dense {size_mb} MiB image; "
             f"median [min-max] over rounds; cmdlet seconds")
    L.append("")
    L.append("| file system | image | rounds | initial s | MiB scanned | MiB stored | step process peak RSS MiB | export verified |")
    L.append("|---|---|---|---|---|---|---|---|")
    by = {}
    for r in b: by.setdefault((r["fs"], r["kind"]), []).append(r)
    for (fs, kind), rs in by.items():
        s = [float(r["seconds"]) for r in rs]; sc = [int(r["scanned"]) for r in rs]; st = [int(r["stored"]) for r in rs]
        rss = [float(r["peak_rss_mib"]) for r in rs]
        v = ",".join(r["verified"] for r in rs if r["verified"] != "-") or "-"
        L.append(f"| {fs} | {kind} | {len(rs)} | {f2(med(s))} [{f2(min(s))}-{f2(max(s))}] | {med(sc) / 2**20:.0f} | {med(st) / 2**20:.0f} | {med(rss):.0f} [{min(rss):.0f}-{max(rss):.0f}] | {v} |")
    L.append("")
    for fs in dict.fromkeys(r["fs"] for r in b):
        sp = {r["round"]: float(r["seconds"]) for r in by.get((fs, "sparse"), [])}; de = {r["round"]: float(r["seconds"]) for r in by.get((fs, "dense"), [])}
        if sp and de:
            paired = sorted(sp[k] / de[k] for k in sp if k in de)
            L.append(f"- {fs}: sparse / dense, medians {med(list(sp.values())) / med(list(de.values())):.2f}x (paired per round {', '.join(f'{p:.2f}' for p in paired)})")
    L.append("")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
EOF
say "(results: $W/results.md, rows: $TSV, log: $LOG)"
