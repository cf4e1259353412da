// The timing threads ask for SCHED_FIFO: granted as root, refused (and said why) where
// the process may not, and off with KAHARNESS_NO_REALTIME=1.
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include <catch2/catch.hpp>

#include "harness/clock/wakeup_priority.h"

namespace {

// The class a fresh thread ends up in after asking, and what wakeup_priority() says then.
std::pair<int, std::string> ask_in_a_thread() {
  int policy = -1;
  std::thread([&] {
    kah::raise_wakeup_priority();
    sched_param param{};
    pthread_getschedparam(pthread_self(), &policy, &param);
  }).join();
  return {policy, kah::wakeup_priority()};
}

}  // namespace

TEST_CASE("raise_wakeup_priority: SCHED_FIFO when allowed, else normal with the reason", "[clock]") {
  // Allowed or not depends on the process (root, CAP_SYS_NICE, RLIMIT_RTPRIO): the
  // thread's class and the text must agree either way.
  const auto [policy, text] = ask_in_a_thread();
  if (policy == SCHED_FIFO) {
    CHECK((text == "SCHED_FIFO 10" || text.rfind("normal (", 0) == 0));  // an earlier thread may have been refused
  } else {
    CHECK(policy == SCHED_OTHER);
    CHECK(text.find("SCHED_FIFO refused") != std::string::npos);
  }
  if (geteuid() == 0) {
    rlimit rt{};
    getrlimit(RLIMIT_RTPRIO, &rt);
    INFO("root: SCHED_FIFO is refused only without CAP_SYS_NICE");
    CHECK((policy == SCHED_FIFO || rt.rlim_cur < static_cast<rlim_t>(kah::kWakeupPriority)));
  }

  // Off: the thread stays normal, and the run says so (a refusal is never overwritten).
  setenv("KAHARNESS_NO_REALTIME", "1", 1);
  const auto [off_policy, off_text] = ask_in_a_thread();
  unsetenv("KAHARNESS_NO_REALTIME");
  CHECK(off_policy == SCHED_OTHER);
  CHECK(off_text.rfind("normal (", 0) == 0);
  CHECK(kah::wakeup_priority().rfind("normal (", 0) == 0);
}
