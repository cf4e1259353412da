#include "harness/judge/judge.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <iterator>

#include <fmt/format.h>

#include "harness/model/survival.h"

namespace kah {

std::string to_string(Verdict v) {
  switch (v) {
    case Verdict::pass: return "pass";
    case Verdict::fail: return "fail";
    case Verdict::error: return "error";
    case Verdict::skip: return "skip";
    case Verdict::interrupted: return "interrupted";
    case Verdict::not_judged: return "not-judged";
  }
  return "?";
}

std::string to_string(ObservedOutcome o) {
  switch (o) {
    case ObservedOutcome::timeout: return "timeout";
    case ObservedOutcome::reset: return "reset";
    case ObservedOutcome::alive: return "alive";
    case ObservedOutcome::eof: return "eof";
    case ObservedOutcome::error: return "error";
    case ObservedOutcome::closed: return "closed";
  }
  return "?";
}

std::string errno_name(int error) {
  switch (error) {
    case 0: return "";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNABORTED: return "ECONNABORTED";
    case EPROTO: return "EPROTO";
    default: return fmt::format("errno {}", error);
  }
}

ObservedOutcome outcome_of(int so_error, bool eof) {
  switch (so_error) {
    case 0: return eof ? ObservedOutcome::eof : ObservedOutcome::alive;
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH: return ObservedOutcome::timeout;
    case ECONNRESET:
    case EPIPE: return ObservedOutcome::reset;
    default: return ObservedOutcome::error;
  }
}

model::Outcome to_model(ExpectedOutcome o) {
  switch (o) {
    case ExpectedOutcome::timeout: return model::Outcome::timeout;
    case ExpectedOutcome::reset: return model::Outcome::reset;
    case ExpectedOutcome::alive: return model::Outcome::alive;
    case ExpectedOutcome::eof: return model::Outcome::eof;
    case ExpectedOutcome::closed: break;  // no kernel outcome: judged against the kernel's earliest end
  }
  return model::Outcome::alive;
}

namespace {

std::string describe_observed(const Observed& o) {
  switch (o.outcome) {
    case ObservedOutcome::alive: return fmt::format("still open at {:.1f} ms (the horizon)", o.at_ms);
    case ObservedOutcome::eof: return fmt::format("eof (the peer closed) at {:.1f} ms", o.at_ms);
    case ObservedOutcome::closed: return fmt::format("closed by the program (its FIN) at {:.1f} ms", o.at_ms);
    case ObservedOutcome::timeout:
    case ObservedOutcome::reset:
    case ObservedOutcome::error:
      return fmt::format("{} ({}) at {:.1f} ms after {} probe{}", to_string(o.outcome), o.errno_name,
                         o.at_ms, o.probes, o.probes == 1 ? "" : "s");
  }
  return "?";
}

}  // namespace

// ExpectedOutcome::closed: the program must close its connection itself, and before
// the earliest instant the kernel could have ended it (the model's window for what
// the kernel does with these settings and this fault).
static void judge_closed(ConnectionResult& r, const std::string& where) {
  const bool kernel_ends = r.expected.model_outcome && *r.expected.model_outcome != model::Outcome::alive;
  const auto kernel_end =
      kernel_ends ? fmt::format("the kernel's {} {}", to_string(expected_outcome(*r.expected.model_outcome)),
                                evidence::window_text(r.expected.window))
                  : std::string("the horizon (the model has the kernel keep it open)");
  if (r.observed.outcome != ObservedOutcome::closed) {
    r.verdict = Verdict::fail;
    r.message = fmt::format("{}: expected the program to close the connection before {}, observed {}", where,
                            kernel_end, describe_observed(r.observed));
    return;
  }
  if (kernel_ends && r.observed.at_ms >= r.expected.window.earliest_ms) {
    r.verdict = Verdict::fail;
    r.message = fmt::format("{}: the program closed the connection at {:.1f} ms, not before {}: the kernel could "
                            "have ended it first",
                            where, r.observed.at_ms, kernel_end);
    return;
  }
  r.verdict = Verdict::pass;
  r.message.clear();
}

// (file-local) The first probe the capture shows out of its window (or missing, or extra), or "".
static std::string probe_problem(const CaptureFindings& ev) {
  if (!ev.probes_checked) return "";
  for (const auto& c : ev.probe_checks)
    if (c.verdict != evidence::ProbeVerdict::ok) return c.message;
  return "";
}

std::optional<double> lateness_only(const ConnectionResult& r) {
  if (r.verdict != Verdict::fail || r.expected.outcome == ExpectedOutcome::closed) return std::nullopt;
  if (r.expected.model_outcome && *r.expected.model_outcome != to_model(r.expected.outcome)) return std::nullopt;
  if (r.expected.errno_name && !r.expected.model_errno.empty() && *r.expected.errno_name != r.expected.model_errno)
    return std::nullopt;
  if (to_string(r.observed.outcome) != to_string(r.expected.outcome)) return std::nullopt;
  double late = 0;
  const auto aborted_by = late_firing_abort(r);
  if (r.observed.outcome != ObservedOutcome::alive) {
    if (aborted_by) {
      late = r.observed.at_ms - aborted_by->expected->latest_ms;
    } else {
      if (r.observed.at_ms < r.expected.window.earliest_ms) return std::nullopt;
      late = std::max(late, r.observed.at_ms - r.expected.window.latest_ms);
    }
  }
  for (const auto& c : r.evidence.probe_checks) {
    if (c.verdict == evidence::ProbeVerdict::ok) continue;
    if (aborted_by && c.index >= aborted_by->index) continue;  // the missing tail
    if (c.verdict != evidence::ProbeVerdict::late || !c.seen_ms || !c.expected) return std::nullopt;
    late = std::max(late, *c.seen_ms - c.expected->latest_ms);
  }
  if (late <= 0) return std::nullopt;
  return late;
}

const evidence::ProbeCheck* late_firing_abort(const ConnectionResult& r) {
  const int user_timeout_ms = r.model_input.keepalive.user_timeout_ms;
  if (user_timeout_ms <= 0 || r.model_input.traffic != model::Traffic::idle) return nullptr;
  if (r.observed.outcome != ObservedOutcome::timeout || !r.evidence.probes_checked) return nullptr;
  const evidence::ProbeCheck* first = nullptr;
  for (const auto& c : r.evidence.probe_checks) {
    if (c.verdict == evidence::ProbeVerdict::missing && c.expected && c.certain) {
      if (!first) first = &c;
    } else if (first || c.verdict == evidence::ProbeVerdict::extra) {
      return nullptr;  // only a tail of missing probes, and nothing unexpected
    }
  }
  // probes_out must be > 0 for the user timeout to abort; the end must come after that
  // probe was due and once the user timeout had passed.
  if (!first || first->index < 1) return nullptr;
  if (r.observed.at_ms <= first->expected->latest_ms || r.observed.at_ms < user_timeout_ms) return nullptr;
  return first;
}

void judge_connection(ConnectionResult& r) {
  const auto where = fmt::format("{}: connection {}", r.where.str(), r.name);
  const auto expected_outcome = to_string(r.expected.outcome);
  if (r.expected.outcome == ExpectedOutcome::closed) return judge_closed(r, where);
  const auto probes = probe_problem(r.evidence);
  const auto fail = [&](std::string why) {
    r.verdict = Verdict::fail;
    r.message = fmt::format("{}: {}", where, why);
    if (!probes.empty()) r.message += fmt::format("; the capture shows {}", probes);
  };

  if (r.expected.model_outcome && *r.expected.model_outcome != to_model(r.expected.outcome)) {
    const auto predicted = to_string(kah::expected_outcome(*r.expected.model_outcome));
    return fail(fmt::format(
        "the case expects {} but the timing model predicts {} for these settings; observed {}",
        expected_outcome, predicted, describe_observed(r.observed)));
  }
  if (r.expected.errno_name && !r.expected.model_errno.empty() && *r.expected.errno_name != r.expected.model_errno)
    return fail(fmt::format("the case expects {} but the timing model predicts {} for these settings; observed {}",
                            *r.expected.errno_name, r.expected.model_errno, describe_observed(r.observed)));
  // Under random loss a connection may also live: the copies are judged together.
  if (r.expected.survival && r.observed.outcome == ObservedOutcome::alive) {
    r.verdict = Verdict::pass;
    r.message.clear();
    return;
  }
  const bool outcome_matches = to_string(r.observed.outcome) == expected_outcome;
  if (!outcome_matches)
    return fail(fmt::format("expected {} {}, observed {}", expected_outcome,
                            evidence::window_text(r.expected.window), describe_observed(r.observed)));
  // The window is when the kernel acts. An end timed by the event loop's wake-up
  // or a sock_diag sample
  // (no RST in the capture, no kernel trace to time it by) is seen later than that by
  // scheduling. An end the kernel trace timed by its timer's bucket is the bucket's
  // boundary, before any softirq lateness: the window's wake-up slack is not its to use
  // (harness/evidence/kernel_timing.h), and the lateness is reported beside it.
  const auto& kernel = r.observed.kernel_end;
  const bool by_bucket = r.observed.timed_by == "kernel-trace" && kernel && kernel->bucket();
  const double late_allowance = r.observed.timed_by == "wakeup" || r.observed.timed_by == "sock_diag" ? kWakeupAllowanceMs
                                : by_bucket ? -(r.model_input.kernel.wakeup_slack_ms + r.prediction.late_tick_ms)
                                                                 : 0.0;
  // A sock_diag bracket: late only if the connection was gone before its last sample
  // that listed it could have been after the window; no wake-up allowance then.
  const auto& open_until = r.observed.open_until_ms;
  const bool bracketed = r.observed.timed_by == "sock_diag" && open_until.has_value();
  const double latest = r.expected.window.latest_ms + (bracketed ? 0.0 : late_allowance);
  const bool early = r.observed.at_ms < r.expected.window.earliest_ms;
  const bool late = (bracketed ? *open_until : r.observed.at_ms) > latest;
  if (r.observed.outcome != ObservedOutcome::alive && (early || late)) {
    std::string allowance;
    if (late && late_allowance > 0 && !bracketed)
      allowance = fmt::format(" (+{:.0f} ms for the event loop's wake-up)", late_allowance);
    if (late && bracketed)
      allowance = fmt::format(" (sock_diag still listed it at {:.1f} ms)", *open_until);
    if (late && by_bucket)
      allowance = fmt::format(" (its bucket by {:.1f} ms, less the {:.0f} ms for a late tick and wake-up)", latest,
                              r.model_input.kernel.wakeup_slack_ms + r.prediction.late_tick_ms);
    std::string how;
    if (by_bucket)
      how = fmt::format(" (the kernel trace: the {}'s bucket, jiffy {}, starts then; its callback ran {:.2f} ms later)",
                        kernel->event, *kernel->baseclk, kernel->softirq_late_ms.value_or(0));
    return fail(fmt::format("{} {:.1f} ms too {}: expected {}{}, observed {}{}", expected_outcome,
                            early ? r.expected.window.earliest_ms - r.observed.at_ms
                                  : (bracketed ? *open_until : r.observed.at_ms) -
                                        (by_bucket ? latest : r.expected.window.latest_ms),
                            early ? "early" : "late", evidence::window_text(r.expected.window), allowance,
                            describe_observed(r.observed), how));
  }
  const std::string expected_errno = r.expected.errno_name.value_or(r.expected.model_errno);
  const bool ended_in_error = r.observed.outcome == ObservedOutcome::timeout || r.observed.outcome == ObservedOutcome::reset;
  if (ended_in_error && !expected_errno.empty() && r.observed.errno_name != expected_errno)
    return fail(fmt::format("expected {} with {}, observed {}", expected_outcome, expected_errno,
                            describe_observed(r.observed)));
  if (r.expected.deadline_ms && r.observed.outcome != ObservedOutcome::alive &&
      r.observed.at_ms > *r.expected.deadline_ms)
    return fail(fmt::format("{} at {:.1f} ms misses the case's deadline of {:.1f} ms", expected_outcome,
                            r.observed.at_ms, *r.expected.deadline_ms));
  if (!probes.empty()) {
    r.verdict = Verdict::fail;
    r.message = fmt::format("{}: {} as expected, but the probes did not follow the model: {}", where,
                            expected_outcome, probes);
    return;
  }
  r.verdict = Verdict::pass;
  r.message.clear();
}

void judge_survival(SurvivalResult& s) {
  const auto region = model::binomial_acceptance(s.copies, s.model, model::kFalseFailureRate);
  s.accept_lo = region.lo;
  s.accept_hi = region.hi;
  s.false_failure = region.false_failure;
  const auto where = fmt::format("{}: connection {} ({} copies)", s.where.str(), s.connection, s.copies);
  const auto observed = fmt::format("{} of {} still open", s.alive, s.copies);
  // The case states the share so a reader sees it; it must be what the model computes.
  if (s.stated && std::abs(*s.stated - s.model) > 0.005) {
    s.verdict = Verdict::fail;
    s.message = fmt::format("{}: the case states survival {:g} but the model computes {:.4f} for these settings; "
                            "observed {} (acceptance region [{}, {}] for {:.4f})",
                            where, *s.stated, s.model, observed, s.accept_lo, s.accept_hi, s.model);
    return;
  }
  if (s.alive < s.accept_lo || s.alive > s.accept_hi) {
    s.verdict = Verdict::fail;
    s.message = fmt::format(
        "{}: {}, outside [{}, {}]: with survival {:.4f} that happens with probability below {:.1e} (two-sided "
        "binomial test)",
        where, observed, s.accept_lo, s.accept_hi, s.model, model::kFalseFailureRate);
    return;
  }
  s.verdict = Verdict::pass;
  s.message.clear();
}

std::vector<SurvivalResult> judge_copies(const std::vector<ConnectionResult>& connections,
                                         std::optional<double> stated) {
  std::vector<SurvivalResult> out;
  for (const auto& r : connections) {
    if (!r.expected.survival) continue;
    const std::string base = r.name.substr(0, r.name.find('#'));
    auto it = std::find_if(out.begin(), out.end(), [&](const SurvivalResult& s) { return s.connection == base; });
    if (it == out.end()) {
      SurvivalResult s;
      s.connection = base;
      s.where = r.where;
      s.model = *r.expected.survival;
      s.stated = stated;
      out.push_back(s);
      it = std::prev(out.end());
    }
    ++it->copies;
    if (r.observed.outcome == ObservedOutcome::alive) ++it->alive;
  }
  for (auto& s : out) judge_survival(s);
  return out;
}

void mark_not_judged(ConnectionResult& result, const std::string& who, const std::string& why) {
  result.verdict = Verdict::not_judged;
  result.message = fmt::format("{}: not judged: {}; the failure it would have been: {}", who, why, result.message);
}

Verdict case_verdict(const std::vector<ConnectionResult>& connections, const std::vector<SurvivalResult>& survival) {
  Verdict v = Verdict::pass;
  for (const auto& c : connections) {
    if (c.verdict == Verdict::error) return Verdict::error;
    if (c.verdict == Verdict::fail) v = Verdict::fail;
    if (c.verdict == Verdict::not_judged && v == Verdict::pass) v = Verdict::not_judged;
  }
  for (const auto& s : survival)
    if (s.verdict == Verdict::fail) v = Verdict::fail;
  return v;
}

}  // namespace kah
