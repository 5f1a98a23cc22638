#!/usr/bin/env bash
# Writes the marker file of a test machine built by build-test-machine.sh, without mounting (no root):
#
#   set-machine-content.sh IMAGE CONTENT        sets /marker.txt on the data partition to "CONTENT\n"
#   set-machine-content.sh IMAGE --get          prints the current /marker.txt
#
# The data partition (MBR entry 2, ext4; its journal replayed first by e2fsck if the machine was stopped
# while mounted) is edited in place with debugfs -w through e2fsprogs'
# "file?offset=BYTES" syntax; the partition's start is read from the MBR with od. The booted machine
# prints the first line as "ASR-CONTENT: <line>".
set -euo pipefail

die() { echo "set-machine-content: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: $0 IMAGE CONTENT | $0 IMAGE --get"
img=$1
content=$2
[ -f "$img" ] || die "no image file: $img"
command -v debugfs >/dev/null && command -v e2fsck >/dev/null || die "missing Debian package: e2fsprogs (debugfs, e2fsck) -- apt-get install -y e2fsprogs"

# MBR partition entry 2: 16 bytes at 446+16; type at +4, start LBA (u32 little-endian) at +8
sig=$(od -An -t x1 -j 510 -N 2 "$img" | tr -d ' \n')
[ "$sig" = "55aa" ] || die "$img has no MBR partition table (signature $sig)"
type=$(od -An -t x1 -j $((446 + 16 + 4)) -N 1 "$img" | tr -d ' \n')
[ "$type" = "83" ] || die "$img: partition 2 has type 0x$type, not 0x83 (Linux data)"
lba=$(od -An -t u4 --endian=little -j $((446 + 16 + 8)) -N 4 "$img" | tr -d ' \n')
dev="$img?offset=$((lba * 512))"

if [ "$content" = "--get" ]; then
  debugfs -R "cat /marker.txt" "$dev" 2>/dev/null
  exit 0
fi
case "$content" in *$'\n'*) die "CONTENT must be one line" ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/asr-content.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# A machine stopped without unmounting leaves its journal to replay: replay it first, or the replay at
# the next mount could put old directory/inode blocks back over what debugfs writes. e2fsck loses the
# ?offset= option when it re-opens the file system after the replay, so this runs on a copy of the
# partition that is written back (only in this case; the normal path edits only the changed blocks).
if dumpe2fs -h "$dev" 2>/dev/null | grep -q '^Filesystem features:.*needs_recovery'; then
  size=$(od -An -t u4 --endian=little -j $((446 + 16 + 12)) -N 4 "$img" | tr -d ' \n')
  dd if="$img" of="$tmp/part" bs=512 skip="$lba" count="$size" status=none
  rc=0; e2fsck -p "$tmp/part" >"$tmp/fsck.log" 2>&1 || rc=$?
  [ $rc -le 1 ] || die "e2fsck of the data partition failed (exit $rc): $(cat "$tmp/fsck.log")"
  dd if="$tmp/part" of="$img" bs=512 seek="$lba" conv=notrunc status=none
  rm -f "$tmp/part"
fi

printf '%s\n' "$content" > "$tmp/marker.txt"
# debugfs 'write' does not replace: remove first (an absent file only prints an error)
# fixed owner and times: the same content always gives the same bytes
{ printf 'rm /marker.txt\nwrite %s /marker.txt\nsif /marker.txt uid 0\nsif /marker.txt gid 0\n' "$tmp/marker.txt"
  for t in atime mtime ctime crtime; do printf 'sif /marker.txt %s 19800101000000\n' "$t"; done; } > "$tmp/cmds"
debugfs -w -f "$tmp/cmds" "$dev" > "$tmp/log" 2>&1 || die "debugfs failed: $(cat "$tmp/log")"
# debugfs exits 0 on most command errors: read the file back
got=$(debugfs -R "cat /marker.txt" "$dev" 2>/dev/null)
[ "$got" = "$content" ] || die "marker not written (read back '$got'): $(cat "$tmp/log")"
