// What a capture says about keepalive: the TCP flows in it, each segment labelled
// (data, ack, keepalive probe, the ACK answering a probe, reset, ...), and per flow
// the keepalive behaviour inferred from the packets alone: idle time, probe interval,
// probe count, and how the connection ended. `kaharness analyze FILE.pcap` prints it;
// judging uses the probes to check them one by one against the model.
//
// A keepalive probe is recognised the way the kernel makes it (tcp_write_wakeup in
// net/ipv4/tcp_output.c): a segment whose sequence number is one below what its sender
// has already sent (SND.NXT - 1), sent while nothing is unacknowledged. Linux sends it
// with no payload; Windows and some BSDs repeat one byte (garbage) at that sequence
// number, which only differs from a retransmission of the last byte in that the peer
// has already acknowledged that byte.
//
// Pure: Packets in, values out. Times are capture times (ms since the epoch) unless a
// field says otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/evidence/packet.h"
#include "harness/evidence/pcap_file.h"

namespace kah::evidence {

enum class SegmentKind {
  syn,              // SYN or SYN-ACK (also retransmitted)
  fin,
  rst,
  data,             // carries bytes not sent before
  retransmission,   // carries only bytes already sent
  keepalive_probe,  // SND.NXT - 1 with 0 or 1 byte, nothing in flight
  keepalive_ack,    // the other side's ACK of SND.NXT answering a probe
  window_probe,     // looks like a 0-byte keepalive probe, but the peer's window is zero:
                    // the persist timer, not keepalive
  ack,              // anything else without payload
};
std::string to_string(SegmentKind k);  // "keepalive-probe", ...

// The two ends of a flow. `a` opened it (sent the SYN) when the capture holds the
// handshake, else `a` sent the first segment in the capture.
enum class Side { a, b };
Side other(Side s);

struct Endpoint {
  std::string addr;
  std::uint16_t port = 0;
  std::string str() const;  // "198.18.0.1:40000", "[fd00::1]:40000"
};

struct Segment {
  Packet packet;
  Side from = Side::a;
  SegmentKind kind = SegmentKind::ack;
};

// How a probe was answered.
enum class ProbeAnswer {
  none,   // nothing came back before the next probe or the end: lost, or the peer is gone
  ack,    // a keepalive-ack: the peer's kernel is alive
  reset,  // an RST: the peer no longer knows the connection (rebooted)
  other,  // the peer sent something else (data, FIN) that the prober received
};
std::string to_string(ProbeAnswer a);

struct Probe {
  std::size_t segment = 0;     // index into FlowAnalysis::segments
  double t_ms = 0;             // capture time
  std::uint32_t payload_len = 0;  // 0 (Linux) or 1 (Windows, some BSDs)
  ProbeAnswer answer = ProbeAnswer::none;
  std::optional<double> answered_ms;  // capture time of the answer
};

// Probes one side sent with nothing received in between: the kernel's unanswered-probe
// counter (icsk_probes_out) counts up along a run and any received ACK resets it, so a
// run is one attempt at detecting a dead peer. Only the last probe can be answered.
struct ProbeRun {
  Side prober = Side::a;
  std::optional<double> last_rx_ms;  // last segment the prober received before the first probe
  std::vector<Probe> probes;
};

// How the flow ended in the capture.
enum class FlowEnd {
  capture_end,      // still open when the capture stopped
  reset_by_prober,  // the side that probed sent an RST (Linux gives up this way)
  reset_by_peer,    // the other side (or the only side, if nobody probed) sent an RST
  closed,           // FIN
};
std::string to_string(FlowEnd e);

struct FlowAnalysis {
  Endpoint a, b;
  Family family = Family::ipv4;
  std::vector<Segment> segments;  // in time order
  std::vector<ProbeRun> runs;     // in time order, both sides
  // Inferred from the flow's last probe run (the one that decided its fate); unset
  // when nobody probed.
  std::optional<Side> prober;
  std::optional<double> idle_ms;      // last segment received by the prober -> its first probe of the run
  std::optional<double> interval_ms;  // median gap between consecutive unanswered probes (all runs of the prober)
  int count = 0;                      // probes in the last run
  FlowEnd end = FlowEnd::capture_end;
  std::optional<double> end_ms;       // capture time of the RST or FIN that ended it

  const Endpoint& endpoint(Side s) const { return s == Side::a ? a : b; }
  bool ended_by_rst() const { return end == FlowEnd::reset_by_prober || end == FlowEnd::reset_by_peer; }
  // Every probe `side` sent, in time order, across runs.
  std::vector<Probe> probes_of(Side side) const;
  // The last run, if any probe was sent.
  const ProbeRun* last_run() const { return runs.empty() ? nullptr : &runs.back(); }
};

struct Analysis {
  std::string source;          // file name, for the printout
  std::uint64_t frames = 0;    // frames in the capture, TCP or not
  std::optional<double> start_ms;  // capture time of the first TCP segment: printed times count from it
  std::vector<FlowAnalysis> flows;  // in order of first appearance
};

// Groups segments into flows, labels them and infers keepalive per flow. The span
// form counts only the packets given as frames and leaves source empty.
Analysis analyze(const Capture& capture);
Analysis analyze(std::span<const Packet> packets);
// A single flow, for callers that already selected its packets (both directions).
FlowAnalysis analyze_flow(std::span<const Packet> packets);
// The flow between these two endpoints (either direction), or nullptr.
const FlowAnalysis* find_flow(const Analysis& analysis, const Endpoint& one, const Endpoint& other);

// `kaharness analyze` output: per flow a summary, the inferred keepalive settings and a
// probe-by-probe table with times from the prober's last received segment.
std::string describe_analysis(const Analysis& analysis);
nlohmann::json analysis_json(const Analysis& analysis);

}  // namespace kah::evidence
