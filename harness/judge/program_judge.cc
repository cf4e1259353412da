#include "harness/judge/program_judge.h"

#include <cmath>
#include <regex>

#include <fmt/format.h>

namespace kah {
namespace {

std::string seconds(double ms) { return fmt::format("{:.3f} s", ms / 1000.0); }

// The program's last lines, quoted, for a message.
std::string quoted_output(const ProgramResult& r, std::size_t n = 5) {
  if (r.output.empty()) return "it printed nothing";
  std::string out = "its last output:";
  for (std::size_t i = r.output.size() > n ? r.output.size() - n : 0; i < r.output.size(); ++i)
    out += fmt::format(" [{} at {}] \"{}\"", r.output[i].stream, seconds(r.output[i].at_ms), r.output[i].text);
  return out;
}

// What times are counted from, for messages: "the fault", or "its connection's last
// received segment (1.249 s before the fault)".
struct Origin {
  std::string name = "the fault";
};

std::string what_it_did(const ProgramResult& r, const Origin& from) {
  if (!r.exit_status) return fmt::format("it was still running at the horizon; {}", quoted_output(r));
  return fmt::format("it exited with status {} at {} after {}; {}", *r.exit_status, seconds(*r.exited_ms), from.name,
                     quoted_output(r));
}

void add(ProgramResult& r, std::string what, std::optional<std::string> problem, std::string fine) {
  ProgramCheck check;
  check.what = std::move(what);
  check.verdict = problem ? Verdict::fail : Verdict::pass;
  check.message = problem ? fmt::format("{}: program {}: {}", r.where.str(), r.name, *problem) : std::move(fine);
  r.checks.push_back(std::move(check));
}

std::optional<std::string> exit_code_problem(const ProgramResult& r, int expected) {
  if (r.exit_status && *r.exit_status == expected) return std::nullopt;
  return fmt::format("expected exit status {}, but {}", expected, what_it_did(r, Origin{}));
}

std::optional<std::string> exit_time_problem(const ProgramResult& r, double within_s, const Origin& from) {
  if (r.exited_ms && *r.exited_ms >= 0 && *r.exited_ms <= 1000 * within_s) return std::nullopt;
  if (r.exited_ms && *r.exited_ms < 0)
    return fmt::format("expected it to exit within {} s after {}, but it exited before it; {}", within_s, from.name,
                       what_it_did(r, from));
  return fmt::format("expected it to exit within {} s after {}, but {}", within_s, from.name, what_it_did(r, from));
}

std::optional<std::string> output_problem(const ProgramResult& r, const ProgramExpectation& e, double horizon_ms,
                                          const Origin& from_what) {
  const std::regex pattern(*e.output);
  const double from = 1000 * e.output_from_s.value_or(0), to = e.output_to_s ? 1000 * *e.output_to_s : horizon_ms;
  std::optional<ProgramLine> outside;
  for (const auto& line : r.output) {
    if (!std::regex_search(line.text, pattern)) continue;
    if (line.at_ms >= from && line.at_ms <= to) return std::nullopt;
    if (!outside) outside = line;
  }
  const std::string window = fmt::format("[{}, {}] after {}", seconds(from), seconds(to), from_what.name);
  if (outside)
    return fmt::format("expected a line matching \"{}\" within {}, but it came at {}: \"{}\"", *e.output, window,
                       seconds(outside->at_ms), outside->text);
  return fmt::format("expected a line matching \"{}\" within {}, but none came; {}", *e.output, window,
                     what_it_did(r, from_what));
}

std::optional<std::string> alive_problem(const ProgramResult& r, bool expected) {
  const bool ran_to_horizon = !r.exit_status;
  if (ran_to_horizon == expected) return std::nullopt;
  return fmt::format("expected it {} at the horizon, but {}", expected ? "still running" : "gone",
                     what_it_did(r, Origin{}));
}

}  // namespace

std::string describe_settings(const SocketSettings& s) {
  const std::string user_timeout = s.user_timeout_ms == 0 ? "off" : fmt::format("{} ms", s.user_timeout_ms);
  if (!s.keepalive) return fmt::format("keepalive off (SO_KEEPALIVE not set), user timeout {}", user_timeout);
  return fmt::format("keepalive idle {} s, interval {} s, count {}, user timeout {}", s.idle_s, s.interval_s, s.count,
                     user_timeout);
}

std::optional<std::string> settings_problem(const ExpectedSettings& expected, const SocketSettings& read) {
  const auto differs = [](std::string_view option, auto claimed, auto actual, std::string_view unit) {
    return fmt::format("{} is {}{}, the configuration claims {}{}", option, actual, unit, claimed, unit);
  };
  if (expected.keepalive && *expected.keepalive != read.keepalive)
    return fmt::format("SO_KEEPALIVE is {}, the configuration claims {}", read.keepalive ? "on" : "off",
                       *expected.keepalive ? "on" : "off");
  if (expected.idle_s && *expected.idle_s != read.idle_s) return differs("TCP_KEEPIDLE", *expected.idle_s, read.idle_s, " s");
  if (expected.interval_s && *expected.interval_s != read.interval_s)
    return differs("TCP_KEEPINTVL", *expected.interval_s, read.interval_s, " s");
  if (expected.count && *expected.count != read.count) return differs("TCP_KEEPCNT", *expected.count, read.count, "");
  if (expected.user_timeout_ms && *expected.user_timeout_ms != read.user_timeout_ms)
    return differs("TCP_USER_TIMEOUT", *expected.user_timeout_ms, read.user_timeout_ms, " ms");
  return std::nullopt;
}

namespace {

// The program's times counted from `by_ms` after the fault began instead.
ProgramResult counted_from(const ProgramResult& r, double by_ms) {
  ProgramResult shifted = r;
  if (shifted.exited_ms) *shifted.exited_ms -= by_ms;
  for (auto& line : shifted.output) line.at_ms -= by_ms;
  return shifted;
}

// A timing check: fails, or is left unjudged when only the fault's slow landing made
// it fail.
template <class Problem>
void add_timed(ProgramResult& r, std::string what, Problem problem, double landing_ms, std::string fine) {
  auto from_begun = problem(r);
  if (from_begun && landing_ms > 0 && !problem(counted_from(r, landing_ms))) {
    ProgramCheck check;
    check.what = std::move(what);
    check.verdict = Verdict::error;
    check.message = fmt::format(
        "{}: program {}: not judged: the fault took {:.1f} ms to take effect, and counted from when it surely had, "
        "the program did as expected; counted from when it began: {}",
        r.where.str(), r.name, landing_ms, *from_begun);
    r.checks.push_back(std::move(check));
    return;
  }
  add(r, std::move(what), std::move(from_begun), std::move(fine));
}

// A timing check that cannot be judged: what it counts from is unknown.
void add_unjudged(ProgramResult& r, std::string what, std::string why) {
  r.checks.push_back({std::move(what), Verdict::error,
                      fmt::format("{}: program {}: not judged: {}", r.where.str(), r.name, std::move(why))});
}

// exits_within_s and the output line, counted from what the case says.
void judge_timing(ProgramResult& r, const ProgramExpectation& e, double horizon_ms, double landing_ms) {
  Origin from;
  ProgramResult view = r;
  if (e.counted_from == CountedFrom::last_received) {
    if (!r.last_received_ms) {
      const std::string why =
          "'counted_from = \"last_received\"', but none of its connections was found to count from";
      if (e.exits_within_s) add_unjudged(r, "exits_within_s", why);
      if (e.output) add_unjudged(r, "output", why);
      return;
    }
    const double before = -*r.last_received_ms;
    from.name = fmt::format("its connection's last received segment ({} {} the fault)", seconds(std::abs(before)),
                            before >= 0 ? "before" : "after");
    view = counted_from(r, *r.last_received_ms);
    horizon_ms += before;
    landing_ms = 0;  // the fault's landing is not what the times count from
  }
  view.checks.clear();
  if (e.exits_within_s)
    add_timed(
        view, "exits_within_s", [&](const ProgramResult& x) { return exit_time_problem(x, *e.exits_within_s, from); },
        landing_ms, view.exited_ms ? fmt::format("exited {} after {}", seconds(*view.exited_ms), from.name) : "");
  if (e.output)
    add_timed(
        view, "output", [&](const ProgramResult& x) { return output_problem(x, e, horizon_ms, from); }, landing_ms,
        fmt::format("a line matched \"{}\"", *e.output));
  for (auto& c : view.checks) r.checks.push_back(std::move(c));
}

}  // namespace

void judge_program(ProgramResult& r, const ProgramExpectation& e, double horizon_ms, double landing_ms) {
  r.checks.clear();
  if (!e.settings.empty()) {
    for (const auto& socket : r.sockets) {
      auto problem = settings_problem(e.settings, socket);
      if (problem)
        problem = fmt::format("its connection {} ({} to {}): {}", socket.connection, socket.local, socket.remote,
                              *problem);
      add(r, "settings", problem, fmt::format("{}: {}", socket.connection, describe_settings(socket)));
    }
  }
  if (e.exit_code) add(r, "exit_code", exit_code_problem(r, *e.exit_code), fmt::format("exit status {}", *e.exit_code));
  if (e.exits_within_s || e.output) judge_timing(r, e, horizon_ms, landing_ms);
  if (e.alive) add(r, "alive", alive_problem(r, *e.alive), *e.alive ? "running at the horizon" : "gone by the horizon");
  r.verdict = Verdict::pass;
  for (const auto& c : r.checks)
    if (c.verdict == Verdict::fail || (c.verdict == Verdict::error && r.verdict == Verdict::pass)) r.verdict = c.verdict;
}

}  // namespace kah
