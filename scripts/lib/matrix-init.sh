#!/bin/busybox sh
# shellcheck shell=dash
# /init of the kernel-matrix guest (scripts/kernel-matrix.sh builds the initramfs).
# Loads the modules kaharness needs, mounts what it reads, runs check-env and the
# case library as /matrix.env says, sends every result back over the serial console
# (a gzipped tar, base64, between two marker lines) and powers the guest off.
# Runs as PID 1 under busybox: nothing here may exit, or the kernel panics.

/bin/busybox --install -s /bin
export PATH=/bin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo 1 > /proc/sys/kernel/printk     # kernel messages would break the base64 lines
echo "KAH-INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
# shellcheck disable=SC1091  # written by kernel-matrix.sh into the initramfs
. /matrix.env

out=/tmp/out
mkdir -p "$out"
# Modules in dependency order (the host resolved it with modprobe --show-depends).
while read -r ko; do
  insmod "/modules/$ko" 2>>"$out/insmod.log" || echo "insmod $ko failed" >>"$out/insmod.log"
done < /modules/order

uname -r > "$out/kernel"
cut -d' ' -f1 /proc/uptime > "$out/boot_uptime"

step() {  # name, command...: runs it, keeps stdout+stderr and the exit code
  name=$1; shift
  echo "KAH-STEP $name: $*"
  start=$(cut -d' ' -f1 /proc/uptime)
  "$@" > "$out/$name.log" 2>&1
  echo $? > "$out/$name.exit"
  end=$(cut -d' ' -f1 /proc/uptime)
  echo "$start $end" > "$out/$name.time"
  tail -n 3 "$out/$name.log"
  echo "KAH-STEP $name exit=$(cat "$out/$name.exit") seconds=$start..$end"
}

cd /
step check-env kaharness check-env
if [ -n "$KAH_SWEEP" ]; then
  # shellcheck disable=SC2086  # KAH_SWEEP_ARGS is a list of words
  step sweep kaharness sweep -n "$KAH_SWEEP" --json "$out/sweep.json" $KAH_SWEEP_ARGS
fi
if [ -n "$KAH_RUN" ]; then
  # shellcheck disable=SC2086
  step run kaharness run /cases --json "$out/run.json" --junit "$out/junit.xml" $KAH_RUN_ARGS
fi
if [ -n "$KAH_VALIDATE" ]; then
  # shellcheck disable=SC2086
  step validate kaharness validate $KAH_VALIDATE
fi

echo "==KAH-RESULTS-BEGIN=="
tar -C "$out" -cf - . | gzip -9 | base64
echo "==KAH-RESULTS-END=="
sync
poweroff -f
