#!/usr/bin/python3
"""Two-host topologies built and torn down by iproute2 or by Mininet, timed here.

Run by scripts/bench-topology.sh, and only inside a private network, mount and PID
namespace (unshare) with a private tmpfs on /run: nothing it does can reach the
machine's root namespace or its /run/netns. It refuses to run otherwise.

    bench_topology.py iproute2|mininet N

One line per topology on stdout: "build_ms=<ms> teardown_ms=<ms> [close_ms=<ms>]",
as kah_bench_topology prints them. Names start with kahbench-; addresses are
198.18.0.1-2/24 and fd6b:6168:7265::1-2/64, as the harness's pair topology.
"""
import os
import subprocess
import sys
import time

A4, B4 = "198.18.0.1/24", "198.18.0.2/24"
A6, B6 = "fd6b:6168:7265::1/64", "fd6b:6168:7265::2/64"
IF_A, IF_B = "kahbench-a", "kahbench-b"


def refuse_root_namespace():
    # The caller's namespaces must differ from PID 1's as this process sees it... which,
    # in a PID namespace, is our own init; so compare with what the script recorded.
    root_net = os.environ.get("KAHBENCH_ROOT_NETNS")
    if not root_net or os.readlink("/proc/self/ns/net") == root_net:
        sys.exit("bench_topology.py: refusing to run in the root network namespace")
    root_mnt = os.environ.get("KAHBENCH_ROOT_MNTNS")
    if not root_mnt or os.readlink("/proc/self/ns/mnt") == root_mnt:
        sys.exit("bench_topology.py: refusing to run in the root mount namespace")


def ip(*args):
    subprocess.run(["ip", *args], check=True, stdout=subprocess.DEVNULL)


def iproute2_once(i):
    a, b = f"kahbench-{i}-a", f"kahbench-{i}-b"
    t0 = time.perf_counter()
    ip("netns", "add", a)
    ip("netns", "add", b)
    ip("-n", a, "link", "set", "lo", "up")
    ip("-n", b, "link", "set", "lo", "up")
    ip("link", "add", IF_A, "type", "veth", "peer", "name", IF_B)
    ip("link", "set", IF_A, "netns", a)
    ip("link", "set", IF_B, "netns", b)
    ip("-n", a, "link", "set", IF_A, "up")
    ip("-n", b, "link", "set", IF_B, "up")
    ip("-n", a, "addr", "add", A4, "dev", IF_A)
    ip("-n", a, "addr", "add", A6, "dev", IF_A, "nodad")
    ip("-n", b, "addr", "add", B4, "dev", IF_B)
    ip("-n", b, "addr", "add", B6, "dev", IF_B, "nodad")
    build = time.perf_counter() - t0

    # Teardown as kah_bench_topology times it: delete a, wait until the kernel has
    # removed the veth (its end in b vanishes), delete b.
    t0 = time.perf_counter()
    ip("netns", "del", a)
    close = time.perf_counter() - t0
    while subprocess.run(["ip", "-n", b, "link", "show", "dev", IF_B],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
        if time.perf_counter() - t0 > 10:
            sys.exit("bench_topology.py: the veth outlived its namespace by 10 s")
        time.sleep(0.0002)
    t1 = time.perf_counter()
    ip("netns", "del", b)
    close += time.perf_counter() - t1
    teardown = time.perf_counter() - t0
    return build, teardown, close


def mininet_once(i):
    t0 = time.perf_counter()
    net = Mininet(topo=None, controller=None, build=False, ipBase="198.18.0.0/24")
    h1 = net.addHost(f"kahbench-{i}a", ip=A4)
    h2 = net.addHost(f"kahbench-{i}b", ip=B4)
    net.addLink(h1, h2, intfName1=IF_A, intfName2=IF_B)
    net.build()
    h1.cmd(f"ip -6 addr add {A6} dev {IF_A} nodad")
    h2.cmd(f"ip -6 addr add {B6} dev {IF_B} nodad")
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    net.stop()
    teardown = time.perf_counter() - t0
    return build, teardown, None


def main():
    refuse_root_namespace()
    mode, n = sys.argv[1], int(sys.argv[2])
    if mode == "mininet":
        global Mininet
        import mininet.net
        import mininet.util
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        # Mininet's first Mininet() calls fixLimits(), which raises host-wide sysctls
        # (fs.file-max, kernel.pty.max, net.core.netdev_max_backlog, neighbour table
        # sizes) that no network namespace confines. Not here: a benchmark changes
        # nothing on the machine.
        mininet.net.fixLimits = mininet.util.fixLimits = lambda: None
        Mininet.inited = True
        setLogLevel("error")
        once = mininet_once
    elif mode == "iproute2":
        once = iproute2_once
    else:
        sys.exit(f"bench_topology.py: unknown mode {mode}")
    for i in range(n):
        build, teardown, close = once(i)
        line = f"build_ms={build * 1e3:.3f} teardown_ms={teardown * 1e3:.3f}"
        if close is not None:
            line += f" close_ms={close * 1e3:.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
