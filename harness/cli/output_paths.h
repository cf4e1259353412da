// The outputs of `kaharness run` (--json, --junit, --report, --pcap), checked before
// anything is built: a run of many minutes must not end in "cannot write". Checking
// leaves nothing behind: a file that does not exist yet is created and removed
// again, a folder that does not exist is probed in its nearest existing parent.
//
// And the exit code when a case failed and an output could not be written at the
// end all the same (a full disk, a folder removed meanwhile): see final_exit_code.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kah {

struct OutputPaths {
  std::string json, junit;  // files
  std::string report;       // folder: DIR/index.html
  std::string pcap;         // folder: DIR/<case>/...
  bool force = false;       // --force: --report may write into a folder that holds files
};

// One problem with one path: "--json /proc/x.json: cannot create the file: No such file or directory".
struct OutputProblem {
  std::string option;  // "--json"
  std::string path;
  std::string why;
  std::string str() const;
};

// Every problem, in option order (--json, --junit, --report, --pcap); empty when all
// can be written. An empty path is not asked for and not checked.
std::vector<OutputProblem> check_output_paths(const OutputPaths& paths);

// Precedence when a run ends: a stopped run (130/143) over a failed case (1) over
// an output that could not be written (2) over success (0). A failed case is never
// hidden by a write error; the write error is still printed.
int final_exit_code(int interrupted_code, int run_code, bool outputs_written);

}  // namespace kah
