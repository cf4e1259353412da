// Calls the command line in-process, as `kaharness ARGS...` would run: for unit tests
// of the CLI's own checks (those that exit before anything is built).
#pragma once

#include <string>
#include <vector>

#include "harness/cli/cli.h"

namespace kah::test {

// kah::cli_main with `args` after the program name; its exit code.
inline int cli(std::vector<std::string> args) {
  args.insert(args.begin(), "kaharness");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return kah::cli_main(static_cast<int>(argv.size()), argv.data());
}

}  // namespace kah::test
