// Live captures inside the harness's namespaces, with the kernel's timestamps.
//
// A LiveCapture is one libpcap handle (an AF_PACKET socket with a memory-mapped
// ring) on one interface of one namespace. It is opened on a thread inside the
// namespace (Namespace::run), so the socket belongs to that namespace and keeps
// capturing there whichever thread reads it. The kernel filters ("tcp" by default)
// and cuts frames to the snap length (headers are enough); the frames read are kept
// in memory, can be written to a pcap file (PcapWriter) and decoded into Packets for
// the classifier (classify.h).
//
// Time. The kernel stamps each frame when it passes the packet tap: in
// dev_queue_xmit_nit() when the interface sends it, in __netif_receive_skb() (or
// netif_rx(), if something already asked for receive timestamps) when it receives
// it. That is the capture time, not the time we read the frame. On lo both copies
// pass the tap, and libpcap keeps only the incoming one, which the packet socket
// stamps when NET_RX delivers it: after everything the sender sent in the same go
// (a TCP segment's own stamp is its departure time, on CLOCK_MONOTONIC, which the
// packet socket does not use). Measured on 6.18: 160 keepalive probes sent by one
// timer tick, incoming stamps 0.26-0.68 ms after the outgoing ones. So on lo the
// capture is an AF_PACKET socket of our own that keeps the outgoing copies only,
// stamped as they leave (as on a veth end, and as the clock canary taps lo), with
// the same filter compiled by libpcap. AF_PACKET offers
// only CLOCK_REALTIME for software stamps; the harness's clock is CLOCK_MONOTONIC
// (docs/architecture.md, "The time base"). ClockOffset (clock.h) relates the two: REALTIME - MONOTONIC read
// as the tightest of several (MONOTONIC, REALTIME, MONOTONIC) triples, right within
// +-error_ns (half that bracket: tens of nanoseconds with the vDSO). NTP slewing
// changes the rate of both clocks alike and leaves the offset alone; only a step of
// the realtime clock (settimeofday, clock_settime, a leap second, chrony's makestep,
// a VM platform's agent) moves it. Each drain therefore checks the offset
// (RealtimeSteps, realtime_steps.h) and places the frames it read across any step,
// so that Frame::t_ns is "run realtime": CLOCK_MONOTONIC plus the offset at the
// run's start, which is the kernel's stamp itself while the clock has not stepped.
// stop() also reports how far the offset moved while capturing (clock_step_ns).
// Packet::t_ms is a double of ms since the epoch, which
// rounds to 0.25 us: a capture time converted to CLOCK_MONOTONIC is right within
// error_ns + 0.25 us of the instant the kernel stamped. Measured on 6.18
// (test_capture.cc): a segment written on the client is stamped on its veth end
// about 1 us after write() begins, before write() returns; error_ns is ~17 ns.
//
// Drops. The kernel drops a frame when the ring is full (the reader fell behind):
// pcap_stats ps_drop, per capture. ps_ifdrop is what the interface itself dropped;
// libpcap counts it only in promiscuous mode and reads it from
// /sys/class/net/IFNAME, which shows the interfaces of the namespace /sys was
// mounted in (the root one), not ours. So captures are not promiscuous (a veth end
// only carries its own host's traffic anyway) and if_dropped stays 0.
//
// An open capture holds a socket inside its namespace, and a socket keeps its
// namespace alive: remove captures before, or together with, their topology. If the
// namespace at the other end of a veth goes first, the pair is deleted anyway and the
// capture notes "The interface disappeared".
//
// Cost (scripts/bench-capture.sh, 2 CPUs): opening waits ~8-20 ms and closing ~24 ms
// for the kernel (RCU grace periods) with almost no CPU, hence open_all() and
// remove(ids), which overlap them. Each frame costs ~0.7 us of the loop's CPU, about
// as much again in the kernel on the path that sends it, and ~0.5 us to classify.
//
// Threading. A LiveCapture is used by one thread at a time. A CaptureLoop owns the
// captures added to it and drains them all on one thread (epoll over libpcap's
// selectable descriptors), so hundreds of captures cost one thread; its methods
// are safe from any thread.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness/clock/clock.h"
#include "harness/clock/realtime_steps.h"
#include "harness/evidence/packet.h"
#include "harness/evidence/pcap_file.h"
#include "netns/fd.h"
#include "netns/namespace.h"

struct pcap;
struct pcap_pkthdr;

namespace kah::evidence {

// A live capture could not be opened or read: the message names the namespace, the
// interface, the libpcap call and libpcap's explanation.
class CaptureError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One captured frame.
struct Frame {
  // The kernel's capture stamp, CLOCK_REALTIME ns since the epoch, as of the run's
  // start: a live capture places each stamp across any step of the realtime clock
  // (realtime_steps.h), so stamps from before and after a step compare.
  std::int64_t t_ns = 0;
  bool clock_ambiguous = false;     // a step left two possible instants (see clock_ambiguous_frames())
  std::uint32_t wire_len = 0;       // length on the wire; `bytes` holds at most the snap length
  std::vector<std::uint8_t> bytes;

  double t_ms() const;  // Packet::t_ms's unit: realtime ms since the epoch
};

struct CaptureOptions {
  // Headers only: Ethernet + IPv6 + TCP with every option is 134 bytes; 256 leaves
  // room for VLAN tags and IP options, and Packet takes payload lengths from the IP
  // header, not from the bytes kept.
  int snaplen = 256;
  // The kernel ring, per capture. At snaplen 256 a slot is ~350 bytes, so 1 MiB holds
  // ~3000 frames: the reader may fall that far behind before the kernel drops.
  int buffer_bytes = 1 << 20;
  // BPF, run in the kernel: ARP and neighbour discovery never reach user space.
  std::string filter = "tcp";
};

struct CaptureStats {
  std::uint64_t received = 0;    // ps_recv: frames that passed the filter
  std::uint64_t dropped = 0;     // ps_drop: dropped by the kernel, the ring being full
  std::uint64_t if_dropped = 0;  // ps_ifdrop: dropped by the interface (see the top: stays 0)
  bool lossless() const { return dropped == 0 && if_dropped == 0; }
};

class LiveCapture {
 public:
  // Starts capturing on `ifname` inside `ns` (pcap_create .. pcap_activate on a thread
  // inside it, then the filter, then non-blocking mode). Throws CaptureError.
  static LiveCapture open(const netns::Namespace& ns, const std::string& ifname,
                          const CaptureOptions& options = {});
  // Several at once, in the order given. Opening mostly waits for the kernel (binding
  // a packet socket and setting up its ring wait for RCU grace periods: ~8-12 ms at
  // HZ=250, almost no CPU), so these open concurrently, in about the time of one. All
  // or none: if any fails, the ones that opened are closed and the first failure in
  // the order given is thrown.
  struct Target {
    const netns::Namespace* ns = nullptr;
    std::string ifname;
  };
  static std::vector<LiveCapture> open_all(const std::vector<Target>& targets, const CaptureOptions& options = {});

  // Hand-written moves: the source is left owning no handle.
  LiveCapture(LiveCapture&& other) noexcept;
  LiveCapture& operator=(LiveCapture&& other) noexcept;
  LiveCapture(const LiveCapture&) = delete;
  LiveCapture& operator=(const LiveCapture&) = delete;
  ~LiveCapture();  // closes the handle; frames read so far go with the object

  // Reads every frame the kernel holds now, without waiting; returns how many.
  // Never throws: a failed read is noted in errors() with where and when. A link
  // going down and up (a link fault) is no failure: the capture goes on when the
  // link comes back. An interface that is deleted (its veth peer's namespace closed
  // first) fails every read; after 3 failed reads in a row the capture stops.
  std::size_t drain();
  // Drains, keeps the final statistics, measures the clock offset again and closes
  // the handle: the capture becomes a record. Failures are noted in errors(), not
  // thrown. Does nothing the second time.
  void stop();
  bool is_open() const noexcept { return handle_ != nullptr || tap_ >= 0; }
  // libpcap's pollable descriptor (readable when frames wait); -1 once stopped.
  int selectable_fd() const noexcept;

  const std::string& where() const noexcept { return where_; }  // "label/ifname", for messages
  LinkType link() const noexcept { return link_; }
  const std::vector<Frame>& frames() const noexcept { return frames_; }
  // pcap_stats now; the final figures once stopped. Throws CaptureError.
  CaptureStats stats();
  // Reads that failed and why, each with where and when ("client/veth-c:
  // pcap_dispatch failed at CLOCK_MONOTONIC ... ms: The interface disappeared").
  const std::vector<std::string>& errors() const noexcept { return errors_; }

  // The offset that turns this capture's stamps into CLOCK_MONOTONIC: the process's
  // reference (RealtimeSteps), since frames are placed across realtime steps.
  static ClockOffset clock() { return RealtimeSteps::process().reference(); }
  // Once stopped: how far the offset moved while capturing, beyond the two
  // measurements' error (0 normally; nonzero means the realtime clock was stepped).
  // Frames are placed across steps as they are read; the ones a step left ambiguous
  // are counted here and must not time a verdict.
  std::int64_t clock_step_ns() const noexcept { return clock_step_ns_; }
  std::size_t clock_ambiguous_frames() const noexcept { return clock_ambiguous_; }

  // The TCP segments among the frames; Packet::frame is the 1-based frame position.
  std::vector<Packet> packets() const;
  // The same as a capture read from a file (file left empty), for analyze().
  Capture to_capture() const;
  // Writes every frame to a pcap file (nanosecond timestamps). Throws PcapError.
  void write_pcap(const std::filesystem::path& file) const;

 private:
  LiveCapture() = default;
  void close_handle() noexcept;
  static void on_frame(unsigned char* self, const pcap_pkthdr* header, const unsigned char* bytes);
  // lo: the socket of our own (see the top), instead of a libpcap handle.
  static LiveCapture open_loopback(const netns::Namespace& ns, const CaptureOptions& options,
                                   const std::string& where);
  std::size_t drain_frames();
  std::size_t drain_tap();
  void place_frames(std::size_t from);
  CaptureStats tap_stats();

  pcap* handle_ = nullptr;
  int tap_ = -1;              // lo: the AF_PACKET socket keeping outgoing copies; -1: none
  CaptureStats tap_counts_;   // lo: PACKET_STATISTICS so far (each read resets the kernel's)
  std::string where_;
  LinkType link_ = LinkType::ethernet;
  int snaplen_ = 0;
  bool nanosecond_ = true;  // pcap_pkthdr::ts.tv_usec holds ns (else us)
  int failed_drains_ = 0;   // in a row
  std::string last_failure_;  // libpcap's message for the last failed read, "" after a good one
  std::uint64_t unstored_ = 0;  // frames read but not kept (out of memory)
  std::vector<Frame> frames_;
  std::vector<std::string> errors_;
  CaptureStats final_stats_;
  ClockOffset clock_at_open_;
  std::int64_t clock_step_ns_ = 0;
  std::size_t clock_ambiguous_ = 0;
};

// One thread that drains every capture added to it. Captures can be added and
// removed at any time; remove() hands a capture back stopped, with everything it saw.
class CaptureLoop {
 public:
  using Id = std::uint64_t;

  CaptureLoop();   // starts the thread
  ~CaptureLoop();  // stop(); captures never removed are closed with it
  CaptureLoop(const CaptureLoop&) = delete;
  CaptureLoop& operator=(const CaptureLoop&) = delete;

  // Takes the capture over and drains it from now on. Throws std::logic_error after stop().
  Id add(LiveCapture capture);
  // Drains what the kernel holds, stops the capture and hands it back. Throws
  // std::out_of_range for an id this loop does not hold.
  LiveCapture remove(Id id);
  // The same for several, in the order given (all or none: an unknown id, or one
  // listed twice, throws before any is removed). Closing a capture mostly waits for the kernel (unhooking
  // a packet socket and freeing its ring wait for RCU grace periods: ~24 ms at
  // HZ=250, almost no CPU), so these close concurrently, in about the time of one.
  std::vector<LiveCapture> remove(const std::vector<Id>& ids);
  // A capture's statistics and frame count so far.
  CaptureStats stats(Id id);
  std::size_t frame_count(Id id) const;
  std::size_t size() const;

  // Ends the thread, then drains and stops every capture still held (they stay until
  // removed). Does nothing the second time.
  void stop();
  // CPU time the loop's thread has used (user + system), in ms: the cost of reading.
  double cpu_ms() const;

 private:
  void loop();
  LiveCapture& find(Id id);  // with mutex_ held
  // stop() on each, on concurrent threads (see remove()).
  static void stop_all(const std::vector<LiveCapture*>& captures);

  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd: tells the thread to end
  mutable std::mutex mutex_;
  std::map<Id, LiveCapture> captures_;
  Id next_id_ = 1;
  bool stopped_ = false;
  std::atomic<bool> ended_{false};
  double final_cpu_ms_ = 0;  // written by the thread before it sets ended_
  std::thread thread_;
  pthread_t native_{};
};

}  // namespace kah::evidence
