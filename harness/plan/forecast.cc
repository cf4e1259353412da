#include "harness/plan/forecast.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "harness/model/application.h"
#include "harness/model/middlebox.h"
#include "harness/model/survival.h"

namespace kah {
namespace {

constexpr double kHorizonMarginMs = 1000;  // watched beyond the latest expected end
constexpr double kAliveExtraMs = 3000;     // an idle connection expected to live: past its would-be abort
constexpr double kIdleNoKeepaliveMs = 5000;

model::Router router_of(const Case& c) {
  return {c.router.nat, c.router.firewall, c.router.conntrack_loose.value_or(true)};
}

double tick_ms(const model::Kernel& k) { return 1000.0 / k.hz.value_or(100); }

// When the flow's segments cross the router after t_r on a path that answers: the
// client's ACK of the reply, each keepalive probe with its answer, and the write.
// Later gaps (after the write) are not followed: the write decides the case.
std::vector<model::Window> crossings(const model::Input& in, const ConnectionFacts& facts, double horizon_ms) {
  const double rtt = in.kernel.rtt_ms + in.kernel.receive_delay_ms;
  std::vector<model::Window> out{{0, rtt}};
  const double until = facts.send_at_ms ? std::min(*facts.send_at_ms, horizon_ms) : horizon_ms;
  if (in.keepalive.enabled) {
    model::Input healthy = in;
    healthy.peer = model::PeerBehaviour::answers;
    healthy.traffic = model::Traffic::idle;
    healthy.horizon_ms = until;
    for (const auto& probe : model::predict(healthy).probes)
      if (probe.window.earliest_ms <= until) out.push_back({probe.window.earliest_ms, probe.window.latest_ms + rtt});
  }
  if (facts.send_at_ms) out.push_back({*facts.send_at_ms, *facts.send_at_ms + rtt});
  std::sort(out.begin(), out.end(),
            [](const model::Window& a, const model::Window& b) { return a.earliest_ms < b.earliest_ms; });
  return out;
}

// A conntrack entry that times out on its own: kept (the path answers) or lost at the
// first segment after the idle period (the path then does what the router does with
// a forgotten flow).
model::PeerBehaviour after_conntrack_timeout(const Case& c, const model::Input& in, const ConnectionFacts& facts,
                                             double horizon_ms, std::vector<std::string>& notes) {
  const double timeout_ms = 1000.0 * c.router.established_timeout_s.value_or(432000);
  const auto fate = model::conntrack_fate(crossings(in, facts, horizon_ms), timeout_ms, tick_ms(in.kernel));
  switch (fate.fate) {
    case model::EntryFate::kept:
      notes.push_back(fmt::format("conntrack-timeout: {}", fate.why));
      return model::PeerBehaviour::answers;
    case model::EntryFate::expired: {
      if (fate.at_crossing != 1)
        throw std::invalid_argument(fmt::format(
            "conntrack-timeout: the flow is lost only at its segment {} after the idle period: not modelled ({})",
            fate.at_crossing, fate.why));
      const bool by_write = in.traffic == model::Traffic::data_in_flight && facts.send_at_ms &&
                            (!in.keepalive.enabled || *facts.send_at_ms < 1000.0 * in.keepalive.idle_s);
      if (in.traffic == model::Traffic::data_in_flight && !by_write)
        throw std::invalid_argument(
            "conntrack-timeout: keepalive probes meet the forgotten flow before the write does: not modelled; "
            "write before the first probe, or turn keepalive off");
      const auto loss = model::after_state_loss(router_of(c));
      notes.push_back(fmt::format("conntrack-timeout: {}", fate.why));
      notes.push_back(fmt::format("then: {}", loss.why));
      return loss.path;
    }
    case model::EntryFate::undecided:
      throw std::invalid_argument(fmt::format(
          "conntrack-timeout: {}; move the keepalive idle or the write further from established_timeout_s",
          fate.why));
  }
  return model::PeerBehaviour::answers;
}

double default_horizon_ms(const model::Input& in, const model::Prediction& p) {
  if (p.window.bounded()) return p.window.latest_ms + kHorizonMarginMs;
  if (in.traffic == model::Traffic::data_in_flight) {
    // Alive after a write: watch until a path that had died would surely have shown it.
    model::Input dead = in;
    dead.peer = model::PeerBehaviour::silent;
    dead.horizon_ms = 0;
    const auto would = model::predict(dead);
    if (would.window.bounded()) return would.window.latest_ms + kHorizonMarginMs;
  }
  const auto& k = in.keepalive;
  if (!k.enabled) return kIdleNoKeepaliveMs;
  return 1000.0 * (k.idle_s + k.count * k.interval_s) + kAliveExtraMs;
}

void prepend(std::vector<std::string>& steps, std::vector<std::string> notes) {
  steps.insert(steps.begin(), std::make_move_iterator(notes.begin()), std::make_move_iterator(notes.end()));
}

}  // namespace

Forecast forecast(const Case& c, const ConnectionSpec& spec, model::Input input, const ConnectionFacts& facts) {
  const FaultSpec fault = c.faults.empty() ? FaultSpec{} : c.faults.front();
  Forecast f;
  std::vector<std::string> notes;
  if (spec.traffic == Traffic::sending && facts.send_at_ms) input.data_sent_at_ms = *facts.send_at_ms;
  // The case's own horizon counts from the fault.
  const bool fixed = facts.horizon_ms.has_value() || c.horizon_s.has_value();
  const double fixed_ms = facts.horizon_ms ? *facts.horizon_ms : c.horizon_s ? facts.fault_at_ms + 1000.0 * *c.horizon_s : 0;

  const FaultKindInfo& row = fault_info(fault.kind);
  input.peer = row.peer;
  if (!row.model_note.empty()) notes.emplace_back(row.model_note);
  switch (row.path) {
    case PathModel::fixed: break;
    case PathModel::flow_forgotten: {
      const auto loss = model::after_state_loss(router_of(c));
      notes.push_back(fmt::format("{}: the router deletes the flow's entry at {:.1f} ms; {}", row.name,
                                  facts.fault_at_ms, loss.why));
      input.peer = loss.path;
      break;
    }
    case PathModel::flow_times_out: {
      // The gaps are followed up to the horizon the case would have with a healthy path.
      model::Input healthy = input;
      healthy.peer = model::PeerBehaviour::answers;
      const double horizon = fixed ? fixed_ms : default_horizon_ms(healthy, model::predict(healthy));
      input.peer = after_conntrack_timeout(c, input, facts, horizon, notes);
      break;
    }
    case PathModel::icmp_errors: input.icmp_reverts_backoff = facts.family == Family::ipv4; break;
    case PathModel::random_loss:
      if (input.traffic != model::Traffic::idle || !input.keepalive.enabled || input.keepalive.user_timeout_ms > 0)
        throw std::invalid_argument(fmt::format(
            "{} is modelled for idle connections probed by keepalive without TCP_USER_TIMEOUT", row.name));
      break;
  }

  input.horizon_ms = 0;
  f.prediction = model::predict(input);
  if (c.server.idle_close_s) {
    if (f.prediction.outcome != model::Outcome::alive)
      throw std::invalid_argument("[server] idle_close_s: the transport ends the connection too; not modelled");
    f.prediction = model::predict_application_close(
        {facts.server_activity_ms, 1000.0 * *c.server.idle_close_s, model::ApplicationClose{}.timer_slack_ms},
        input.kernel);
    if (facts.server_closed_ms) {
      // The application (the harness's server) closed at a measured instant: the window
      // is the FIN's way from there, whatever its own timer's lateness was.
      const double due = facts.server_activity_ms + 1000.0 * *c.server.idle_close_s;
      auto closed = model::predict_application_close({*facts.server_closed_ms, 0, 0}, input.kernel);
      closed.steps.insert(closed.steps.begin(),
                          fmt::format("the server application's idle timer was due at {:.1f} ms; it closed the "
                                      "connection at {:.1f} ms (measured): the window counts from its close",
                                      due, *facts.server_closed_ms));
      closed.nominal_ms = f.prediction.nominal_ms;
      f.prediction = std::move(closed);
    }
  }

  if (row.path == PathModel::random_loss) {
    const double answered = model::round_trip_success(fault.probability.value_or(0));
    f.horizon_ms = fixed ? fixed_ms : model::survival_horizon_ms(input.keepalive, f.prediction.window.latest_ms);
    f.survival = model::keepalive_survival(input.keepalive, answered, f.horizon_ms);
    notes.push_back(fmt::format(
        "{}: the router drops each packet with p = {:g} in both directions, so a probe round trip succeeds with "
        "(1 - p)^2 = {:.4f}; the connection is still open at {:.1f} ms with probability {:.4f} (it dies only if "
        "{} probes in a row go unanswered); those that die end as with a silent peer:",
        row.name, *fault.probability, answered, f.horizon_ms, *f.survival, input.keepalive.count));
  } else {
    f.horizon_ms = fixed ? fixed_ms : default_horizon_ms(input, f.prediction);
  }

  input.horizon_ms = f.horizon_ms;
  if (!c.server.idle_close_s) {
    f.prediction = model::predict(input);  // again, now with the probes up to the horizon
  }
  prepend(f.prediction.steps, std::move(notes));
  f.input = input;
  return f;
}

}  // namespace kah
