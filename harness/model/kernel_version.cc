#include "harness/model/kernel_version.h"

#include <charconv>
#include <stdexcept>

#include <fmt/format.h>

namespace kah::model {

std::string KernelVersion::str() const { return fmt::format("{}.{}", major, minor); }

std::optional<KernelVersion> parse_kernel_version(std::string_view text) {
  KernelVersion v;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v.major);
  if (ec != std::errc{} || p == end || *p != '.') return std::nullopt;
  auto [q, ec2] = std::from_chars(p + 1, end, v.minor);
  if (ec2 != std::errc{} || v.major < 2 || v.minor < 0) return std::nullopt;
  // Whatever follows the minor must start a new field: ".44", "-amd64", "+", nothing.
  if (q != end && *q != '.' && *q != '-' && *q != '+' && *q != '_') return std::nullopt;
  return v;
}

const std::vector<BehaviourRow>& kernel_behaviours() {
  static const std::vector<BehaviourRow> rows = {
      {Behaviour::user_timeout_clamps_rto, {4, 19}, "b701a99e431d",
       "TCP_USER_TIMEOUT clamps the retransmission timer to what is left of it: the abort is at the user timeout, "
       "not at the first RTO firing past it"},
      {Behaviour::user_timeout_in_syn_sent, {5, 4}, "a41e8a88b06e, 3256a2d6ab1f",
       "TCP_USER_TIMEOUT ends connect() in SYN-SENT (before, only the SYN count did)"},
      {Behaviour::user_timeout_ends_zero_window, {5, 11}, "9d9b1ee0b2d1, 344db93ae3ee",
       "TCP_USER_TIMEOUT also ends zero-window probing (not modelled: no scenario here probes a zero window)"},
      {Behaviour::syn_linear_timeouts, {6, 5}, "ccce324dabfe",
       "net.ipv4.tcp_syn_linear_timeouts (default 4): the first N SYN retransmissions keep the 1 s initial RTO, and "
       "N more SYNs are sent"},
      {Behaviour::rto_min_us_sysctl, {6, 11}, "f086edef71be", "net.ipv4.tcp_rto_min_us sets the minimum RTO per namespace"},
      {Behaviour::rto_max_ms_sysctl, {6, 15}, "54a378f43425, 1280c26228bd",
       "net.ipv4.tcp_rto_max_ms (and TCP_RTO_MAX_MS) lower the 120 s RTO cap"},
  };
  return rows;
}

const BehaviourRow& behaviour_row(Behaviour b) {
  for (const auto& row : kernel_behaviours())
    if (row.behaviour == b) return row;
  throw std::logic_error("kernel behaviour without a row");
}

bool has(const std::optional<KernelVersion>& v, Behaviour b) { return !v || *v >= behaviour_row(b).since; }

std::string behaviour_line(const KernelVersion& v, const BehaviourRow& row) {
  if (v >= row.since) return fmt::format("kernel {}: {} (since {}, {})", v.str(), row.what, row.since.str(), row.commits);
  return fmt::format("kernel {}: not yet: {} (from {}, {})", v.str(), row.what, row.since.str(), row.commits);
}

}  // namespace kah::model
