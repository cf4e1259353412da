#include "harness/model/application.h"

#include <fmt/format.h>

namespace kah::model {

Prediction predict_application_close(const ApplicationClose& c, const Kernel& k) {
  Prediction p;
  p.outcome = Outcome::eof;
  p.nominal_ms = c.last_activity_ms + c.idle_close_ms;
  const double late = c.timer_slack_ms + k.rtt_ms + k.wakeup_slack_ms;
  p.window = Window{p.nominal_ms, p.nominal_ms + late};
  if (k.hz) p.hz_values = {*k.hz};
  p.steps.push_back(fmt::format(
      "the server application last read or wrote {:.1f} ms from t_r and closes a connection idle for {:.0f} ms: FIN "
      "at {:.1f} ms (a user-space timer: never early, up to {:.0f} ms late); the client reads EOF one round trip later",
      c.last_activity_ms, c.idle_close_ms, p.nominal_ms, c.timer_slack_ms));
  p.steps.push_back(
      "keepalive does not help: the server's kernel answers the probes, its application never sees them, so its idle "
      "clock keeps running; only application-level traffic (a ping the application answers) resets it");
  return p;
}

}  // namespace kah::model
