#include "harness/sysctl/sysctl_file.h"

#include <fmt/format.h>

namespace kah::sysctl {
namespace {

std::string_view trim(std::string_view s) {
  const auto space = " \t\r\f\v";
  const auto first = s.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

}  // namespace

std::string Where::str() const { return fmt::format("{}:{}", file, line); }

std::string Problem::str() const { return fmt::format("{}: {}: {}", where.str(), error ? "error" : "warning", message); }

std::string normalize_key(std::string_view key) {
  std::string out(key);
  const auto sep = out.find_first_of("./");
  if (sep == std::string::npos || out[sep] == '.') return out;
  for (char& c : out) c = c == '/' ? '.' : (c == '.' ? '/' : c);
  return out;
}

bool has_glob(std::string_view key) { return key.find_first_of("*?[") != std::string_view::npos; }

ParsedFile parse_sysctl_text(std::string_view text, const std::string& file) {
  ParsedFile out;
  int number = 0;
  while (!text.empty() || number == 0) {
    const auto end = text.find('\n');
    const std::string_view raw = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++number;
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') {
      if (text.empty()) break;
      continue;
    }
    const Where where{file, number};
    const auto eq = line.find('=');
    std::string_view key = trim(line.substr(0, eq));
    const bool ignore = !key.empty() && key.front() == '-';
    if (ignore) key = trim(key.substr(1));
    if (eq == std::string_view::npos || key.empty()) {
      out.problems.push_back({where,
                              eq == std::string_view::npos
                                  ? fmt::format("expected 'key = value', found '{}' (no '=')", line)
                                  : std::string("expected a key before '='"),
                              !ignore});
    } else {
      out.assignments.push_back({normalize_key(key), std::string(trim(line.substr(eq + 1))), ignore, where});
    }
    if (text.empty()) break;
  }
  return out;
}

}  // namespace kah::sysctl
