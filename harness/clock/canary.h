// The tick phase without /proc/timer_list (containers mask it, non-root cannot read it):
// watch the kernel's own timers fire. A canary namespace (anonymous, loopback only,
// nothing outside it is touched) holds a few keepalive connections to a healthy peer;
// each keepalive timer fires in the timer softirq of the tick whose jiffy reaches its
// wheel bucket, and the probe it sends is stamped by the kernel as it leaves (an
// AF_PACKET socket on the namespace's loopback: the tap's CLOCK_REALTIME stamp, turned
// into CLOCK_MONOTONIC). JiffyClock::from_timer_firings() turns them into the tick's
// phase and jiffies modulo the timers' granularity; the creation stamp of an address
// added to the canary's loopback then gives jiffies itself.
//
// Cost: the longest timer watched (the shortest whole-second keepalive idle that lands
// on wheel level 2, 64 jiffies: 3 s at HZ=250, 1 s at HZ=1000, 6 s at HZ=100), about
// that long once per run. Needs CAP_NET_ADMIN/CAP_SYS_ADMIN (a namespace) and
// CAP_NET_RAW in it, which a run has. Blocking; call from one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/clock/jiffies.h"

namespace kah {

// When the kernel read jiffies for something the canary created (an IPv6 address on
// its loopback: ifa_cacheinfo.cstamp, in hundredths of a second since boot counted in
// jiffies), between two CLOCK_MONOTONIC instants: with the firings' jiffies modulo 64,
// that is jiffies itself (JiffyClock::anchored).
struct JiffiesStamp {
  std::int64_t from_ns = 0;
  std::int64_t to_ns = 0;
  std::uint32_t hundredths = 0;
};

struct CanaryResult {
  std::vector<TimerFiring> firings;
  std::optional<JiffiesStamp> stamp;
  std::string error;  // why there are none, for people
};

// Where the canary's connections live: a namespace of its own (where it may add the
// address whose stamp gives jiffies), or the process's own namespace (the local
// backend: loopback, nothing added, so jiffies are known modulo 64 only).
enum class CanaryPlace { own_namespace, here };

// Opens the canary, waits for its timers to fire, returns the firings seen.
CanaryResult watch_keepalive_firings(int hz, CanaryPlace place = CanaryPlace::own_namespace);

// The run's jiffies calibration: /proc/timer_list when it can be read and fits (about
// 0.3 s), else the canary's timer firings (a few seconds), else none. `note` says why
// a method was passed over, and what the evidence was.
struct CalibrationChoice {
  std::optional<JiffyClock> clock;
  std::string note;
};
CalibrationChoice calibrate_jiffies(int hz, CanaryPlace place = CanaryPlace::own_namespace);

}  // namespace kah
