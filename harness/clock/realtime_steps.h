// Steps of the realtime clock, and capture stamps placed across them.
//
// The kernel stamps captured frames and received segments (AF_PACKET, SO_TIMESTAMPNS)
// in CLOCK_REALTIME only; the harness times everything else in CLOCK_MONOTONIC. One
// offset between the two is right until something steps the realtime clock
// (settimeofday, clock_settime, adjtimex ADJ_SETOFFSET: a VM platform's guest agent,
// chrony's makestep, a leap second). Measured here: a fresh clone's CI run saw the
// clock step by +17.5 ms mid-case, and with one offset every stamp from before the step
// moved by that much: an EOF read at 1000.3 ms was "caused" by a FIN mapped to 1005.2
// ms, and 12 connections failed at once.
//
// So the harness keeps a log of the offsets it has seen (StepLog): each entry is an
// offset and the bracket in which it took over (after the last reading that still saw
// the previous one, by the first reading that saw it). A stamp is placed by trying each
// offset: the candidate instant must fall inside that offset's time and before the
// stamp was read. One candidate: placed exactly. More than one: the stamp is
// ambiguous (a backward step, or a forward step shorter than the bracket), and the
// connections it times are not judged on it (runner: verdict not_judged, naming the step).
//
// Stamps are then expressed as "run realtime": CLOCK_MONOTONIC plus the offset at the
// run's start (RealtimeSteps::reference()). Without a step that is the kernel's stamp
// unchanged, to the nanosecond; with one, every stamp of the run stays comparable.
//
// RealtimeSteps is the process's log: check() reads the offset again (a few vDSO
// reads, ~1 us) and is called after every capture drain and before placing a stamp;
// watch() adds a thread that wakes when the kernel reports a step (a timerfd with
// TFD_TIMER_CANCEL_ON_SET) and every 10 ms otherwise (1 ms for 10 s after a step:
// steps come in bursts), which keeps the brackets short.
// Thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "harness/clock/clock.h"

namespace kah {

// One offset in force from some instant on.
struct OffsetSpan {
  ClockOffset offset;
  // It took over after this CLOCK_MONOTONIC instant (the last reading of the previous
  // offset) and by this one (the first reading of it). The first span: -infinity.
  std::int64_t after_ns = std::numeric_limits<std::int64_t>::min();
  std::int64_t by_ns = std::numeric_limits<std::int64_t>::min();
};

// Where a realtime stamp lies on CLOCK_MONOTONIC.
struct PlacedStamp {
  std::int64_t monotonic_ns = 0;
  bool ambiguous = false;  // more than one offset could have stamped it (or none)
};

// A step of the realtime clock, for messages and the JSON.
struct ClockStep {
  std::int64_t by_ns = 0;           // how far the offset moved (+: realtime jumped ahead)
  std::int64_t after_ns = 0;        // it happened after this CLOCK_MONOTONIC instant
  std::int64_t no_later_ns = 0;     // and by this one
  std::string describe() const;     // "+17.500 ms between CLOCK_MONOTONIC 1234.567 and 1236.001 ms"
};

// The offsets seen, oldest first. A value type; not thread-safe by itself.
class StepLog {
 public:
  // `first` read at or after `read_from_ns` (CLOCK_MONOTONIC): a step seen by the next
  // reading happened after that instant. Unknown (the default): after -infinity, so
  // every stamp before that step is ambiguous.
  explicit StepLog(ClockOffset first, std::int64_t read_from_ns = std::numeric_limits<std::int64_t>::min());

  // A reading of the offset taken between two CLOCK_MONOTONIC instants. Records a new
  // span when it moved beyond the two readings' error (plus 1 us); returns whether it
  // did. Readings come in the order they were taken.
  bool observe(std::int64_t begun_ns, std::int64_t done_ns, const ClockOffset& reading);
  // The instant a realtime stamp was taken, knowing it was read by `read_by_ns`
  // (the log must have been observed at or after read_by_ns).
  PlacedStamp place(std::int64_t realtime_ns, std::int64_t read_by_ns) const;

  const ClockOffset& first() const { return spans_.front().offset; }
  const std::vector<OffsetSpan>& spans() const { return spans_; }
  std::vector<ClockStep> steps() const;

 private:
  std::vector<OffsetSpan> spans_;
  std::int64_t last_reading_ns_ = std::numeric_limits<std::int64_t>::min();
};

// The process's log.
class RealtimeSteps {
 public:
  static RealtimeSteps& process();

  // The offset when the log began: run realtime = CLOCK_MONOTONIC + this.
  ClockOffset reference() const;
  double reference_ms() const { return static_cast<double>(reference().realtime_minus_monotonic_ns) / 1e6; }
  // Reads the offset now and logs a step if it moved. Returns the reading's instant.
  std::int64_t check();
  // The log as of a check made now: places the stamps read before this call.
  struct Checked {
    std::optional<StepLog> log;  // only once the clock has stepped: no copy per drain before
    std::int64_t read_by_ns = 0;
    // A kernel realtime stamp in run realtime ns; `ambiguous` set when it cannot be
    // placed (left unchanged otherwise).
    std::int64_t to_run_realtime(std::int64_t realtime_ns, bool& ambiguous) const;
    bool stepped() const { return log.has_value(); }
  };
  Checked checked();
  // Steps seen since the log began, and since a CLOCK_MONOTONIC instant.
  std::vector<ClockStep> steps(std::int64_t since_ns = std::numeric_limits<std::int64_t>::min()) const;
  std::size_t step_count() const;
  // Starts the watching thread (once; later calls do nothing). Call it after the
  // process has chosen its namespaces: a user namespace must be entered while the
  // process is single-threaded.
  void watch();

 private:
  RealtimeSteps();
  void watch_loop(std::stop_token stop);

  mutable std::mutex mutex_;
  StepLog log_;
  std::jthread watcher_;
};

}  // namespace kah
