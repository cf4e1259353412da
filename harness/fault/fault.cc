#include "harness/fault/fault.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace kah {
namespace {

using model::PeerBehaviour;

// ---- Rule text ---------------------------------------------------------------

// A match expression followed by a space, or "" for none.
std::string with_space(const std::string& match) { return match.empty() ? match : match + " "; }

constexpr const char* kNeighbourDiscovery =
    "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept";

// `match`: what the chain drops ("" everything); neighbour discovery always passes.
// Counted in "dropped_<chain>" (its declaration comes with it).
std::string drop_chain(const RuleScope& scope, const char* chain, const char* hook, const std::string& match) {
  const std::string counter = scope.name(fmt::format("dropped_{}", chain));
  return fmt::format(
      "  counter {0} {{ }}\n"
      "  chain {1} {{\n"
      "    type filter hook {2} priority filter; policy accept;\n"
      "    {3}\n"
      "    {4}counter name \"{0}\" drop\n"
      "  }}\n",
      counter, scope.name(chain), hook, kNeighbourDiscovery, with_space(match));
}

// A firewall at the server that drops what comes in, goes out, or both. Neighbour
// discovery stays allowed so IPv6 behaves like IPv4 (ARP is not in the inet family):
// the peer is gone at the IP layer, the link itself stays up.
// On a shared namespace (scope.to_server / from_server) the input chain drops only the
// case's segments towards its server, the output chain only its server's replies: a
// dead server drops what arrives on input, after the capture on loopback saw it leave.
std::string server_drops(const RuleScope& scope, bool drop_input, bool drop_output) {
  std::string text = table_header(scope.table, scope.owned);
  if (drop_input) text += drop_chain(scope, "input", "input", scope.to_server);
  if (drop_output) text += drop_chain(scope, "output", "output", scope.from_server);
  return text + "}\n";
}

// A router's rule: `verdict` on the TCP segments from the client side
// (`client_side_only`) or both ways that meet `condition` ("" all), counting what it
// hits in "hit".
// On a router: its forward hook, ahead of the router's own firewall (priority filter
// - 10, so it decides first). On lo (scope.loopback, no router; OnLoopback): the
// client's segments towards the case's server on the input hook, the server's towards
// the client on the output hook, at the same priority. Either way each segment meets
// the rule once, and the segments the client's capture sees are the same.
std::string router_rule(const RuleScope& scope, bool client_side_only, const std::string& condition,
                        const std::string& verdict) {
  const std::string hit = scope.name("hit");
  std::string text = table_header(scope.table, scope.owned) + fmt::format("  counter {} {{ }}\n", hit);
  const auto chain = [&](const char* name, const char* hook, const std::string& match) {
    text += fmt::format(
        "  chain {} {{\n"
        "    type filter hook {} priority filter - 10; policy accept;\n"
        "    {}meta l4proto tcp {}counter name \"{}\" {}\n"
        "  }}\n",
        scope.name(name), hook, with_space(match), with_space(condition), hit, verdict);
  };
  if (!scope.loopback) {
    chain("forward", "forward", client_side_only ? fmt::format("iifname \"{}\"", scope.router_client_if) : "");
  } else {
    // Never a rule on a shared lo that matches everything.
    if (scope.to_server.empty() || scope.from_server.empty())
      throw std::logic_error("a router's rule on lo without the case's ports would match every connection there");
    chain("input", "input", scope.to_server);
    if (!client_side_only) chain("output", "output", scope.from_server);
  }
  return text + "}\n";
}

// ---- How kinds are applied ---------------------------------------------------------

void nothing(const Fault&, const RuleScope&, const std::string&, FaultActions&) {}
void server_rules(const Fault&, const RuleScope&, const std::string& rules, FaultActions& a) { a.nft(Host::server, rules); }
void router_rules(const Fault&, const RuleScope&, const std::string& rules, FaultActions& a) { a.nft(Host::router, rules); }

// ---- The table -----------------------------------------------------------------

constexpr std::size_t kKinds = static_cast<std::size_t>(FaultKind::peer_firewall_rst) + 1;

// clang-format off
constexpr std::array<FaultKindInfo, kKinds> kTable{{
  {FaultKind::none, "none", "", "nothing happens: a healthy peer",
   Host::server, false, false, false, false, OnLoopback::no, false, false, false, PeerBehaviour::answers, PathModel::fixed, "",
   nullptr, nothing},
  {FaultKind::blackhole, "blackhole", "", "the server's firewall drops everything, both ways",
   Host::server, false, false, false, false, OnLoopback::no, false, false, true, PeerBehaviour::silent, PathModel::fixed, "",
   [](const Fault&, const RuleScope& s) { return server_drops(s, true, true); }, server_rules},
  {FaultKind::drop_to_client, "drop-to-client", "", "the server's replies (the probes' ACKs) are lost",
   Host::server, false, false, false, false, OnLoopback::no, false, false, true, PeerBehaviour::silent, PathModel::fixed, "",
   [](const Fault&, const RuleScope& s) { return server_drops(s, false, true); }, server_rules},
  {FaultKind::drop_to_server, "drop-to-server", "", "the client's segments (the probes) are lost",
   Host::server, false, false, false, false, OnLoopback::no, false, false, true, PeerBehaviour::silent, PathModel::fixed, "",
   [](const Fault&, const RuleScope& s) { return server_drops(s, true, false); }, server_rules},
  {FaultKind::link_down, "link-down", "", "the server's end of the link is unplugged",
   Host::server, false, false, false, true, OnLoopback::no, false, true, true, PeerBehaviour::silent, PathModel::fixed, "",
   nullptr, [](const Fault&, const RuleScope&, const std::string&, FaultActions& a) { a.set_link_up(Host::server, false); }},
  {FaultKind::peer_reboot, "peer-reboot", "reboot", "the server loses every connection silently (a reboot)",
   Host::server, false, false, false, false, OnLoopback::no, false, false, true, PeerBehaviour::rebooted, PathModel::fixed, "",
   nullptr, [](const Fault&, const RuleScope&, const std::string&, FaultActions& a) { a.close_server_sockets_silently(); }},
  {FaultKind::peer_freeze, "peer-freeze", "", "the server's application hangs (SIGSTOP); its kernel still answers",
   Host::server, false, false, true, false, OnLoopback::no, false, false, false, PeerBehaviour::answers, PathModel::fixed, "",
   nullptr, [](const Fault&, const RuleScope&, const std::string&, FaultActions& a) { a.freeze_peer_process(); }},
  {FaultKind::conntrack_expire, "conntrack-expire", "", "the router forgets the flow now (a NAT or firewall)",
   Host::router, true, true, false, false, OnLoopback::no, false, false, true, PeerBehaviour::silent, PathModel::flow_forgotten, "",
   nullptr, [](const Fault&, const RuleScope&, const std::string&, FaultActions& a) { a.forget_flows_on_router(); }},
  {FaultKind::conntrack_timeout, "conntrack-timeout", "", "the router's own established timeout may forget the flow",
   Host::router, true, true, false, false, OnLoopback::no, false, false, false, PeerBehaviour::answers, PathModel::flow_times_out, "",
   nullptr, nothing},
  {FaultKind::reject_rst, "reject-rst", "", "the router answers the client's segments with a TCP reset",
   Host::router, true, false, false, false, OnLoopback::ahead_of_firewall, false, false, true, PeerBehaviour::rebooted, PathModel::fixed,
   "reject-rst: the router answers the client's next segment with a TCP reset carrying its rcv_nxt",
   // On lo: nf_send_reset builds the same reset from the client's segment on the
   // input hook as on the router's forward hook (the server's address and port, the
   // segment's ack as its seq), and it reaches the client the same way.
   [](const Fault&, const RuleScope& s) {
     return router_rule(s, true, "", "reject with tcp reset");
   },
   router_rules},
  {FaultKind::reject_icmp, "reject-icmp", "", "the router answers the client's segments with ICMP host unreachable",
   Host::router, true, false, false, false, OnLoopback::ahead_of_firewall, false, false, true, PeerBehaviour::unreachable, PathModel::icmp_errors,
   "reject-icmp: the router answers each of the client's segments with ICMP host unreachable",
   // icmpx: ICMP host-unreachable for IPv4, ICMPv6 address-unreachable for IPv6.
   // On lo the error comes from the server's address instead of the router's, which
   // tcp_v4_err / tcp_v6_err do not look at: they match the TCP header inside it.
   [](const Fault&, const RuleScope& s) {
     return router_rule(s, true, "", "reject with icmpx type host-unreachable");
   },
   [](const Fault&, const RuleScope& s, const std::string& rules, FaultActions& a) {
     // Every rejected segment gets its ICMP error: with the kernel's default rate
     // limit (1/s after a burst of 6 per destination) which retransmissions are
     // answered, and so (IPv4, RFC 6069) how the RTO backs off, would depend on timing.
     // On lo there is no limit to lift (and the local backend changes no sysctl): the
     // kernel limits no ICMP error for a packet that came in on loopback (icmp_send,
     // icmp6_send); measured on 6.18, 300 of 300 rejected datagrams answered per family.
     if (!s.loopback) {
       a.write_sysctl(Host::router, "net.ipv4.icmp_ratelimit", "0");
       a.write_sysctl(Host::router, "net.ipv6.icmp.ratelimit", "0");
     }
     a.nft(Host::router, rules);
   }},
  {FaultKind::loss, "loss", "", "the router drops packets at random, both ways (`probability`)",
   Host::router, true, false, false, false, OnLoopback::plain_router, true, false, true, PeerBehaviour::silent, PathModel::random_loss, "",
   // Each packet on its own draw: a probe round trip then survives with (1 - p)^2. On
   // lo the probe draws on input, its answer on output: one draw each, as on a router.
   [](const Fault& f, const RuleScope& s) {
     return router_rule(s, false,
                        fmt::format("numgen random mod {} < {}", kLossScale, loss_threshold(f.probability.value_or(0))),
                        "drop");
   },
   router_rules},
  {FaultKind::peer_firewall_rst, "peer-firewall-rst", "", "the server's own firewall answers the client's segments with a TCP reset",
   Host::server, false, false, false, false, OnLoopback::no, false, false, true, PeerBehaviour::rebooted, PathModel::fixed,
   "peer-firewall-rst: the server's firewall answers the client's next segment with a TCP reset built from it, "
   "which carries the client's rcv_nxt",
   [](const Fault&, const RuleScope& s) {
     return fmt::format(
         "{0}"
         "  counter {1} {{ }}\n"
         "  chain {2} {{\n"
         "    type filter hook input priority filter; policy accept;\n"
         "    {3}meta l4proto tcp counter name \"{1}\" reject with tcp reset\n"
         "  }}\n"
         "}}\n",
         table_header(s.table, s.owned), s.name("hit"), s.name("input"), with_space(s.to_server));
   },
   server_rules},
}};
// clang-format on

// Each row sits at its kind's index: the table is checked when it is compiled.
constexpr bool rows_in_order() {
  for (std::size_t i = 0; i < kKinds; ++i)
    if (static_cast<std::size_t>(kTable[i].kind) != i) return false;
  return true;
}
static_assert(rows_in_order(), "kTable: every FaultKind has one row, at its own index");

}  // namespace

std::string to_string(Host h) {
  switch (h) {
    case Host::client: return "client";
    case Host::server: return "server";
    case Host::router: return "router";
  }
  return "?";
}

const FaultKindInfo& fault_info(FaultKind kind) {
  const auto i = static_cast<std::size_t>(kind);
  if (i >= kTable.size() || kTable[i].kind != kind) throw std::logic_error("fault table out of order");
  return kTable[i];
}

std::span<const FaultKindInfo> fault_kinds() { return kTable; }

std::string to_string(FaultKind kind) { return std::string(fault_info(kind).name); }

std::optional<FaultKind> fault_kind_from_string(std::string_view s) {
  for (const auto& row : kTable)
    if (s == row.name || (!row.alias.empty() && s == row.alias)) return row.kind;
  return std::nullopt;
}

std::string table_header(const std::string& family_and_table, bool owned) {
  return fmt::format("table {} {{\n{}", family_and_table, owned ? "  flags owner;\n" : "");
}

RuleScope own_namespace_scope(std::string_view router_client_if) {
  RuleScope scope;
  scope.router_client_if = std::string(router_client_if);
  return scope;
}

std::string fault_rules(const Fault& fault, const RuleScope& scope) {
  const auto& row = fault_info(fault.kind);
  return row.rules == nullptr ? std::string() : row.rules(fault, scope);
}

std::string fault_rules(const Fault& fault, std::string_view router_client_if) {
  return fault_rules(fault, own_namespace_scope(router_client_if));
}

void apply_fault(const Fault& fault, const RuleScope& scope, FaultActions& actions) {
  fault_info(fault.kind).apply(fault, scope, fault_rules(fault, scope), actions);
}

void apply_fault(const Fault& fault, std::string_view router_client_if, FaultActions& actions) {
  apply_fault(fault, own_namespace_scope(router_client_if), actions);
}

std::uint32_t loss_threshold(double probability) {
  const double k = probability * kLossScale + 0.5;
  if (!(k >= 0)) return 0;
  if (k >= kLossScale) return kLossScale;
  return static_cast<std::uint32_t>(k);
}

}  // namespace kah
