// Judging: turns the model's prediction and what the kernel did into a verdict and,
// on failure, a message that names the case file, the connection, the expected
// window and what happened. Pure: no I/O.
#pragma once

#include <optional>
#include <vector>

#include "harness/judge/result.h"

namespace kah {

// How much later than the kernel's window an end may be seen when it is timed by
// the event loop's wake-up rather than by a captured RST: user space was measured
// waking up to 8 ms after the kernel acted on a machine with every core busy.
inline constexpr double kWakeupAllowanceMs = 10.0;

// Fills result.verdict and result.message from expected, observed and prediction.
void judge_connection(ConnectionResult& result);
// For a connection that failed only by being late (the expected outcome, nothing
// early, no probe missing or extra, no contradiction with the model): by how much its
// latest observation came after its window's end, in ms. Empty for any other failure.
// Late in this sense too: with TCP_USER_TIMEOUT, a keepalive firing that comes so late
// that the user timeout has passed aborts instead of probing (tcp_keepalive_timer()
// tests the user timeout first, once a probe is out). The probes from that firing on
// are missing and the end comes at the late firing, possibly before the window; the
// lateness is the end's distance past the first missing probe's window.
std::optional<double> lateness_only(const ConnectionResult& result);
// That case: the first missing probe whose firing aborted, or null.
const evidence::ProbeCheck* late_firing_abort(const ConnectionResult& result);

// Fills verdict, message and the acceptance region from copies, alive, model and
// stated: the stated survival must be the model's (to 0.005), and `alive` inside the
// binomial acceptance region at model::kFalseFailureRate.
void judge_survival(SurvivalResult& result);

// Groups the copies of each connection that has an expected survival into one
// SurvivalResult each (copies named "name#k" share "name"), judged.
std::vector<SurvivalResult> judge_copies(const std::vector<ConnectionResult>& connections,
                                         std::optional<double> stated);

// A failed connection the machine kept from being judged (`why`: what the harness
// measured, e.g. a CPU held while it was due): verdict not_judged, and the message
// keeps the failure it would have been. `who` is "file:line:col: connection NAME".
void mark_not_judged(ConnectionResult& result, const std::string& who, const std::string& why);

// A case passes only if every connection (and survival test) passes; error beats
// fail beats not judged beats pass.
Verdict case_verdict(const std::vector<ConnectionResult>& connections,
                     const std::vector<SurvivalResult>& survival = {});

// "errno 110" -> "ETIMEDOUT" (the symbolic name, or "errno N" when unknown).
std::string errno_name(int error);

// Maps an observed socket end to an outcome: ETIMEDOUT -> timeout, and so are
// EHOSTUNREACH/ENETUNREACH: on an established connection an ICMP error is only kept
// as a soft error, which the kernel reports in place of ETIMEDOUT when its timer
// gives up. ECONNRESET/EPIPE -> reset, no error and EOF -> eof, anything else -> error.
ObservedOutcome outcome_of(int so_error, bool eof);

model::Outcome to_model(ExpectedOutcome o);

}  // namespace kah
