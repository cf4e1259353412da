#include "harness/run/capture_evidence.h"

#include <algorithm>
#include <limits>
#include <system_error>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/clock/realtime_steps.h"
#include "harness/evidence/pcap_file.h"

namespace kah {

CaseCaptures analyze_captures(evidence::LiveCapture client, evidence::LiveCapture server,
                              double until_realtime_ms) {
  CaseCaptures c{std::move(client), std::move(server), {}};
  auto packets = c.client.packets();
  std::erase_if(packets, [&](const evidence::Packet& p) { return p.t_ms > until_realtime_ms; });
  c.client_analysis = evidence::analyze(packets);
  return c;
}

namespace {

bool same_flow(const evidence::Packet& p, const FlowKey& k) {
  const bool outbound = p.src == k.client_address && p.sport == k.client_port && p.dst == k.server_address &&
                        p.dport == k.server_port;
  const bool inbound = p.dst == k.client_address && p.dport == k.client_port && p.src == k.server_address &&
                       p.sport == k.server_port;
  return outbound || inbound;
}

bool inbound(const evidence::Packet& p, const FlowKey& k) {
  return p.dst == k.client_address && p.dport == k.client_port && p.src == k.server_address &&
         p.sport == k.server_port;
}

void write_flow(const evidence::LiveCapture& capture, const FlowKey& key, const std::filesystem::path& file) {
  evidence::PcapWriter writer(file, capture.link());
  const auto& frames = capture.frames();
  for (const auto& p : capture.packets())
    if (same_flow(p, key) && p.frame >= 1 && p.frame <= frames.size()) {
      const auto& f = frames[p.frame - 1];
      writer.write(f.t_ms(), f.bytes);
    }
  writer.close();
}

}  // namespace

std::optional<double> last_received_before(const std::vector<evidence::Packet>& client_packets, const FlowKey& key,
                                           double until_realtime_ms) {
  std::optional<double> last;
  for (const auto& p : client_packets)
    if (inbound(p, key) && p.payload_len > 0 && !p.has(evidence::tcp_flag::rst) && p.t_ms <= until_realtime_ms &&
        (!last || p.t_ms > *last))
      last = p.t_ms;
  return last;
}

void attach_capture_evidence(ConnectionResult& r, const CaseCaptures& captures, const FlowKey& key,
                             double origin_realtime_ms, bool probes_visible) {
  attach_capture_evidence(r, captures.client_analysis, key, origin_realtime_ms, probes_visible);
}

void attach_capture_evidence(ConnectionResult& r, const evidence::Analysis& analysis, const FlowKey& key,
                             double origin_realtime_ms, bool probes_visible) {
  auto& ev = r.evidence;
  ev.origin_realtime_ms = origin_realtime_ms;
  const auto* flow = evidence::find_flow(analysis, {key.client_address, key.client_port},
                                         {key.server_address, key.server_port});
  if (flow == nullptr) return;
  ev.flow = *flow;
  ev.probes_checked = probes_visible;
  // A connection still open was watched until its horizon (observed.at_ms); later
  // packets of a longer-watched neighbour's case are not this connection's evidence.
  const double until = r.observed.outcome == ObservedOutcome::alive ? origin_realtime_ms + r.observed.at_ms
                                                                     : std::numeric_limits<double>::infinity();
  if (probes_visible) ev.probe_checks = evidence::check_probes(*flow, r.prediction, origin_realtime_ms, until);

  // The kernel's own time for the end: the client's RST when it gave up (timeout),
  // or the peer's RST that reset it.
  const auto ended_by = [&](evidence::FlowEnd e) { return flow->end == e && flow->end_ms.has_value(); };
  const bool timed_out_with_rst = r.observed.outcome == ObservedOutcome::timeout &&
                                  ended_by(evidence::FlowEnd::reset_by_prober);
  const bool reset_by_peer = r.observed.outcome == ObservedOutcome::reset &&
                             (ended_by(evidence::FlowEnd::reset_by_peer) || ended_by(evidence::FlowEnd::reset_by_prober));
  if (timed_out_with_rst || reset_by_peer) {
    r.observed.woke_at_ms = r.observed.at_ms;
    r.observed.at_ms = *flow->end_ms - origin_realtime_ms;
    r.observed.timed_by = "capture";
    return;
  }
  // EOF: the peer's FIN as it reached the client's interface (stamped when it was queued
  // for the client, before the receive softirq, which a busy machine leaves to
  // ksoftirqd: FINs were read 30-37 ms after the server's close() under ctest -j2).
  if (r.observed.outcome == ObservedOutcome::eof) {
    const auto fin = std::find_if(flow->segments.begin(), flow->segments.end(), [&](const evidence::Segment& s) {
      const auto& from = s.from == evidence::Side::a ? flow->a : flow->b;
      return s.kind == evidence::SegmentKind::fin && from.addr == key.server_address &&
             from.port == key.server_port && s.packet.t_ms >= origin_realtime_ms;
    });
    if (fin != flow->segments.end()) {
      r.observed.woke_at_ms = r.observed.at_ms;
      r.observed.at_ms = fin->packet.t_ms - origin_realtime_ms;
      r.observed.timed_by = "capture";
    }
  }
}

void write_connection_pcaps(ConnectionResult& r, const CaseCaptures& captures, const FlowKey& key,
                            const std::filesystem::path& dir, const std::string& case_name) {
  std::filesystem::create_directories(dir / case_name);
  const auto base = std::filesystem::path(case_name) / r.name;
  const auto client = base.string() + ".client.pcap";
  const auto server = base.string() + ".server.pcap";
  write_flow(captures.client, key, dir / client);
  write_flow(captures.server, key, dir / server);
  r.evidence.pcap_client = client;
  r.evidence.pcap_server = server;
}

namespace {

bool of_flow(const evidence::Packet& p, const FlowKey& key) {
  if (p.family != key.family) return false;
  return (p.sport == key.client_port && p.dport == key.server_port) ||
         (p.sport == key.server_port && p.dport == key.client_port);
}

// The steps to name: the first three and how many more, with their sum (a guest agent
// slewing by steps makes dozens).
std::string steps_text(const std::vector<ClockStep>& steps) {
  std::vector<std::string> named;
  std::int64_t total_ns = 0;
  for (const auto& s : steps) {
    total_ns += s.by_ns;
    if (named.size() < 3) named.push_back(s.describe());
  }
  std::string text = fmt::format("{}", fmt::join(named, "; "));
  if (steps.size() > named.size())
    text += fmt::format("; and {} more, {:+.3f} ms in all", steps.size() - named.size(),
                        static_cast<double>(total_ns) / 1e6);
  return text;
}

}  // namespace

std::optional<std::string> clock_step_doubt(const std::vector<evidence::Packet>& client,
                                            const std::vector<evidence::Packet>& server, const FlowKey& key,
                                            const std::vector<ClockStep>& steps) {
  std::size_t ambiguous = 0;
  for (const auto* packets : {&client, &server})
    for (const auto& p : *packets) ambiguous += p.clock_ambiguous && of_flow(p, key);
  if (ambiguous == 0) return std::nullopt;
  return fmt::format("the realtime clock stepped ({}) and {} of this connection's capture stamps could lie on either "
                     "side of a step",
                     steps_text(steps), ambiguous);
}

std::optional<std::string> clock_step_doubt(const CaseCaptures& captures, const FlowKey& key) {
  if (captures.client.clock_ambiguous_frames() + captures.server.clock_ambiguous_frames() == 0) return std::nullopt;
  return clock_step_doubt(captures.client.packets(), captures.server.packets(), key,
                          RealtimeSteps::process().steps());
}

}  // namespace kah
