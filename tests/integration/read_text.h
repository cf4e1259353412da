// The whole of a text file the tests read back (a run's JSON, a program's output).
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace kah::test {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace kah::test
