// The whole of a text file the tests read back (a run's JSON, a program's output).
#pragma once

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

namespace kah::test {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// From a run's console output, what a failed test should show: each case that did
// not pass or skip, with its lines, and the summary from "N cases:" on. A whole
// library's output is too long for a CI log's excerpt.
inline std::string not_passed(const std::string& run_output) {
  static const std::regex case_line(R"(^ {0,2}(PASS|FAIL|ERROR|SKIP|INTR|DOUBT) )");
  std::istringstream in(run_output);
  std::string line, out;
  bool keep = false, summary = false;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, case_line)) keep = m[1] != "PASS" && m[1] != "SKIP";
    if (line.find(" cases: ") != std::string::npos) summary = true;
    if (keep || summary) out += line + "\n";
  }
  return out.empty() ? run_output : out;
}

}  // namespace kah::test
