#!/usr/bin/env python3
"""Benchmark disk images (python3 stdlib only).

  make-image.py create <path> <size_mb> [seed]
      Raw image of 1 MiB regions, region i % 4: random, text, zero, zero
      (25% random, 25% English-like ASCII text, 50% zeros, as in PRODUCT.md).
      Zeros are written out (not left as holes) so every tool reads real data.
  make-image.py mutate <src> <dst> [fraction] [seed]
      Copies src to dst, then overwrites `fraction` (default 0.01) of the 4 KiB blocks of dst,
      chosen at random without repetition, with random data.
  make-image.py create-random <path> <size_mb> [seed]
      Raw image of seeded pseudo-random bytes throughout: incompressible (bench/blob-throughput.sh).
  make-image.py mutate-runs <src> <dst> [fraction] [min_kib] [max_kib] [seed]
      Copies src to dst, then overwrites `fraction` (default 0.10) of it with random data in
      non-overlapping runs of min_kib..max_kib KiB (default 64..1024, multiples of 4 KiB, 4 KiB-aligned),
      scattered at random over the whole image.
All print one line of key=value facts and the SHA-256 of the written image.
"""
import hashlib
import os
import random
import shutil
import sys

MIB = 1 << 20
BLOCK = 4096

# A vocabulary with a Zipf-like frequency skew, so the text compresses roughly like prose.
WORDS = (
    "the of and to a in is it you that he was for on are with as I his they be at one have this "
    "from or had by hot word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like so "
    "these her long make thing see him two has look more day could go come did number sound no "
    "most people my over know water than call first who may down side been now find any new work "
    "part take get place made live where after back little only round man year came show every "
    "good me give our under name very through just form sentence great think say help low line "
    "differ turn cause much mean before move right boy old too same tell does set three want air "
    "well also play small end put home read hand port large spell add even land here must big high "
    "such follow act why ask men change went light kind off need house picture try us again animal "
    "point mother world near build self earth father head stand own page should country found answer "
    "school grow study still learn plant cover food sun four between state keep eye never last let "
    "thought city tree cross farm hard start might story saw far sea draw left late run while press "
    "close night real life few north open seem together next white children begin got walk example "
    "ease paper group always music those both mark often letter until mile river car feet care second "
    "book carry took science eat room friend began idea fish mountain stop once base hear horse cut "
    "sure watch color face wood main enough plain girl usual young ready above ever red list though "
    "feel talk bird soon body dog family direct pose leave song measure door product black short "
    "numeral class wind question happen complete ship area half rock order fire south problem piece "
    "told knew pass since top whole king space heard best hour better true during hundred five "
    "remember step early hold west ground interest reach fast verb sing listen six table travel less "
    "morning ten simple several vowel toward war lay against pattern slow center love person money "
    "serve appear road map rain rule govern pull cold notice voice unit power town fine certain fly "
    "fall lead cry dark machine note wait plan figure star box noun field rest correct able pound "
    "done beauty drive stood contain front teach week final gave green oh quick develop ocean warm "
    "free minute strong special mind behind clear tail produce fact street inch multiply nothing "
    "course stay wheel full force blue object decide surface deep moon island foot system busy test "
    "record boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape "
    "equate miss brought heat snow tire bring yes distant fill east paint language among"
).split()
WEIGHTS = [1.0 / (i + 1) ** 0.9 for i in range(len(WORDS))]


def text_region(rng: random.Random) -> bytes:
    out = bytearray()
    while len(out) < MIB:
        words = rng.choices(WORDS, weights=WEIGHTS, k=12000)
        # Sentences of 8..20 words with capitals, punctuation and line breaks.
        parts, i = [], 0
        while i < len(words):
            n = rng.randint(8, 20)
            s = " ".join(words[i:i + n])
            parts.append(s[:1].upper() + s[1:] + rng.choice((". ", ". ", ", ", ".\n", "? ")))
            i += n
        out += "".join(parts).encode("ascii")
    return bytes(out[:MIB])


def create(path: str, size_mb: int, seed: int) -> None:
    rng = random.Random(seed)
    zero = bytes(MIB)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size_mb):
            kind = i % 4
            if kind == 0:
                data = rng.randbytes(MIB)
            elif kind == 1:
                data = text_region(rng)
            else:
                data = zero
            f.write(data)
            h.update(data)
    print(f"image={path} bytes={size_mb * MIB} regions={size_mb} sha256={h.hexdigest()}")


def mutate(src: str, dst: str, fraction: float, seed: int) -> None:
    shutil.copyfile(src, dst)
    size = os.path.getsize(dst)
    blocks = size // BLOCK
    count = max(1, int(blocks * fraction))
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(blocks), count))
    with open(dst, "r+b") as f:
        for b in chosen:
            f.seek(b * BLOCK)
            f.write(rng.randbytes(BLOCK))
    h = hashlib.sha256()
    with open(dst, "rb") as f:
        while chunk := f.read(8 * MIB):
            h.update(chunk)
    print(f"image={dst} blocks_rewritten={count} bytes_rewritten={count * BLOCK} of_blocks={blocks} sha256={h.hexdigest()}")


def create_random(path: str, size_mb: int, seed: int) -> None:
    rng = random.Random(seed)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size_mb):
            data = rng.randbytes(MIB)
            f.write(data)
            h.update(data)
    print(f"image={path} bytes={size_mb * MIB} kind=random sha256={h.hexdigest()}")


def mutate_runs(src: str, dst: str, fraction: float, min_kib: int, max_kib: int, seed: int) -> None:
    shutil.copyfile(src, dst)
    size = os.path.getsize(dst)
    blocks = size // BLOCK
    target = int(blocks * fraction)
    rng = random.Random(seed)
    lo, hi = max(1, min_kib * 1024 // BLOCK), max(1, max_kib * 1024 // BLOCK)
    runs = []                                   # lengths in 4 KiB blocks
    while sum(runs) < target:
        runs.append(max(lo, min(rng.randint(lo, hi), target - sum(runs))))   # the last may overshoot by < min_kib
    rng.shuffle(runs)
    # Spread the free blocks as random gaps before each run (and after the last): no overlap, uniform scatter.
    free = blocks - sum(runs)
    cuts = sorted(rng.randint(0, free) for _ in runs)
    offsets, pos, prev = [], 0, 0
    for n, cut in zip(runs, cuts):
        pos += cut - prev
        prev = cut
        offsets.append(pos)
        pos += n
    with open(dst, "r+b") as f:
        for start, n in zip(offsets, runs):
            f.seek(start * BLOCK)
            f.write(rng.randbytes(n * BLOCK))
    h = hashlib.sha256()
    with open(dst, "rb") as f:
        while chunk := f.read(8 * MIB):
            h.update(chunk)
    written = sum(runs) * BLOCK
    print(f"image={dst} runs={len(runs)} run_kib_min={min(runs) * 4} run_kib_max={max(runs) * 4} "
          f"bytes_rewritten={written} of_bytes={size} sha256={h.hexdigest()}")


def main(argv):
    if len(argv) >= 4 and argv[1] == "create":
        create(argv[2], int(argv[3]), int(argv[4]) if len(argv) > 4 else 1)
    elif len(argv) >= 4 and argv[1] == "mutate":
        mutate(argv[2], argv[3], float(argv[4]) if len(argv) > 4 else 0.01, int(argv[5]) if len(argv) > 5 else 2)
    elif len(argv) >= 4 and argv[1] == "create-random":
        create_random(argv[2], int(argv[3]), int(argv[4]) if len(argv) > 4 else 1)
    elif len(argv) >= 4 and argv[1] == "mutate-runs":
        mutate_runs(argv[2], argv[3], float(argv[4]) if len(argv) > 4 else 0.10,
                    int(argv[5]) if len(argv) > 5 else 64, int(argv[6]) if len(argv) > 6 else 1024,
                    int(argv[7]) if len(argv) > 7 else 2)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
