#!/usr/bin/env bash
# Proof in a real container engine (issue 10, item 4): kaharness in a Podman
# container with the engine's default seccomp profile, every capability dropped
# but NET_ADMIN and NET_RAW, and `--network none` (the container gets a network
# namespace of its own with only lo: what a CI job's container has).
#
#   scripts/container-proof.sh [KAHARNESS]   (default build/harness/kaharness; as root)
#   BACKEND=local scripts/container-proof.sh  (--backend for check-env and run; default auto)
#
# What it does, offline (no registry is asked for anything):
#  1. installs Debian's podman and runc if missing (apt-get, no recommends);
#  2. builds an image FROM scratch: the binary, the shared libraries `ldd` lists and
#     the loader, /etc/protocols and /etc/services (libnftables resolves "tcp" through
#     them), the case library in /cases;
#  3. runs `kaharness check-env`, then `kaharness run /cases --json /out/result.json
#     --junit /out/junit.xml` in it, and prints the summary;
#  4. removes the container (--rm), the image and all of podman's storage it used.
#
# Podman settings used, for this machine, not for CI (no systemd, hybrid cgroups
# v1 + v2, the harness's own sandbox without CAP_SYS_RESOURCE):
#   --root/--runroot under a temporary folder   nothing shared with other podman users
#   --storage-driver vfs                        no overlay mounts to leave behind
#   --cgroup-manager cgroupfs                   no systemd
#   --events-backend file                       no journald
#   --runtime runc                              crun 1.8.1 refuses hybrid cgroups:
#                                               "cgroups in hybrid mode not supported"
#   --ulimit nofile=H:H --ulimit nproc=32768:32768
#                                               podman asks the runtime for higher limits
#                                               than this sandbox's hard ones (RLIMIT_NOFILE
#                                               20000 here) and setrlimit fails with EPERM;
#                                               nproc 65536 fails as well, 32768 works.
#
# It never touches the root network namespace: no bridge, no CNI/netavark network,
# no iptables/nft change (every container has --network none, the build runs no
# container). It checks that after the run: the root namespace's links and nft
# tables (listed read-only) must be exactly what they were before; exit 1 if not.
#
# Exit code: kaharness run's exit code inside the container (0 all passed or
# skipped, 1 a case failed, 3 no backend can run there), or 1 if the root namespace
# changed, 2 for a problem of the script itself.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=${1:-build/harness/kaharness}
backend=${BACKEND:-auto}
[[ -x $binary ]] || { echo "container-proof: no kaharness at $binary (run scripts/build.sh)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "container-proof: run as root (podman's storage and the image build)" >&2; exit 2; }

if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  echo "== installing podman and runc (Debian packages, no recommends)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc >/dev/null
fi

work=$(mktemp -d /tmp/kaharness-container.XXXXXX)
image=localhost/kaharness-proof:$$
engine=(podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs
        --cgroup-manager cgroupfs --events-backend file --runtime runc)

# The root namespace's links and nft tables, read-only (libnftables through
# python's ctypes: the nft command is not installed here).
root_namespace_state() {
  ip -o link show | awk -F': ' '{print "link " $2}' | sed 's/@.*//' | sort
  python3 - <<'EOF'
import ctypes
nft = ctypes.CDLL("libnftables.so.1")
nft.nft_ctx_new.restype = ctypes.c_void_p
nft.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
nft.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
nft.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
nft.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
nft.nft_ctx_free.argtypes = [ctypes.c_void_p]
ctx = nft.nft_ctx_new(0)
nft.nft_ctx_buffer_output(ctx)
if nft.nft_run_cmd_from_buffer(ctx, b"list tables") != 0:
    raise SystemExit("cannot list nft tables")
for line in sorted(nft.nft_ctx_get_output_buffer(ctx).decode().splitlines()):
    print("nft " + line)
nft.nft_ctx_free(ctx)
EOF
}

cleanup() {
  "${engine[@]}" rmi --force "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

root_namespace_state >"$work/root-before"

echo "== image $image, FROM scratch, built offline"
context=$work/context
mkdir -p "$context/usr/local/bin" "$context/etc" "$context/cases" "$context/tmp" "$context/out"
cp "$binary" "$context/usr/local/bin/kaharness"
for lib in $(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
  cp --parents -L "$lib" "$context/"
done
cp /etc/protocols /etc/services "$context/etc/"
cp cases/*.toml "$context/cases/"
chmod 1777 "$context/tmp"
cat >"$context/Containerfile" <<'EOF'
FROM scratch
COPY . /
ENV PATH=/usr/local/bin
WORKDIR /
EOF
"${engine[@]}" build --quiet --pull=never --network none -f "$context/Containerfile" -t "$image" "$context" >/dev/null
"${engine[@]}" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep kaharness-proof

# The container as a CI job gets it: default seccomp, no --privileged, only these
# two capabilities, a network namespace of its own.
run_in_container() {
  local limits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=32768:32768)  # this machine's (above)
  echo "+ podman run --rm --network none --cap-drop all --cap-add NET_ADMIN --cap-add NET_RAW ${limits[*]}" \
       "-v OUT:/out $image $*"
  "${engine[@]}" run --rm --network none --cap-drop all --cap-add NET_ADMIN --cap-add NET_RAW "${limits[@]}" \
    -v "$work/out:/out" "$image" "$@"
}
mkdir -p "$work/out"

echo "== kaharness check-env --backend $backend"
set +e
run_in_container kaharness check-env --backend "$backend"
echo "(exit $?)"
echo "== kaharness run /cases --backend $backend --json /out/result.json --junit /out/junit.xml"
run_in_container kaharness run /cases --backend "$backend" --json /out/result.json --junit /out/junit.xml
status=$?
set -e
echo "(exit $status)"
if [[ -s $work/out/result.json ]]; then
  python3 - "$work/out/result.json" <<'EOF'
import collections, json, sys
run = json.load(open(sys.argv[1]))
verdicts = collections.Counter(c["verdict"] for c in run["cases"])
print("backend %s, calibration %s: %s" % (run.get("backend"), run.get("calibration"),
      ", ".join("%d %s" % (n, v) for v, n in sorted(verdicts.items()))))
for c in run["cases"]:
    if c["verdict"] == "pass":
        continue
    print("  %-32s %s %s" % (c["name"], c["verdict"], c.get("reason") or c.get("error") or ""))
    for conn in c.get("connections", []):
        if conn["verdict"] != "pass":
            print("    %-30s %s %s" % (conn["name"], conn["verdict"], conn.get("error") or conn.get("reason") or ""))
EOF
fi

root_namespace_state >"$work/root-after"
if ! diff -u "$work/root-before" "$work/root-after"; then
  echo "container-proof: the root network namespace changed (above)" >&2
  exit 1
fi
echo "root network namespace: links and nft tables as before"
exit "$status"
