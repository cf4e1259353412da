// The local topology (backend local): client and server on the loopback of the
// network namespace the process already has (a CI container's own), for places that
// grant CAP_NET_ADMIN but not CAP_SYS_ADMIN.
//
// It changes nothing of that namespace but its own nft tables: no sysctl, address,
// route or link (cases that need them are skipped before, harness/case/needs.h).
// Both ends use 127.0.0.1 / ::1; every case listens on ports the kernel picks for it
// (bind to port 0), so no two cases running at once listen on one port in one family,
// and its fault rules and probe counters match its own ports only, family by family
// (ServerPort: one number can be a listener's on ::1 and another case's client's on
// 127.0.0.1). Every case's rules go in one table of the run, made with `flags owner`
// through one NftSession: the kernel deletes it when the process dies, SIGKILL
// included, and no other socket can change it; each case deletes its own chains, maps
// and counters (prefixed, RuleScope::names) when it ends.
#pragma once

#include <memory>

#include "harness/case/case.h"
#include "harness/run/topology.h"

namespace kah {

// Throws std::logic_error for a case it cannot run (sysctls, a router lo cannot stand
// in for: skip_reason() says so first), NftError when its tables cannot be made.
// A routed case it runs has no router: lo stands in for it (router_needed(),
// FaultKindInfo::on_loopback), with the router's rules in the case's own table.
std::unique_ptr<Topology> build_local_topology(const Case& c);

// "inet kaharness_<pid>_<n>_<what>": a table name no other case or run uses.
std::string local_table_name(const std::string& what);

// "meta nfproto . tcp dport { ipv4 . 40001, ipv6 . 40002 }": the segments towards the
// server ports (`towards`), or from them, each port in its own family only.
std::string server_port_match(const std::vector<ServerPort>& ports, bool towards);

}  // namespace kah
