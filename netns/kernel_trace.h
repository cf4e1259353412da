// Kernel tracepoints read with perf_event_open(2): what the kernel itself stamps when
// a timer callback runs (timer:timer_expire_entry) and when a TCP socket changes
// state (sock:inet_sock_set_state), on CLOCK_MONOTONIC.
//
// One perf event per tracepoint per online CPU (pid = -1: every task), each with its
// own ring buffer (PERF_SAMPLE_TID | TIME | CPU | RAW, use_clockid = CLOCK_MONOTONIC).
// The layout of a tracepoint's raw record is read from its `format` file in tracefs,
// never assumed. Nothing here touches tracefs' global state (tracing_on, set_event,
// ...): a perf event belongs to its fd and vanishes with it.
//
// Knows tracepoints and their fields, not sockets of a case: matching events to
// connections is harness/evidence/kernel_timing.h.
//
// Threading: KernelTrace is used by one thread at a time (the run's trace reader);
// the parsers are pure.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "netns/fd.h"

namespace kah::netns {

// ---- the format file -------------------------------------------------------------

struct TraceField {
  std::string name;  // "baseclk", "saddr" (an array field's name without "[4]")
  std::string type;  // "unsigned long", "__u8 saddr[4]" as declared, without the name
  std::size_t offset = 0;
  std::size_t size = 0;
  bool is_signed = false;
};

struct TraceFormat {
  std::string name;      // "timer_expire_entry"
  std::uint32_t id = 0;  // the tracepoint's id: perf_event_attr.config
  std::vector<TraceField> fields;
  // The field, or nullptr.
  const TraceField* field(std::string_view name) const;
  // The field; throws std::runtime_error naming the tracepoint when it is absent.
  const TraceField& require(std::string_view name) const;
};

// Parses the text of events/<group>/<name>/format. Throws std::runtime_error on text
// that is not a format file (no ID, a field line without offset or size).
TraceFormat parse_trace_format(std::string_view text);

// Where tracefs is mounted: /sys/kernel/tracing, else /sys/kernel/debug/tracing; empty
// when neither has events/.
std::filesystem::path tracefs_root();

// A field of a raw record as an unsigned integer (1, 2, 4 or 8 bytes, host order).
// Throws std::out_of_range when the record is too short for it.
std::uint64_t read_unsigned(std::span<const std::uint8_t> raw, const TraceField& f);
// Its bytes (an address array).
std::span<const std::uint8_t> read_bytes(std::span<const std::uint8_t> raw, const TraceField& f);

// ---- perf records ------------------------------------------------------------------

// One PERF_RECORD_SAMPLE with sample_type TID | TIME | CPU | RAW.
struct TraceSample {
  std::uint32_t pid = 0;  // the task the event ran in (tgid), 0 for the idle task
  std::uint32_t tid = 0;
  std::uint64_t time_ns = 0;  // CLOCK_MONOTONIC
  std::uint32_t cpu = 0;
  std::vector<std::uint8_t> raw;  // the tracepoint's record, as its format file lays it out
};
// PERF_RECORD_LOST: the ring was full and the kernel dropped this many samples.
struct TraceLost {
  std::uint64_t lost = 0;
};
struct OtherRecord {
  std::uint32_t type = 0;
};
using TraceRecord = std::variant<TraceSample, TraceLost, OtherRecord>;

// Decodes one record (perf_event_header and body, as read from a ring). Throws
// std::runtime_error when its sizes do not add up.
TraceRecord decode_record(std::span<const std::uint8_t> record);

// ---- the events harness cares about --------------------------------------------------

// timer:timer_expire_entry: a timer_list callback about to run. `baseclk` is the
// wheel's clock for the bucket being expired (the jiffy the timer was due in, as the
// wheel rounded it); `now` is jiffies when the callback ran.
struct TimerExpiry {
  std::uint64_t time_ns = 0;  // CLOCK_MONOTONIC, at callback entry
  std::uint32_t cpu = 0;
  std::uint64_t timer = 0;     // the struct timer_list's address
  std::uint64_t function = 0;  // the callback's address
  std::uint64_t now = 0;
  std::uint64_t baseclk = 0;
};

// sock:inet_sock_set_state: a TCP (or other inet) socket changed state. Addresses are
// in network order, IPv4 in the first 4 bytes; ports in host order.
struct SockState {
  std::uint64_t time_ns = 0;  // CLOCK_MONOTONIC
  std::uint32_t cpu = 0;
  std::uint32_t pid = 0;      // the task it ran in: connect()'s caller for SYN_SENT
  std::uint64_t skaddr = 0;   // the struct sock's address
  int oldstate = 0, newstate = 0;  // TCP_ESTABLISHED = 1, SYN_SENT = 2, CLOSE = 7, ...
  std::uint16_t sport = 0, dport = 0;
  std::uint16_t family = 0;    // AF_INET, AF_INET6
  std::uint16_t protocol = 0;  // IPPROTO_TCP = 6
  std::array<std::uint8_t, 16> saddr{}, daddr{};
};

using KernelEvent = std::variant<TimerExpiry, SockState>;

// Turns raw samples of one of the two tracepoints into events, by their formats.
class KernelEventDecoder {
 public:
  KernelEventDecoder(const TraceFormat& timer_expire_entry, const TraceFormat& inet_sock_set_state);
  // nullopt for a sample of another tracepoint (by common_type) or a protocol that is not TCP.
  std::optional<KernelEvent> decode(const TraceSample& s) const;

 private:
  std::uint32_t timer_id_, sock_id_;
  TraceField common_type_;
  TraceField timer_, function_, now_, baseclk_;
  TraceField skaddr_, oldstate_, newstate_, sport_, dport_, family_, protocol_, saddr_, daddr_, saddr6_, daddr6_;
};

// An address in /proc/kallsyms text (the first symbol of that exact name, text
// section); nullopt when absent or hidden (all zeros: kptr_restrict).
std::optional<std::uint64_t> kallsyms_address(std::string_view kallsyms, std::string_view symbol);
std::optional<std::uint64_t> kernel_symbol(std::string_view symbol);  // from /proc/kallsyms

// ---- the perf events themselves ----------------------------------------------------------

// Why tracing cannot run here, with a reason people can act on.
class TraceUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TracepointRequest {
  std::string group, name;  // "timer", "timer_expire_entry"
  std::string filter;       // PERF_EVENT_IOC_SET_FILTER, "" = none; refused filters are dropped
};

// Perf events on named tracepoints on every online CPU, each with a mapped ring.
// Move-only; closing unmaps and closes everything.
class KernelTrace {
 public:
  // Throws TraceUnavailable (no tracefs, the tracepoint missing, perf_event_open
  // refused: not root, perf_event_paranoid, a seccomp filter in a container).
  static KernelTrace open(const std::vector<TracepointRequest>& requests, std::size_t ring_pages = 64);

  KernelTrace(KernelTrace&&) noexcept = default;
  KernelTrace& operator=(KernelTrace&&) noexcept = default;
  KernelTrace(const KernelTrace&) = delete;
  KernelTrace& operator=(const KernelTrace&) = delete;
  ~KernelTrace();

  const std::vector<TraceFormat>& formats() const { return formats_; }
  // Filters that the kernel refused (the events are then filtered in user space).
  const std::vector<std::string>& refused_filters() const { return refused_filters_; }
  // Every ring's fd, for poll(2) (POLLIN once a ring holds wakeup_watermark bytes).
  std::vector<int> fds() const;
  // The online CPUs, each with a ring per tracepoint.
  const std::vector<int>& cpus() const { return cpus_; }
  // Reads every record waiting in every ring and gives it to `each`; returns how many.
  std::size_t drain(const std::function<void(const TraceRecord&)>& each);

 private:
  struct Ring {
    UniqueFd fd;
    void* map = nullptr;
    std::size_t map_bytes = 0;
    Ring() = default;
    Ring(Ring&& o) noexcept;
    Ring& operator=(Ring&& o) noexcept;
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    ~Ring();
  };
  KernelTrace() = default;
  std::vector<TraceFormat> formats_;
  std::vector<std::string> refused_filters_;
  std::vector<int> cpus_;
  std::vector<Ring> rings_;
  std::vector<std::uint8_t> scratch_;  // a record that wraps round the ring's end
};

}  // namespace kah::netns
