#include "harness/report/prediction.h"

#include <cmath>
#include <cstdint>

#include <fmt/format.h>

namespace kah {
namespace {

using model::Outcome;
using model::PeerBehaviour;
using model::Traffic;

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::timeout: return "timeout";
    case Outcome::reset: return "reset";
    case Outcome::alive: return "alive";
    case Outcome::eof: return "eof";
  }
  return "alive";
}

const char* peer_name(PeerBehaviour p) {
  switch (p) {
    case PeerBehaviour::answers: return "answers";
    case PeerBehaviour::silent: return "silent";
    case PeerBehaviour::rebooted: return "rebooted";
    case PeerBehaviour::unreachable: return "unreachable";
  }
  return "silent";
}

const char* peer_words(PeerBehaviour p) {
  switch (p) {
    case PeerBehaviour::answers: return "answers (healthy, or only its application is frozen)";
    case PeerBehaviour::silent: return "silent (blackhole, link down, lost packets)";
    case PeerBehaviour::rebooted: return "rebooted (lost the connection, answers with RST)";
    case PeerBehaviour::unreachable: return "unreachable (a router answers with ICMP host unreachable)";
  }
  return "";
}

const char* traffic_name(Traffic t) {
  switch (t) {
    case Traffic::idle: return "idle";
    case Traffic::data_in_flight: return "data_in_flight";
    case Traffic::connecting: return "connecting";
  }
  return "idle";
}

// "3.072", "15", "0.832": at most three decimals, no trailing zeros.
std::string trimmed(double value, int decimals) {
  std::string s = fmt::format("{:.{}f}", value, decimals);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

std::string window_words(const model::Window& w) {
  if (!w.bounded()) return fmt::format("from {} on", human_duration(w.earliest_ms));
  return fmt::format("{} .. {}", human_duration(w.earliest_ms), human_duration(w.latest_ms));
}

std::string hz_words(const model::Prediction& p) {
  if (p.hz_values.size() == 1) return fmt::format("HZ={}", p.hz_values.front());
  std::string list;
  for (std::size_t i = 0; i < p.hz_values.size(); ++i)
    list += fmt::format("{}{}", i == 0 ? "" : (i + 1 == p.hz_values.size() ? " and " : ", "), p.hz_values[i]);
  return fmt::format("HZ unknown, covering HZ {}", list);
}

std::string outcome_words(const model::Input& in, const model::Prediction& p) {
  switch (p.outcome) {
    case Outcome::timeout: return "ETIMEDOUT";
    case Outcome::reset:
      return in.traffic == Traffic::connecting ? "ECONNREFUSED (the peer answers the SYN with an RST)"
                                               : "ECONNRESET (the peer answers with an RST)";
    case Outcome::alive: return "the connection stays open";
    case Outcome::eof: return "EOF (the peer's application closed)";
  }
  return "";
}

std::string textbook_words(const model::Input& in, const model::Prediction& p) {
  const auto& k = in.keepalive;
  switch (in.traffic) {
    case Traffic::idle:
      if (!k.enabled) return "keepalive is off: nothing probes an idle connection.";
      switch (in.peer) {
        case PeerBehaviour::silent:
          if (k.user_timeout_ms > 0)
            return fmt::format(
                "first probe {} s after the last segment received, then one every {} s; TCP_USER_TIMEOUT {} ms "
                "replaces the count: abort at the first timer firing after a probe at or past it: {}.",
                k.idle_s, k.interval_s, k.user_timeout_ms, human_duration(p.nominal_ms));
          return fmt::format(
              "first probe {} s after the last segment received, then one every {} s; after {} unanswered probes "
              "the kernel gives up at {} + {} × {} = {} s = {}.",
              k.idle_s, k.interval_s, k.count, k.idle_s, k.count, k.interval_s, trimmed(p.nominal_ms / 1000, 3),
              human_duration(p.nominal_ms));
        case PeerBehaviour::rebooted:
          return fmt::format("first probe {} s after the last segment received; the peer answers it with an RST.",
                             k.idle_s);
        case PeerBehaviour::unreachable:
          return fmt::format(
              "the ICMP errors answering the probes are ignored (out of window): as with a silent peer, the kernel "
              "gives up at {} + {} × {} s = {}, ETIMEDOUT.",
              k.idle_s, k.count, k.interval_s, human_duration(p.nominal_ms));
        case PeerBehaviour::answers:
          return fmt::format(
              "a probe about every {} s (each answered probe restarts the idle clock), for as long as the peer's "
              "kernel answers.",
              std::max(k.idle_s, k.interval_s));
      }
      break;
    case Traffic::data_in_flight:
      return fmt::format("unacknowledged data is retransmitted with a doubling RTO; the kernel gives up {} after "
                         "the first retransmission: {}.",
                         human_duration(p.nominal_ms - in.data_sent_at_ms -
                                        std::max(in.retransmission.first_rto_ms, in.retransmission.rto_min_ms)),
                         human_duration(p.nominal_ms));
    case Traffic::connecting:
      return fmt::format("the SYN is retransmitted ({} linear then doubling RTOs); connect() gives up at {}.",
                         model::for_kernel(in).retransmission.syn_linear_timeouts, human_duration(p.nominal_ms));
  }
  return "";
}

nlohmann::json window_json(const model::ProbeWindow& w) {
  return {{"index", w.index},
          {"nominal_ms", w.nominal_ms},
          {"earliest_ms", w.window.earliest_ms},
          {"latest_ms", w.window.bounded() ? nlohmann::json(w.window.latest_ms) : nlohmann::json(nullptr)},
          {"certain", w.certain}};
}

}  // namespace

std::string human_duration(double ms) {
  if (std::isinf(ms)) return ms > 0 ? "unbounded" : "-unbounded";
  if (ms < 0) return "-" + human_duration(-ms);
  if (ms < 1000) return trimmed(ms, 1) + " ms";
  auto rest = static_cast<std::int64_t>(std::llround(ms));
  const std::int64_t days = rest / 86400000;
  rest %= 86400000;
  const std::int64_t hours = rest / 3600000;
  rest %= 3600000;
  const std::int64_t minutes = rest / 60000;
  rest %= 60000;
  std::string out;
  auto part = [&out](const std::string& text) { out += (out.empty() ? "" : " ") + text; };
  if (days > 0) part(fmt::format("{} d", days));
  if (hours > 0) part(fmt::format("{} h", hours));
  if (minutes > 0) part(fmt::format("{} min", minutes));
  if (rest > 0 || out.empty()) part(trimmed(static_cast<double>(rest) / 1000, 3) + " s");
  return out;
}

std::string describe_prediction(const model::Input& in, const model::Prediction& p) {
  std::string out;
  const auto& k = in.keepalive;
  if (in.traffic == Traffic::idle)
    out += fmt::format("Keepalive {}: idle {} s, interval {} s, count {}{}; peer {}.\n", k.enabled ? "on" : "off",
                       k.idle_s, k.interval_s, k.count,
                       k.user_timeout_ms > 0 ? fmt::format(", TCP_USER_TIMEOUT {} ms", k.user_timeout_ms) : "",
                       peer_words(in.peer));
  else
    out += fmt::format("{}; peer {}.\n",
                       in.traffic == Traffic::connecting ? "connect() in progress" : "Data in flight",
                       peer_words(in.peer));
  out += fmt::format("Textbook: {}\n", textbook_words(in, p));

  const char* origin = in.traffic == Traffic::connecting ? "connect()" : "the last segment received";
  if (p.outcome == Outcome::alive) {
    out += fmt::format("On this kernel ({}): {}; watched until {} after {}.\n", hz_words(p), outcome_words(in, p),
                       human_duration(p.window.earliest_ms), origin);
  } else {
    out += fmt::format("On this kernel ({}): {} between {} and {} after {}{}.\n", hz_words(p), outcome_words(in, p),
                       human_duration(p.window.earliest_ms), human_duration(p.window.latest_ms), origin,
                       p.outcome != Outcome::timeout ? "" : (p.rst_sent ? "; the client sends an RST" : "; no RST is sent"));
    out += fmt::format("The window is {} wide: where the timer wheel can put the events, not a tolerance.\n",
                       human_duration(p.window.width_ms()));
  }
  if (!p.steps.empty()) {
    out += "Why:\n";
    for (const auto& step : p.steps) out += fmt::format("  {}\n", step);
  }
  auto list = [&out](const char* title, const char* what, const std::vector<model::ProbeWindow>& events) {
    if (events.empty()) return;
    out += fmt::format("{}:\n", title);
    for (const auto& e : events)
      out += fmt::format("  {} {:<3} textbook {:<18} window {}{}\n", what, e.index + 1, human_duration(e.nominal_ms),
                         window_words(e.window), e.certain ? "" : "  (only for some timer alignments)");
  };
  list("Probe by probe", "probe", p.probes);
  list("Retransmission by retransmission", "retransmission", p.retransmissions);
  if (p.outcome != Outcome::alive)
    out += fmt::format("  {:<9} textbook {:<18} window {}\n", p.outcome == Outcome::timeout ? "ETIMEDOUT" : "RST in",
                       human_duration(p.nominal_ms), window_words(p.window));
  return out;
}

nlohmann::json prediction_json(const model::Input& in, const model::Prediction& p) {
  nlohmann::json j;
  j["outcome"] = outcome_name(p.outcome);
  j["nominal_ms"] = p.nominal_ms;
  j["earliest_ms"] = p.window.earliest_ms;
  j["latest_ms"] = p.window.bounded() ? nlohmann::json(p.window.latest_ms) : nlohmann::json(nullptr);
  j["rst_sent"] = p.rst_sent;
  j["hz"] = in.kernel.hz ? nlohmann::json(*in.kernel.hz) : nlohmann::json(nullptr);
  j["hz_values"] = p.hz_values;
  j["probes"] = nlohmann::json::array();
  for (const auto& w : p.probes) j["probes"].push_back(window_json(w));
  j["retransmissions"] = nlohmann::json::array();
  for (const auto& w : p.retransmissions) j["retransmissions"].push_back(window_json(w));
  j["steps"] = p.steps;
  j["keepalive"] = {{"enabled", in.keepalive.enabled},
                    {"idle_s", in.keepalive.idle_s},
                    {"interval_s", in.keepalive.interval_s},
                    {"count", in.keepalive.count},
                    {"user_timeout_ms", in.keepalive.user_timeout_ms}};
  j["peer"] = peer_name(in.peer);
  j["traffic"] = traffic_name(in.traffic);
  j["calibrated"] = in.kernel.calibration.has_value();
  return j;
}

}  // namespace kah
