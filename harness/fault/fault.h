// Fault kinds: what kaharness can do to a connection's path or peer, one row each in
// one table (fault.cc). A row says, in code the compiler checks, everything the rest
// of the harness needs of a kind: its spellings in case files and on the command
// line, the host it acts on, which topology and router state it needs, how the peer
// then looks to the timing model, whether it hides probes from the captures, its
// nftables rules and how it is applied. Case loading, `predict --fault`, the planner
// and the runner read the table; none of them names a kind.
//
// Adding a kind: one FaultKind value, one row in fault.cc, a case file in cases/, and
// tests (README, "Adding a fault kind"). A kind is undone by the topology's
// teardown: its rules, links and sockets live in namespaces that die with the run.
//
// Pure data and text; no I/O. Applying a fault goes through FaultActions, which the
// run layer implements on a real topology.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "harness/model/timing.h"

namespace kah {

enum class FaultKind {
  none,             // healthy peer
  blackhole,        // nftables drops everything both ways at the server
  drop_to_client,   // the server's replies (probe ACKs) are lost
  drop_to_server,   // the client's segments (probes) are lost
  link_down,        // the server's end of the link is unplugged
  peer_reboot,      // the server silently loses all connection state (TCP_REPAIR close)
  peer_freeze,      // the server application (a separate process) is SIGSTOPped
  conntrack_expire,   // the router deletes the flow's conntrack entry now
  conntrack_timeout,  // nothing is done: the router's own established timeout decides
  reject_rst,         // the router answers the client's segments with a TCP reset
  reject_icmp,        // the router answers the client's segments with ICMP host unreachable
  loss,               // the router drops packets at random, both directions
  peer_firewall_rst,  // the server's own firewall answers the client's segments with a TCP reset
};

// The hosts of a topology.
enum class Host { client, server, router };
std::string to_string(Host h);

// One fault as a case states it.
struct Fault {
  FaultKind kind = FaultKind::none;
  std::optional<double> probability;  // loss: the chance that the router drops a packet
};

// How the planner turns a kind into the model's view of the path.
enum class PathModel {
  fixed,           // the row's `peer`, as it is
  flow_forgotten,  // the router forgets the flow now: what it does next depends on its NAT and firewall
  flow_times_out,  // the router's established timeout decides whether and when the flow is forgotten
  icmp_errors,     // every segment is answered with ICMP unreachable (IPv4 also undoes RTO backoff)
  random_loss,     // packets are lost at random: a survival probability, not one outcome
};

// What applying a fault needs of a real topology: the run layer implements it.
class FaultActions {
 public:
  virtual ~FaultActions() = default;
  virtual void nft(Host host, const std::string& ruleset) = 0;
  virtual void write_sysctl(Host host, const std::string& key, const std::string& value) = 0;
  virtual void set_link_up(Host host, bool up) = 0;
  virtual void close_server_sockets_silently() = 0;  // TCP_REPAIR: neither FIN nor RST
  virtual void freeze_peer_process() = 0;            // SIGSTOP the server's application
  virtual void forget_flows_on_router() = 0;         // delete the flows' conntrack entries
};

// The nftables table (family and name) that holds a fault's rules, in the namespace
// of the host it acts on.
inline constexpr const char* kFaultTable = "inet kaharness_fault";

// Where a fault's rules go and what they match. In namespaces of the case's own
// (backends netns, userns) everything there is the case's: the table is kFaultTable
// and the rules match all traffic. In a namespace shared with other cases and other
// programs (backend local) the table is the case's own and the rules match only the
// case's segments, by its server ports.
struct RuleScope {
  std::string table = kFaultTable;
  std::string router_client_if;  // the router's interface towards the client
  std::string to_server;    // an nft match for the case's segments towards its server; "": all
  std::string from_server;  // ... and for its server's; "": all
  // The table is made with `flags owner` (the kernel deletes it with the socket that
  // made it); every declaration of it must say so, or the kernel refuses the change.
  bool owned = false;
  // No router: both ends on lo (backend local). A router kind's rules, where its row
  // lets lo stand in for the router (FaultKindInfo::on_loopback), go on lo's hooks in
  // the case's table, matched by to_server / from_server.
  bool loopback = false;
  // Prefix of every chain, map and counter the rules declare: "" in a namespace of the
  // case's own; under the local backend every case's rules share one table (a table
  // costs libnftables 1.0.6 about 3 ms of CPU per command, for each table in the
  // namespace), and the prefix keeps each case's names apart ("c12_").
  std::string names;
  std::string name(std::string_view base) const { return names + std::string(base); }
};

// Whether the local backend, which has no router, can stand in for the router of a
// kind that acts on one: the kind's rules on lo's input hook (the client's segments
// towards the case's server, after the capture on lo saw them leave, as the client's
// capture sees them leave towards a router) and output hook (the server's segments,
// before the capture, as the client never sees what a router drops). Only where the
// client's kernel then gets exactly what it gets behind the router (the same reset,
// the same ICMP error, the same silence), as each row says.
enum class OnLoopback {
  no,                 // needs a router (its conntrack, NAT, timeouts), or acts on none
  plain_router,       // stands in for a router that only forwards: [router] asks nothing
  ahead_of_firewall,  // ... or whose only state is a firewall the kind's rule precedes:
                      // it answers every client segment first, and the server, which
                      // then hears nothing, sends nothing the firewall could judge
};

// "table inet NAME {\n", with "  flags owner;\n" when `owned`.
std::string table_header(const std::string& family_and_table, bool owned);

struct FaultKindInfo {
  FaultKind kind;
  std::string_view name;   // the spelling in case files, reports and `predict --fault`
  std::string_view alias;  // a second spelling accepted on input; empty: none
  std::string_view what;   // one line for --help and the README
  Host acts_on;            // where it happens (none: the server, where nothing is done)
  bool needs_router;       // acts on the router: topology = "routed"
  bool needs_flow_state;   // the router must track flows ([router] nat or firewall)
  bool needs_peer_process; // the server's sockets live in a process of their own
  bool needs_link_control; // unplugs a link of its own (loopback cannot be unplugged)
  OnLoopback on_loopback;  // a router kind the local backend can run on lo, and how
  bool takes_probability;  // [[fault]] probability
  // Probes never reach the capture point (dropped at the qdisc of an unplugged link):
  // ends are timed by the event loop and probes are not checked.
  bool hides_probes;
  // Must be in place before the connection's first keepalive probe leaves: applied
  // later, an answered probe moves the idle clock and the case no longer tests what
  // the model predicts (run/fault_landing.h). No fault, a frozen application whose
  // kernel still answers, or a router's own timer: nothing has to come first.
  bool must_precede_probes;
  model::PeerBehaviour peer;  // how the path answers, for PathModel::fixed
  PathModel path;
  std::string_view model_note;  // said in the model's steps; empty: nothing
  // Its nftables rules in their own table (scope.table) on `acts_on`; null: none.
  std::string (*rules)(const Fault& fault, const RuleScope& scope);
  // Applies it; `rules` is the row's own rule text for `scope` ("" when it has none).
  void (*apply)(const Fault& fault, const RuleScope& scope, const std::string& rules, FaultActions& actions);
};

// The table's row for `kind`.
const FaultKindInfo& fault_info(FaultKind kind);
// Every row, in the order users see them.
std::span<const FaultKindInfo> fault_kinds();

// The canonical spelling ("drop-to-client").
std::string to_string(FaultKind kind);
// A name or alias, exact and case-sensitive; nullopt for anything else.
std::optional<FaultKind> fault_kind_from_string(std::string_view s);

// The scope in a namespace of the case's own: kFaultTable, every segment.
RuleScope own_namespace_scope(std::string_view router_client_if);

// A fault's rules for `scope`, "" when the kind has none; the second form for a
// namespace of the case's own (kFaultTable, all traffic).
std::string fault_rules(const Fault& fault, const RuleScope& scope);
std::string fault_rules(const Fault& fault, std::string_view router_client_if);
// Applies `fault` through `actions`.
void apply_fault(const Fault& fault, const RuleScope& scope, FaultActions& actions);
void apply_fault(const Fault& fault, std::string_view router_client_if, FaultActions& actions);

// numgen range used for loss: a probability is applied as K out of this many.
inline constexpr std::uint32_t kLossScale = 1000000;
// K for probability p (rounded to the nearest 1 / kLossScale).
std::uint32_t loss_threshold(double probability);

}  // namespace kah
