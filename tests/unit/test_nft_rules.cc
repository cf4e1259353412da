// The nftables text for faults and probe counters.
#include <catch2/catch.hpp>

#include "harness/nft_rules.h"

using kah::FaultKind;

namespace {
bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("blackhole drops both ways at the server but keeps neighbour discovery", "[nft]") {
  const auto text = kah::fault_ruleset(FaultKind::blackhole);
  CHECK(has(text, "table inet kaharness_fault {"));
  CHECK(has(text, "type filter hook input priority filter"));
  CHECK(has(text, "type filter hook output priority filter"));
  CHECK(has(text, "counter name \"dropped_input\" drop"));
  CHECK(has(text, "counter name \"dropped_output\" drop"));
  CHECK(has(text, "nd-neighbor-solicit"));
}

TEST_CASE("one-way drops drop only their direction", "[nft]") {
  const auto to_client = kah::fault_ruleset(FaultKind::drop_to_client);
  CHECK(has(to_client, "hook output"));
  CHECK_FALSE(has(to_client, "hook input"));
  const auto to_server = kah::fault_ruleset(FaultKind::drop_to_server);
  CHECK(has(to_server, "hook input"));
  CHECK_FALSE(has(to_server, "hook output"));
}

TEST_CASE("faults that are not firewall rules have no ruleset", "[nft]") {
  for (auto kind : {FaultKind::none, FaultKind::link_down, FaultKind::peer_reboot, FaultKind::peer_freeze})
    CHECK(kah::fault_ruleset(kind).empty());
}

TEST_CASE("probe counters match a payload-free pure ACK from each client port", "[nft]") {
  const auto text = kah::probe_counter_ruleset({{kah::probe_counter_name(40001), kah::Family::ipv4, 40001},
                                                {kah::probe_counter_name(40002), kah::Family::ipv6, 40002}});
  CHECK(has(text, "table inet kaharness_probes {"));
  CHECK(has(text, "counter probes_40001 { }"));
  CHECK(has(text, "counter probes_40002 { }"));
  // IPv4: total length = 20 + 4 * doff; IPv6: payload length = 4 * doff.
  CHECK(has(text, "tcp sport 40001 tcp flags & (fin|syn|rst|psh) == 0 tcp doff 8 ip length 52 counter name \"probes_40001\""));
  CHECK(has(text, "tcp sport 40001 tcp flags & (fin|syn|rst|psh) == 0 tcp doff 5 ip length 40"));
  CHECK(has(text, "tcp sport 40002 tcp flags & (fin|syn|rst|psh) == 0 tcp doff 8 ip6 length 32 counter name \"probes_40002\""));
  CHECK_FALSE(has(text, "tcp sport 40002 tcp flags & (fin|syn|rst|psh) == 0 tcp doff 8 ip length"));
}
