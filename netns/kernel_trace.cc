#include "netns/kernel_trace.h"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace kah::netns {

// ---- the format file -------------------------------------------------------------

const TraceField* TraceFormat::field(std::string_view wanted) const {
  for (const auto& f : fields)
    if (f.name == wanted) return &f;
  return nullptr;
}

const TraceField& TraceFormat::require(std::string_view wanted) const {
  if (const auto* f = field(wanted)) return *f;
  throw std::runtime_error(fmt::format("tracepoint {} has no field {}", name, wanted));
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// "offset:8" in "field:void * timer;\toffset:8;\tsize:8;\tsigned:0;"
std::optional<std::uint64_t> attribute(std::string_view line, std::string_view key) {
  const auto at = line.find(fmt::format("{}:", key));
  if (at == std::string_view::npos) return std::nullopt;
  auto rest = line.substr(at + key.size() + 1);
  rest = rest.substr(0, rest.find(';'));
  rest = trim(rest);
  if (rest.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : rest) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

// "void * timer" -> ("void *", "timer"); "__u8 saddr[4]" -> ("__u8 [4]", "saddr").
std::pair<std::string, std::string> split_declaration(std::string_view decl) {
  decl = trim(decl);
  std::string suffix;
  if (!decl.empty() && decl.back() == ']') {
    const auto open = decl.rfind('[');
    suffix = std::string(decl.substr(open));
    decl = trim(decl.substr(0, open));
  }
  std::size_t start = decl.size();
  while (start > 0) {
    const char c = decl[start - 1];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) break;
    --start;
  }
  auto type = std::string(trim(decl.substr(0, start)));
  if (!suffix.empty()) type += " " + suffix;
  return {type, std::string(decl.substr(start))};
}

}  // namespace

TraceFormat parse_trace_format(std::string_view text) {
  TraceFormat f;
  bool have_id = false;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto end = text.find('\n', pos);
    const auto line = trim(text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
    pos = end == std::string_view::npos ? text.size() + 1 : end + 1;
    if (line.starts_with("name:")) {
      f.name = std::string(trim(line.substr(5)));
    } else if (line.starts_with("ID:")) {
      const auto id = attribute(line, "ID");
      if (!id) throw std::runtime_error(fmt::format("format file: bad ID line '{}'", line));
      f.id = static_cast<std::uint32_t>(*id);
      have_id = true;
    } else if (line.starts_with("field:")) {
      const auto decl = line.substr(6, line.find(';') - 6);
      const auto offset = attribute(line, "offset");
      const auto size = attribute(line, "size");
      if (!offset || !size) throw std::runtime_error(fmt::format("format file: field without offset or size '{}'", line));
      TraceField field;
      std::tie(field.type, field.name) = split_declaration(decl);
      field.offset = *offset;
      field.size = *size;
      field.is_signed = attribute(line, "signed").value_or(0) != 0;
      f.fields.push_back(std::move(field));
    }
  }
  if (!have_id) throw std::runtime_error("format file: no ID line (not a tracepoint's format file?)");
  return f;
}

std::filesystem::path tracefs_root() {
  for (const char* p : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
    std::error_code ec;
    if (std::filesystem::is_directory(std::filesystem::path(p) / "events", ec)) return p;
  }
  return {};
}

std::uint64_t read_unsigned(std::span<const std::uint8_t> raw, const TraceField& f) {
  if (f.offset + f.size > raw.size())
    throw std::out_of_range(fmt::format("field {} ({} bytes at {}) beyond a {}-byte record", f.name, f.size, f.offset,
                                        raw.size()));
  const auto* p = raw.data() + f.offset;
  switch (f.size) {
    case 1: return p[0];
    case 2: { std::uint16_t v; std::memcpy(&v, p, 2); return v; }
    case 4: { std::uint32_t v; std::memcpy(&v, p, 4); return v; }
    case 8: { std::uint64_t v; std::memcpy(&v, p, 8); return v; }
    default: throw std::out_of_range(fmt::format("field {} is {} bytes, not an integer", f.name, f.size));
  }
}

std::span<const std::uint8_t> read_bytes(std::span<const std::uint8_t> raw, const TraceField& f) {
  if (f.offset + f.size > raw.size())
    throw std::out_of_range(fmt::format("field {} beyond a {}-byte record", f.name, raw.size()));
  return raw.subspan(f.offset, f.size);
}

// ---- perf records ------------------------------------------------------------------

namespace {

template <class T>
T take(std::span<const std::uint8_t>& s) {
  if (s.size() < sizeof(T)) throw std::runtime_error("perf record: shorter than its fields");
  T v;
  std::memcpy(&v, s.data(), sizeof(T));
  s = s.subspan(sizeof(T));
  return v;
}

}  // namespace

TraceRecord decode_record(std::span<const std::uint8_t> record) {
  auto rest = record;
  const auto header = take<perf_event_header>(rest);
  if (header.size != record.size())
    throw std::runtime_error(fmt::format("perf record: header says {} bytes, {} given", header.size, record.size()));
  if (header.type == PERF_RECORD_LOST) {
    take<std::uint64_t>(rest);  // id
    return TraceLost{take<std::uint64_t>(rest)};
  }
  if (header.type != PERF_RECORD_SAMPLE) return OtherRecord{header.type};
  // In the order of the sample_type bits: TID, TIME, CPU, RAW.
  TraceSample s;
  s.pid = take<std::uint32_t>(rest);
  s.tid = take<std::uint32_t>(rest);
  s.time_ns = take<std::uint64_t>(rest);
  s.cpu = take<std::uint32_t>(rest);
  take<std::uint32_t>(rest);  // res
  const auto size = take<std::uint32_t>(rest);
  if (size > rest.size()) throw std::runtime_error("perf record: raw data beyond the record");
  s.raw.assign(rest.begin(), rest.begin() + size);
  return s;
}

// ---- the events harness cares about --------------------------------------------------

KernelEventDecoder::KernelEventDecoder(const TraceFormat& t, const TraceFormat& k)
    : timer_id_(t.id),
      sock_id_(k.id),
      common_type_(t.require("common_type")),
      timer_(t.require("timer")),
      function_(t.require("function")),
      now_(t.require("now")),
      baseclk_(t.require("baseclk")),
      skaddr_(k.require("skaddr")),
      oldstate_(k.require("oldstate")),
      newstate_(k.require("newstate")),
      sport_(k.require("sport")),
      dport_(k.require("dport")),
      family_(k.require("family")),
      protocol_(k.require("protocol")),
      saddr_(k.require("saddr")),
      daddr_(k.require("daddr")),
      saddr6_(k.require("saddr_v6")),
      daddr6_(k.require("daddr_v6")) {
  if (k.require("common_type").offset != common_type_.offset)
    throw std::runtime_error("tracepoints disagree on where common_type is");
}

std::optional<KernelEvent> KernelEventDecoder::decode(const TraceSample& s) const {
  const std::span<const std::uint8_t> raw(s.raw);
  const auto type = read_unsigned(raw, common_type_);
  if (type == timer_id_) {
    TimerExpiry e;
    e.time_ns = s.time_ns;
    e.cpu = s.cpu;
    e.timer = read_unsigned(raw, timer_);
    e.function = read_unsigned(raw, function_);
    e.now = read_unsigned(raw, now_);
    e.baseclk = read_unsigned(raw, baseclk_);
    return e;
  }
  if (type != sock_id_) return std::nullopt;
  SockState e;
  e.protocol = static_cast<std::uint16_t>(read_unsigned(raw, protocol_));
  if (e.protocol != 6) return std::nullopt;
  e.time_ns = s.time_ns;
  e.cpu = s.cpu;
  e.pid = s.pid;
  e.skaddr = read_unsigned(raw, skaddr_);
  e.oldstate = static_cast<int>(static_cast<std::int32_t>(read_unsigned(raw, oldstate_)));
  e.newstate = static_cast<int>(static_cast<std::int32_t>(read_unsigned(raw, newstate_)));
  e.sport = static_cast<std::uint16_t>(read_unsigned(raw, sport_));
  e.dport = static_cast<std::uint16_t>(read_unsigned(raw, dport_));
  e.family = static_cast<std::uint16_t>(read_unsigned(raw, family_));
  const bool v6 = e.family == 10;  // AF_INET6
  const auto src = read_bytes(raw, v6 ? saddr6_ : saddr_);
  const auto dst = read_bytes(raw, v6 ? daddr6_ : daddr_);
  std::memcpy(e.saddr.data(), src.data(), std::min<std::size_t>(src.size(), 16));
  std::memcpy(e.daddr.data(), dst.data(), std::min<std::size_t>(dst.size(), 16));
  return e;
}

std::optional<std::uint64_t> kallsyms_address(std::string_view kallsyms, std::string_view symbol) {
  std::size_t pos = 0;
  while (pos < kallsyms.size()) {
    const auto end = std::min(kallsyms.find('\n', pos), kallsyms.size());
    const auto line = kallsyms.substr(pos, end - pos);
    pos = end + 1;
    // "ffffffff8208c310 t tcp_keepalive_timer" (a module's symbols add "\t[name]")
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) continue;
    const auto kind = line.substr(sp1 + 1, sp2 - sp1 - 1);
    auto name = line.substr(sp2 + 1);
    name = name.substr(0, name.find('\t'));
    if (name != symbol || (kind != "t" && kind != "T")) continue;
    std::uint64_t address = 0;
    for (char c : line.substr(0, sp1)) {
      const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                    : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
                                                                : -1;
      if (d < 0) return std::nullopt;
      address = address * 16 + static_cast<std::uint64_t>(d);
    }
    if (address == 0) return std::nullopt;
    return address;
  }
  return std::nullopt;
}

std::optional<std::uint64_t> kernel_symbol(std::string_view symbol) {
  std::ifstream in("/proc/kallsyms");
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return kallsyms_address(text.str(), symbol);
}

// ---- the perf events themselves ----------------------------------------------------------

namespace {

std::vector<int> online_cpus() {
  std::ifstream in("/sys/devices/system/cpu/online");
  std::string text;
  std::getline(in, text);
  std::vector<int> cpus;
  std::stringstream ss(text);
  std::string range;
  while (std::getline(ss, range, ',')) {
    const auto dash = range.find('-');
    const int lo = std::stoi(range.substr(0, dash));
    const int hi = dash == std::string::npos ? lo : std::stoi(range.substr(dash + 1));
    for (int c = lo; c <= hi; ++c) cpus.push_back(c);
  }
  if (cpus.empty()) throw TraceUnavailable("cannot read the online CPUs (/sys/devices/system/cpu/online)");
  return cpus;
}

TraceFormat read_format(const std::filesystem::path& root, const TracepointRequest& r) {
  const auto path = root / "events" / r.group / r.name / "format";
  std::ifstream in(path);
  if (!in)
    throw TraceUnavailable(fmt::format("tracepoint {}:{} not available ({}: {})", r.group, r.name, path.string(),
                                       std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  try {
    return parse_trace_format(text.str());
  } catch (const std::exception& e) {
    throw TraceUnavailable(fmt::format("{}: {}", path.string(), e.what()));
  }
}

std::string refused_reason(int err) {
  switch (err) {
    case EACCES:
    case EPERM:
      return fmt::format("perf_event_open refused ({}): needs root or CAP_PERFMON (kernel.perf_event_paranoid, a "
                         "container's seccomp filter)",
                         std::strerror(err));
    case ENOSYS: return "perf_event_open is not available in this kernel (or is blocked: ENOSYS)";
    default: return fmt::format("perf_event_open failed: {}", std::strerror(err));
  }
}

}  // namespace

KernelTrace::Ring::Ring(Ring&& o) noexcept
    : fd(std::move(o.fd)), map(std::exchange(o.map, nullptr)), map_bytes(std::exchange(o.map_bytes, 0)) {}

KernelTrace::Ring& KernelTrace::Ring::operator=(Ring&& o) noexcept {
  if (this != &o) {
    if (map != nullptr) ::munmap(map, map_bytes);
    fd = std::move(o.fd);
    map = std::exchange(o.map, nullptr);
    map_bytes = std::exchange(o.map_bytes, 0);
  }
  return *this;
}

KernelTrace::Ring::~Ring() {
  if (map != nullptr) ::munmap(map, map_bytes);
}

KernelTrace::~KernelTrace() {
  for (auto& r : rings_)
    if (r.fd) ::ioctl(r.fd.get(), PERF_EVENT_IOC_DISABLE, 0);
}

KernelTrace KernelTrace::open(const std::vector<TracepointRequest>& requests, std::size_t ring_pages) {
  const auto root = tracefs_root();
  if (root.empty()) throw TraceUnavailable("tracefs is not mounted (neither /sys/kernel/tracing nor /sys/kernel/debug/tracing)");
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  KernelTrace t;
  const auto cpus = online_cpus();
  t.cpus_ = cpus;
  for (const auto& request : requests) {
    auto format = read_format(root, request);
    bool filter_refused = false;
    for (int cpu : cpus) {
      perf_event_attr a{};
      a.size = sizeof a;
      a.type = PERF_TYPE_TRACEPOINT;
      a.config = format.id;
      a.sample_period = 1;
      a.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | PERF_SAMPLE_RAW;
      a.disabled = 1;
      a.use_clockid = 1;
      a.clockid = CLOCK_MONOTONIC;
      a.watermark = 1;
      a.wakeup_watermark = static_cast<std::uint32_t>(ring_pages * page / 4);
      const long fd = ::syscall(SYS_perf_event_open, &a, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
      if (fd < 0) throw TraceUnavailable(fmt::format("{}:{}: {}", request.group, request.name, refused_reason(errno)));
      Ring ring;
      ring.fd = UniqueFd(static_cast<int>(fd));
      ring.map_bytes = (1 + ring_pages) * page;
      void* map = ::mmap(nullptr, ring.map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, ring.fd.get(), 0);
      if (map == MAP_FAILED)
        throw TraceUnavailable(fmt::format("cannot map a perf ring ({} KiB): {}", ring.map_bytes / 1024,
                                           std::strerror(errno)));
      ring.map = map;
      if (!request.filter.empty() && !filter_refused &&
          ::ioctl(ring.fd.get(), PERF_EVENT_IOC_SET_FILTER, request.filter.c_str()) != 0)
        filter_refused = true;
      t.rings_.push_back(std::move(ring));
    }
    if (filter_refused) t.refused_filters_.push_back(fmt::format("{}:{} '{}'", request.group, request.name, request.filter));
    t.formats_.push_back(std::move(format));
  }
  for (auto& r : t.rings_)
    if (::ioctl(r.fd.get(), PERF_EVENT_IOC_ENABLE, 0) != 0)
      throw TraceUnavailable(fmt::format("cannot enable a perf event: {}", std::strerror(errno)));
  return t;
}

std::vector<int> KernelTrace::fds() const {
  std::vector<int> out;
  for (const auto& r : rings_) out.push_back(r.fd.get());
  return out;
}

std::size_t KernelTrace::drain(const std::function<void(const TraceRecord&)>& each) {
  std::size_t n = 0;
  for (auto& r : rings_) {
    auto* meta = static_cast<perf_event_mmap_page*>(r.map);
    const auto* data = static_cast<const std::uint8_t*>(r.map) + meta->data_offset;
    const std::uint64_t size = meta->data_size;
    const std::uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
    std::uint64_t tail = meta->data_tail;
    const auto copy = [&](std::uint64_t from, std::size_t bytes, std::uint8_t* to) {
      const std::uint64_t at = from % size;
      const std::size_t first = static_cast<std::size_t>(std::min<std::uint64_t>(bytes, size - at));
      std::memcpy(to, data + at, first);
      std::memcpy(to + first, data, bytes - first);
    };
    while (tail < head) {
      perf_event_header header;
      copy(tail, sizeof header, reinterpret_cast<std::uint8_t*>(&header));
      if (header.size < sizeof header) break;  // cannot happen; never spin on it
      scratch_.resize(header.size);
      copy(tail, header.size, scratch_.data());
      each(decode_record(scratch_));
      tail += header.size;
      ++n;
    }
    __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
  }
  return n;
}

}  // namespace kah::netns
