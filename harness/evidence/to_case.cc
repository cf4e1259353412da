#include "harness/evidence/to_case.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>

#include <fmt/format.h>

#include "harness/model/timing.h"

namespace kah::evidence {
namespace {

// How a flow ended, as far as keepalive is concerned: each gives one outcome and fault.
enum class Ending {
  prober_gave_up,    // probes unanswered, then the prober's own RST
  peer_reset_probe,  // the peer answered a probe with an RST
  peer_closed,       // the peer's FIN
  alive,             // a probe answered, then the capture ends
};

// What infer_case() works from: the capture, the flow and its prober's last probe run.
struct Seen {
  const Analysis& analysis;
  const FlowAnalysis& flow;
  const ProbeRun& run;
  std::string name;  // "flow 2 (198.18.0.1:40001 <-> 198.18.0.2:8080)", for messages
};

// "frame 7 at 2.015 s": a segment as Wireshark numbers frames, its time counted from the
// capture's first TCP segment.
std::string at(const Seen& s, const Segment& segment) {
  const double start = s.analysis.start_ms.value_or(segment.packet.t_ms);
  return fmt::format("frame {} at {:.3f} s", segment.packet.frame, (segment.packet.t_ms - start) / 1000);
}

const Segment& segment_of(const Seen& s, const Probe& p) { return s.flow.segments[p.segment]; }

std::string frames_of(const Seen& s, const std::vector<Probe>& probes) {
  std::vector<std::uint64_t> frames;
  for (const auto& p : probes) frames.push_back(segment_of(s, p).packet.frame);
  return fmt::format("frame{} {}", frames.size() == 1 ? "" : "s", fmt::join(frames, ", "));
}

std::string probes_text(std::size_t n) { return fmt::format("{} probe{}", n, n == 1 ? "" : "s"); }

// The last segment the prober received before its run's first probe.
const Segment& last_received(const Seen& s) {
  const std::size_t first = s.run.probes.front().segment;
  for (std::size_t i = first; i-- > 0;)
    if (s.flow.segments[i].from != s.run.prober) return s.flow.segments[i];
  throw CaseInferenceError(fmt::format("{}: no segment received before the probes", s.name));
}

// The segment that ended the flow (FlowAnalysis::end_ms): its RST or FIN.
const Segment& end_segment(const Seen& s) {
  for (const auto& segment : s.flow.segments)
    if (s.flow.end_ms && segment.packet.t_ms == *s.flow.end_ms &&
        (segment.kind == SegmentKind::rst || segment.kind == SegmentKind::fin))
      return segment;
  throw CaseInferenceError(fmt::format("{}: the segment that ended the flow is missing", s.name));
}

const Segment* first_fin(const FlowAnalysis& f) {
  const auto it = std::find_if(f.segments.begin(), f.segments.end(),
                               [](const Segment& x) { return x.kind == SegmentKind::fin; });
  return it == f.segments.end() ? nullptr : &*it;
}

// How long the flow carried no data before `until` (a segment of it), and since what:
// an application's idle clock runs from its last read or write.
struct Quiet {
  double ms = 0;
  std::string since;  // "the last data (frame 5 at 0.011 s)"
};

Quiet quiet_until(const Seen& s, const Segment& until) {
  for (auto i = static_cast<std::size_t>(&until - s.flow.segments.data()); i-- > 0;) {
    const Segment& segment = s.flow.segments[i];
    if (segment.kind == SegmentKind::data || segment.kind == SegmentKind::syn)
      return {until.packet.t_ms - segment.packet.t_ms, fmt::format("the last data ({})", at(s, segment))};
  }
  const Segment& first = s.flow.segments.front();
  return {until.packet.t_ms - first.packet.t_ms, fmt::format("the flow's first segment ({})", at(s, first))};
}

Ending ending_of(const Seen& s) {
  const Probe& last = s.run.probes.back();
  const Endpoint& prober = s.flow.endpoint(s.run.prober);
  switch (s.flow.end) {
    case FlowEnd::reset_by_prober:
      if (last.answer == ProbeAnswer::none) return Ending::prober_gave_up;
      throw CaseInferenceError(fmt::format(
          "{}: {} reset the connection ({}) although its last probe ({}) was answered ({}): not keepalive giving "
          "up (an application's abort?), or the answers were lost before reaching it (a capture taken at the other "
          "end?)",
          s.name, prober.str(), at(s, end_segment(s)), at(s, segment_of(s, last)), to_string(last.answer)));
    case FlowEnd::reset_by_peer:
      if (last.answer == ProbeAnswer::reset) return Ending::peer_reset_probe;
      throw CaseInferenceError(fmt::format("{}: the RST from {} ({}) does not answer a keepalive probe: the case "
                                           "cannot say what made the peer reset it",
                                           s.name, s.flow.endpoint(other(s.run.prober)).str(), at(s, end_segment(s))));
    case FlowEnd::closed: {
      const Segment& fin = *first_fin(s.flow);
      if (fin.from != s.run.prober) return Ending::peer_closed;
      throw CaseInferenceError(fmt::format("{}: {} closed the connection itself (FIN, {}): a case reproduces what "
                                           "happens to the peer, not the client's application closing",
                                           s.name, prober.str(), at(s, fin)));
    }
    case FlowEnd::capture_end:
      if (last.answer != ProbeAnswer::none) return Ending::alive;
      throw CaseInferenceError(fmt::format(
          "{}: the capture ends while {} of {} go unanswered ({}): the outcome and the count are not in the "
          "capture; capture until the connection ends (the prober's RST)",
          s.name, probes_text(s.run.probes.size()), prober.str(), frames_of(s, s.run.probes)));
  }
  throw CaseInferenceError(fmt::format("{}: unknown ending", s.name));
}

std::string lateness_text(double measured_ms) {
  return fmt::format("whole seconds, within the {:.0f} ms the kernel's timer wheel can add to a timer this long",
                     wheel_lateness_ms(measured_ms));
}

void infer_idle(const Seen& s, CaseFromCapture& c) {
  if (!s.flow.idle_ms)
    throw CaseInferenceError(fmt::format("{}: the capture starts after {}'s last received segment before its probes "
                                         "({}): the idle time cannot be inferred; capture from before the connection "
                                         "goes quiet",
                                         s.name, c.client.str(), frames_of(s, s.run.probes)));
  c.idle_s = setting_seconds(*s.flow.idle_ms);
  c.keepalive_evidence.push_back(fmt::format("idle {} s: {:.1f} ms from {}'s last received segment ({}) to its first probe "
                                   "({}); {}.",
                                   *c.idle_s, *s.flow.idle_ms, c.client.str(), at(s, last_received(s)),
                                   at(s, segment_of(s, s.run.probes.front())), lateness_text(*s.flow.idle_ms)));
}

void infer_interval(const Seen& s, Ending ending, CaseFromCapture& c) {
  if (s.flow.interval_ms) {
    std::vector<Probe> spaced;  // the probes whose gaps make the median (classify.cc infer_keepalive)
    for (const auto& run : s.flow.runs)
      if (run.prober == s.run.prober && run.probes.size() > 1) spaced.insert(spaced.end(), run.probes.begin(), run.probes.end());
    const double gap = *s.flow.interval_ms;
    c.interval_s = setting_seconds(gap);
    c.keepalive_evidence.push_back(fmt::format("interval {} s: {:.1f} ms, the median gap between consecutive probes of a run "
                                     "({}); {}.",
                                     *c.interval_s, gap, frames_of(s, spaced), lateness_text(gap)));
  } else if (ending == Ending::prober_gave_up) {
    // The kernel gives up when the probe after the last one is due: the RST comes one interval later.
    const Segment& probe = segment_of(s, s.run.probes.back());
    const Segment& rst = end_segment(s);
    const double gap = rst.packet.t_ms - probe.packet.t_ms;
    c.interval_s = setting_seconds(gap);
    c.keepalive_evidence.push_back(fmt::format("interval {} s: {:.1f} ms from its only probe ({}) to its RST ({}), which the "
                                     "kernel sends when the next probe is due; {}.",
                                     *c.interval_s, gap, at(s, probe), at(s, rst), lateness_text(gap)));
  } else {
    c.keepalive_evidence.push_back("interval: not written: no probe went unanswered before another, so their spacing is not in "
                         "the capture; the namespace's net.ipv4.tcp_keepalive_intvl applies, which does not change "
                         "the outcome.");
  }
}

void infer_count(const Seen& s, Ending ending, CaseFromCapture& c) {
  if (ending != Ending::prober_gave_up) {
    c.keepalive_evidence.push_back("count: not written: the prober did not give up in the capture; the namespace's "
                         "net.ipv4.tcp_keepalive_probes applies, which does not change the outcome.");
    return;
  }
  c.count = static_cast<int>(s.run.probes.size());
  c.keepalive_evidence.push_back(fmt::format("count {}: {} unanswered ({}), then its RST ({}).", *c.count,
                                   probes_text(s.run.probes.size()), frames_of(s, s.run.probes),
                                   at(s, end_segment(s))));
  c.keepalive_evidence.push_back("user_timeout_ms: not written: on an idle connection TCP_USER_TIMEOUT also ends keepalive at "
                       "a probe time, after fewer probes than count; a capture cannot tell the two apart, and count "
                       "reproduces the same end.");
}

void infer_outcome(const Seen& s, Ending ending, CaseFromCapture& c) {
  const Endpoint& peer = c.server;
  const Probe& last = s.run.probes.back();
  switch (ending) {
    case Ending::prober_gave_up:
      c.outcome = ExpectedOutcome::timeout;
      c.fault = FaultKind::blackhole;
      c.outcome_evidence = fmt::format("outcome timeout, fault blackhole: nothing answered the probes and {} gave up "
                                       "with an RST ({}), as when every packet to and from the peer is dropped.",
                                       c.client.str(), at(s, end_segment(s)));
      return;
    case Ending::peer_reset_probe: {
      c.outcome = ExpectedOutcome::reset;
      c.fault = FaultKind::peer_reboot;
      const std::size_t k = s.run.probes.size();
      c.outcome_evidence = fmt::format(
          "outcome reset, fault peer-reboot: {} answered probe {} ({}) with an RST ({}): it no longer knew the "
          "connection, as after a reboot{}.",
          peer.str(), k, at(s, segment_of(s, last)), at(s, end_segment(s)),
          k == 1 ? "" : fmt::format("; the {} unanswered before it are not reproduced (a rebooted peer answers the first)",
                                    probes_text(k - 1)));
      return;
    }
    case Ending::peer_closed: {
      c.outcome = ExpectedOutcome::eof;
      c.fault = FaultKind::none;
      const Segment& fin = *first_fin(s.flow);
      const Quiet quiet = quiet_until(s, fin);
      c.idle_close_s = std::max(0.1, std::round(quiet.ms / 100) / 10);
      c.outcome_evidence = fmt::format(
          "outcome eof, no fault, [server] idle_close_s {:g}: {} closed the connection (FIN, {}) {:.1f} ms after {} "
          "while its kernel answered the probes: its application's idle timeout.",
          *c.idle_close_s, peer.str(), at(s, fin), quiet.ms, quiet.since);
      return;
    }
    case Ending::alive: {
      c.outcome = ExpectedOutcome::alive;
      c.fault = FaultKind::none;
      const Segment& end = s.flow.segments.back();
      const Quiet quiet = quiet_until(s, end);
      c.horizon_s = std::max(1.0, std::ceil(quiet.ms / 1000));
      c.outcome_evidence = fmt::format(
          "outcome alive, no fault, horizon_s {:g}: {} answered the last probe ({}), and the capture ends ({}) "
          "{:.1f} ms after {}.",
          *c.horizon_s, peer.str(), at(s, segment_of(s, last)), at(s, end), quiet.ms, quiet.since);
      return;
    }
  }
}

// "198.18.0.1:40112" or "[fd6b::1]:40112", the address spelled as inet_ntop does.
std::optional<Endpoint> parse_endpoint(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string addr(text.substr(0, colon));
  if (addr.size() > 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  const std::string port(text.substr(colon + 1));
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  const long number = std::stol(port);
  if (number > 65535) return std::nullopt;
  const int family = addr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  unsigned char bytes[16] = {};
  char spelled[INET6_ADDRSTRLEN] = {};
  if (inet_pton(family, addr.c_str(), bytes) != 1 || inet_ntop(family, bytes, spelled, sizeof spelled) == nullptr)
    return std::nullopt;
  return Endpoint{spelled, static_cast<std::uint16_t>(number)};
}

std::string flow_name(const Analysis& analysis, std::size_t index) {
  const auto& f = analysis.flows[index];
  return fmt::format("flow {} ({} <-> {})", index + 1, f.a.str(), f.b.str());
}

// Word-wrapped "# " lines.
std::string comment(const std::string& text) {
  constexpr std::size_t kWidth = 88;
  std::string out, line = "#";
  std::size_t from = 0;
  while (from < text.size()) {
    auto to = text.find(' ', from);
    if (to == std::string::npos) to = text.size();
    const std::string word = text.substr(from, to - from);
    if (line.size() + 1 + word.size() > kWidth && line != "#") {
      out += line + "\n";
      line = "#";
    }
    line += " " + word;
    from = to + 1;
  }
  return out + line + "\n";
}

std::string toml_string(std::string_view text) {
  std::string out = "\"";
  for (const char ch : text) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

std::string description_of(const CaseFromCapture& c) {
  switch (c.outcome) {
    case ExpectedOutcome::timeout:
      return fmt::format("{} went unanswered and the client gave up with an RST", probes_text(c.count.value_or(0)));
    case ExpectedOutcome::reset: return "the peer answered a keepalive probe with an RST";
    case ExpectedOutcome::eof: return "the peer's application closed the idle connection while its kernel answered the probes";
    case ExpectedOutcome::alive: return "the peer answered the keepalive probes until the capture ended";
    case ExpectedOutcome::closed: return "the program closed the connection itself";
  }
  return "";
}

std::string keepalive_line(const CaseFromCapture& c) {
  std::vector<std::string> keys;
  if (c.idle_s) keys.push_back(fmt::format("idle = {}", *c.idle_s));
  if (c.interval_s) keys.push_back(fmt::format("interval = {}", *c.interval_s));
  if (c.count) keys.push_back(fmt::format("count = {}", *c.count));
  return fmt::format("keepalive = {{ {} }}\n", fmt::join(keys, ", "));
}

}  // namespace

double wheel_lateness_ms(double length_ms) {
  double late = 0;
  for (const int hz : model::kCommonHz) {
    const auto jiffies = static_cast<std::uint64_t>(std::max(0.0, length_ms) * hz / 1000);
    late = std::max(late, static_cast<double>(model::wheel_lateness(jiffies, hz).max) * 1000 / hz);
  }
  return late;
}

int setting_seconds(double measured_ms) {
  constexpr double kShortByMs = 20;
  const double late = wheel_lateness_ms(measured_ms);
  const auto lowest = static_cast<long>(std::max(1.0, std::ceil((measured_ms - late) / 1000)));
  const auto highest = static_cast<long>(std::floor((measured_ms + kShortByMs) / 1000));
  if (highest < lowest) return static_cast<int>(std::max(1L, std::lround(measured_ms / 1000)));
  for (const long step : {3600L, 600L, 60L, 10L, 5L, 1L}) {
    long best = 0;
    for (long s = (lowest + step - 1) / step * step; s <= highest; s += step)
      if (best == 0 || std::abs(static_cast<double>(s) * 1000 - measured_ms) < std::abs(static_cast<double>(best) * 1000 - measured_ms))
        best = s;
    if (best != 0) return static_cast<int>(best);
  }
  return static_cast<int>(lowest);
}

std::string list_flows(const Analysis& analysis) {
  std::string out;
  for (std::size_t i = 0; i < analysis.flows.size(); ++i) {
    const auto& f = analysis.flows[i];
    out += fmt::format("  {:>3}  {} <-> {}  {}  {} by {}, {}\n", i + 1, f.a.str(), f.b.str(), to_string(f.family),
                       probes_text(f.probes_of(Side::a).size() + f.probes_of(Side::b).size()),
                       f.prober ? f.endpoint(*f.prober).str() : "nobody", to_string(f.end));
  }
  return out;
}

std::size_t choose_flow(const Analysis& analysis, std::string_view spec) {
  const auto refuse = [&](const std::string& why) {
    return CaseInferenceError(fmt::format("{}; the flows of {}:\n{}", why, analysis.source, list_flows(analysis)));
  };
  if (analysis.flows.empty()) throw CaseInferenceError(fmt::format("{}: no TCP flow in the capture", analysis.source));
  if (spec.empty()) {
    if (analysis.flows.size() == 1) return 0;
    throw refuse(fmt::format("the capture holds {} TCP flows: choose one with --flow N or --flow ADDR:PORT-ADDR:PORT",
                             analysis.flows.size()));
  }
  if (spec.find_first_not_of("0123456789") == std::string_view::npos && spec.size() < 10) {
    const auto number = std::stoul(std::string(spec));
    if (number >= 1 && number <= analysis.flows.size()) return number - 1;
    throw refuse(fmt::format("--flow {}: the capture has flows 1 to {}", spec, analysis.flows.size()));
  }
  const auto dash = spec.find('-');
  const auto one = dash == std::string_view::npos ? std::nullopt : parse_endpoint(spec.substr(0, dash));
  const auto two = dash == std::string_view::npos ? std::nullopt : parse_endpoint(spec.substr(dash + 1));
  if (!one || !two)
    throw refuse(fmt::format("--flow '{}': expected a flow number or ADDR:PORT-ADDR:PORT, e.g. "
                             "198.18.0.1:40112-198.18.0.2:7000 or [fd6b:6168:7265::1]:40112-[fd6b:6168:7265::2]:7000",
                             spec));
  const FlowAnalysis* found = find_flow(analysis, *one, *two);
  if (found == nullptr) throw refuse(fmt::format("--flow {}: no such flow in the capture", spec));
  return static_cast<std::size_t>(found - analysis.flows.data());
}

CaseFromCapture infer_case(const Analysis& analysis, std::size_t flow) {
  const FlowAnalysis& f = analysis.flows.at(flow);
  const std::string name = flow_name(analysis, flow);
  const ProbeRun* run = f.last_run();
  if (run == nullptr)
    throw CaseInferenceError(fmt::format("{}: no keepalive probes in the capture ({} segments, ended: {}): idle, "
                                         "interval and count cannot be inferred; capture until a side probes",
                                         name, f.segments.size(), to_string(f.end)));
  const Seen seen{analysis, f, *run, name};
  CaseFromCapture c;
  c.source = analysis.source;
  c.flow = flow;
  c.client = f.endpoint(run->prober);
  c.server = f.endpoint(other(run->prober));
  c.family = f.family;
  const Ending ending = ending_of(seen);
  infer_idle(seen, c);
  infer_interval(seen, ending, c);
  infer_count(seen, ending, c);
  infer_outcome(seen, ending, c);
  return c;
}

std::string case_file_text(const CaseFromCapture& c, std::string_view name) {
  std::string out = comment(fmt::format(
      "Written by `kaharness analyze --to-case` from {}, flow {}: {} <-> {} ({}). Times are seconds from the "
      "capture's first TCP segment. The side that sent keepalive probes, {}, is the case's client (kaharness sets "
      "keepalive on its client); {} is the server.",
      c.source, c.flow + 1, c.client.str(), c.server.str(), to_string(c.family), c.client.str(), c.server.str()));
  const std::string& outcome_note = c.outcome_evidence;
  out += fmt::format("name = {}\n", toml_string(name));
  out += fmt::format("description = {}\n",
                     toml_string(fmt::format("From flow {} of {}: {}.", c.flow + 1,
                                             std::filesystem::path(c.source).filename().string(), description_of(c))));
  if (c.horizon_s) out += "\n" + comment(outcome_note) + fmt::format("horizon_s = {:g}\n", *c.horizon_s);
  if (c.idle_close_s) out += "\n" + comment(outcome_note) + fmt::format("[server]\nidle_close_s = {:g}\n", *c.idle_close_s);
  out += "\n";
  for (const auto& note : c.keepalive_evidence) out += comment(note);
  out += fmt::format("[[connection]]\nname = \"client\"\nfamily = \"{}\"\n", to_string(c.family));
  out += keepalive_line(c);
  out += "\n";
  if (!c.horizon_s && !c.idle_close_s) out += comment(outcome_note);
  out += fmt::format("[[fault]]\nkind = \"{}\"\n\n[expect]\noutcome = \"{}\"\n", fault_info(c.fault).name,
                     to_string(c.outcome));
  return out;
}

}  // namespace kah::evidence
