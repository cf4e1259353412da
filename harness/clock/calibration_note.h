// Why a run's windows are not calibrated to the kernel's jiffies, said in the
// summary and the JSON instead of silently widening every window: --no-calibration,
// an unknown HZ, or /proc/timer_list unreadable, which in a user namespace (a
// rootless container: uid 0 inside, not the machine's root) is always the case.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kah {

// Whether /proc/self/uid_map's text describes a user namespace other than the
// initial one (which maps all of 0..4294967294 onto itself: "0 0 4294967295").
bool in_user_namespace(std::string_view uid_map);
// The same for this process.
bool in_user_namespace();

// The reason, "" when nothing prevents it (then a failed measurement is the reason).
std::string why_not_calibrated(bool requested, std::optional<int> hz, bool user_namespace);

}  // namespace kah
