// One sample of the kernel's view of a socket's pending timer (sock_diag, what
// `ss -o` prints as timer:(keepalive,992ms,2)), placed on a connection's timeline.
#pragma once

#include <string>

namespace kah::evidence {

struct TimerSample {
  double t_ms = 0;           // when sampled, ms from t = 0
  std::string kind;          // "keepalive", "on" (retransmit), "persist", "timewait", "none"
  double expires_in_ms = 0;  // until the kernel fires it, as it reported at t_ms
  int probes = 0;            // the counter the kernel reports with it (keepalive: probes
                             // unanswered so far; on: retransmissions)
};

}  // namespace kah::evidence
