#include "harness/evidence/pcap_file.h"

#include <string_view>

#include <pcap/pcap.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <utility>

#include <fmt/format.h>

namespace kah::evidence {
namespace {

struct PcapClose {
  void operator()(pcap_t* p) const noexcept { pcap_close(p); }
};
using PcapHandle = std::unique_ptr<pcap_t, PcapClose>;

// Opens with nanosecond timestamps when this libpcap has them (1.5 and later); older
// ones give microseconds, which read_pcap() scales the same way.
PcapHandle open_offline(const std::filesystem::path& file, char* errbuf) {
#ifdef PCAP_TSTAMP_PRECISION_NANO
  return PcapHandle(pcap_open_offline_with_tstamp_precision(file.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf));
#else
  return PcapHandle(pcap_open_offline(file.c_str(), errbuf));
#endif
}

// Fraction-of-second units of pcap_pkthdr::ts.tv_usec for this handle.
double subsecond_per_ms(pcap_t* p) {
#ifdef PCAP_TSTAMP_PRECISION_NANO
  if (pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO) return 1e6;
#else
  (void)p;
#endif
  return 1e3;
}

}  // namespace

Capture read_pcap(const std::filesystem::path& file) {
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  const auto handle = open_offline(file, errbuf);
  if (!handle) throw PcapError(fmt::format("cannot read capture {}: {}", file.string(), errbuf));

  const int dlt = pcap_datalink(handle.get());
  const auto link = link_type_of(dlt);
  if (!link) {
    const char* name = pcap_datalink_val_to_name(dlt);
    throw PcapError(fmt::format("cannot read capture {}: link type {} ({}) is not decoded; "
                                "capture on an Ethernet/veth device, on \"any\", or as raw IP",
                                file.string(), dlt, name != nullptr ? name : "unknown"));
  }

  Capture capture;
  capture.file = file;
  capture.link = *link;
  const double units_per_ms = subsecond_per_ms(handle.get());
  pcap_pkthdr* header = nullptr;
  const u_char* data = nullptr;
  for (;;) {
    const int rc = pcap_next_ex(handle.get(), &header, &data);
    if (rc == PCAP_ERROR_BREAK) break;  // end of file
    if (rc == PCAP_ERROR && std::string_view(pcap_geterr(handle.get())).find("truncated") != std::string_view::npos) {
      capture.truncated = pcap_geterr(handle.get());  // the frames before it are whole
      break;
    }
    if (rc != 1)
      throw PcapError(fmt::format("cannot read capture {} after frame {}: {}", file.string(), capture.frames,
                                  pcap_geterr(handle.get())));
    ++capture.frames;
    const double t_ms = static_cast<double>(header->ts.tv_sec) * 1e3 + static_cast<double>(header->ts.tv_usec) / units_per_ms;
    auto packet = decode_frame(*link, std::span<const std::uint8_t>(data, header->caplen), t_ms);
    if (!packet) continue;
    packet->frame = capture.frames;
    capture.packets.push_back(std::move(*packet));
  }
  return capture;
}

PcapWriter::PcapWriter(const std::filesystem::path& file, LinkType link, int snaplen)
    : file_(file), link_(link), snaplen_(snaplen) {
#ifdef PCAP_TSTAMP_PRECISION_NANO
  handle_ = pcap_open_dead_with_tstamp_precision(dlt_of(link), snaplen, PCAP_TSTAMP_PRECISION_NANO);
#else
  handle_ = pcap_open_dead(dlt_of(link), snaplen);
#endif
  if (handle_ == nullptr) throw PcapError(fmt::format("cannot write capture {}: out of memory", file.string()));
  dumper_ = pcap_dump_open(handle_, file.c_str());
  if (dumper_ == nullptr) {
    const std::string why = pcap_geterr(handle_);
    pcap_close(handle_);
    handle_ = nullptr;
    throw PcapError(fmt::format("cannot write capture {}: {}", file.string(), why));
  }
}

PcapWriter::~PcapWriter() {
  if (dumper_ == nullptr) return;
  try {
    close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kaharness: %s\n", e.what());
  }
}

PcapWriter::PcapWriter(PcapWriter&& other) noexcept
    : file_(std::move(other.file_)),
      link_(other.link_),
      snaplen_(other.snaplen_),
      handle_(std::exchange(other.handle_, nullptr)),
      dumper_(std::exchange(other.dumper_, nullptr)) {}

PcapWriter& PcapWriter::operator=(PcapWriter&& other) noexcept {
  if (this == &other) return *this;
  if (dumper_ != nullptr) {
    try {
      close();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kaharness: %s\n", e.what());
    }
  }
  file_ = std::move(other.file_);
  link_ = other.link_;
  snaplen_ = other.snaplen_;
  handle_ = std::exchange(other.handle_, nullptr);
  dumper_ = std::exchange(other.dumper_, nullptr);
  return *this;
}

void PcapWriter::write(double t_ms, std::span<const std::uint8_t> frame) {
  if (dumper_ == nullptr) throw PcapError(fmt::format("cannot write capture {}: already closed", file_.string()));
  if (!(t_ms >= 0)) throw PcapError(fmt::format("cannot write capture {}: bad timestamp {} ms", file_.string(), t_ms));
  // Rounded to whole nanoseconds (or microseconds), the unit of the file.
  const double units_per_second = subsecond_per_ms(handle_) * 1e3;
  const auto total = std::llround(t_ms / 1e3 * units_per_second);
  const auto per_second = static_cast<long long>(units_per_second);
  pcap_pkthdr header{};
  header.ts.tv_sec = static_cast<time_t>(total / per_second);
  header.ts.tv_usec = static_cast<suseconds_t>(total % per_second);
  header.len = static_cast<bpf_u_int32>(frame.size());
  header.caplen = static_cast<bpf_u_int32>(std::min(frame.size(), static_cast<std::size_t>(snaplen_)));
  pcap_dump(reinterpret_cast<u_char*>(dumper_), &header, frame.data());
}

void PcapWriter::close() {
  if (dumper_ == nullptr) return;
  // pcap_dump() does not report errors; a full disk shows in the flush or in the stream.
  const bool failed = pcap_dump_flush(dumper_) != 0 || std::ferror(pcap_dump_file(dumper_)) != 0;
  release();
  if (failed) throw PcapError(fmt::format("cannot write capture {}: write error", file_.string()));
}

void PcapWriter::release() noexcept {
  if (dumper_ != nullptr) pcap_dump_close(dumper_);
  if (handle_ != nullptr) pcap_close(handle_);
  dumper_ = nullptr;
  handle_ = nullptr;
}

}  // namespace kah::evidence
