// The nftables text for faults and probe counters.
#include <catch2/catch.hpp>

#include "harness/run/nft_rules.h"

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

TEST_CASE("probe counters match a payload-free pure ACK, one map lookup per packet", "[nft]") {
  const auto text = kah::probe_counter_ruleset({{kah::probe_counter_name(40001), kah::Family::ipv4, 40001},
                                                {kah::probe_counter_name(40002), kah::Family::ipv6, 40002}});
  CHECK(has(text, "table inet kaharness_probes {"));
  CHECK(has(text, "counter probes_40001 { }"));
  CHECK(has(text, "counter probes_40002 { }"));
  CHECK(has(text, "elements = { 40001 : \"probes_40001\", 40002 : \"probes_40002\" }"));
  // IPv4: total length = 20 + 4 * doff; IPv6: payload length = 4 * doff.
  CHECK(has(text, "tcp flags & (fin|syn|rst|psh) == 0 tcp doff 8 ip length 52 counter name tcp sport map @probe_counter"));
  CHECK(has(text, "tcp flags & (fin|syn|rst|psh) == 0 tcp doff 5 ip length 40 counter name tcp sport map @probe_counter"));
  CHECK(has(text, "tcp flags & (fin|syn|rst|psh) == 0 tcp doff 8 ip6 length 32 counter name tcp sport map @probe_counter"));
  CHECK(has(text, "tcp flags & (fin|syn|rst|psh) == 0 tcp doff 5 ip6 length 20 counter name tcp sport map @probe_counter"));
  // The rule count does not grow with the connections.
  std::vector<kah::ProbeCounter> many;
  for (std::uint16_t port = 40000; port < 40500; ++port) many.push_back({kah::probe_counter_name(port), kah::Family::ipv4, port});
  const auto big = kah::probe_counter_ruleset(many);
  std::size_t rules = 0;
  for (std::size_t at = big.find("map @probe_counter"); at != std::string::npos; at = big.find("map @probe_counter", at + 1)) ++rules;
  CHECK(rules == 4);
}

TEST_CASE("the router: nothing when it only forwards; NAT masquerades towards the server", "[nft][middlebox]") {
  CHECK(kah::router_ruleset({}, "r-c", "r-s").empty());
  kah::RouterSpec nat;
  nat.nat = true;
  const auto text = kah::router_ruleset(nat, "r-c", "r-s");
  CHECK(has(text, "table inet kaharness_router {"));
  CHECK(has(text, "type nat hook postrouting priority srcnat; policy accept;"));
  CHECK(has(text, "oifname \"r-s\" masquerade"));
  CHECK_FALSE(has(text, "hook forward"));
}

TEST_CASE("the router's stateful firewall: established, invalid, new from the client only", "[nft][middlebox]") {
  kah::RouterSpec fw;
  fw.firewall = true;
  const auto text = kah::router_ruleset(fw, "r-c", "r-s");
  CHECK(has(text, "type filter hook forward priority filter; policy accept;"));
  // Order matters: established first, invalid dropped before new is considered.
  const auto established = text.find("ct state established,related accept");
  const auto invalid = text.find("ct state invalid counter name \"invalid\" drop");
  const auto fresh = text.find("iifname \"r-c\" oifname \"r-s\" ct state new accept");
  const auto refused = text.find("counter name \"refused\" drop");
  REQUIRE(established != std::string::npos);
  REQUIRE(invalid != std::string::npos);
  REQUIRE(fresh != std::string::npos);
  REQUIRE(refused != std::string::npos);
  CHECK(established < invalid);
  CHECK(invalid < fresh);
  CHECK(fresh < refused);
  CHECK(has(text, "counter invalid { }"));
  CHECK_FALSE(has(text, "masquerade"));
}

TEST_CASE("router faults: reject with reset or ICMP from the client side, loss both ways", "[nft][middlebox]") {
  kah::FaultSpec f;
  f.kind = FaultKind::reject_rst;
  const auto rst = kah::router_fault_ruleset(f, "r-c");
  CHECK(has(rst, "table inet kaharness_fault {"));
  // Ahead of the router's firewall (priority filter), so it decides first.
  CHECK(has(rst, "type filter hook forward priority filter - 10; policy accept;"));
  CHECK(has(rst, "iifname \"r-c\" meta l4proto tcp counter name \"hit\" reject with tcp reset"));

  f.kind = FaultKind::reject_icmp;
  CHECK(has(kah::router_fault_ruleset(f, "r-c"),
            "iifname \"r-c\" meta l4proto tcp counter name \"hit\" reject with icmpx type host-unreachable"));

  f.kind = FaultKind::loss;
  f.probability = 0.3;
  const auto loss = kah::router_fault_ruleset(f, "r-c");
  CHECK(has(loss, "meta l4proto tcp numgen random mod 1000000 < 300000 counter name \"hit\" drop"));
  CHECK_FALSE(has(loss, "iifname"));  // both directions
  CHECK(kah::loss_threshold(0.3) == 300000);
  CHECK(kah::loss_threshold(0.0000004) == 0);
  CHECK(kah::loss_threshold(0.9999996) == 1000000);

  for (auto kind : {FaultKind::conntrack_expire, FaultKind::conntrack_timeout, FaultKind::blackhole, FaultKind::none}) {
    f.kind = kind;
    CHECK(kah::router_fault_ruleset(f, "r-c").empty());
  }
  for (auto kind : {FaultKind::conntrack_expire, FaultKind::conntrack_timeout, FaultKind::reject_rst,
                    FaultKind::reject_icmp, FaultKind::loss})
    CHECK(kah::fault_ruleset(kind).empty());
}
