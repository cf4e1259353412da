// What a case needs of the place it runs in, derived from the case and its fault's
// row in the fault table (harness/fault/fault.cc): backends say what they offer
// (harness/run/backend.h), and a case one cannot run is skipped with the reason.
//
// Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "harness/case/case.h"

namespace kah {

enum class Need {
  own_namespaces,  // a routed topology, or a fault that acts on the router
  sysctls,         // [sysctl.*] keys, or a fault that writes sysctls
  link_control,    // a fault that unplugs a link
  ipv6,            // IPv6 connections, or programs that use IPv6
  peer_process,    // the server's sockets in a process of their own
  program_holder,  // [[program]]s, each held in a PID namespace in a host's network namespace,
                   // or (backend local) by a child subreaper in the harness's own
  host_addresses,  // a server program without `port`: its connections and the fault's rules are
                   // told apart by the hosts' own addresses, not by a port on a shared lo
};

// "its own network namespaces", "to set sysctls", ...: what follows "needs".
std::string to_string(Need need);

struct CaseNeed {
  Need need;
  std::string because;  // what in the case asks for it: "routed topology", "[sysctl.client] net.ipv4.tcp_retries2"
};

// Every need of `c`, each once, in the order of Need.
std::vector<CaseNeed> case_needs(const Case& c);

// Why a routed case needs a router of its own ("routed topology", "routed topology:
// [router] nat, ..."), or nullopt when it has none (pair) or lo can stand in for it:
// its fault's row says so (FaultKindInfo::on_loopback) and its [router] holds nothing
// lo lacks (no NAT, no conntrack setting, no [sysctl.router], a firewall only where
// the fault's rule precedes it).
std::optional<std::string> router_needed(const Case& c);

}  // namespace kah
