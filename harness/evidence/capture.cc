#include "harness/evidence/capture.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <ctime>
#include <limits>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "netns/packet_socket.h"

namespace kah::evidence {
namespace {

constexpr std::int64_t kNsPerSecond = 1'000'000'000;

std::int64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return std::int64_t{ts.tv_sec} * kNsPerSecond + ts.tv_nsec;
}

struct PcapClose {
  void operator()(pcap_t* p) const noexcept { pcap_close(p); }
};
using PcapHandle = std::unique_ptr<pcap_t, PcapClose>;

// libpcap's name for a status and, when it left one, its explanation.
std::string status_text(pcap_t* p, int status) {
  std::string text = pcap_statustostr(status);
  const char* detail = pcap_geterr(p);
  if (detail != nullptr && *detail != '\0') text += fmt::format(" ({})", detail);
  return text;
}

// Drains in a row that fail before the capture gives up: the interface going down
// fails one drain (the socket's error is read and cleared), a lasting failure would
// otherwise wake the loop for ever.
constexpr int kFailedDrainsBeforeGivingUp = 3;
// pcap_dispatch calls per drain: under a flood the loop goes back to epoll (and to
// the other captures) after this many ring sweeps.
constexpr int kDispatchRoundsPerDrain = 64;
// Captures opened or closed concurrently (open_all, remove): bounded, so hundreds do
// not start hundreds of threads at once.
constexpr std::size_t kThreadsAtOnce = 64;

}  // namespace

double Frame::t_ms() const {
  // The same arithmetic as read_pcap(), so a frame and its copy read back from a
  // file give the same Packet::t_ms when the file holds the same nanoseconds.
  return static_cast<double>(t_ns / kNsPerSecond) * 1e3 + static_cast<double>(t_ns % kNsPerSecond) / 1e6;
}

LiveCapture LiveCapture::open_loopback(const netns::Namespace& ns, const CaptureOptions& options,
                                       const std::string& where) {
  const auto failure = [&](const char* call, const std::string& why) {
    return CaptureError(fmt::format("cannot capture on lo in namespace {}: {}: {}", ns.label(), call, why));
  };
  // The filter as libpcap compiles it for lo (DLT_EN10MB: lo's frames carry an
  // Ethernet header), behind a test that passes outgoing copies only. cBPF jumps are
  // relative and forward, so the program's own stay right after the prefix.
  std::vector<sock_filter> code{
      {static_cast<__u16>(BPF_LD | BPF_W | BPF_ABS), 0, 0, static_cast<__u32>(SKF_AD_OFF + SKF_AD_PKTTYPE)},
      {static_cast<__u16>(BPF_JMP | BPF_JEQ | BPF_K), 1, 0, PACKET_OUTGOING},
      {static_cast<__u16>(BPF_RET | BPF_K), 0, 0, 0},
  };
  {
    PcapHandle dead(pcap_open_dead(DLT_EN10MB, options.snaplen));
    if (!dead) throw failure("pcap_open_dead", "out of memory");
    bpf_program program{};
    if (pcap_compile(dead.get(), &program, options.filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
      throw failure("pcap_compile", fmt::format("filter \"{}\": {}", options.filter, pcap_geterr(dead.get())));
    for (u_int i = 0; i < program.bf_len; ++i) {
      const bpf_insn& in = program.bf_insns[i];
      code.push_back({in.code, in.jt, in.jf, in.k});
    }
    pcap_freecode(&program);
  }
  const int fd = ns.run([&] {
    // Protocol 0: nothing is queued before the filter is on and the socket is bound.
    UniqueFd s(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s) throw failure("socket(AF_PACKET)", std::strerror(errno));
    const sock_fprog program{static_cast<unsigned short>(code.size()), code.data()};
    if (::setsockopt(s.get(), SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) != 0)
      throw failure("SO_ATTACH_FILTER", std::strerror(errno));
    const int on = 1;
    if (::setsockopt(s.get(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0)
      throw failure("SO_TIMESTAMPNS", std::strerror(errno));
    if (::setsockopt(s.get(), SOL_PACKET, PACKET_AUXDATA, &on, sizeof on) != 0)  // the length on the wire
      throw failure("PACKET_AUXDATA", std::strerror(errno));
    // Queued frames are counted at the skb's truesize, not the snap length: 4 times
    // libpcap's ring holds about as many frames. Forced (CAP_NET_ADMIN) past rmem_max.
    const int bytes = 4 * options.buffer_bytes;
    if (::setsockopt(s.get(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0 &&
        ::setsockopt(s.get(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) != 0)
      throw failure("SO_RCVBUF", std::strerror(errno));
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_ALL);
    ll.sll_ifindex = static_cast<int>(::if_nametoindex("lo"));
    if (ll.sll_ifindex == 0) throw failure("if_nametoindex", std::strerror(errno));
    if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&ll), sizeof ll) != 0)
      throw failure("bind", std::strerror(errno));
    return s.release();
  });
  LiveCapture capture;
  capture.where_ = where;
  capture.link_ = LinkType::ethernet;
  capture.snaplen_ = options.snaplen;
  capture.clock_at_open_ = ClockOffset::measure();
  capture.tap_ = fd;
  return capture;
}

LiveCapture LiveCapture::open(const netns::Namespace& ns, const std::string& ifname, const CaptureOptions& options) {
  const std::string where = ns.label() + "/" + ifname;
  if (ifname == "lo") return open_loopback(ns, options, where);
  const auto failure = [&](const char* call, const std::string& why) {
    return CaptureError(fmt::format("cannot capture on {} in namespace {}: {}: {}", ifname, ns.label(), call, why));
  };

  // Everything up to the filter on a thread inside the namespace: pcap_activate()
  // creates the AF_PACKET socket and looks the interface up by name there.
  PcapHandle handle = ns.run([&] {
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    PcapHandle p(pcap_create(ifname.c_str(), errbuf));
    if (!p) throw failure("pcap_create", errbuf);
    // These only fail on an activated handle, which this one is not yet.
    pcap_set_snaplen(p.get(), options.snaplen);
    pcap_set_promisc(p.get(), 0);
    pcap_set_immediate_mode(p.get(), 1);  // each frame readable at once, not per filled block
    pcap_set_buffer_size(p.get(), options.buffer_bytes);
#ifdef PCAP_TSTAMP_PRECISION_NANO
    pcap_set_tstamp_precision(p.get(), PCAP_TSTAMP_PRECISION_NANO);  // else microseconds, see nanosecond_
#endif
    const int status = pcap_activate(p.get());
    if (status < 0) throw failure("pcap_activate", status_text(p.get(), status));

    bpf_program program{};
    if (pcap_compile(p.get(), &program, options.filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
      throw failure("pcap_compile", fmt::format("filter \"{}\": {}", options.filter, pcap_geterr(p.get())));
    const int set = pcap_setfilter(p.get(), &program);
    pcap_freecode(&program);
    if (set != 0) throw failure("pcap_setfilter", pcap_geterr(p.get()));
    if (pcap_setnonblock(p.get(), 1, errbuf) != 0) throw failure("pcap_setnonblock", errbuf);
    // libpcap opens its socket without SOCK_CLOEXEC: a program the harness starts
    // must not inherit it (it would keep the namespace alive).
    const int fd = pcap_get_selectable_fd(p.get());
    if (fd < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) throw failure("fcntl(FD_CLOEXEC)", std::strerror(errno));
    return p;
  });

  const int dlt = pcap_datalink(handle.get());
  const auto link = link_type_of(dlt);
  if (!link) {
    const char* name = pcap_datalink_val_to_name(dlt);
    throw failure("pcap_datalink",
                  fmt::format("link type {} ({}) is not decoded", dlt, name != nullptr ? name : "unknown"));
  }

  LiveCapture capture;
  capture.where_ = where;
  capture.link_ = *link;
  capture.snaplen_ = pcap_snapshot(handle.get());
#ifdef PCAP_TSTAMP_PRECISION_NANO
  capture.nanosecond_ = pcap_get_tstamp_precision(handle.get()) == PCAP_TSTAMP_PRECISION_NANO;
#else
  capture.nanosecond_ = false;
#endif
  capture.clock_at_open_ = ClockOffset::measure();
  capture.handle_ = handle.release();
  return capture;
}

std::vector<LiveCapture> LiveCapture::open_all(const std::vector<Target>& targets, const CaptureOptions& options) {
  for (const auto& target : targets)
    if (target.ns == nullptr)
      throw std::invalid_argument("cannot capture on " + target.ifname + ": no namespace given");
  std::vector<std::optional<LiveCapture>> opened(targets.size());
  std::vector<std::exception_ptr> failures(targets.size());
  for (std::size_t first = 0; first < targets.size(); first += kThreadsAtOnce) {
    std::vector<std::jthread> openers;  // joined on the way out, also if starting one throws
    for (std::size_t i = first; i < std::min(first + kThreadsAtOnce, targets.size()); ++i)
      openers.emplace_back([&, i] {
        try {
          opened[i].emplace(open(*targets[i].ns, targets[i].ifname, options));
        } catch (...) {
          failures[i] = std::current_exception();
        }
      });
  }
  for (const auto& failure : failures)
    if (failure) std::rethrow_exception(failure);  // `opened` closes the others
  std::vector<LiveCapture> out;
  out.reserve(targets.size());
  for (auto& capture : opened) out.push_back(std::move(*capture));
  return out;
}

LiveCapture::LiveCapture(LiveCapture&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      tap_(std::exchange(other.tap_, -1)),
      tap_counts_(other.tap_counts_),
      where_(std::move(other.where_)),
      link_(other.link_),
      snaplen_(other.snaplen_),
      nanosecond_(other.nanosecond_),
      failed_drains_(other.failed_drains_),
      last_failure_(std::move(other.last_failure_)),
      unstored_(std::exchange(other.unstored_, 0)),
      frames_(std::move(other.frames_)),
      errors_(std::move(other.errors_)),
      final_stats_(other.final_stats_),
      clock_at_open_(other.clock_at_open_),
      clock_step_ns_(other.clock_step_ns_),
      clock_ambiguous_(other.clock_ambiguous_) {}

LiveCapture& LiveCapture::operator=(LiveCapture&& other) noexcept {
  if (this == &other) return *this;
  close_handle();
  handle_ = std::exchange(other.handle_, nullptr);
  tap_ = std::exchange(other.tap_, -1);
  tap_counts_ = other.tap_counts_;
  where_ = std::move(other.where_);
  link_ = other.link_;
  snaplen_ = other.snaplen_;
  nanosecond_ = other.nanosecond_;
  failed_drains_ = other.failed_drains_;
  last_failure_ = std::move(other.last_failure_);
  unstored_ = std::exchange(other.unstored_, 0);
  frames_ = std::move(other.frames_);
  errors_ = std::move(other.errors_);
  final_stats_ = other.final_stats_;
  clock_at_open_ = other.clock_at_open_;
  clock_step_ns_ = other.clock_step_ns_;
  clock_ambiguous_ = other.clock_ambiguous_;
  return *this;
}

LiveCapture::~LiveCapture() { close_handle(); }

void LiveCapture::close_handle() noexcept {
  if (handle_ != nullptr) pcap_close(handle_);
  handle_ = nullptr;
  if (tap_ >= 0) ::close(tap_);
  tap_ = -1;
}

int LiveCapture::selectable_fd() const noexcept {
  if (tap_ >= 0) return tap_;
  return handle_ != nullptr ? pcap_get_selectable_fd(handle_) : -1;
}

void LiveCapture::on_frame(unsigned char* self_ptr, const pcap_pkthdr* header, const unsigned char* bytes) {
  // Called by libpcap (C): nothing may be thrown through it.
  auto* self = reinterpret_cast<LiveCapture*>(self_ptr);
  try {
    Frame frame;
    const std::int64_t subsecond = self->nanosecond_ ? header->ts.tv_usec : header->ts.tv_usec * 1000;
    frame.t_ns = std::int64_t{header->ts.tv_sec} * kNsPerSecond + subsecond;
    frame.wire_len = header->len;
    frame.bytes.assign(bytes, bytes + header->caplen);
    self->frames_.push_back(std::move(frame));
  } catch (...) {
    ++self->unstored_;
  }
}

std::size_t LiveCapture::drain_tap() {
  std::size_t total = 0;
  std::vector<std::uint8_t> buffer(static_cast<std::size_t>(std::max(snaplen_, 1)));
  // As many frames as a sweep of libpcap's ring would give, at most, then back to the
  // loop (epoll is level-triggered: what is left wakes it again).
  for (int frames = 0; frames < kDispatchRoundsPerDrain * 1024; ++frames) {
    std::optional<netns::PacketFrame> read;
    try {
      read = netns::read_packet_frame(tap_, buffer);
    } catch (const std::system_error& e) {
      std::string why = e.what();
      if (why != last_failure_)
        errors_.push_back(fmt::format("{}: failed at CLOCK_MONOTONIC {:.3f} ms: {}", where_, monotonic_ms(), why));
      last_failure_ = std::move(why);
      if (total == 0 && ++failed_drains_ >= kFailedDrainsBeforeGivingUp) {
        errors_.push_back(fmt::format("{}: {} reads failed in a row; capture stopped", where_, failed_drains_));
        stop();
      }
      return total;
    }
    if (!read) break;
    if (read->pkttype != PACKET_OUTGOING) continue;  // the filter passes none; belt and braces
    ++total;
    try {
      Frame frame;
      // The kernel stamps every frame with SO_TIMESTAMPNS on.
      frame.t_ns = read->realtime_ns.value_or(now_ns(CLOCK_REALTIME));
      frame.wire_len = read->wire_len;
      frame.bytes.assign(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(read->length));
      frames_.push_back(std::move(frame));
    } catch (...) {
      ++unstored_;
    }
  }
  failed_drains_ = 0;
  last_failure_.clear();
  return total;
}

CaptureStats LiveCapture::tap_stats() {
  tpacket_stats s{};
  socklen_t len = sizeof s;
  if (::getsockopt(tap_, SOL_PACKET, PACKET_STATISTICS, &s, &len) != 0)
    throw CaptureError(fmt::format("cannot read the statistics of the capture on {}: PACKET_STATISTICS: {}", where_,
                                   std::strerror(errno)));
  // tp_packets counts what passed the filter, drops included (libpcap subtracts
  // nothing either); reading resets both.
  tap_counts_.received += s.tp_packets;
  tap_counts_.dropped += s.tp_drops;
  return tap_counts_;
}

std::size_t LiveCapture::drain() {
  const std::size_t from = frames_.size();
  const std::size_t n = drain_frames();
  place_frames(from);
  return n;
}

// Every frame just read was stamped before now: one check of the realtime clock
// places them all (and costs nothing more while the clock has not stepped).
void LiveCapture::place_frames(std::size_t from) {
  if (from == frames_.size()) return;
  const auto checked = RealtimeSteps::process().checked();
  if (!checked.stepped()) return;
  for (std::size_t i = from; i < frames_.size(); ++i) {
    Frame& f = frames_[i];
    f.t_ns = checked.to_run_realtime(f.t_ns, f.clock_ambiguous);
    if (f.clock_ambiguous) ++clock_ambiguous_;
  }
}

std::size_t LiveCapture::drain_frames() {
  if (tap_ >= 0) return drain_tap();
  if (handle_ == nullptr) return 0;
  std::size_t total = 0;
  for (int round = 0; round < kDispatchRoundsPerDrain; ++round) {
    const std::size_t before = frames_.size() + unstored_;
    const int n = pcap_dispatch(handle_, -1, &LiveCapture::on_frame, reinterpret_cast<u_char*>(this));
    total += frames_.size() + unstored_ - before;
    if (n == 0) break;
    if (n > 0) continue;
    // A link going down and up is not a failure (the kernel unhooks the socket and
    // hooks it again; libpcap reads and clears the error). An interface that is
    // deleted (its veth peer's namespace closed) fails every read from then on:
    // "The interface disappeared". Said once, not at every read.
    std::string why = pcap_geterr(handle_);
    if (why != last_failure_)
      errors_.push_back(fmt::format("{}: pcap_dispatch failed at CLOCK_MONOTONIC {:.3f} ms: {}", where_,
                                    monotonic_ms(), why));
    last_failure_ = std::move(why);
    if (total == 0 && ++failed_drains_ >= kFailedDrainsBeforeGivingUp) {
      errors_.push_back(fmt::format("{}: {} reads failed in a row; capture stopped", where_, failed_drains_));
      stop();
    }
    return total;
  }
  failed_drains_ = 0;
  last_failure_.clear();
  return total;
}

void LiveCapture::stop() {
  if (!is_open()) return;
  failed_drains_ = std::numeric_limits<int>::min();  // the last drain must not give up (and recurse here)
  drain();
  try {
    final_stats_ = stats();
  } catch (const CaptureError& e) {
    errors_.push_back(e.what());
  }
  if (unstored_ > 0)
    errors_.push_back(fmt::format("{}: out of memory: {} frames read but not kept", where_, unstored_));
  const ClockOffset again = ClockOffset::measure();
  const std::int64_t moved = again.realtime_minus_monotonic_ns - clock_at_open_.realtime_minus_monotonic_ns;
  // 1 us on top of the two measurements' error: the offset does not drift (see the
  // header), so anything beyond that is a step.
  const std::int64_t tolerance = again.error_ns + clock_at_open_.error_ns + 1000;
  clock_step_ns_ = std::llabs(moved) > tolerance ? moved : 0;
  close_handle();
}

CaptureStats LiveCapture::stats() {
  if (tap_ >= 0) return tap_stats();
  if (handle_ == nullptr) return final_stats_;
  pcap_stat s{};
  if (pcap_stats(handle_, &s) != 0)
    throw CaptureError(fmt::format("cannot read the statistics of the capture on {}: pcap_stats: {}", where_,
                                   pcap_geterr(handle_)));
  return CaptureStats{s.ps_recv, s.ps_drop, s.ps_ifdrop};
}

std::vector<Packet> LiveCapture::packets() const {
  std::vector<Packet> packets;
  std::uint64_t position = 0;
  for (const auto& frame : frames_) {
    ++position;
    auto packet = decode_frame(link_, frame.bytes, frame.t_ms());
    if (!packet) continue;
    packet->frame = position;
    packet->clock_ambiguous = frame.clock_ambiguous;
    packets.push_back(std::move(*packet));
  }
  return packets;
}

Capture LiveCapture::to_capture() const {
  Capture capture;
  capture.link = link_;
  capture.frames = frames_.size();
  capture.packets = packets();
  return capture;
}

void LiveCapture::write_pcap(const std::filesystem::path& file) const {
  PcapWriter writer(file, link_, snaplen_ > 0 ? snaplen_ : 262144);
  for (const auto& frame : frames_) writer.write(frame.t_ms(), frame.bytes);
  writer.close();
}

CaptureLoop::CaptureLoop() {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw_errno("cannot create the capture loop (epoll_create1)");
  wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) throw_errno("cannot create the capture loop's wake-up eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // ids start at 1: 0 is the wake-up
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0)
    throw_errno("cannot add the wake-up eventfd to the capture loop");
  thread_ = std::thread([this] { loop(); });
  native_ = thread_.native_handle();
}

CaptureLoop::~CaptureLoop() {
  try {
    stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kaharness: stopping the capture loop: %s\n", e.what());
  }
}

CaptureLoop::Id CaptureLoop::add(LiveCapture capture) {
  if (!capture.is_open())
    throw std::invalid_argument(fmt::format("the capture on {} is stopped: nothing to drain", capture.where()));
  std::lock_guard lock(mutex_);
  if (stopped_)
    throw std::logic_error(
        fmt::format("cannot add the capture on {}: the capture loop has stopped", capture.where()));
  const Id id = next_id_++;
  epoll_event ev{};
  ev.events = EPOLLIN;  // EPOLLERR (link down) is always reported
  ev.data.u64 = id;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, capture.selectable_fd(), &ev) != 0) {
    const int err = errno;
    throw_errno(err, fmt::format("cannot watch the capture on {}", capture.where()));
  }
  captures_.emplace(id, std::move(capture));
  return id;
}

LiveCapture& CaptureLoop::find(Id id) {
  const auto it = captures_.find(id);
  if (it == captures_.end()) throw std::out_of_range(fmt::format("the capture loop holds no capture {}", id));
  return it->second;
}

LiveCapture CaptureLoop::remove(Id id) {
  LiveCapture capture = [&] {
    std::lock_guard lock(mutex_);
    LiveCapture& held = find(id);
    if (held.is_open()) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, held.selectable_fd(), nullptr);
    LiveCapture out = std::move(held);
    captures_.erase(id);
    return out;
  }();
  capture.stop();  // drains what is left; outside the lock, the loop no longer knows it
  return capture;
}

std::vector<LiveCapture> CaptureLoop::remove(const std::vector<Id>& ids) {
  std::vector<LiveCapture> out;
  {
    std::lock_guard lock(mutex_);
    for (const Id id : ids) find(id);  // all or none
    if (std::set<Id>(ids.begin(), ids.end()).size() != ids.size())
      throw std::invalid_argument("CaptureLoop::remove: the same capture listed twice");
    out.reserve(ids.size());
    for (const Id id : ids) {
      LiveCapture& held = find(id);
      if (held.is_open()) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, held.selectable_fd(), nullptr);
      out.push_back(std::move(held));
      captures_.erase(id);
    }
  }
  std::vector<LiveCapture*> stopping;
  for (auto& capture : out) stopping.push_back(&capture);
  stop_all(stopping);
  return out;
}

void CaptureLoop::stop_all(const std::vector<LiveCapture*>& captures) {
  for (std::size_t first = 0; first < captures.size(); first += kThreadsAtOnce) {
    std::vector<std::jthread> closers;  // joined on the way out, also if starting one throws
    for (std::size_t i = first; i < std::min(first + kThreadsAtOnce, captures.size()); ++i)
      closers.emplace_back([capture = captures[i]] { capture->stop(); });
  }
}

CaptureStats CaptureLoop::stats(Id id) {
  std::lock_guard lock(mutex_);
  return find(id).stats();
}

std::size_t CaptureLoop::frame_count(Id id) const {
  std::lock_guard lock(mutex_);
  return const_cast<CaptureLoop*>(this)->find(id).frames().size();
}

std::size_t CaptureLoop::size() const {
  std::lock_guard lock(mutex_);
  return captures_.size();
}

void CaptureLoop::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_.get(), &one, sizeof one);
  thread_.join();
  std::lock_guard lock(mutex_);
  std::vector<LiveCapture*> held;
  for (auto& [id, capture] : captures_) held.push_back(&capture);
  stop_all(held);
}

double CaptureLoop::cpu_ms() const {
  if (ended_) return final_cpu_ms_;
  clockid_t clock{};
  timespec ts{};
  if (pthread_getcpuclockid(native_, &clock) != 0 || clock_gettime(clock, &ts) != 0) return final_cpu_ms_;
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

void CaptureLoop::loop() {
  std::array<epoll_event, 64> events{};
  for (bool running = true; running;) {
    const int n = epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // the epoll fd is unusable: nothing left to do but stop (stop() still drains)
    }
    std::lock_guard lock(mutex_);
    for (int i = 0; i < n; ++i) {
      const Id id = events[static_cast<std::size_t>(i)].data.u64;
      if (id == 0) {
        running = false;
        break;
      }
      const auto it = captures_.find(id);
      if (it == captures_.end()) continue;  // removed since epoll_wait returned
      // A capture that gives up closes its descriptor, which takes it out of the
      // epoll set (libpcap holds no duplicate of it).
      try {
        it->second.drain();
      } catch (const std::exception& e) {  // drain() only notes failures; this is out of memory
        std::fprintf(stderr, "kaharness: capture on %s: %s\n", it->second.where().c_str(), e.what());
      }
    }
  }
  final_cpu_ms_ = static_cast<double>(now_ns(CLOCK_THREAD_CPUTIME_ID)) / 1e6;
  ended_ = true;
}

}  // namespace kah::evidence
