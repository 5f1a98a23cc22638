#!/bin/sh
# AsrModule app-consistency script (Enable-AsrReplication -AppConsistencyScript): called with "freeze"
# before an app-consistent point and "thaw" after it. Freezes the filesystems mounted from the item's
# disks with fsfreeze(8): dirty data is flushed and writes block until thaw, so the point holds a
# clean filesystem. Filesystems: $ASR_FREEZE_MOUNTPOINTS (space-separated) if set, else every mount of
# the item's block devices ($ASR_DISKS, ':'-separated, set by the agent). Put application quiescing
# (e.g. a database's "flush tables with read lock") before the fsfreeze lines.
set -u
phase="${1:-}"
mounts="${ASR_FREEZE_MOUNTPOINTS:-}"
if [ -z "$mounts" ]; then
    old_ifs="$IFS"; IFS=':'
    for disk in ${ASR_DISKS:-}; do
        IFS="$old_ifs"
        for m in $(findmnt -n -o TARGET --source "$disk" 2>/dev/null); do mounts="$mounts $m"; done
        IFS=':'
    done
    IFS="$old_ifs"
fi
case "$phase" in
    freeze)
        # Nothing to freeze would make the point look app-consistent when it is not.
        if [ -z "$(echo $mounts)" ]; then
            echo "no mounted filesystem found for ${ASR_DISKS:-no disks}; set ASR_FREEZE_MOUNTPOINTS" >&2
            exit 1
        fi
        for m in $mounts; do
            fsfreeze --freeze "$m" || { echo "fsfreeze --freeze $m failed" >&2; exit 1; }
            echo "frozen $m"
        done ;;
    thaw)
        rc=0
        for m in $mounts; do
            # Thaw is also called after a failed freeze: a filesystem that is not frozen is fine.
            fsfreeze --unfreeze "$m" 2>/dev/null && echo "thawed $m" || true
        done
        exit $rc ;;
    *)
        echo "usage: $0 freeze|thaw" >&2; exit 2 ;;
esac
