#include "harness/clock/calibration_note.h"

#include <fstream>
#include <sstream>

namespace kah {

bool in_user_namespace(std::string_view uid_map) {
  std::istringstream in{std::string(uid_map)};
  unsigned long long inside = 0, outside = 0, count = 0;
  if (!(in >> inside >> outside >> count)) return false;  // unreadable: assume the initial namespace
  unsigned long long more = 0;
  const bool single = !(in >> more);
  return !(single && inside == 0 && outside == 0 && count == 4294967295ULL);
}

bool in_user_namespace() {
  std::ifstream f("/proc/self/uid_map");
  std::stringstream text;
  text << f.rdbuf();
  return in_user_namespace(text.str());
}

std::string why_not_calibrated(bool requested, std::optional<int> hz, bool user_namespace) {
  if (!requested) return "--no-calibration (phase-blind windows, wider)";
  if (!hz) return "HZ unknown (phase-blind windows, wider)";
  if (user_namespace)
    return "running in a user namespace, where /proc/timer_list cannot be read (phase-blind windows, wider)";
  return "/proc/timer_list could not be read or measured (needs root; phase-blind windows, wider)";
}

}  // namespace kah
