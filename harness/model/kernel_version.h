// Which of the kernel's TCP timer behaviours exist in a given kernel version: one
// row per behaviour, the version that brought it and the commit, so `predict
// --kernel X.Y`, `run` (the running kernel's uname) and the sysctl table agree on
// what a kernel does. Pure data and comparisons; no I/O.
//
// Sources (torvalds/linux; ../shared/design/keepalive-timing.md §7):
//  * 4.19  b701a99e431d  tcp_clamp_rto_to_user_timeout(): with TCP_USER_TIMEOUT the
//          retransmission timer is clamped to what is left, so the abort is exact
//          (before: at the first RTO firing past the timeout).
//  * 5.4   a41e8a88b06e, 3256a2d6ab1f  TCP_USER_TIMEOUT honoured in SYN_SENT
//          (tcp_write_timeout() also runs retransmits_timed_out() there; before, a
//          connect() past its user timeout fired one-jiffy timers until the SYN count).
//  * 5.11  9d9b1ee0b2d1, 344db93ae3ee  the user timeout also ends zero-window probing
//          (icsk_probes_tstamp). Zero-window probing is not modelled: stated only.
//  * 6.5   ccce324dabfe  net.ipv4.tcp_syn_linear_timeouts (default 4): the first N SYN
//          retransmissions keep the initial RTO, and N more SYNs are allowed
//          (tcp_write_timeout: max_retransmits = syn_retries + linear).
//  * 6.11  f086edef71be  net.ipv4.tcp_rto_min_us (default 200000).
//  * 6.15  54a378f43425, 1280c26228bd  TCP_RTO_MAX_MS and net.ipv4.tcp_rto_max_ms
//          (1000..120000, default 120000).
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kah::model {

struct KernelVersion {
  int major = 0;
  int minor = 0;
  auto operator<=>(const KernelVersion&) const = default;
  std::string str() const;  // "6.18"
};

// "6.1", "6.18.44", "6.1.0-28-cloud-amd64" (uname -r) -> {6, 1}; nullopt otherwise.
std::optional<KernelVersion> parse_kernel_version(std::string_view text);

enum class Behaviour {
  user_timeout_clamps_rto,        // 4.19
  user_timeout_in_syn_sent,       // 5.4
  user_timeout_ends_zero_window,  // 5.11
  syn_linear_timeouts,            // 6.5
  rto_min_us_sysctl,              // 6.11
  rto_max_ms_sysctl,              // 6.15
};

struct BehaviourRow {
  Behaviour behaviour;
  KernelVersion since;
  const char* commits;
  const char* what;  // one line for people
};

// Every row, oldest first.
const std::vector<BehaviourRow>& kernel_behaviours();
const BehaviourRow& behaviour_row(Behaviour b);

// Unknown version (nullopt): every behaviour the table knows (a current kernel).
bool has(const std::optional<KernelVersion>& v, Behaviour b);

// One line per row for the explanation: "kernel 6.1: no tcp_syn_linear_timeouts
// (from 6.5, ccce324dabfe): ..." or "kernel 6.18: tcp_syn_linear_timeouts (6.5, ...)".
std::string behaviour_line(const KernelVersion& v, const BehaviourRow& row);

}  // namespace kah::model
