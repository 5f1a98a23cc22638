#!/usr/bin/env bash
# Makes a test machine unbootable while its data stays readable:
#
#   break-machine.sh IMAGE [mbr|vbr]
#
#   mbr (default)  zero the MBR boot code (bytes 0..445 of sector 0). The partition table and the 0x55AA
#                  signature stay, so the data partition is intact and set-machine-content.sh still works;
#                  the BIOS runs zeroed code and the machine never reaches the kernel.
#   vbr            zero the boot code of partition 1's FAT boot sector (bytes 62..509), keeping the BPB
#                  (the FAT file system stays readable with mtools); mbr.bin chains to zeroed code.
#
# Either way the machine never prints "ASR-TEST-MACHINE READY".
set -euo pipefail

die() { echo "break-machine: $*" >&2; exit 1; }
[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 IMAGE [mbr|vbr]"
img=$1
mode=${2:-mbr}
[ -f "$img" ] || die "no image file: $img"
sig=$(od -An -t x1 -j 510 -N 2 "$img" | tr -d ' \n')
[ "$sig" = "55aa" ] || die "$img has no MBR partition table (signature $sig)"

case "$mode" in
  mbr)
    dd if=/dev/zero of="$img" bs=446 count=1 conv=notrunc status=none
    ;;
  vbr)
    lba=$(od -An -t u4 --endian=little -j $((446 + 8)) -N 4 "$img" | tr -d ' \n')
    [ "$lba" -gt 0 ] || die "$img: partition 1 has no start"
    # FAT16 boot sector: BPB + extended BPB end at byte 62; boot code 62..509; 0x55AA at 510
    dd if=/dev/zero of="$img" bs=1 seek=$((lba * 512 + 62)) count=$((510 - 62)) conv=notrunc status=none
    ;;
  *) die "unknown mode '$mode' (mbr|vbr)" ;;
esac
