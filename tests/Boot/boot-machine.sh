#!/usr/bin/env bash
# Boots a test machine under QEMU (TCG if there is no /dev/kvm) and waits for its readiness line.
#
#   boot-machine.sh DISK [options]
#     DISK               raw image file, a *.qcow2 (e.g. an overlay whose backing file is nbd://...),
#                        or nbd://HOST:PORT[/EXPORT] (booted with snapshot=on: writes stay in QEMU)
#     --timeout S        seconds to wait for the marker (default 120)
#     --port P           host port forwarded to guest port 8080 (default: none; then no NIC at all)
#     --serial FILE      serial console log (default: a temp file, printed on failure)
#     --screenshot FILE  after READY (or timeout) save a QMP screendump (PNG if FILE ends .png, else PPM)
#     --snapshot         also use snapshot=on for a file DISK
#
# Prints "boot: READY after N.NNs" and the ASR-CONTENT line, and (with --port) what HTTP GET / on the
# forwarded port returned; exits 0 when READY was seen, 1 on FAILED or timeout, 2 on usage errors.
# QEMU is stopped (QMP quit) before it returns.
set -euo pipefail

die() { echo "boot-machine: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: $0 DISK [--timeout S] [--port P] [--serial FILE] [--screenshot FILE] [--snapshot]"
disk=$1; shift
timeout=120 port="" serial="" shot="" snap=""
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --serial) serial=$2; shift 2 ;;
    --screenshot) shot=$2; shift 2 ;;
    --snapshot) snap=",snapshot=on"; shift ;;
    *) die "unknown option $1" ;;
  esac
done
command -v qemu-system-x86_64 >/dev/null || die "missing Debian package: qemu-system-x86"

case "$disk" in
  nbd://*) drive="file=$disk,format=raw,if=virtio,snapshot=on" ;;
  *.qcow2) [ -f "$disk" ] || die "no image file: $disk"; drive="file=$disk,format=qcow2,if=virtio$snap" ;;
  *) [ -f "$disk" ] || die "no image file: $disk"; drive="file=$disk,format=raw,if=virtio$snap" ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/asr-boot.XXXXXX")
[ -n "$serial" ] || serial="$tmp/serial.log"
: > "$serial"
qmp="$tmp/qmp.sock"

accel=tcg
[ -w /dev/kvm ] && accel=kvm
args=(-machine pc,accel=$accel -m 256 -display none -vga std -no-reboot
      -serial "file:$serial" -qmp "unix:$qmp,server,nowait"
      -drive "$drive")
if [ -n "$port" ]; then
  # isolated user-mode network: restrict=on (no route out), only the forwarded port in; romfile= (no iPXE ROM)
  args+=(-netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:8080" -device virtio-net-pci,netdev=n0,romfile=)
else
  args+=(-nic none)
fi

qmp_send() { # JSON commands, one per argument
  if command -v socat >/dev/null; then
    { echo '{"execute":"qmp_capabilities"}'; printf '%s\n' "$@"; sleep 1; } | socat - "UNIX-CONNECT:$qmp" >/dev/null 2>&1 || true
  else
    python3 - "$qmp" "$@" <<'EOF' || true
import socket, sys, json, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rw')
f.readline()
for c in ['{"execute":"qmp_capabilities"}'] + sys.argv[2:]:
    f.write(c + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if 'return' in r or 'error' in r: break
EOF
  fi
}

echo "boot-machine: qemu-system-x86_64 ${args[*]}" >&2
t0=$(date +%s.%N)
qemu-system-x86_64 "${args[@]}" 2>"$tmp/qemu.err" &
qpid=$!
cleanup() {
  if kill -0 "$qpid" 2>/dev/null; then
    [ -S "$qmp" ] && qmp_send '{"execute":"quit"}'
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qpid" 2>/dev/null || break; sleep 0.2; done
    kill "$qpid" 2>/dev/null || true
  fi
  wait "$qpid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

result=timeout
while :; do
  if grep -q '^ASR-TEST-MACHINE READY' "$serial" 2>/dev/null; then result=ready; break; fi
  if grep -q '^ASR-TEST-MACHINE FAILED' "$serial" 2>/dev/null; then result=failed; break; fi
  kill -0 "$qpid" 2>/dev/null || { result=exited; break; }
  now=$(date +%s.%N)
  awk -v a="$t0" -v b="$now" -v t="$timeout" 'BEGIN { exit !(b - a > t) }' && break
  sleep 0.05
done
t1=$(date +%s.%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')

if [ "$result" = ready ]; then
  for _ in $(seq 1 40); do grep -q '^ASR-CONTENT' "$serial" && break; sleep 0.05; done
  echo "boot: READY after ${secs}s (accel=$accel)"
  grep -m1 '^ASR-CONTENT' "$serial" || true
  if [ -n "$port" ]; then
    body=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3) 2>/dev/null | tr -d '\r' | sed '1,/^$/d' || true)
    echo "boot: http 127.0.0.1:$port -> $(echo "$body" | tr '\n' '|')"
  fi
else
  echo "boot: no READY ($result after ${secs}s, accel=$accel); serial log:"
  sed 's/^/  | /' "$serial" | tail -n 40
  [ -s "$tmp/qemu.err" ] && sed 's/^/  qemu: /' "$tmp/qemu.err"
fi

if [ -n "$shot" ] && kill -0 "$qpid" 2>/dev/null; then
  fmt=ppm; case "$shot" in *.png) fmt=png ;; esac
  rm -f "$shot"
  qmp_send "{\"execute\":\"screendump\",\"arguments\":{\"filename\":\"$(realpath -m "$shot")\",\"format\":\"$fmt\"}}"
  [ -s "$shot" ] && echo "boot: screenshot $shot ($(stat -c %s "$shot") bytes)" || echo "boot: screenshot failed"
fi
[ "$result" = ready ]
