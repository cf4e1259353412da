// Topology: the hosts a case runs on and the links between them.
//
// The declaration (which hosts, which addresses) is apart from its construction,
// and construction sits behind a small interface so a second backend (loopback in
// the current namespace, for containers without CAP_SYS_ADMIN) can follow.
// Teardown is the reverse of construction and is done by the kernel when the
// namespace descriptors close, so a crash or SIGKILL leaks nothing.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "harness/case.h"
#include "netns/namespace.h"

namespace kah {

enum class Host { client, server };
std::string to_string(Host h);

class Topology {
 public:
  virtual ~Topology() = default;
  virtual const netns::Namespace& ns(Host host) const = 0;
  // The host's address for `family`, without prefix length.
  virtual std::string address(Host host, Family family) const = 0;
  // The host's end of its link (where captures are taken).
  virtual std::string interface(Host host) const = 0;
  // Plugs or unplugs the host's end of its link.
  virtual void set_link_up(Host host, bool up) = 0;
  // Pins every namespace at /run/netns/<prefix>-<host> and keeps them (--keep).
  virtual std::vector<std::string> keep(const std::string& prefix) = 0;
};

// Per-host sysctls, as in Case::sysctls ("client" / "server").
using HostSysctls = std::map<std::string, std::map<std::string, std::string>>;

// "pair": client and server on one veth link, IPv4 198.18.0.1/.2 and IPv6
// fd6b:6168:7265::1/::2, no default route. `label` names the namespaces in messages.
std::unique_ptr<Topology> build_pair_topology(const std::string& label, const HostSysctls& sysctls);

}  // namespace kah
