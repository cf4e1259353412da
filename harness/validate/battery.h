// The standard battery of `kaharness validate`: for one tuning (the sysctl files'
// values, applied in the client's and server's namespaces), the situations that
// decide how long a dead peer goes unnoticed, each as an ordinary Case on IPv4 and
// IPv6:
//   silent-peer     keepalive on with the file's defaults, the peer goes silent
//   peer-reboot     the same, the peer lost the connection (answers with RST)
//   data-in-flight  the client writes to a silent peer: tcp_retries2 decides
//   connect         connect() to a silent host: tcp_syn_retries (and the linear timeouts)
//   nat-<N>s        an idle keepalive flow through a strict NAT that forgets it after N s
//   user-timeout    data in flight with TCP_USER_TIMEOUT (when --user-timeout is given)
// Each is predicted at the file's real values. A scenario that would run longer than
// --max-wait runs scaled instead, and says how: keepalive and NAT times divided by a
// factor (whole seconds, at least 1 s: the kernel takes no less), TCP_USER_TIMEOUT
// divided by it, and the retransmission counts (whose times are the kernel's own 200 ms
// and 1 s RTOs, which no sysctl divides on every kernel) lowered until it fits: the
// same chain, cut short. The run then judges the scaled case against its own windows.
#pragma once

#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/run/load_checks.h"
#include "harness/sysctl/tuning.h"

namespace kah::validate {

struct BatteryOptions {
  std::vector<double> nat_timeouts_s;  // --nat-timeout, each a scenario
  int user_timeout_ms = 0;             // --user-timeout; 0: no such scenario
  double max_wait_s = 60;              // --max-wait: longer scenarios run scaled
  model::Kernel kernel;                // HZ and version, for the predictions
};

// The values a scenario is built from; scaling changes only these.
struct Knobs {
  int idle_s = 7200, interval_s = 75, count = 9;
  int retries2 = 15, syn_retries = 6;
  int nat_timeout_s = 0;
  int user_timeout_ms = 0;
};

enum class ScenarioKind { silent_peer, peer_reboot, data_in_flight, connect, nat, user_timeout };

struct Scenario {
  ScenarioKind kind = ScenarioKind::silent_peer;
  std::string id;     // "silent-peer", "nat-350s": the case's name after "validate-"
  std::string title;  // for people
  Knobs real;         // the file's values
  CaseForecast predicted;  // at the file's values (never run)
  Knobs scaled;       // what runs (== real when it fits --max-wait)
  std::string scaling;  // "" when run at the real values; else what changed, in words
  Case run;           // the case that runs
};

struct Battery {
  std::vector<Scenario> scenarios;
  std::vector<std::string> warnings;  // "keepalive_time 7200 s exceeds the NAT timeout 350 s: ..."
  std::vector<std::string> refused;   // scenarios the model cannot judge, and why
};

// Throws nothing for the file's content (the tuning is already checked); a scenario
// the model cannot judge even scaled goes to `refused`.
Battery make_battery(const sysctl::Tuning& tuning, const BatteryOptions& options);

// Cloud NAT idle timeouts worth a --nat-timeout each (documented defaults).
struct CloudNat {
  const char* name;
  int timeout_s;
  const char* note;
};
const std::vector<CloudNat>& cloud_nat_defaults();

}  // namespace kah::validate
