// What `kaharness predict` prints: the timing model's prediction in words (the
// textbook figure, the real window on this kernel and why, probe by probe) and as
// JSON. Pure formatting of model::Input and model::Prediction; no I/O.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "harness/model/timing.h"

namespace kah {

// A duration for people: "2 h 11 min 15 s", "2 min 0.832 s", "3.072 s", "250 ms".
std::string human_duration(double ms);

// Several lines of text, each ending in '\n'.
std::string describe_prediction(const model::Input& input, const model::Prediction& prediction);

// Keys: outcome, nominal_ms, earliest_ms, latest_ms (null if unbounded), rst_sent,
// hz (null if unknown), hz_values, probes [{index, nominal_ms, earliest_ms,
// latest_ms, certain}], retransmissions (same shape), steps, and the settings
// (keepalive, peer, traffic).
nlohmann::json prediction_json(const model::Input& input, const model::Prediction& prediction);

}  // namespace kah
