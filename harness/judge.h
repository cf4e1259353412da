// Judging: turns the model's prediction and what the kernel did into a verdict and,
// on failure, a message that names the case file, the connection, the expected
// window and what happened. Pure: no I/O.
#pragma once

#include "harness/result.h"

namespace kah {

// Fills result.verdict and result.message from expected, observed and prediction.
void judge_connection(ConnectionResult& result);

// A case passes only if every connection passes; error beats fail beats pass.
Verdict case_verdict(const std::vector<ConnectionResult>& connections);

// "errno 110" -> "ETIMEDOUT" (the symbolic name, or "errno N" when unknown).
std::string errno_name(int error);

// Maps an observed socket end to an outcome: ETIMEDOUT -> timeout, ECONNRESET/EPIPE -> reset,
// no error and EOF -> eof, anything else -> error.
ObservedOutcome outcome_of(int so_error, bool eof);

model::Outcome to_model(ExpectedOutcome o);

}  // namespace kah
