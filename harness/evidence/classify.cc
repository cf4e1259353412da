#include "harness/evidence/classify.h"

#include <algorithm>
#include <map>
#include <tuple>

#include <fmt/format.h>

namespace kah::evidence {
namespace {

// Sequence-space comparison (RFC 9293 3.4): a is after b when it lies less than 2^31 ahead.
bool seq_after(std::uint32_t a, std::uint32_t b) { return static_cast<std::int32_t>(a - b) > 0; }

// What one side has done so far, as the classifier needs it.
struct SideState {
  std::optional<std::uint32_t> snd_nxt;   // highest seq + len it sent, or the peer acknowledged
  std::optional<std::uint32_t> acked;     // highest ACK the peer sent for it (its SND.UNA, as seen here)
  std::optional<std::uint16_t> window;    // the last window it advertised
  std::optional<double> last_rx_ms;       // last segment it received (sent by the other side)
  std::optional<std::size_t> open_run;    // index in runs of its run still waiting for an answer
};

void advance(std::optional<std::uint32_t>& value, std::uint32_t to) {
  if (!value || seq_after(to, *value)) value = to;
}

// Sequence space a segment occupies: SYN and FIN count one each (RFC 9293 3.4).
std::uint32_t sequence_length(const Packet& p) {
  return p.payload_len + (p.has(tcp_flag::syn) ? 1u : 0u) + (p.has(tcp_flag::fin) ? 1u : 0u);
}

SegmentKind label(const Packet& p, const SideState& sender, const SideState& receiver) {
  if (p.has(tcp_flag::rst)) return SegmentKind::rst;
  if (p.has(tcp_flag::syn)) return SegmentKind::syn;
  if (p.has(tcp_flag::fin)) return SegmentKind::fin;
  if (p.payload_len <= 1 && sender.snd_nxt && p.seq == *sender.snd_nxt - 1) {
    // A pure ACK at SND.NXT-1 is never normal; with a byte it is a probe only if that byte
    // was already acknowledged (otherwise it is a retransmission of the last byte).
    const bool idle = p.payload_len == 0 || (sender.acked && *sender.acked == *sender.snd_nxt);
    if (idle) {
      // The persist timer probes a zero window with the same segment (tcp_xmit_probe_skb).
      if (p.payload_len == 0 && receiver.window && *receiver.window == 0) return SegmentKind::window_probe;
      return SegmentKind::keepalive_probe;
    }
  }
  if (p.payload_len > 0) {
    if (sender.snd_nxt && !seq_after(p.seq + p.payload_len, *sender.snd_nxt)) return SegmentKind::retransmission;
    return SegmentKind::data;
  }
  return SegmentKind::ack;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

using FlowKey = std::tuple<std::string, std::uint16_t, std::string, std::uint16_t>;

// The same key for both directions: the lower (addr, port) first.
FlowKey flow_key(const Packet& p) {
  auto one = std::make_pair(p.src, p.sport);
  auto two = std::make_pair(p.dst, p.dport);
  if (two < one) std::swap(one, two);
  return {one.first, one.second, two.first, two.second};
}

std::string time_text(std::optional<double> ms) { return ms ? fmt::format("{:.1f} ms", *ms) : "unknown"; }

}  // namespace

std::string to_string(SegmentKind k) {
  switch (k) {
    case SegmentKind::syn: return "syn";
    case SegmentKind::fin: return "fin";
    case SegmentKind::rst: return "rst";
    case SegmentKind::data: return "data";
    case SegmentKind::retransmission: return "retransmission";
    case SegmentKind::keepalive_probe: return "keepalive-probe";
    case SegmentKind::keepalive_ack: return "keepalive-ack";
    case SegmentKind::window_probe: return "window-probe";
    case SegmentKind::ack: return "ack";
  }
  return "?";
}

std::string to_string(ProbeAnswer a) {
  switch (a) {
    case ProbeAnswer::none: return "none";
    case ProbeAnswer::ack: return "ack";
    case ProbeAnswer::reset: return "reset";
    case ProbeAnswer::other: return "other";
  }
  return "?";
}

std::string to_string(FlowEnd e) {
  switch (e) {
    case FlowEnd::capture_end: return "capture-end";
    case FlowEnd::reset_by_prober: return "reset-by-prober";
    case FlowEnd::reset_by_peer: return "reset-by-peer";
    case FlowEnd::closed: return "closed";
  }
  return "?";
}

Side other(Side s) { return s == Side::a ? Side::b : Side::a; }

std::string Endpoint::str() const {
  return addr.find(':') != std::string::npos ? fmt::format("[{}]:{}", addr, port) : fmt::format("{}:{}", addr, port);
}

std::vector<Probe> FlowAnalysis::probes_of(Side side) const {
  std::vector<Probe> out;
  for (const auto& run : runs)
    if (run.prober == side) out.insert(out.end(), run.probes.begin(), run.probes.end());
  return out;
}

namespace {

// Walks the segments in time order, labelling each and following both sides'
// sequence state and probe runs.
void follow_segments(FlowAnalysis& flow, const std::vector<Packet>& ordered) {
  SideState state[2];
  for (const auto& p : ordered) {
    const Side from = (p.src == flow.a.addr && p.sport == flow.a.port) ? Side::a : Side::b;
    const Side to = other(from);
    SideState& sender = state[static_cast<int>(from)];
    SideState& receiver = state[static_cast<int>(to)];

    SegmentKind kind = label(p, sender, receiver);
    const std::size_t index = flow.segments.size();

    // The receiver's probe run ends here: whatever it gets now resets its probe counter.
    if (receiver.open_run) {
      auto& probe = flow.runs[*receiver.open_run].probes.back();
      const bool answers_probe = kind == SegmentKind::ack && receiver.snd_nxt && p.has(tcp_flag::ack) &&
                                 p.ack == *receiver.snd_nxt;
      if (answers_probe) kind = SegmentKind::keepalive_ack;
      probe.answer = answers_probe ? ProbeAnswer::ack
                     : kind == SegmentKind::rst ? ProbeAnswer::reset
                                                : ProbeAnswer::other;
      probe.answered_ms = p.t_ms;
      receiver.open_run.reset();
    }
    if (kind == SegmentKind::keepalive_probe) {
      if (!sender.open_run) {
        flow.runs.push_back({from, sender.last_rx_ms, {}});
        sender.open_run = flow.runs.size() - 1;
      }
      flow.runs[*sender.open_run].probes.push_back({index, p.t_ms, p.payload_len, ProbeAnswer::none, std::nullopt});
    }

    // What the segment teaches about both sides. An RST's numbers are left out: they
    // are not its sender's state but copied from the segment it answers (a peer that
    // lost the connection takes its sequence number from our ACK field).
    if (kind != SegmentKind::rst) {
      advance(sender.snd_nxt, p.seq + sequence_length(p));
      sender.window = p.window;
      if (p.has(tcp_flag::ack)) {
        advance(receiver.acked, p.ack);
        // The peer cannot acknowledge what was not sent: this also finds SND.NXT when
        // the capture starts in the middle of an idle connection.
        advance(receiver.snd_nxt, p.ack);
      }
    }
    receiver.last_rx_ms = p.t_ms;
    flow.segments.push_back({p, from, kind});
  }
}

// Idle, interval and count from the last probe run (and the gaps of its prober's runs).
void infer_keepalive(FlowAnalysis& flow) {
  const ProbeRun* last = flow.last_run();
  if (last == nullptr) return;
  flow.prober = last->prober;
  flow.count = static_cast<int>(last->probes.size());
  if (last->last_rx_ms) flow.idle_ms = last->probes.front().t_ms - *last->last_rx_ms;
  std::vector<double> gaps;
  for (const auto& run : flow.runs)
    if (run.prober == last->prober)
      for (std::size_t i = 1; i < run.probes.size(); ++i) gaps.push_back(run.probes[i].t_ms - run.probes[i - 1].t_ms);
  if (!gaps.empty()) flow.interval_ms = median(std::move(gaps));
}

// How the flow ended: the last RST (by the prober or its peer), else the last FIN.
void find_end(FlowAnalysis& flow) {
  for (auto it = flow.segments.rbegin(); it != flow.segments.rend(); ++it) {
    if (it->kind == SegmentKind::rst) {
      flow.end = flow.prober && it->from == *flow.prober ? FlowEnd::reset_by_prober : FlowEnd::reset_by_peer;
      flow.end_ms = it->packet.t_ms;
      return;
    }
  }
  const auto fin = std::find_if(flow.segments.rbegin(), flow.segments.rend(),
                                [](const Segment& s) { return s.kind == SegmentKind::fin; });
  if (fin != flow.segments.rend()) {
    flow.end = FlowEnd::closed;
    flow.end_ms = fin->packet.t_ms;
  }
}

}  // namespace

FlowAnalysis analyze_flow(std::span<const Packet> packets) {
  FlowAnalysis flow;
  if (packets.empty()) return flow;

  std::vector<Packet> ordered(packets.begin(), packets.end());
  // Captures on "any" can interleave CPUs slightly out of order; time is what the kernel saw.
  std::stable_sort(ordered.begin(), ordered.end(), [](const Packet& x, const Packet& y) { return x.t_ms < y.t_ms; });

  const auto opener = std::find_if(ordered.begin(), ordered.end(), [](const Packet& p) {
    return p.has(tcp_flag::syn) && !p.has(tcp_flag::ack);
  });
  const Packet& first = opener != ordered.end() ? *opener : ordered.front();
  flow.a = {first.src, first.sport};
  flow.b = {first.dst, first.dport};
  flow.family = first.family;

  follow_segments(flow, ordered);
  infer_keepalive(flow);
  find_end(flow);
  return flow;
}

Analysis analyze(std::span<const Packet> packets) {
  Analysis analysis;
  std::map<FlowKey, std::size_t> index;
  std::vector<std::vector<Packet>> grouped;
  for (const auto& p : packets) {
    const auto [it, added] = index.try_emplace(flow_key(p), grouped.size());
    if (added) grouped.emplace_back();
    grouped[it->second].push_back(p);
    if (!analysis.start_ms || p.t_ms < *analysis.start_ms) analysis.start_ms = p.t_ms;
  }
  analysis.frames = packets.size();
  for (const auto& flow_packets : grouped) analysis.flows.push_back(analyze_flow(flow_packets));
  return analysis;
}

Analysis analyze(const Capture& capture) {
  Analysis analysis = analyze(capture.packets);
  analysis.source = capture.file.string();
  analysis.frames = capture.frames;
  return analysis;
}

const FlowAnalysis* find_flow(const Analysis& analysis, const Endpoint& one, const Endpoint& other_end) {
  for (const auto& f : analysis.flows) {
    const bool same = f.a.addr == one.addr && f.a.port == one.port && f.b.addr == other_end.addr && f.b.port == other_end.port;
    const bool swapped = f.b.addr == one.addr && f.b.port == one.port && f.a.addr == other_end.addr && f.a.port == other_end.port;
    if (same || swapped) return &f;
  }
  return nullptr;
}

std::string describe_analysis(const Analysis& analysis) {
  std::string out = fmt::format("{}: {} frames, {} TCP flow{}\n", analysis.source.empty() ? "capture" : analysis.source,
                                analysis.frames, analysis.flows.size(), analysis.flows.size() == 1 ? "" : "s");
  int number = 0;
  for (const auto& f : analysis.flows) {
    ++number;
    std::map<SegmentKind, int> kinds;
    for (const auto& s : f.segments) ++kinds[s.kind];
    std::string counts;
    for (const auto& [kind, n] : kinds) counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", n, to_string(kind));
    out += fmt::format("\nflow {}: {} <-> {} ({}), {} segments: {}\n", number, f.a.str(), f.b.str(), to_string(f.family),
                       f.segments.size(), counts);
    if (!f.prober) {
      out += "  no keepalive probes\n";
      if (f.end_ms && analysis.start_ms)
        out += fmt::format("  ended: {} at {:.1f} ms from the capture start\n", to_string(f.end), *f.end_ms - *analysis.start_ms);
      else
        out += fmt::format("  ended: {}\n", to_string(f.end));
      continue;
    }
    const auto& run = *f.last_run();
    out += fmt::format("  keepalive from {}: idle {}, interval {}, {} probe{} in the last run ({}-byte)\n",
                       f.endpoint(*f.prober).str(), time_text(f.idle_ms),
                       f.interval_ms ? fmt::format("{:.1f} ms (median)", *f.interval_ms) : std::string("unknown"),
                       f.count, f.count == 1 ? "" : "s", run.probes.front().payload_len);
    if (f.runs.size() > 1)
      out += fmt::format("  {} earlier probe run{} ended by an answer\n", f.runs.size() - 1, f.runs.size() == 2 ? "" : "s");
    // Times from the prober's last received segment: the instant the kernel's idle clock starts.
    const double origin = run.last_rx_ms.value_or(run.probes.front().t_ms);
    out += fmt::format("  t = 0: {}\n", run.last_rx_ms ? "the prober's last received segment"
                                                         : "the first probe (nothing received before it)");
    out += "  probe     sent (ms)    gap (ms)  len  answer\n";
    for (std::size_t i = 0; i < run.probes.size(); ++i) {
      const auto& probe = run.probes[i];
      const std::string gap = i == 0 ? "-" : fmt::format("{:.1f}", probe.t_ms - run.probes[i - 1].t_ms);
      std::string answer = to_string(probe.answer);
      if (probe.answered_ms) answer += fmt::format(" after {:.1f} ms", *probe.answered_ms - probe.t_ms);
      out += fmt::format("  {:>5}  {:>12.1f}  {:>10}  {:>3}  {}\n", i + 1, probe.t_ms - origin, gap, probe.payload_len, answer);
    }
    if (f.end_ms)
      out += fmt::format("  ended: {} at {:.1f} ms\n", to_string(f.end), *f.end_ms - origin);
    else
      out += fmt::format("  ended: {}\n", to_string(f.end));
  }
  return out;
}

nlohmann::json analysis_json(const Analysis& analysis) {
  const double start = analysis.start_ms.value_or(0);
  const auto optional_ms = [](std::optional<double> v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  const auto side_name = [](Side s) { return s == Side::a ? "a" : "b"; };
  nlohmann::json flows = nlohmann::json::array();
  for (const auto& f : analysis.flows) {
    nlohmann::json segments = nlohmann::json::array();
    for (const auto& s : f.segments)
      segments.push_back({{"frame", s.packet.frame},
                          {"t_ms", s.packet.t_ms - start},
                          {"from", side_name(s.from)},
                          {"kind", to_string(s.kind)},
                          {"flags", flags_text(s.packet.flags)},
                          {"seq", s.packet.seq},
                          {"ack", s.packet.ack},
                          {"len", s.packet.payload_len},
                          {"window", s.packet.window}});
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& run : f.runs) {
      nlohmann::json probes = nlohmann::json::array();
      for (const auto& p : run.probes)
        probes.push_back({{"frame", f.segments[p.segment].packet.frame},
                          {"t_ms", p.t_ms - start},
                          {"len", p.payload_len},
                          {"answer", to_string(p.answer)},
                          {"answered_ms", p.answered_ms ? nlohmann::json(*p.answered_ms - start) : nlohmann::json(nullptr)}});
      runs.push_back({{"prober", side_name(run.prober)},
                      {"last_rx_ms", run.last_rx_ms ? nlohmann::json(*run.last_rx_ms - start) : nlohmann::json(nullptr)},
                      {"probes", probes}});
    }
    nlohmann::json keepalive = nullptr;
    if (f.prober)
      keepalive = {{"prober", side_name(*f.prober)},
                   {"idle_ms", optional_ms(f.idle_ms)},
                   {"interval_ms", optional_ms(f.interval_ms)},
                   {"count", f.count}};
    flows.push_back({{"a", f.a.str()},
                     {"b", f.b.str()},
                     {"family", to_string(f.family)},
                     {"keepalive", keepalive},
                     {"end", to_string(f.end)},
                     {"end_ms", f.end_ms ? nlohmann::json(*f.end_ms - start) : nlohmann::json(nullptr)},
                     {"runs", runs},
                     {"segments", segments}});
  }
  // Times in the document count from start_ms (a capture time, ms since the epoch).
  return {{"source", analysis.source},
          {"frames", analysis.frames},
          {"start_ms", optional_ms(analysis.start_ms)},
          {"flows", flows}};
}

}  // namespace kah::evidence
