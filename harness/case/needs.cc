#include "harness/case/needs.h"

#include <fmt/format.h>

#include "harness/fault/fault.h"

namespace kah {
namespace {

// "[sysctl.client] net.ipv4.tcp_retries2, net.ipv4.tcp_syn_retries"
std::string sysctl_keys(const Case& c) {
  std::string text;
  for (const auto& [host, keys] : c.sysctls) {
    std::string names;
    for (const auto& [key, value] : keys) names += fmt::format("{}{}", names.empty() ? "" : ", ", key);
    if (!names.empty()) text += fmt::format("{}[sysctl.{}] {}", text.empty() ? "" : "; ", host, names);
  }
  return text;
}

// "'c1' and 'c2'": the connections of `family`, by name.
std::string connections_of(const Case& c, Family family) {
  std::string names;
  for (const auto& spec : c.connections)
    if (spec.family == family) names += fmt::format("{}'{}'", names.empty() ? "" : ", ", spec.name);
  return names;
}

// "'redis-cli-v6'": the programs whose family is IPv6 or whose command or
// environment names an IPv6 address ({server6}, {client6}), by name.
std::string programs_on_ipv6(const Case& c) {
  std::string names;
  for (const auto& p : c.programs) {
    bool v6 = p.family == Family::ipv6;
    const auto names_v6 = [](const std::string& text) {
      return text.find("{server6}") != std::string::npos || text.find("{client6}") != std::string::npos;
    };
    for (const auto& word : p.command) v6 = v6 || names_v6(word);
    for (const auto& [key, value] : p.env) v6 = v6 || names_v6(value);
    if (v6) names += fmt::format("{}'{}'", names.empty() ? "" : ", ", p.name);
  }
  return names;
}

}  // namespace

std::optional<std::string> router_needed(const Case& c) {
  if (c.topology != TopologyKind::routed) return std::nullopt;
  const FaultKindInfo& fault = fault_info(c.faults.front().kind);
  if (fault.on_loopback == OnLoopback::no) return "routed topology";
  if (c.router.nat) return "routed topology: [router] nat, which lo cannot stand in for";
  if (c.router.conntrack_loose || c.router.established_timeout_s)
    return "routed topology: [router] conntrack settings, which lo cannot stand in for";
  if (c.router.firewall && fault.on_loopback != OnLoopback::ahead_of_firewall)
    return fmt::format("routed topology: [router] firewall, which lo cannot stand in for with fault {}", fault.name);
  if (const auto it = c.sysctls.find("router"); it != c.sysctls.end() && !it->second.empty())
    return "routed topology: [sysctl.router]";
  return std::nullopt;
}

std::string to_string(Need need) {
  switch (need) {
    case Need::own_namespaces: return "its own network namespaces";
    case Need::sysctls: return "to set sysctls";
    case Need::link_control: return "a link it can unplug";
    case Need::ipv6: return "IPv6";
    case Need::peer_process: return "a separate peer process";
    case Need::program_holder: return "a holder for each program (a PID namespace, or a child subreaper)";
    case Need::host_addresses: return "hosts told apart by their addresses";
  }
  return "?";
}

std::vector<CaseNeed> case_needs(const Case& c) {
  std::vector<CaseNeed> needs;
  const FaultKindInfo& fault = fault_info(c.faults.front().kind);
  if (const auto router = router_needed(c))
    needs.push_back({Need::own_namespaces, *router});
  else if (fault.needs_router && c.topology != TopologyKind::routed)
    needs.push_back({Need::own_namespaces, fmt::format("fault {} acts on a router", fault.name)});
  if (const auto keys = sysctl_keys(c); !keys.empty()) needs.push_back({Need::sysctls, keys});
  if (fault.needs_link_control) needs.push_back({Need::link_control, fmt::format("fault {}", fault.name)});
  if (const auto v6 = connections_of(c, Family::ipv6); !v6.empty())
    needs.push_back({Need::ipv6, fmt::format("IPv6 connection{} {}", v6.find(',') == std::string::npos ? "" : "s", v6)});
  else if (const auto p6 = programs_on_ipv6(c); !p6.empty())
    needs.push_back({Need::ipv6, fmt::format("IPv6 in program{} {}", p6.find(',') == std::string::npos ? "" : "s", p6)});
  if (fault.needs_peer_process) needs.push_back({Need::peer_process, fmt::format("fault {}", fault.name)});
  if (!c.programs.empty()) {
    std::string names;
    for (const auto& p : c.programs) names += fmt::format("{}'{}'", names.empty() ? "" : ", ", p.name);
    needs.push_back({Need::program_holder, fmt::format("program{} {}", c.programs.size() == 1 ? "" : "s", names)});
    for (const auto& p : c.programs)
      if (p.host == Host::server && !p.port) {
        needs.push_back({Need::host_addresses, fmt::format("server program '{}' has no `port`", p.name)});
        break;
      }
  }
  return needs;
}

}  // namespace kah
