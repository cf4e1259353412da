// `kaharness margins FILE.json... [--html FILE]`: reads result JSONs (one per run, as
// `run --json` writes them; scripts/soak.sh), prints every false verdict and the
// smallest margin to each window edge per case and connection, and writes the margins
// page (harness/report/margins.h). Exit 0 when every connection of every run passed,
// 1 otherwise, 2 when a file cannot be read or is not a result.
#pragma once

#include <string>
#include <vector>

namespace kah {

int margins_command(const std::vector<std::string>& files, const std::string& html);

}  // namespace kah
