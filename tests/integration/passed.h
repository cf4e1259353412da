// The verdicts an integration test accepts from a real run: pass, or not judged (a
// connection that came late while the machine measurably held the kernel, which the
// product keeps out of red: judge.h, mark_not_judged). Any other verdict fails the
// test. A not-judged one is written to the test's log as a warning, with its reason.
#pragma once

#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "harness/judge/result.h"

namespace kah::test {

inline bool passed_or_held(Verdict v, const std::string& message) {
  if (v == Verdict::not_judged) WARN("not judged, not red: " << message);
  return v == Verdict::pass || v == Verdict::not_judged;
}

// A case or connection of the result JSON; a case's reasons are its connections' messages.
inline bool passed_or_held(const nlohmann::json& k) {
  const std::string v = k.value("verdict", "");
  if (v == "not-judged") {
    std::string why = k.value("message", "");
    if (k.contains("connections"))
      for (const auto& r : k["connections"])
        if (r.value("verdict", "") == "not-judged") why += r.value("message", "") + "\n";
    WARN("not judged, not red: " << why);
  }
  return v == "pass" || v == "not-judged";
}

}  // namespace kah::test
