// The table of fault kinds: spellings, what each kind needs, its rules, and what
// applying it does (through a FaultActions that writes down every call).
#include <catch2/catch.hpp>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/fault/fault.h"
#include "harness/run/nft_rules.h"

using kah::Fault;
using kah::FaultKind;
using kah::Host;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Every call, as "nft server <rules>", "sysctl router key=value", "link server down", ...
class Recorder final : public kah::FaultActions {
 public:
  std::vector<std::string> calls;
  void nft(Host host, const std::string& ruleset) override { calls.push_back("nft " + to_string(host) + " " + ruleset); }
  void write_sysctl(Host host, const std::string& key, const std::string& value) override {
    calls.push_back("sysctl " + to_string(host) + " " + key + "=" + value);
  }
  void set_link_up(Host host, bool up) override { calls.push_back("link " + to_string(host) + (up ? " up" : " down")); }
  void close_server_sockets_silently() override { calls.push_back("close server sockets"); }
  void freeze_peer_process() override { calls.push_back("freeze peer"); }
  void forget_flows_on_router() override { calls.push_back("forget flows"); }
};

std::vector<std::string> applied(FaultKind kind, std::optional<double> probability = std::nullopt) {
  Recorder r;
  kah::apply_fault(Fault{kind, probability}, "r-c", r);
  return r.calls;
}

}  // namespace

TEST_CASE("fault table: one row per kind, names unique, spellings round-trip", "[fault]") {
  std::set<std::string_view> names;
  for (const auto& row : kah::fault_kinds()) {
    CHECK(&kah::fault_info(row.kind) == &row);
    CHECK(names.insert(row.name).second);
    if (!row.alias.empty()) CHECK(names.insert(row.alias).second);
    CHECK(kah::fault_kind_from_string(row.name) == row.kind);
    CHECK_FALSE(row.what.empty());
    CHECK(row.apply != nullptr);
    // A kind on the router needs the routed topology, and only those do.
    CHECK(row.needs_router == (row.acts_on == Host::router));
  }
  CHECK(kah::fault_kinds().size() == 13);
  CHECK(kah::fault_kind_from_string("reboot") == FaultKind::peer_reboot);
  CHECK(kah::to_string(FaultKind::drop_to_client) == "drop-to-client");
  CHECK_FALSE(kah::fault_kind_from_string("drop_to_client").has_value());
  CHECK_FALSE(kah::fault_kind_from_string("Blackhole").has_value());
}

TEST_CASE("blackhole drops both ways at the server but keeps neighbour discovery", "[fault][nft]") {
  const auto text = kah::fault_rules(Fault{FaultKind::blackhole, {}}, "r-c");
  CHECK(has(text, "table inet kaharness_fault {"));
  CHECK(has(text, "type filter hook input priority filter"));
  CHECK(has(text, "type filter hook output priority filter"));
  CHECK(has(text, "counter name \"dropped_input\" drop"));
  CHECK(has(text, "counter name \"dropped_output\" drop"));
  CHECK(has(text, "nd-neighbor-solicit"));
  CHECK(applied(FaultKind::blackhole) == std::vector<std::string>{"nft server " + text});
}

TEST_CASE("one-way drops drop only their direction", "[fault][nft]") {
  const auto to_client = kah::fault_rules(Fault{FaultKind::drop_to_client, {}}, "r-c");
  CHECK(has(to_client, "hook output"));
  CHECK_FALSE(has(to_client, "hook input"));
  const auto to_server = kah::fault_rules(Fault{FaultKind::drop_to_server, {}}, "r-c");
  CHECK(has(to_server, "hook input"));
  CHECK_FALSE(has(to_server, "hook output"));
}

// The scope of a case on the local backend's shared lo, its server on port 40001.
static kah::RuleScope shared_scope(const std::string& table) {
  kah::RuleScope shared;
  shared.table = table;
  shared.to_server = "tcp dport { 40001 }";
  shared.from_server = "tcp sport { 40001 }";
  shared.owned = true;
  return shared;
}

TEST_CASE("on a shared namespace the rules sit in the case's table and match only its ports", "[fault][nft][local]") {
  const auto shared = shared_scope("inet kaharness_7_3_fault");
  const auto blackhole = kah::fault_rules(Fault{FaultKind::blackhole, {}}, shared);
  // The kernel refuses a declaration of an owner table that leaves the flag out.
  CHECK(has(blackhole, "table inet kaharness_7_3_fault {\n  flags owner;\n"));
  // Dropped on input, where a dead server drops: the capture on lo saw them leave.
  CHECK(has(blackhole, "hook input priority filter; policy accept;\n"));
  CHECK(has(blackhole, "tcp dport { 40001 } counter name \"dropped_input\" drop"));
  CHECK(has(blackhole, "tcp sport { 40001 } counter name \"dropped_output\" drop"));
  CHECK_FALSE(has(blackhole, "kaharness_fault "));
  const auto rst = kah::fault_rules(Fault{FaultKind::peer_firewall_rst, {}}, shared);
  CHECK(has(rst, "tcp dport { 40001 } meta l4proto tcp counter name \"hit\" reject with tcp reset"));
  CHECK(has(rst, "flags owner;"));
  CHECK_FALSE(has(kah::fault_rules(Fault{FaultKind::blackhole, {}}, "r-c"), "flags owner"));
  // In a namespace of the case's own, everything is the case's.
  CHECK(has(kah::fault_rules(Fault{FaultKind::blackhole, {}}, "r-c"), "    counter name \"dropped_input\" drop"));
}

TEST_CASE("in the local backend's shared table every name a case declares carries its prefix", "[fault][nft][local]") {
  auto shared = shared_scope("inet kaharness_7_0_cases");
  shared.loopback = true;
  shared.names = "c4_";
  const auto blackhole = kah::fault_rules(Fault{FaultKind::blackhole, {}}, shared);
  CHECK(has(blackhole, "counter c4_dropped_input { }"));
  CHECK(has(blackhole, "chain c4_input {"));
  CHECK(has(blackhole, "chain c4_output {"));
  CHECK(has(blackhole, "counter name \"c4_dropped_output\" drop"));
  CHECK_FALSE(has(blackhole, "chain input"));
  const auto reject = kah::fault_rules(Fault{FaultKind::reject_rst, {}}, shared);
  CHECK(has(reject, "counter c4_hit { }"));
  CHECK(has(reject, "meta l4proto tcp counter name \"c4_hit\" reject with tcp reset"));
  const auto loss = kah::fault_rules(Fault{FaultKind::loss, 0.5}, shared);
  CHECK(has(loss, "meta l4proto tcp numgen random mod"));
  CHECK(has(loss, "counter name \"c4_hit\" drop"));
  const auto rst = kah::fault_rules(Fault{FaultKind::peer_firewall_rst, {}}, shared);
  CHECK(has(rst, "chain c4_input {"));
  CHECK(has(rst, "counter name \"c4_hit\" reject with tcp reset"));
  // The probe counters' chain has a name of its own: a fault's output chain shares the table.
  const auto probes = kah::probe_counter_ruleset(
      {{kah::probe_counter_name(kah::Family::ipv4, 40001), kah::Family::ipv4, 40001, 50001}}, shared.table, true,
      shared.names);
  CHECK(has(probes, "counter c4_probes_v4_40001 { }"));
  CHECK(has(probes, "map c4_probe_counter {"));
  CHECK(has(probes, "ipv4 . 40001 . 50001 : \"c4_probes_v4_40001\""));
  CHECK(has(probes, "chain c4_probes {"));
  CHECK(has(probes, "map @c4_probe_counter"));
}

TEST_CASE("faults that are not firewall rules act on links, sockets, processes and flows", "[fault]") {
  for (auto kind : {FaultKind::none, FaultKind::link_down, FaultKind::peer_reboot, FaultKind::peer_freeze,
                    FaultKind::conntrack_expire, FaultKind::conntrack_timeout})
    CHECK(kah::fault_rules(Fault{kind, {}}, "r-c").empty());
  CHECK(applied(FaultKind::none).empty());
  CHECK(applied(FaultKind::conntrack_timeout).empty());
  CHECK(applied(FaultKind::link_down) == std::vector<std::string>{"link server down"});
  CHECK(applied(FaultKind::peer_reboot) == std::vector<std::string>{"close server sockets"});
  CHECK(applied(FaultKind::peer_freeze) == std::vector<std::string>{"freeze peer"});
  CHECK(applied(FaultKind::conntrack_expire) == std::vector<std::string>{"forget flows"});
  CHECK(kah::fault_info(FaultKind::link_down).hides_probes);
  CHECK(kah::fault_info(FaultKind::peer_freeze).needs_peer_process);
}

TEST_CASE("router faults: reject with reset or ICMP from the client side, loss both ways", "[fault][nft][middlebox]") {
  const auto rst = kah::fault_rules(Fault{FaultKind::reject_rst, {}}, "r-c");
  CHECK(has(rst, "table inet kaharness_fault {"));
  // Ahead of the router's firewall (priority filter), so it decides first.
  CHECK(has(rst, "type filter hook forward priority filter - 10; policy accept;"));
  CHECK(has(rst, "iifname \"r-c\" meta l4proto tcp counter name \"hit\" reject with tcp reset"));
  CHECK(applied(FaultKind::reject_rst) == std::vector<std::string>{"nft router " + rst});

  const auto icmp = kah::fault_rules(Fault{FaultKind::reject_icmp, {}}, "r-c");
  CHECK(has(icmp, "iifname \"r-c\" meta l4proto tcp counter name \"hit\" reject with icmpx type host-unreachable"));
  // Every segment answered: the router's ICMP rate limits are off first.
  CHECK(applied(FaultKind::reject_icmp) == std::vector<std::string>{"sysctl router net.ipv4.icmp_ratelimit=0",
                                                                    "sysctl router net.ipv6.icmp.ratelimit=0",
                                                                    "nft router " + icmp});

  const auto loss = kah::fault_rules(Fault{FaultKind::loss, 0.3}, "r-c");
  CHECK(has(loss, "meta l4proto tcp numgen random mod 1000000 < 300000 counter name \"hit\" drop"));
  CHECK_FALSE(has(loss, "iifname"));  // both directions
  CHECK(kah::fault_info(FaultKind::loss).takes_probability);
  CHECK(kah::loss_threshold(0.3) == 300000);
  CHECK(kah::loss_threshold(0.0000004) == 0);
  CHECK(kah::loss_threshold(0.9999996) == 1000000);
}

TEST_CASE("local backend: on lo standing in for the router, the client's side on input, the server's on output, no sysctl",
          "[fault][nft][local]") {
  kah::RuleScope lo;
  lo.table = "inet kaharness_7_4_fault";
  lo.to_server = "tcp dport { 40001 }";
  lo.from_server = "tcp sport { 40001 }";
  lo.owned = true;
  lo.loopback = true;
  const auto rst = kah::fault_rules(Fault{FaultKind::reject_rst, {}}, lo);
  CHECK(has(rst, "table inet kaharness_7_4_fault {\n  flags owner;\n"));
  CHECK(has(rst, "type filter hook input priority filter - 10; policy accept;\n"
                 "    tcp dport { 40001 } meta l4proto tcp counter name \"hit\" reject with tcp reset\n"));
  CHECK_FALSE(has(rst, "hook output"));
  CHECK_FALSE(has(rst, "forward"));
  CHECK_FALSE(has(rst, "iifname"));

  const auto icmp = kah::fault_rules(Fault{FaultKind::reject_icmp, {}}, lo);
  CHECK(has(icmp, "tcp dport { 40001 } meta l4proto tcp counter name \"hit\" reject with icmpx type host-unreachable"));
  CHECK_FALSE(has(icmp, "hook output"));
  // Loopback has no ICMP rate limit to lift, and the local backend writes no sysctl.
  Recorder r;
  kah::apply_fault(Fault{FaultKind::reject_icmp, {}}, lo, r);
  CHECK(r.calls == std::vector<std::string>{"nft router " + icmp});

  const auto loss = kah::fault_rules(Fault{FaultKind::loss, 0.3}, lo);
  CHECK(has(loss, "hook input priority filter - 10; policy accept;\n"
                  "    tcp dport { 40001 } meta l4proto tcp numgen random mod 1000000 < 300000 counter name \"hit\" drop\n"));
  CHECK(has(loss, "hook output priority filter - 10; policy accept;\n"
                  "    tcp sport { 40001 } meta l4proto tcp numgen random mod 1000000 < 300000 counter name \"hit\" drop\n"));

  // Never a rule on a shared lo without the case's ports.
  kah::RuleScope bare;
  bare.loopback = true;
  CHECK_THROWS_AS(kah::fault_rules(Fault{FaultKind::loss, 0.3}, bare), std::logic_error);

  // lo stands in only for routers whose answer is a rule: not for conntrack.
  std::set<FaultKind> on_lo;
  for (const auto& row : kah::fault_kinds())
    if (row.on_loopback != kah::OnLoopback::no) {
      CHECK(row.acts_on == Host::router);
      on_lo.insert(row.kind);
    }
  CHECK(on_lo == std::set<FaultKind>{FaultKind::reject_rst, FaultKind::reject_icmp, FaultKind::loss});
  CHECK(kah::fault_info(FaultKind::loss).on_loopback == kah::OnLoopback::plain_router);
}

TEST_CASE("peer-firewall-rst: the server's own firewall resets what the client sends", "[fault][nft]") {
  const auto& row = kah::fault_info(FaultKind::peer_firewall_rst);
  CHECK(row.name == "peer-firewall-rst");
  CHECK_FALSE(row.needs_router);
  CHECK(row.peer == kah::model::PeerBehaviour::rebooted);
  const auto rules = kah::fault_rules(Fault{FaultKind::peer_firewall_rst, {}}, "r-c");
  CHECK(has(rules, "table inet kaharness_fault {"));
  CHECK(has(rules, "type filter hook input priority filter; policy accept;"));
  CHECK(has(rules, "meta l4proto tcp counter name \"hit\" reject with tcp reset"));
  CHECK(applied(FaultKind::peer_firewall_rst) == std::vector<std::string>{"nft server " + rules});
}
