#!/usr/bin/env bash
# Runs the case library on other kernels, each booted under QEMU from a small
# initramfs, and on the running kernel natively; merges the results into one JUnit
# file and one page with a kernel column. See --help.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
Usage: scripts/kernel-matrix.sh [OPTIONS] [KERNEL-PACKAGE...]

Boots each Debian kernel package named (default: linux-image-cloud-amd64 and
linux-image-rt-amd64, Debian 12's, each resolved to the versioned package it depends
on) under QEMU, runs `kaharness check-env` and `kaharness run /cases` inside, and runs
`kaharness run cases/` natively on the running kernel. Kernels are downloaded with
`apt-get download` into build/kernels/ and extracted there (never installed on this
machine); modules are loaded only inside the guest.

Options:
  --out DIR         results (default build/matrix): DIR/<kernel>/ per kernel, then
                    DIR/junit.xml, DIR/matrix.md and DIR/index.html merged
  --filter GLOB     run only the cases whose name matches GLOB (kaharness run --filter)
  --clock MODE      the guest's clock under TCG: icount (default) or real.
                    icount: QEMU's -icount shift=N,sleep=off, the guest's time
                    follows the instructions it executes and idle time is skipped,
                    so a busy host cannot make the guest's timers late.
                    real: the guest's clock is the host's; under TCG on a busy host
                    its timers fire tens to hundreds of ms late and neither
                    calibrated nor phase-blind windows hold (docs/kernel-matrix.md
                    has the figures): the run says so and its failures are noise.
                    Under KVM the clock is always real.
  --icount-shift N  with --clock icount: one guest instruction takes 2^N ns of
                    guest time (default 1: a 500 MIPS guest CPU; larger is a
                    slower CPU, whose set-up then overlaps the first probes)
  --windows MODE    calibrated (default) or phase-blind (kaharness --no-calibration)
  --sweep N         also run `kaharness sweep -n N` in each guest and natively
                    (measures the windows against that kernel: misses and widths)
  --no-run          do not run the case library (with --sweep: only the sweep)
  --validate FILE   also run `kaharness validate FILE` on each kernel (repeatable;
                    needs a kaharness that has `validate`, issue 12 item 1)
  --pcap-all        keep every connection's packets (default: failed ones only),
                    in DIR/<kernel>/pcap/
  --no-native       skip the running kernel
  --timeout S       seconds a guest may run before its QEMU is killed (default 1500)
  --memory MB       guest memory (default 1024)
  -h, --help        this text

Environment: KAHARNESS=PATH runs that binary (default build/harness/kaharness).

Exit: 0 every kernel passed, 1 a case failed or a guest did not finish, 2 bad
arguments, 3 this machine cannot run it (no QEMU and it cannot be installed).
Needs root (namespaces for the native run, apt-get for the tools and kernels).
EOF
}

out=build/matrix filter="" windows=calibrated clock=icount shift=1 pcap_all="" sweep="" do_run=1 native=1 timeout=1500 memory=1024
packages=() validate=()
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    --windows) windows=$2; shift 2 ;;
    --clock) clock=$2; shift 2 ;;
    --icount-shift) shift=$2; shift 2 ;;
    --sweep) sweep=$2; shift 2 ;;
    --no-run) do_run=""; shift ;;
    --pcap-all) pcap_all=1; shift ;;
    --validate) [ -f "$2" ] || { echo "kernel-matrix.sh: --validate $2: no such file" >&2; exit 2; }
                validate+=("$2"); shift 2 ;;
    --no-native) native=""; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "kernel-matrix.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) packages+=("$1"); shift ;;
  esac
done
[ ${#packages[@]} -gt 0 ] || packages=(linux-image-cloud-amd64 linux-image-rt-amd64)
case $windows in
  phase-blind|calibrated) ;;
  *) echo "kernel-matrix.sh: --windows must be calibrated or phase-blind, not '$windows'" >&2; exit 2 ;;
esac
case $clock in
  icount|real) ;;
  *) echo "kernel-matrix.sh: --clock must be icount or real, not '$clock'" >&2; exit 2 ;;
esac
if ! [[ $shift =~ ^[0-9]+$ ]] || [ "$shift" -gt 10 ]; then
  echo "kernel-matrix.sh: --icount-shift must be 0..10, not '$shift'" >&2; exit 2
fi

# The guest tools are not in scripts/install-deps.sh: the test suite and CI's test
# job never boot a guest, and QEMU is about 70 MB more. The matrix installs them itself.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx insmod || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v depmod >/dev/null || need+=(kmod)
command -v jq >/dev/null || need+=(jq)   # scripts/lib/matrix-merge.sh
if [ ${#need[@]} -gt 0 ]; then
  echo "installing what the guests need: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    { echo "kernel-matrix.sh: cannot install ${need[*]}" >&2; exit 3; }
fi
if ldd /bin/busybox >/dev/null 2>&1; then
  echo "kernel-matrix.sh: /bin/busybox is linked dynamically; the guest needs busybox-static" >&2; exit 3
fi

bin=${KAHARNESS:-build/harness/kaharness}
[ -x "$bin" ] || scripts/build.sh
if [ ${#validate[@]} -gt 0 ] && ! "$bin" validate --help >/dev/null 2>&1; then
  echo "kernel-matrix.sh: --validate: $bin has no 'validate' command yet" >&2; exit 2
fi
accel=tcg
[ -w /dev/kvm ] && accel=kvm
qemu_clock=""
if [ $accel = kvm ]; then
  clock=real
elif [ "$clock" = icount ]; then
  qemu_clock="-icount shift=$shift,sleep=off"
else
  echo "warning: --clock real under TCG: the guest's timers fire late when the host is busy;" \
       "measured here, 19 of 50 sweep connections missed even phase-blind windows: failures are noise"
fi
mkdir -p "$out" build/kernels
status=0

ms_now() { echo $(($(date +%s%N) / 1000000)); }
seconds() { printf '%d.%03d\n' $(($1 / 1000)) $(($1 % 1000)); }  # milliseconds -> seconds

# Resolves a metapackage (linux-image-cloud-amd64) to the versioned package it
# depends on (linux-image-6.1.0-57-cloud-amd64); a versioned name stays as it is.
resolve() {
  local dep
  dep=$(apt-cache depends --important "$1" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
  echo "${dep:-$1}"
}

# Downloads and extracts a kernel package into build/kernels/<package>/; prints the
# folder. Nothing is installed: dpkg-deb -x only unpacks the files there.
fetch_kernel() {
  local pkg=$1 dir=build/kernels/$1
  if [ ! -d "$dir/boot" ]; then
    ( cd build/kernels && apt-get download "$pkg" ) > build/kernels/"$pkg".log 2>&1 ||
      { echo "kernel-matrix.sh: apt-get download $pkg failed:" >&2; cat build/kernels/"$pkg".log >&2; return 1; }
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    dpkg-deb -x build/kernels/"$pkg"_*.deb "$dir.tmp" && mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# The modules kaharness uses (veth, nftables and the expressions of the fault rules,
# conntrack and its netlink, NAT, reject, sock_diag); their dependencies come first.
modules=(veth nf_tables nft_ct nft_reject_inet nft_masq nft_nat nft_chain_nat nft_numgen
         nft_objref nf_conntrack_netlink inet_diag tcp_diag)

# Builds DIR/initrd.gz for the kernel extracted in $1, version $2.
build_initramfs() {
  local kdir=$1 version=$2 dir=$3 root=$3/root m ko lib
  rm -rf "$root"
  mkdir -p "$root"/{bin,proc,sys,dev,tmp,run,root,etc,boot,modules,cases}
  cp /bin/busybox "$root/bin/busybox"
  install -m 755 scripts/lib/matrix-init.sh "$root/init"
  # Stripped: the debug information is most of the binary, and a smaller
  # initramfs boots faster (QEMU loads it and the guest unpacks it, both emulated).
  strip -o "$root/bin/kaharness" "$bin"
  # Every library ldd lists, and the loader, at the paths the binary asks for.
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp cases/*.toml "$root/cases/"
  if [ ${#validate[@]} -gt 0 ]; then
    mkdir -p "$root/validate"
    cp "${validate[@]}" "$root/validate/"
  fi
  cp /etc/protocols /etc/services "$root/etc/" 2>/dev/null || true
  echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >> "$root/etc/passwd"
  # HZ: these kernels have no /proc/config.gz, kaharness reads /boot/config-$(uname -r).
  cp "$kdir/boot/config-$version" "$root/boot/"
  depmod -b "$kdir" "$version"   # writes only under $kdir/lib/modules/$version
  : > "$root/modules/order"
  for m in "${modules[@]}"; do
    modprobe -d "$kdir" -S "$version" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
  done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$root/modules/"
    basename "$ko" >> "$root/modules/order"
  done
  {
    echo "KAH_RUN=$do_run"
    echo "KAH_RUN_ARGS='$run_args'"
    echo "KAH_SWEEP=$sweep"
    echo "KAH_SWEEP_ARGS='$sweep_args'"
    [ ${#validate[@]} -eq 0 ] || echo "KAH_VALIDATE='$(cd "$root" && echo validate/*)'"
  } > "$root/matrix.env"
  ( cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$dir/initrd.gz"
  rm -rf "$root"
}

# Boots one guest; its console goes to DIR/console.log. Writes DIR/boot_s (host
# seconds from QEMU's start to /init) and DIR/wall_s, extracts the results into DIR.
boot_guest() {
  local kdir=$1 version=$2 dir=$3 start now booted="" pid rc=0
  rm -f "$dir/console.log"
  start=$(ms_now)
  # shellcheck disable=SC2086  # $qemu_clock is a list of words
  qemu-system-x86_64 -accel "$accel" $qemu_clock -m "$memory" -smp 1 -nographic -no-reboot -nic none \
    -monitor none -serial "file:$dir/console.log" \
    -kernel "$kdir/boot/vmlinuz-$version" -initrd "$dir/initrd.gz" \
    -append "console=ttyS0 panic=-1 loglevel=1 no_timer_check" </dev/null >"$dir/qemu.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    now=$(ms_now)
    if [ -z "$booted" ] && grep -aq 'KAH-INIT' "$dir/console.log" 2>/dev/null; then
      booted=$(seconds $((now - start)))
      echo "  booted in ${booted} s"
    fi
    if [ $((now - start)) -gt $((timeout * 1000)) ]; then
      echo "  timeout: the guest ran ${timeout} s; killing QEMU (pid $pid)"
      kill "$pid"; rc=124
      break
    fi
    sleep 0.2
  done
  wait "$pid" 2>/dev/null || true
  echo "${booted:-0}" > "$dir/boot_s"
  seconds $(($(ms_now) - start)) > "$dir/wall_s"
  tr -d '\r' < "$dir/console.log" | sed -n '/^==KAH-RESULTS-BEGIN==$/,/^==KAH-RESULTS-END==$/p' |
    sed '1d;$d' | base64 -d 2>/dev/null | tar -xzf - -C "$dir" 2>/dev/null ||
    { echo "  no results in the console (see $dir/console.log)"; rc=1; }
  return $rc
}

# The guest writes into /tmp/out, which comes back as DIR/<kernel>/.
run_args="--pcap /tmp/out/pcap${pcap_all:+ --pcap-all}" sweep_args=""
[ -z "$filter" ] || run_args="$run_args --filter $filter"
if [ "$windows" = phase-blind ]; then
  run_args="$run_args --no-calibration" sweep_args="--no-calibration"
fi
echo "guests: QEMU with $accel, clock $clock${qemu_clock:+ ($qemu_clock)}, $windows windows"

for pkg in "${packages[@]}"; do
  pkg=$(resolve "$pkg")
  echo "== $pkg"
  kdir=$(fetch_kernel "$pkg") || { status=1; continue; }
  version=$(ls "$kdir/lib/modules")
  dir=$out/$version
  mkdir -p "$dir"
  build_initramfs "$kdir" "$version" "$dir"
  echo "  initramfs $(du -h "$dir/initrd.gz" | cut -f1), QEMU $accel, ${memory} MB, timeout ${timeout} s"
  boot_guest "$kdir" "$version" "$dir" || status=1
  printf '{"kernel": "%s", "package": "%s", "where": "qemu-%s", "clock": "%s", "windows": "%s", "boot_s": %s, "wall_s": %s}\n' \
    "$version" "$pkg" "$accel" "$clock${qemu_clock:+ shift=$shift}" "$windows" "$(cat "$dir/boot_s")" "$(cat "$dir/wall_s")" > "$dir/meta.json"
  for step in check-env sweep run validate; do
    [ -f "$dir/$step.exit" ] || continue
    echo "  $step: exit $(cat "$dir/$step.exit"); $(tail -n 1 "$dir/$step.log")"
    [ "$step" = check-env ] || [ "$(cat "$dir/$step.exit")" = 0 ] || status=1
  done
done

if [ -n "$native" ]; then
  version=$(uname -r)
  dir=$out/$version
  echo "== $version (running kernel, native)"
  mkdir -p "$dir"
  start=$(ms_now)
  "$bin" check-env > "$dir/check-env.log" 2>&1 || true
  if [ -n "$sweep" ]; then
    "$bin" sweep -n "$sweep" --json "$dir/sweep.json" > "$dir/sweep.log" 2>&1 || status=1
    tail -n 1 "$dir/sweep.log"
  fi
  if [ -n "$do_run" ]; then
    rc=0
    # shellcheck disable=SC2086  # $filter is one word or none
    "$bin" run cases/ --json "$dir/run.json" --junit "$dir/junit.xml" ${filter:+--filter "$filter"} \
      --pcap "$dir/pcap" ${pcap_all:+--pcap-all} \
      > "$dir/run.log" 2>&1 || rc=$?
    echo $rc > "$dir/run.exit"
    echo "  run: exit $rc; $(tail -n 1 "$dir/run.log")"
    [ $rc = 0 ] || status=1
  fi
  if [ ${#validate[@]} -gt 0 ]; then
    rc=0
    "$bin" validate "${validate[@]}" > "$dir/validate.log" 2>&1 || rc=$?
    echo $rc > "$dir/validate.exit"
    echo "  validate: exit $rc"
    [ $rc = 0 ] || status=1
  fi
  printf '{"kernel": "%s", "package": "running", "where": "native", "clock": "real", "windows": "calibrated", "boot_s": 0, "wall_s": %s}\n' \
    "$version" "$(seconds $(($(ms_now) - start)))" > "$dir/meta.json"
fi

echo "== merged"
scripts/lib/matrix-merge.sh "$out" || status=1
exit $status
