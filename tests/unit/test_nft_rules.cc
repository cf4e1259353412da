// The nftables text of a topology: the router and the probe counters.
#include <catch2/catch.hpp>

#include "harness/run/nft_rules.h"

namespace {
bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("probe counters match a payload-free pure ACK, one map lookup per packet", "[nft]") {
  using kah::Family;
  // One client port number in both families: two connections, two counters.
  const auto text = kah::probe_counter_ruleset({{kah::probe_counter_name(Family::ipv4, 40001), Family::ipv4, 40001, 50001},
                                                {kah::probe_counter_name(Family::ipv6, 40001), Family::ipv6, 40001, 50002}});
  CHECK(has(text, "table inet kaharness_probes {"));
  CHECK(has(text, "counter probes_v4_40001 { }"));
  CHECK(has(text, "counter probes_v6_40001 { }"));
  CHECK(has(text, "type nf_proto . inet_service . inet_service : counter;"));
  CHECK(has(text, "elements = { ipv4 . 40001 . 50001 : \"probes_v4_40001\", ipv6 . 40001 . 50002 : \"probes_v6_40001\" }"));
  // IPv4: total length = 20 + 4 * doff; IPv6: payload length = 4 * doff.
  const std::string lookup = " counter name meta nfproto . tcp sport . tcp dport map @probe_counter";
  CHECK(has(text, "tcp flags & (fin|syn|rst|psh) == 0 tcp doff 8 ip length 52" + lookup));
  CHECK(has(text, "tcp flags & (fin|syn|rst|psh) == 0 tcp doff 5 ip length 40" + lookup));
  CHECK(has(text, "tcp flags & (fin|syn|rst|psh) == 0 tcp doff 8 ip6 length 32" + lookup));
  CHECK(has(text, "tcp flags & (fin|syn|rst|psh) == 0 tcp doff 5 ip6 length 20" + lookup));
  // The rule count does not grow with the connections.
  std::vector<kah::ProbeCounter> many;
  for (std::uint16_t port = 40000; port < 40500; ++port)
    many.push_back({kah::probe_counter_name(Family::ipv4, port), Family::ipv4, port, 50001});
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
