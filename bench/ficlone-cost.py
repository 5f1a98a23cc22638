#!/usr/bin/env python3
"""What one FICLONE of a disk image costs as copy-on-write fragments it (issue #14's delta floor).

  ficlone-cost.py <image on xfs/btrfs> [rounds=8] [fraction=0.01]

Each round, as a reflink-captured disk lives: clone the image (the point's clone; the previous round's clone is
deleted, as the engine keeps only the latest), rewrite `fraction` of its 4 KiB blocks at random (pwrite + fsync),
then time FICLONE of the image again and count its extents (FIEMAP, through filefrag). Prints one row per round.
"""
import fcntl, os, random, subprocess, sys, time
FICLONE = 0x40049409
img, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8
fraction = float(sys.argv[3]) if len(sys.argv) > 3 else 0.01
clone = img + ".bench-clone"

def ficlone(dst):
    if os.path.exists(dst): os.unlink(dst)
    s = os.open(img, os.O_RDONLY); d = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    t = time.perf_counter(); fcntl.ioctl(d, FICLONE, s); t = time.perf_counter() - t
    os.close(s); os.close(d)
    return t

rng = random.Random(14)
ficlone(clone)
print("round\textents\tficlone_ms")
for r in range(1, rounds + 1):
    fd = os.open(img, os.O_RDWR); blocks = os.fstat(fd).st_size // 4096
    for b in rng.sample(range(blocks), int(blocks * fraction)): os.pwrite(fd, rng.randbytes(4096), b * 4096)
    os.fsync(fd); os.close(fd)
    t = ficlone(clone)  # replaces the previous clone: the engine keeps only the latest point's
    extents = subprocess.run(["filefrag", img], capture_output=True, text=True).stdout.split(":")[-1].split()[0]
    print(f"{r}\t{extents}\t{t * 1000:.0f}", flush=True)
os.unlink(clone)
