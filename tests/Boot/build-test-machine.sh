#!/usr/bin/env bash
# Builds a small bootable BIOS/MBR test machine (raw disk image) from Debian packages only.
#
#   build-test-machine.sh OUTPUT.img [MARKER-CONTENT]
#
# Layout (see README.md for the why):
#   sector 0          syslinux mbr.bin + MBR partition table
#   partition 1 (FAT) active; syslinux (ldlinux.sys/.c32), syslinux.cfg, vmlinuz, initrd.gz
#   partition 2 (ext4, label asrdata) /marker.txt = MARKER-CONTENT (default "initial")
# Guest init (busybox) loads virtio + ext4 modules, mounts partition 2 on /data and prints to the
# serial console (ttyS0) and tty0:
#   ASR-TEST-MACHINE READY
#   ASR-CONTENT: <first line of /data/marker.txt>
# and serves the same two lines over HTTP on guest port 8080 (busybox httpd; NIC must be virtio-net-pci).
#
# No root needed: the image is assembled in files with sfdisk, mkfs.vfat, mtools, syslinux --offset,
# mke2fs -d and dd. The kernel comes from `apt-get download` of the package linux-image-amd64 depends on,
# extracted with dpkg-deb (never installed on the host).
#
# Env:
#   ASR_BOOT_CACHE        cache dir for the kernel .deb and the extracted kernel/modules (default /tmp/asr-boot-cache)
#   ASR_BOOT_IMAGE_MIB    total image size in MiB (default 32)
#   ASR_BOOT_BOOT_MIB     boot (FAT) partition size in MiB (default 20)
#   ASR_BOOT_KERNEL_PKG   kernel package name (default: what linux-image-amd64 depends on; else the newest cached .deb)
set -euo pipefail

die() { echo "build-test-machine: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 OUTPUT.img [MARKER-CONTENT]"
out=$1
content=${2-initial}
cache=${ASR_BOOT_CACHE:-/tmp/asr-boot-cache}
total_mib=${ASR_BOOT_IMAGE_MIB:-32}
boot_mib=${ASR_BOOT_BOOT_MIB:-20}
here=$(cd "$(dirname "$0")" && pwd)

# ---- tools (Debian package that ships each) ----
missing=""
need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need dpkg-deb dpkg
need sfdisk fdisk
need mkfs.vfat dosfstools
need mcopy mtools
need syslinux syslinux
need mke2fs e2fsprogs
need debugfs e2fsprogs
need cpio cpio
need gzip gzip
mbr=""
for f in /usr/lib/SYSLINUX/mbr.bin /usr/lib/syslinux/mbr/mbr.bin; do [ -f "$f" ] && { mbr=$f; break; }; done
[ -n "$mbr" ] || missing="$missing syslinux"
busybox=""
# busybox-static ships a static /bin/busybox; the dynamic busybox package would not run in the initramfs.
if dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
  busybox=$(command -v busybox || true)
fi
[ -n "$busybox" ] || missing="$missing busybox-static"
if [ -n "$missing" ]; then
  pkgs=$(echo "$missing" | tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' ')
  die "missing Debian package(s): ${pkgs}-- install with: apt-get install -y ${pkgs% }"
fi
[ "$total_mib" -gt $((boot_mib + 8)) ] || die "ASR_BOOT_IMAGE_MIB ($total_mib) must exceed ASR_BOOT_BOOT_MIB ($boot_mib) + 8"

mkdir -p "$cache"

# ---- kernel package: download once into the cache ----
pkg=${ASR_BOOT_KERNEL_PKG:-}
if [ -z "$pkg" ] && command -v apt-cache >/dev/null; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
fi
deb=""
if [ -n "$pkg" ]; then
  deb=$(ls -1 "$cache/${pkg}"_*_amd64.deb 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$deb" ]; then
    echo "build-test-machine: downloading $pkg into $cache" >&2
    (cd "$cache" && apt-get download -q "$pkg" >/dev/null 2>"$cache/apt-download.log") \
      || die "apt-get download $pkg failed (run 'apt-get update' first?): $(tail -n 2 "$cache/apt-download.log")"
    deb=$(ls -1 "$cache/${pkg}"_*_amd64.deb 2>/dev/null | sort -V | tail -n 1 || true)
  fi
else
  # offline: no apt metadata, use the newest cached kernel .deb
  deb=$(ls -1 "$cache"/linux-image-[0-9]*-amd64_*_amd64.deb 2>/dev/null | sort -V | tail -n 1 || true)
fi
[ -n "$deb" ] && [ -f "$deb" ] || die "no kernel package: apt-cache knows no linux-image-amd64 (run 'apt-get update') and $cache has no linux-image-*-amd64 .deb"

# ---- modules the init needs (Debian builds all of these as modules, see README) ----
wanted_modules="virtio_pci virtio_blk virtio_net crc32c_generic ext4"

# ---- extract vmlinuz + the needed modules once per .deb ----
kdir="$cache/kernel-$(basename "$deb" .deb)"
if [ ! -f "$kdir/.complete" ] || [ "$(cat "$kdir/.complete")" != "$wanted_modules" ]; then
  echo "build-test-machine: extracting $(basename "$deb")" >&2
  rm -rf "$kdir" "$kdir.tmp"
  mkdir -p "$kdir.tmp/x" "$kdir.tmp/modules"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir.tmp/x" --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/*'
  cp "$kdir.tmp/x"/boot/vmlinuz-* "$kdir.tmp/vmlinuz"
  kver=$(basename "$(ls -d "$kdir.tmp/x"/lib/modules/*)")
  echo "$kver" > "$kdir.tmp/kver"
  # module name -> file (names normalise '-' to '_', as the kernel does)
  declare -A kofile=()
  while read -r f; do
    b=${f##*/}; b=${b%.ko}; kofile[${b//-/_}]=$f
  done < <(find "$kdir.tmp/x/lib/modules/$kver/kernel" -name '*.ko')
  deps_of() { tr '\0' '\n' < "$1" | sed -n 's/^depends=//p' | tr ',' ' '; }
  # depth-first: dependencies before the module (load order written to modules.order)
  declare -A seen=()
  : > "$kdir.tmp/modules/order"
  visit() {
    local n=${1//-/_} f d
    [ -n "${seen[$n]:-}" ] && return 0
    seen[$n]=1
    f=${kofile[$n]:-}; [ -n "$f" ] || die "module $n not found in $(basename "$deb")"
    for d in $(deps_of "$f"); do visit "$d"; done
    cp "$f" "$kdir.tmp/modules/$n.ko"
    echo "$n" >> "$kdir.tmp/modules/order"
  }
  for m in $wanted_modules; do visit "$m"; done
  rm -rf "$kdir.tmp/x"
  echo "$wanted_modules" > "$kdir.tmp/.complete"
  mv "$kdir.tmp" "$kdir"
fi
kver=$(cat "$kdir/kver")

# ---- work dir; the output is moved into place at the end (a failed build leaves no half image) ----
work=$(mktemp -d "${TMPDIR:-/tmp}/asr-boot-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- initramfs: static busybox + modules + /init ----
ir="$work/initramfs"
mkdir -p "$ir/bin" "$ir/lib/modules" "$ir/proc" "$ir/sys" "$ir/dev" "$ir/data" "$ir/www" "$ir/tmp" "$ir/etc"
cp "$busybox" "$ir/bin/busybox"
ln -s busybox "$ir/bin/sh"
cp "$kdir/modules/"*.ko "$kdir/modules/order" "$ir/lib/modules/"
cp "$here/init.sh" "$ir/init"
chmod 0755 "$ir/init" "$ir/bin/busybox"
echo "$kver" > "$ir/etc/kernel-version"
# fixed timestamps (and gzip -n) so two builds from the same packages give the same bytes
find "$ir" -exec touch -h -d @1 {} +
# /dev/console comes from the kernel's built-in initramfs (CONFIG_INITRAMFS_SOURCE empty), so no mknod (root) here.
(cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n > "$work/initrd.gz"

# ---- boot partition (FAT) ----
start=2048                                  # 1 MiB aligned
boot_sectors=$((boot_mib * 2048))
data_start=$((start + boot_sectors))
total_sectors=$((total_mib * 2048))
data_sectors=$((total_sectors - data_start))
img="$work/disk.img"
truncate -s "${total_mib}M" "$img"
printf 'label: dos\nlabel-id: 0x41535254\nunit: sectors\n\n%s\n%s\n' \
  "start=$start, size=$boot_sectors, type=6, bootable" \
  "start=$data_start, size=$data_sectors, type=83" | sfdisk -q "$img" >/dev/null
dd if="$mbr" of="$img" bs=440 count=1 conv=notrunc status=none

cat > "$work/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT asr
PROMPT 0
TIMEOUT 0
LABEL asr
  LINUX /vmlinuz
  INITRD /initrd.gz
  APPEND console=tty0 console=ttyS0,115200 loglevel=4 panic=0
EOF
truncate -s "${boot_mib}M" "$work/boot.fat"
# -h: hidden sectors = partition start, so the FAT boot sector finds itself on the disk
mkfs.vfat -F 16 -n ASRBOOT -i 41535254 -h "$start" "$work/boot.fat" >/dev/null
dd if="$work/boot.fat" of="$img" bs=512 seek="$start" conv=notrunc status=none
export MTOOLS_SKIP_CHECK=1 SOURCE_DATE_EPOCH=315532800
cp "$kdir/vmlinuz" "$work/vmlinuz"
touch -d @315532800 "$work/vmlinuz" "$work/initrd.gz" "$work/syslinux.cfg"   # FAT has no dates before 1980
for f in vmlinuz initrd.gz syslinux.cfg; do mcopy -m -i "$img@@$((start * 512))" "$work/$f" "::/$f"; done
syslinux --offset $((start * 512)) --install "$img"
# the syslinux installer stamps ldlinux.sys/.c32 with the current time: reset every root directory
# entry's times to 1980-01-01 00:00 so the image is byte-for-byte reproducible
u16() { od -An -t u2 --endian=little -j "$1" -N 2 "$img" | tr -d ' \n'; }
p0=$((start * 512))
rootdir=$((p0 + ($(u16 $((p0 + 14))) + $(od -An -t u1 -j $((p0 + 16)) -N 1 "$img" | tr -d ' \n') * $(u16 $((p0 + 22)))) * 512))
nroot=$(u16 $((p0 + 17)))
for ((i = 0; i < nroot; i++)); do
  e=$((rootdir + i * 32))
  first=$(od -An -t u1 -j "$e" -N 1 "$img" | tr -d ' \n')
  [ "$first" = 0 ] && break
  # bytes 13..25: create tenths, create time, create date, access date, (cluster hi), write time, write date
  printf '\000\000\000\041\000\041\000' | dd of="$img" bs=1 seek=$((e + 13)) conv=notrunc status=none
  printf '\041\000' | dd of="$img" bs=1 seek=$((e + 18)) conv=notrunc status=none
  printf '\000\000\041\000' | dd of="$img" bs=1 seek=$((e + 22)) conv=notrunc status=none
done

# ---- data partition (ext4, built from a directory by mke2fs -d: no mount) ----
mkdir -p "$work/data"
printf '%s\n' "$content" > "$work/data/marker.txt"
touch -d @315532800 "$work/data" "$work/data/marker.txt"
truncate -s "$((data_sectors * 512))" "$work/data.ext4"
E2FSPROGS_FAKE_TIME=315532800 mke2fs -q -F -t ext4 -L asrdata -U 41535254-0000-4000-8000-000000000002 -E root_owner=0:0,hash_seed=41535254-0000-4000-8000-000000000003 -d "$work/data" "$work/data.ext4" "$((data_sectors / 2))k"
# mke2fs -d copies the host ctime: fix it too
debugfs -w -R "sif /marker.txt ctime 19800101000000" "$work/data.ext4" >/dev/null 2>&1
dd if="$work/data.ext4" of="$img" bs=512 seek="$data_start" conv=notrunc status=none

mkdir -p "$(dirname "$out")"
mv -f "$img" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
echo "build-test-machine: wrote $out (${total_mib} MiB; kernel $kver; initrd $(stat -c %s "$work/initrd.gz") bytes)" >&2
