// Planning: from a case and what the run measured about one connection, the timing
// model's input and what to expect: outcome, window, errno, how long to watch, and,
// under random loss, the chance to survive. This is where a case's topology, router,
// fault and server application become a model::PeerBehaviour (or an application
// close); the model itself stays unaware of cases. Pure: no I/O, unit-tested.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/model/timing.h"

namespace kah {

// What the run measured about one connection, in ms from its t_r (its last received
// segment before the fault).
struct ConnectionFacts {
  Family family = Family::ipv4;
  double fault_at_ms = 0;            // when the fault was applied
  double server_activity_ms = 0;     // the server application's last write (usually < 0)
  std::optional<double> send_at_ms;  // Traffic::sending: when the client writes (planned or actual)
  // [server] idle_close_s: when the harness's server application actually closed the
  // connection (it is the application: its close is a measured fact, and only the FIN's
  // way to the client is the kernel's). Unset before the close: its timer is forecast.
  std::optional<double> server_closed_ms;
  // How long the run watches, when already decided (a second forecast after a delayed
  // write); otherwise from the case, or derived from the model.
  std::optional<double> horizon_ms;
};

struct Forecast {
  model::Input input;              // `input` as given, with peer, data_sent_at and horizon filled in
  model::Prediction prediction;    // what to expect; eof when the server application closes
  std::optional<double> survival;  // FaultKind::loss: P(still open at the horizon)
  double horizon_ms = 0;           // how long to watch
};

// `input` carries the socket's settings, the kernel and the timer history; the rest
// comes from the case and `facts`. Throws std::invalid_argument when the case asks
// something the model cannot answer (a gap too close to a conntrack timeout to call,
// loss with TCP_USER_TIMEOUT, ...), with the reason.
Forecast forecast(const Case& c, const ConnectionSpec& spec, model::Input input, const ConnectionFacts& facts);

}  // namespace kah
