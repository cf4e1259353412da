#!/usr/bin/env bash
# What a two-host topology (two network namespaces, one veth pair, IPv4 + IPv6
# addresses, links up) costs to build and to tear down, three ways side by side:
#   kaharness  its netns/ layer: anonymous namespaces held by fds, the veth made with
#              both ends in their namespaces in one netlink request (kah_bench_topology)
#   iproute2   ip netns add / ip link add ... type veth peer / ip link set ... netns /
#              ip addr add / ip link set up / ip netns del, one process per command
#   Mininet    Mininet(topo=None, controller=None, build=False), addHost x2, addLink,
#              build(), then stop() (Debian's `mininet`, installed if missing)
# The three run in alternating rounds so that a change of load on the machine falls
# on all of them. Prints per-topology medians and ratios; asserts nothing. Needs root.
#
# Teardown: closing a namespace's last reference returns at once and the kernel frees
# it later; so kaharness and iproute2 are timed until the veth has actually gone
# (first namespace released, its veth peer vanished from the second, second released),
# and "caller" is what the caller alone waits for. Mininet's stop() deletes the link
# itself (ip link del) before it ends the hosts' shells.
#
# Safety: iproute2 and Mininet run inside private network, mount and PID namespaces
# (unshare) with a private tmpfs on /run, so `ip netns add` pins, the veths Mininet
# makes and anything it runs stay there; Mininet's host-wide sysctl changes
# (fixLimits) are switched off. Names start with kahbench-; addresses are from
# 198.18.0.0/15 and fd6b:6168:7265::/48. The root namespace's links and /run/netns are
# compared before and after.
#
#   scripts/bench-topology.sh [N] [ROUNDS]   (default 60 topologies each, in 4 rounds: about a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-60}
rounds=${2:-4}
if [ "$(id -u)" -ne 0 ]; then
  echo "bench-topology.sh: needs root (network namespaces)" >&2
  exit 3
fi
if [ "$n" -lt "$rounds" ]; then rounds=$n; fi
per=$(( (n + rounds - 1) / rounds ))
py=/usr/bin/python3   # Debian's, where the mininet package installs its module
if ! "$py" -c 'import mininet.net' 2>/dev/null; then
  echo "installing mininet (Debian package, no recommends: no Open vSwitch)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mininet >/dev/null
fi
[ -d build ] || scripts/build.sh
cmake --build build -j 2 --target kah_bench_topology >/dev/null

out=$(mktemp -d /tmp/kahbench-topology.XXXXXX)
trap 'rm -rf "$out"' EXIT
ip netns list >"$out/netns.before"
ip -o link | sed 's/\\.*//' >"$out/link.before"
export KAHBENCH_ROOT_NETNS KAHBENCH_ROOT_MNTNS
KAHBENCH_ROOT_NETNS=$(readlink /proc/self/ns/net)
KAHBENCH_ROOT_MNTNS=$(readlink /proc/self/ns/mnt)

private() {  # runs the Python driver in fresh net + mount + PID namespaces
  unshare --net --mount --propagation private --pid --fork --mount-proc \
    sh -c 'mount -t tmpfs kahbench-run /run && exec "$0" "$@"' \
    "$py" scripts/lib/bench_topology.py "$@"
}

echo "bench-topology: $((per * rounds)) topologies each, in $rounds rounds of $per; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  build/tests/kah_bench_topology "$per" >>"$out/kaharness"
  private iproute2 "$per" >>"$out/iproute2"
  private mininet "$per" >>"$out/mininet"
  echo "  round $r/$rounds done"
done

"$py" - "$out" <<'PY'
import statistics, sys
out = sys.argv[1]
def load(name):
    rows = [dict(kv.split("=") for kv in line.split()) for line in open(f"{out}/{name}")]
    med = lambda k: statistics.median(float(r[k]) for r in rows) if rows and k in rows[0] else None
    return len(rows), med("build_ms"), med("teardown_ms"), med("close_ms")
figs = {k: load(k) for k in ("kaharness", "iproute2", "mininet")}
fmt = lambda v: "-" if v is None else f"{v:.2f}"
ratio = lambda v, base: "-" if v is None or not base else f"{v / base:.1f}x"
k = figs["kaharness"]
print(f"\n{'per topology (median)':<22}{'n':>4}{'build ms':>11}{'teardown ms':>13}{'caller ms':>11}{'build vs kah':>14}{'teardown vs kah':>17}")
for name, (cnt, b, t, c) in figs.items():
    print(f"{name:<22}{cnt:>4}{fmt(b):>11}{fmt(t):>13}{fmt(c):>11}{ratio(b, k[1]):>14}{ratio(t, k[2]):>17}")
print("teardown: until the veth is gone (kaharness, iproute2); stop() (Mininet). caller: the closes / `ip netns del`s alone.")
PY

ip netns list >"$out/netns.after"
ip -o link | sed 's/\\.*//' >"$out/link.after"
if diff -q "$out/netns.before" "$out/netns.after" >/dev/null && diff -q "$out/link.before" "$out/link.after" >/dev/null; then
  echo "root namespace: ip netns list and ip -o link unchanged"
else
  echo "root namespace CHANGED:"; diff "$out/netns.before" "$out/netns.after" || true
  diff "$out/link.before" "$out/link.after" || true
  exit 1
fi
