#!/bin/busybox sh
# /init of the ASR test machine's initramfs (copied in by build-test-machine.sh).
# Prints, on ttyS0 and tty0:
#   ASR-TEST-MACHINE READY            once the data partition is mounted and port 8080 listens
#   ASR-CONTENT: <first line of /data/marker.txt>   (or ASR-CONTENT-MISSING)
#   ASR-NET-OUT: reached|blocked      whether http://10.0.2.2:47654/ (the host's loopback through QEMU) answered
# or, when something fails:
#   ASR-TEST-MACHINE FAILED: <reason>
# and then stays up until powered off.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
export PATH=/bin

say() {
  # the marker lines go to the serial port and the screen, whichever console= is last
  for t in /dev/ttyS0 /dev/tty0; do [ -c "$t" ] && echo "$*" > "$t" 2>/dev/null; done
}
stay() { while :; do sleep 3600; done; }
fail() { say "ASR-TEST-MACHINE FAILED: $*"; stay; }

echo "asr-init: kernel $(uname -r), loading modules"
for m in $(cat /lib/modules/order); do
  insmod "/lib/modules/$m.ko" || echo "asr-init: insmod $m failed"
done

# the data partition: label asrdata (ext4), normally /dev/vda2
dev=""
i=0
while [ $i -lt 100 ]; do
  dev=$(findfs LABEL=asrdata 2>/dev/null) && [ -b "$dev" ] && break
  [ -b /dev/vda2 ] && { dev=/dev/vda2; break; }
  dev=""
  i=$((i + 1)); usleep 100000
done
[ -n "$dev" ] || fail "no data partition (LABEL=asrdata or /dev/vda2); is the disk on virtio (if=virtio)?"
mount -t ext4 "$dev" /data || mount -t ext4 -o ro "$dev" /data || fail "cannot mount $dev on /data"

if [ -f /data/marker.txt ]; then
  content="ASR-CONTENT: $(head -n 1 /data/marker.txt)"
else
  content="ASR-CONTENT-MISSING"
fi

# network (only if a virtio-net NIC is present): QEMU user-mode net's fixed guest address
ip link set lo up
if ip link show eth0 >/dev/null 2>&1; then
  ip addr add 10.0.2.15/24 dev eth0
  ip link set eth0 up
  printf 'ASR-TEST-MACHINE READY\n%s\n' "$content" > /www/index.html
  httpd -p 8080 -h /www || echo "asr-init: httpd failed"
else
  echo "asr-init: no eth0 (NIC model must be virtio-net-pci); port 8080 not served"
fi

say "ASR-TEST-MACHINE READY"
say "$content"

# Whether the network reaches out: the host behind QEMU's user-mode gateway (10.0.2.2 = the host's 127.0.0.1, port
# 47654, where a test may listen) through a default route. A drill's machine must see "blocked" (restrict=on).
if ip link show eth0 >/dev/null 2>&1; then
  ip route add default via 10.0.2.2 2>/dev/null
  # (busybox-static's wget crashes without NSS; nc does not resolve anything)
  if printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 10.0.2.2 47654 2>/dev/null | grep -q .; then say "ASR-NET-OUT: reached"; else say "ASR-NET-OUT: blocked"; fi
fi
stay
