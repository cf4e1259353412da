#include <csignal>

#include "harness/cli/cli.h"

int main(int argc, char** argv) {
  // A write to a connection the kernel has already ended must fail with EPIPE (the
  // run reports it against that connection), not kill the harness: a run in a slow
  // QEMU guest died of SIGPIPE (exit 141) with its results unwritten.
  std::signal(SIGPIPE, SIG_IGN);
  return kah::cli_main(argc, argv);
}
