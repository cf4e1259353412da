#include "harness/run/environment.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <thread>

#include <fmt/format.h>

#include "harness/clock/jiffies.h"
#include "harness/clock/wakeup_priority.h"
#include "netns/nft.h"
#include "netns/link.h"
#include "netns/namespace.h"
#include "harness/run/local_topology.h"

namespace kah {

bool has_capability(int cap) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

namespace {

EnvCheck capability(const char* name, int cap, const char* why) {
  const bool ok = has_capability(cap);
  return {name, ok, true,
          ok ? "present" : fmt::format("missing: {} (run as root, or grant it: docker run --cap-add {})", why, name + 4)};
}

template <class F>
EnvCheck attempt(const char* name, F&& f) {
  try {
    return {name, true, true, f()};
  } catch (const std::exception& e) {
    return {name, false, true, e.what()};
  }
}

}  // namespace

std::vector<EnvCheck> check_privileges() {
  return {
      capability("CAP_NET_ADMIN", CAP_NET_ADMIN, "needed for veth links, addresses, nftables and TCP_REPAIR"),
      capability("CAP_SYS_ADMIN", CAP_SYS_ADMIN, "needed to create network namespaces (unshare, setns)"),
  };
}

namespace {

// The local backend: its privileges, and a table of its own that the kernel deletes
// with the socket that made it. Nothing else is touched.
std::vector<EnvCheck> check_local() {
  std::vector<EnvCheck> checks{
      capability("CAP_NET_ADMIN", CAP_NET_ADMIN, "needed for the harness's own nft tables and TCP_REPAIR"),
      capability("CAP_NET_RAW", CAP_NET_RAW, "needed for the captures on lo"),
  };
  if (all_required_ok(checks))
    checks.push_back(attempt("nftables (owner table)", [] {
      netns::NftSession session("this network namespace");
      session.apply(fmt::format("add table {} {{ flags owner; }}\n", local_table_name("check")));
      return std::string("a table of the harness's own can be made here; the kernel deletes it when its socket closes");
    }));
  return checks;
}

}  // namespace

std::vector<EnvCheck> check_environment(Backend backend) {
  auto checks = backend == Backend::local ? check_local() : check_privileges();
  if (backend != Backend::local && all_required_ok(checks)) {
    std::optional<netns::Namespace> a, b;
    checks.push_back(attempt("network namespaces", [&] {
      a.emplace(netns::Namespace::create("check-env/a"));
      b.emplace(netns::Namespace::create("check-env/b"));
      return std::string("anonymous namespaces can be created (held by file descriptors)");
    }));
    if (a && b) {
      checks.push_back(attempt("veth", [&] {
        netns::create_veth_pair(*a, "veth-a", *b, "veth-b");
        return std::string("a veth pair can be created with both ends inside namespaces");
      }));
      checks.push_back(attempt("nftables", [&] {
        netns::nft_apply(*a, "table inet kaharness_check {\n  chain c {\n    type filter hook output priority filter;\n  }\n}\n");
        return std::string("libnftables can load a table inside a namespace");
      }));
      checks.push_back(attempt("keepalive sysctls per namespace", [&] {
        a->write_sysctl("net.ipv4.tcp_keepalive_time", "3");
        const auto v = a->read_sysctl("net.ipv4.tcp_keepalive_time");
        if (v != "3") throw std::runtime_error("net.ipv4.tcp_keepalive_time is not per namespace on this kernel (needs >= 4.5)");
        return std::string("net.ipv4.tcp_keepalive_* can be set inside a namespace");
      }));
    }
  }
  utsname u{};
  uname(&u);
  checks.push_back({"kernel", true, false, fmt::format("{} {}", u.sysname, u.release)});
  const auto hz = detect_hz();
  checks.push_back({"HZ", hz.hz.has_value(), false,
                    hz.hz ? fmt::format("{} ({})", *hz.hz, hz.source) : hz.source});
  std::string priority;
  std::thread([&] {
    raise_wakeup_priority();
    priority = wakeup_priority();
  }).join();
  const bool fifo = priority.rfind("SCHED_FIFO", 0) == 0;
  checks.push_back({"timing threads", fifo, false,
                    fifo ? priority + ": ends are seen, and idle timeouts fire, on time on a busy machine"
                         : priority + ": on a busy machine ends may be seen late"});
  return checks;
}

bool all_required_ok(const std::vector<EnvCheck>& checks) {
  for (const auto& c : checks)
    if (c.required && !c.ok) return false;
  return true;
}

std::string describe(const std::vector<EnvCheck>& checks) {
  std::string out;
  for (const auto& c : checks)
    out += fmt::format("{:<5} {:<34} {}\n", c.ok ? "ok" : (c.required ? "MISS" : "warn"), c.name, c.detail);
  return out;
}

}  // namespace kah
