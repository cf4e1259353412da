// pcap files through libpcap: reading a capture into Packets, and writing frames with
// their timestamps. Files are nanosecond-precision where libpcap can do it, because
// the timing model's windows are a few milliseconds wide at the low end and capture
// timestamps are the harness's clock for packets (docs/architecture.md, "The time base").
//
// Threading: a PcapWriter is used by one thread at a time; read_pcap keeps no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/evidence/packet.h"

struct pcap;
struct pcap_dumper;

namespace kah::evidence {

// A capture file could not be opened, read or written: the message names the file and
// carries libpcap's explanation.
class PcapError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Capture {
  std::filesystem::path file;
  LinkType link = LinkType::ethernet;
  std::uint64_t frames = 0;     // every frame in the file
  std::vector<Packet> packets;  // the TCP segments among them, in file order
  // Set when the file ends inside a frame (a capture cut short: disk full, a killed
  // tcpdump, a copy in progress): libpcap's explanation. The complete frames before
  // it are read as usual.
  std::string truncated;
};

// Reads every complete frame (a file cut inside a frame sets Capture::truncated); frames that are not TCP (ARP, ICMP, neighbour discovery, cut
// headers) are counted in frames but not kept. Throws PcapError for a file that cannot
// be opened or read, or whose link layer is not one of LinkType.
Capture read_pcap(const std::filesystem::path& file);

// Writes a pcap file frame by frame. Move-only; the destructor closes the file and only
// reports a failure (to stderr), close() throws it.
class PcapWriter {
 public:
  // Creates (or truncates) `file`. Frames longer than snaplen are cut to it, as a
  // capture would; their original length is kept in the record.
  PcapWriter(const std::filesystem::path& file, LinkType link, int snaplen = 262144);
  ~PcapWriter();

  PcapWriter(PcapWriter&& other) noexcept;
  PcapWriter& operator=(PcapWriter&& other) noexcept;
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;

  // t_ms: ms since the Unix epoch, the same clock Packet::t_ms reads back.
  void write(double t_ms, std::span<const std::uint8_t> frame);
  // Flushes and closes; afterwards the writer owns nothing and write() throws.
  void close();

  bool is_open() const noexcept { return dumper_ != nullptr; }
  LinkType link() const noexcept { return link_; }
  const std::filesystem::path& file() const noexcept { return file_; }

 private:
  void release() noexcept;

  std::filesystem::path file_;
  LinkType link_ = LinkType::ethernet;
  int snaplen_ = 0;
  pcap* handle_ = nullptr;          // the "dead" handle that describes the file's link layer
  pcap_dumper* dumper_ = nullptr;   // the open file
};

}  // namespace kah::evidence
