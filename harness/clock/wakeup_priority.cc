#include "harness/clock/wakeup_priority.h"

#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

namespace kah {
namespace {

std::mutex status_mutex;
std::string status = "normal (not asked)";

void record(std::string text) {
  std::lock_guard lock(status_mutex);
  // The first refusal is what matters; a later success of another thread does not hide it.
  if (status.rfind("normal (not asked)", 0) == 0 || status.rfind("SCHED_FIFO", 0) == 0) status = std::move(text);
}

}  // namespace

void raise_wakeup_priority() {
  if (const char* off = std::getenv("KAHARNESS_NO_REALTIME"); off != nullptr && std::strcmp(off, "1") == 0) {
    record("normal (KAHARNESS_NO_REALTIME=1)");
    return;
  }
  sched_param param{};
  param.sched_priority = kWakeupPriority;
  const int err = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
  if (err == 0) {
    record(fmt::format("SCHED_FIFO {}", kWakeupPriority));
    return;
  }
  record(err == EPERM ? "normal (SCHED_FIFO refused: no CAP_SYS_NICE and RLIMIT_RTPRIO too low)"
                      : fmt::format("normal (SCHED_FIFO refused: {})", std::strerror(err)));
}

std::string wakeup_priority() {
  std::lock_guard lock(status_mutex);
  return status;
}

}  // namespace kah
