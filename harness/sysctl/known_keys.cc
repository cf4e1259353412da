#include "harness/sysctl/known_keys.h"

#include <fnmatch.h>

#include <algorithm>
#include <climits>
#include <numeric>

namespace kah::sysctl {
namespace {

using model::Behaviour;
constexpr long long kIntMax = INT_MAX;
constexpr auto kNetns = Scope::network_namespace;
constexpr auto kMachine = Scope::machine;

std::vector<std::string_view> segments(std::string_view key) {
  std::vector<std::string_view> out;
  while (true) {
    const auto dot = key.find('.');
    out.push_back(key.substr(0, dot));
    if (dot == std::string_view::npos) return out;
    key = key.substr(dot + 1);
  }
}

// Segment by segment: a "*" row segment takes any device name; a file segment may be a glob.
bool matches(std::string_view file_key, std::string_view row_name) {
  const auto a = segments(file_key), b = segments(row_name);
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (b[i] == "*") continue;
    const std::string pattern(a[i]), name(b[i]);
    if (fnmatch(pattern.c_str(), name.c_str(), 0) != 0) return false;
  }
  return true;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), 0);
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

// Scopes from the kernel's tables: net/ipv4/sysctl_net_ipv4.c ipv4_net_table (per
// namespace) against ipv4_table (tcp_mem, udp_mem: global); net/core/sysctl_net_core.c
// netns_core_table (somaxconn) against net_core_table (rmem_max, wmem_max,
// netdev_max_backlog: global); nf_conntrack_max is writable in the initial namespace only.
const std::vector<KnownKey>& known_keys() {
  static const std::vector<KnownKey> rows = {
      {"net.ipv4.tcp_keepalive_time", kNetns, 1, 32767, 1, "7200", {}, true,
       "seconds of silence before the first keepalive probe (TCP_KEEPIDLE when the socket leaves it out)"},
      {"net.ipv4.tcp_keepalive_intvl", kNetns, 1, 32767, 1, "75", {}, true, "seconds between keepalive probes"},
      {"net.ipv4.tcp_keepalive_probes", kNetns, 1, 127, 1, "9", {}, true, "unanswered probes before the kernel gives up"},
      {"net.ipv4.tcp_retries1", kNetns, 0, 255, 1, "3", {}, false, "retransmissions before the route is re-checked"},
      {"net.ipv4.tcp_retries2", kNetns, 0, 255, 1, "15", {}, true,
       "how long data in flight is retransmitted, as a count of doubling RTOs (15: about 924.6 s)"},
      {"net.ipv4.tcp_syn_retries", kNetns, 1, 127, 1, "6", {}, true, "SYN retransmissions before connect() fails"},
      {"net.ipv4.tcp_synack_retries", kNetns, 0, 255, 1, "5", {}, false, "SYN-ACK retransmissions of a listener"},
      {"net.ipv4.tcp_syn_linear_timeouts", kNetns, 0, 127, 1, "4", Behaviour::syn_linear_timeouts, true,
       "SYN retransmissions that keep the 1 s initial RTO before it doubles (and are added to tcp_syn_retries)"},
      {"net.ipv4.tcp_rto_min_us", kNetns, 1, kIntMax, 1, "200000", Behaviour::rto_min_us_sysctl, true,
       "the minimum retransmission timeout, microseconds"},
      {"net.ipv4.tcp_rto_max_ms", kNetns, 1000, 120000, 1, "120000", Behaviour::rto_max_ms_sysctl, true,
       "the cap of the retransmission timeout, milliseconds"},
      {"net.ipv4.tcp_early_retrans", kNetns, 0, 4, 1, "3", {}, true, "tail-loss probes (3, 4: on)"},
      {"net.ipv4.tcp_sack", kNetns, 0, 1, 1, "1", {}, true, "selective acknowledgements (a tail-loss probe needs them)"},
      {"net.ipv4.tcp_fin_timeout", kNetns, 1, 32767, 1, "60", {}, false, "seconds an orphaned connection stays in FIN-WAIT-2"},
      {"net.ipv4.tcp_rmem", kNetns, 1, kIntMax, 3, "4096 131072 6291456", {}, false, "receive buffer: min default max"},
      {"net.ipv4.tcp_wmem", kNetns, 1, kIntMax, 3, "4096 16384 4194304", {}, false, "send buffer: min default max"},
      {"net.ipv4.conf.*.rp_filter", kNetns, 0, 2, 1, "0", {}, false, "reverse-path filter of a device"},
      {"net.core.somaxconn", kNetns, 0, kIntMax, 1, "4096", {}, false, "listen() backlog cap"},
      {"net.netfilter.nf_conntrack_tcp_timeout_established", kNetns, 1, kIntMax, 1, "432000", {}, false,
       "seconds conntrack keeps an idle established flow"},
      {"net.netfilter.nf_conntrack_tcp_loose", kNetns, 0, 1, 1, "1", {}, false,
       "conntrack picks up flows from a mid-stream segment"},
      {"net.ipv4.tcp_mem", kMachine, 1, LLONG_MAX, 3, "(from memory)", {}, false, "TCP memory, pages: machine-wide"},
      {"net.ipv4.udp_mem", kMachine, 1, LLONG_MAX, 3, "(from memory)", {}, false, "UDP memory, pages: machine-wide"},
      {"net.core.rmem_max", kMachine, 1, kIntMax, 1, "212992", {}, false, "largest SO_RCVBUF: machine-wide"},
      {"net.core.wmem_max", kMachine, 1, kIntMax, 1, "212992", {}, false, "largest SO_SNDBUF: machine-wide"},
      {"net.core.netdev_max_backlog", kMachine, 1, kIntMax, 1, "1000", {}, false, "input queue per CPU: machine-wide"},
      {"net.netfilter.nf_conntrack_max", kMachine, 1, kIntMax, 1, "(from memory)", {}, false,
       "conntrack table size: writable in the initial namespace only"},
  };
  return rows;
}

std::vector<const KnownKey*> matching_keys(std::string_view key) {
  std::vector<const KnownKey*> out;
  for (const auto& row : known_keys())
    if (matches(key, row.name)) out.push_back(&row);
  return out;
}

bool machine_wide_subtree(std::string_view key) {
  for (std::string_view prefix : {"vm.", "kernel.", "fs.", "dev.", "user.", "debug."})
    if (key.substr(0, prefix.size()) == prefix) return true;
  return false;
}

std::optional<std::string> did_you_mean(std::string_view key) {
  const KnownKey* best = nullptr;
  std::size_t best_distance = 0;
  for (const auto& row : known_keys()) {
    const std::size_t d = edit_distance(key, row.name);
    if (best == nullptr || d < best_distance) best = &row, best_distance = d;
  }
  if (best == nullptr || best_distance == 0 || best_distance > std::max<std::size_t>(2, key.size() / 6)) return std::nullopt;
  return std::string(best->name);
}

}  // namespace kah::sysctl
