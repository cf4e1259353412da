// The peer's application in the timing model: an idle timeout in the server
// application (an HTTP keep-alive timeout, a database's wait_timeout, a proxy's idle
// timeout) closes the connection with a FIN, and the client reads EOF. The timer is
// the application's, not the kernel's: keepalive probes, answered by the server's
// kernel, never reach the application and never reset it. Pure functions.
#pragma once

#include "harness/model/timing.h"

namespace kah::model {

struct ApplicationClose {
  double last_activity_ms = 0;  // the application's last read or write, from the client's t_r (usually < 0)
  double idle_close_ms = 0;     // its idle timeout
  // A user-space timer fires at or after its deadline (it is not on the timer wheel),
  // late by the scheduler: allowed this much, plus the kernel's wake-up slack.
  double timer_slack_ms = 20;
};

// Outcome eof, window [last activity + timeout, + timer slack + one round trip +
// wake-up slack]; errno "".
Prediction predict_application_close(const ApplicationClose& close, const Kernel& kernel);

}  // namespace kah::model
