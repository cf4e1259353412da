// A real program under test ([[program]] in a case file): a command run inside one
// host's namespace, what makes it ready, which of its connections are judged, and
// what it must do. Plain values, read by case.cc; the run layer starts them
// (harness/run/programs.h). ProgramSpec itself is in case.h,
// next to the other sections.
//
// Also the pure helpers the case and the run share: placeholder expansion of the
// command ("{server}", "{port}", ...), splitting a command string into argv without
// a shell, finding the executable, and the Debian package that provides it.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kah {

// When a started program counts as ready; every condition given must hold, in
// this order: the port listens, a line matched, then the delay passed.
struct ReadyCondition {
  std::optional<int> port;          // a TCP socket listens on this port in the program's namespace
  std::optional<std::string> line;  // a line of stdout or stderr matches this regex (ECMAScript, search)
  double delay_ms = 0;              // then this long
  double timeout_s = 10;            // not ready by then: the case is an error
};

// A keepalive setting the program claims to put on its sockets ([program.expect]
// settings): each key given is compared with what the socket reports.
struct ExpectedSettings {
  std::optional<bool> keepalive;    // SO_KEEPALIVE
  std::optional<int> idle_s;        // TCP_KEEPIDLE
  std::optional<int> interval_s;    // TCP_KEEPINTVL
  std::optional<int> count;         // TCP_KEEPCNT
  std::optional<int> user_timeout_ms;  // TCP_USER_TIMEOUT (0 = off)
  bool empty() const { return !keepalive && !idle_s && !interval_s && !count && !user_timeout_ms; }
};

// What a program's times are counted from ([program.expect] counted_from).
enum class CountedFrom {
  fault,          // when the harness began to apply the fault (the default)
  last_received,  // the last segment its connections received before the fault: when its
                  // peer fell silent for it, where keepalive's idle time begins. The
                  // earliest of them when it has several.
};

// What the program must do ([program.expect]); times in seconds after the fault, or
// after what `counted_from` names.
struct ProgramExpectation {
  ExpectedSettings settings;
  std::optional<int> exit_code;          // it exits with this code (before the horizon)
  std::optional<double> exits_within_s;  // it exits at most this long after the fault
  std::optional<std::string> output;     // a line of its stdout or stderr matches (regex, search)
  // ... inside [from, to] s after the fault (default: any time after the fault).
  std::optional<double> output_from_s, output_to_s;
  std::optional<bool> alive;  // still running at the horizon (true) or not (false)
  CountedFrom counted_from = CountedFrom::fault;  // what exits_within_s and output_within_s count from
};


// The values placeholders stand for, for one program. Expansion: "{name}" is
// replaced, "{{" and "}}" are literal braces.
using Placeholders = std::map<std::string, std::string>;

// The names a command may use, in the order the README lists them.
const std::vector<std::string>& placeholder_names();

// `text` with every placeholder replaced; throws std::invalid_argument naming an
// unknown placeholder or an unclosed brace.
std::string expand_placeholders(std::string_view text, const Placeholders& values);

// The placeholders used in `text` (to check them when the case is loaded); throws
// std::invalid_argument for an unclosed brace.
std::vector<std::string> placeholders_in(std::string_view text);

// Splits a command line into words as a shell would without running one: blanks
// separate, '...' and "..." quote (a backslash escapes the next character outside
// single quotes). No variables, globs or redirections. Throws std::invalid_argument
// for an unclosed quote.
std::vector<std::string> split_command(std::string_view line);

// Extra arguments for named programs (`kaharness run --program-arg NAME=ARG`, in
// order): appended to that program's command, placeholders expanded like its own.
using ProgramArgs = std::map<std::string, std::vector<std::string>>;

// "redis-server=--loglevel" -> {"redis-server", "--loglevel"} (split at the first
// '='; the argument may be empty or hold more '='). Throws std::invalid_argument when
// there is no '=' or no name before it.
std::pair<std::string, std::string> parse_program_arg(std::string_view text);

// The Debian package that installs `executable` (its file name), or "" when unknown.
std::string debian_package_of(std::string_view executable);

// `name` as the program will be run: a name with a '/' as given (relative to the
// case file's folder when relative), else the first match on `path_list` (a PATH
// value). nullopt when it does not exist or is not executable.
std::optional<std::filesystem::path> find_executable(const std::string& name, const std::string& path_list,
                                                     const std::filesystem::path& case_dir);

// "cannot find 'redis-server' on PATH; install the Debian package redis-server".
std::string missing_executable_message(const std::string& name);

}  // namespace kah
