// Judging a real program ([[program]]): the settings read from its sockets against
// what its configuration claims, and what it did (exit, output, still running)
// against [program.expect]. A failure quotes the program's own output. Pure: no I/O.
#pragma once

#include <optional>
#include <string>

#include "harness/case/case.h"
#include "harness/judge/result.h"

namespace kah {

// "keepalive idle 2 s, interval 1 s, count 3, user timeout off".
std::string describe_settings(const SocketSettings& s);

// The first setting that differs from `expected`, as a sentence naming it
// ("TCP_KEEPINTVL is 75 s, the configuration claims 1 s"); nullopt when all match.
std::optional<std::string> settings_problem(const ExpectedSettings& expected, const SocketSettings& read);

// Fills result.checks and result.verdict from `expect`. `horizon_ms`: how long after
// the fault the program was watched. Times in `result` are from the fault, i.e. from
// when the harness began to apply it; `landing_ms` is how long applying it took (the
// nft commit acknowledged, the link down): the fault took effect somewhere in
// [0, landing_ms]. A timing check (exits_within_s, output) that fails counted from 0
// but holds counted from landing_ms is the harness's doing, not the program's: its
// verdict is error, naming both instants. One that fails both ways fails.
// With `counted_from = "last_received"` the timing checks count from
// result.last_received_ms instead (the landing does not matter then); without it they
// are errors: nothing to count from.
void judge_program(ProgramResult& result, const ProgramExpectation& expect, double horizon_ms,
                   double landing_ms = 0);

}  // namespace kah
