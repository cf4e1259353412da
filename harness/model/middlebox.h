// Middleboxes in the timing model: what a stateful router (conntrack, NAT, a
// stateful firewall) does with a flow it has forgotten, and whether it forgets the
// flow at all, given how often the flow's segments refresh its entry. Pure
// functions: no I/O, no clocks.
//
// Sources: net/netfilter/nf_conntrack_proto_tcp.c (tcp_new(): a segment without SYN
// starts a new entry only when nf_conntrack_tcp_loose is set; otherwise it is
// INVALID and stays untracked), net/netfilter/nf_nat_core.c (an untracked packet is
// not translated; a new mapping keeps the source port when it is free),
// net/netfilter/nf_conntrack_core.c (an entry whose timeout has passed is treated as
// absent by the next lookup; the timeout is re-armed by every segment, in jiffies).
// Checked on 6.18 (see cases/nat-*.toml and cases/conntrack-*.toml).
#pragma once

#include <string>
#include <vector>

#include "harness/model/timing.h"

namespace kah::model {

// The router's state-keeping, as far as a forgotten flow is concerned.
struct Router {
  bool nat = false;       // masquerades the client side
  bool firewall = false;  // drops packets conntrack calls INVALID
  bool loose = true;      // net.netfilter.nf_conntrack_tcp_loose (kernel default 1)
};

struct StateLoss {
  PeerBehaviour path = PeerBehaviour::answers;  // what the client then sees
  std::string why;                              // one sentence for the explanation
};

// The flow's next segment after the router lost its entry:
//  loose             conntrack picks the flow up again from that mid-stream segment (and
//                    NAT maps it to the same, now free, port): the connection lives on;
//  strict + firewall the segment is INVALID and dropped, as is every later one: silent;
//  strict + NAT only the INVALID segment is forwarded untranslated, from the client's own
//                    address; the server has no such connection and answers it with an
//                    RST that the client accepts (its sequence number is the client's
//                    rcv_nxt): reset. (The topology routes the client's prefix at the
//                    server; a server with no route back would make this silent.)
//  strict, neither   nothing translates or drops: the connection lives on.
StateLoss after_state_loss(const Router& router);

// Whether a conntrack entry survives an idle period.
enum class EntryFate {
  kept,       // every gap between the flow's segments is shorter than the timeout
  expired,    // a gap is longer: the segment after it finds no entry
  undecided,  // a gap is too close to the timeout for the windows to tell
};

struct ConntrackFate {
  EntryFate fate = EntryFate::kept;
  // EntryFate::expired / undecided: index in `crossings` of the segment that finds
  // (or may find) the entry gone.
  int at_crossing = -1;
  std::string why;
};

// `crossings`: when the flow's segments cross the router, in order, as windows in ms
// from t_r; the first is the last segment before the idle period (normally [0, ~0]).
// Each refreshes the entry for `timeout_ms`. Conntrack counts in jiffies and compares
// at the next segment, so a gap within one tick (`tick_ms`) of the timeout is
// undecided.
ConntrackFate conntrack_fate(const std::vector<Window>& crossings, double timeout_ms, double tick_ms);

}  // namespace kah::model
