// Packets as the evidence layer sees them: one TCP segment taken out of a captured
// link-layer frame, with the capture's timestamp. Decoding and encoding are pure
// (bytes in, values out) so they are tested without files or privileges; pcap files
// are read and written in pcap_file.h.
//
// Only what judging keepalive needs is decoded: addresses, ports, sequence and
// acknowledgement numbers, flags, window, and the payload length taken from the IP
// header (not from the captured bytes), so a capture with a short snap length still
// tells how much data each segment carried.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "harness/case/case.h"

namespace kah::evidence {

// The link layers the harness meets: veth and loopback captures (Ethernet), captures on
// "any" (Linux cooked v1 and v2), and tun-style or converted captures (raw IP).
enum class LinkType { ethernet, linux_sll, linux_sll2, raw };

std::string to_string(LinkType l);           // "ethernet", "linux-sll", ...
int dlt_of(LinkType l);                       // the libpcap DLT_ value
std::optional<LinkType> link_type_of(int dlt);  // nullopt for a link layer we do not decode

// TCP header flag bits (RFC 9293 section 3.1).
namespace tcp_flag {
inline constexpr std::uint8_t fin = 0x01;
inline constexpr std::uint8_t syn = 0x02;
inline constexpr std::uint8_t rst = 0x04;
inline constexpr std::uint8_t psh = 0x08;
inline constexpr std::uint8_t ack = 0x10;
inline constexpr std::uint8_t urg = 0x20;
inline constexpr std::uint8_t ece = 0x40;
inline constexpr std::uint8_t cwr = 0x80;
}  // namespace tcp_flag

struct Packet {
  double t_ms = 0;             // capture timestamp, ms since the Unix epoch (the capture's clock)
  std::uint64_t frame = 0;     // 1-based position in the capture, as Wireshark numbers frames
  Family family = Family::ipv4;
  std::string src;             // "198.18.0.1", "fd00::1" (inet_ntop spelling)
  std::string dst;
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint8_t flags = 0;      // tcp_flag bits
  std::uint32_t payload_len = 0;
  std::uint16_t window = 0;    // as sent, not scaled (the scale is only in the handshake)
  // A live capture's stamp that a step of the realtime clock left with two possible
  // instants (evidence::Frame::clock_ambiguous): t_ms is one of them.
  bool clock_ambiguous = false;

  bool has(std::uint8_t flag) const { return (flags & flag) != 0; }
};

// "SA", "R.", "." -- tcpdump's spelling of the flags, which people know from captures.
std::string flags_text(std::uint8_t flags);

// The TCP segment in one frame; nullopt when the frame is not TCP over IPv4/IPv6, is a
// non-first IPv4 fragment, or is cut before the end of the TCP header.
std::optional<Packet> decode_frame(LinkType link, std::span<const std::uint8_t> frame, double t_ms);

// The inverse, for tests and synthetic captures: a frame carrying `p` (IPv4 without
// options or IPv6 without extension headers, a 20-byte TCP header, checksums filled in)
// and `p.payload_len` bytes of payload (`payload` first, then zeros). Throws
// std::invalid_argument for an address that does not parse in p's family.
std::vector<std::uint8_t> encode_frame(const Packet& p, LinkType link, std::span<const std::uint8_t> payload = {});

}  // namespace kah::evidence
