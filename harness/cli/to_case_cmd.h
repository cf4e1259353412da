// `kaharness analyze CAPTURE.pcap --to-case FILE.toml [--flow SPEC]`: a runnable case
// from one flow of a field capture (the inference is harness/evidence/to_case.h). The
// case is loaded back and checked against the timing model before it is written, so
// what is written runs; what was inferred, and from which frames, is printed and
// written as comments in the case.
//
// Exit 0 when FILE was written; 2 when the capture cannot be read, several flows and no
// --flow (they are listed), a --flow that names none, a flow that does not show what a
// case needs (no probes, no idle time, no ending keepalive explains), or FILE cannot be
// written.
#pragma once

#include <string>

namespace kah {

int to_case_command(const std::string& capture, const std::string& case_file, const std::string& flow);

}  // namespace kah
