// The kaharness command line: run, predict, check-env, gc. Returns the contract's
// exit code (0 pass, 1 a case failed, 2 bad input, 3 environment).
#pragma once

namespace kah {
int cli_main(int argc, const char* const* argv);
}
