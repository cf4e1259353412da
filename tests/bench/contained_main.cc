// kah_contained PROGRAM [ARGS...]: runs PROGRAM in an emulated CI container with
// CAP_NET_ADMIN but not CAP_SYS_ADMIN (tests/integration/contained.h) whose network
// namespace is new, anonymous and has only lo (brought up through the netns
// library); in the current directory, output inherited. Exits with the program's
// exit code. For scripts/local-container.sh; needs root.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "netns/namespace.h"
#include "tests/integration/contained.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: kah_contained PROGRAM [ARGS...]\n");
    return 2;
  }
  char tmpl[] = "/tmp/kah-contained-XXXXXX";
  const int fd = ::mkstemp(tmpl);  // the empty file bound over /proc/timer_list
  if (fd < 0) return 3;
  ::close(fd);
  kah::test::ContainerSpec spec;
  for (int i = 1; i < argc; ++i) spec.argv.emplace_back(argv[i]);
  spec.directory = std::filesystem::current_path();
  spec.empty_file = tmpl;
  const auto net = kah::netns::Namespace::create("emulated-container");
  const auto contained = kah::test::start_contained(net, spec);
  const int code = kah::test::wait_exit(contained.runtime);
  std::filesystem::remove(tmpl);
  return code;
}
