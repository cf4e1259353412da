#include "harness/report/junit.h"

#include <cmath>

#include <fmt/format.h>

#include "harness/evidence/probe_check.h"
#include "harness/report/xml.h"

namespace kah {
namespace {

// Seconds as the schema's SUREFIRE_TIME wants them: digits and a dot, never negative.
std::string seconds(double ms) {
  if (!std::isfinite(ms) || ms < 0) ms = 0;
  return fmt::format("{:.3f}", ms / 1000.0);
}

// The body of a failure: what a person needs to see in the CI page without the log.
std::string failure_details(const ConnectionResult& r) {
  std::string out = r.message + "\n";
  out += fmt::format("expected: {} {}\n", to_string(r.expected.outcome), evidence::window_text(r.expected.window));
  if (r.expected.deadline_ms) out += fmt::format("deadline: {:.1f} ms\n", *r.expected.deadline_ms);
  const auto& o = r.observed;
  out += fmt::format("observed: {}{} at {:.1f} ms after {} probe{}\n", to_string(o.outcome),
                     o.errno_name.empty() ? "" : fmt::format(" ({})", o.errno_name), o.at_ms, o.probes,
                     o.probes == 1 ? "" : "s");
  if (!r.prediction.steps.empty()) {
    out += "model:\n";
    for (const auto& step : r.prediction.steps) out += fmt::format("  {}\n", step);
  }
  return out;
}

struct Suite {
  int tests = 0;
  int failures = 0;
  int errors = 0;
  int skipped = 0;
  std::string body;
};

void add_testcase(Suite& s, const std::string& classname, const std::string& name, double time_ms,
                  const std::string& inner) {
  ++s.tests;
  s.body += fmt::format("    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"", xml_attr(classname), xml_attr(name),
                        seconds(time_ms));
  s.body += inner.empty() ? "/>\n" : fmt::format(">\n{}    </testcase>\n", inner);
}

Suite suite_of(const CaseResult& c) {
  Suite s;
  bool case_error_shown = false;
  for (const auto& r : c.connections) {
    std::string inner;
    switch (r.verdict) {
      case Verdict::pass:
        break;
      case Verdict::fail:
        ++s.failures;
        inner = fmt::format("      <failure message=\"{}\">{}</failure>\n", xml_attr(r.message),
                            xml_text(failure_details(r)));
        break;
      case Verdict::error: {
        ++s.errors;
        const std::string& why = r.message.empty() ? c.error : r.message;
        case_error_shown = case_error_shown || why == c.error;
        inner = fmt::format("      <error message=\"{}\">{}</error>\n", xml_attr(why), xml_text(why));
        break;
      }
      case Verdict::skip:
      case Verdict::not_judged:   // not decided: the machine held the kernel
      case Verdict::interrupted:  // not decided: the run was stopped
        ++s.skipped;
        inner = r.message.empty() ? "      <skipped/>\n"
                                  : fmt::format("      <skipped message=\"{}\"/>\n", xml_attr(r.message));
        break;
    }
    add_testcase(s, c.name, r.name, r.observed.at_ms, inner);
  }
  for (const auto& p : c.programs) {
    std::string inner;
    if (p.verdict == Verdict::fail) {
      ++s.failures;
      std::string messages;
      for (const auto& check : p.checks)
        if (check.verdict == Verdict::fail) messages += (messages.empty() ? "" : "\n") + check.message;
      inner = fmt::format("      <failure message=\"{}\">{}</failure>\n", xml_attr(messages), xml_text(messages));
    }
    add_testcase(s, c.name, "program " + p.name, p.exited_ms.value_or(0), inner);
  }
  // A case that could not run (bad environment, setup failure) still shows up as one
  // errored test, so CI does not count it as "no tests".
  if (!c.error.empty() && !case_error_shown) {
    ++s.errors;
    add_testcase(s, c.name, c.name, c.wall_ms,
                 fmt::format("      <error message=\"{}\">{}</error>\n", xml_attr(c.error), xml_text(c.error)));
  } else if (c.connections.empty() && c.verdict == Verdict::skip) {
    ++s.skipped;
    add_testcase(s, c.name, c.name, 0,
                 c.reason.empty() ? "      <skipped/>\n"
                                  : fmt::format("      <skipped message=\"{}\"/>\n", xml_attr(c.reason)));
  } else if (c.connections.empty() && c.verdict == Verdict::interrupted) {
    ++s.skipped;
    add_testcase(s, c.name, c.name, 0, "      <skipped message=\"the run was interrupted before this case started\"/>\n");
  }
  return s;
}

}  // namespace

std::string junit_xml(const RunResult& run) {
  std::string suites;
  int tests = 0, failures = 0, errors = 0;
  double time_ms = 0;
  const std::string properties = fmt::format(
      "    <properties>\n"
      "      <property name=\"kernel\" value=\"{}\"/>\n"
      "      <property name=\"hz\" value=\"{}\"/>\n"
      "      <property name=\"hz_source\" value=\"{}\"/>\n"
      "    </properties>\n",
      xml_attr(run.kernel), run.hz ? std::to_string(*run.hz) : "unknown", xml_attr(run.hz_source));
  for (const auto& c : run.cases) {
    const Suite s = suite_of(c);
    tests += s.tests;
    failures += s.failures;
    errors += s.errors;
    time_ms += c.wall_ms;
    suites += fmt::format(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\" file=\"{}\">\n"
        "{}{}  </testsuite>\n",
        xml_attr(c.name), s.tests, s.failures, s.errors, s.skipped, seconds(c.wall_ms), xml_attr(c.file), properties,
        s.body);
  }
  // The run's wall time when known (cases may run in parallel); else the sum of the cases.
  const double total_ms = run.wall_ms > 0 ? run.wall_ms : time_ms;
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<testsuites name=\"kaharness\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{}\">\n{}</testsuites>\n",
      tests, failures, errors, seconds(total_ms), suites);
}

}  // namespace kah
