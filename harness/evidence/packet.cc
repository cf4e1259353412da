#include "harness/evidence/packet.h"

#include <arpa/inet.h>
#include <pcap/dlt.h>

#include <array>
#include <stdexcept>

#include <fmt/format.h>

namespace kah::evidence {
namespace {

constexpr std::uint16_t kEthertypeIpv4 = 0x0800;
constexpr std::uint16_t kEthertypeIpv6 = 0x86dd;
constexpr std::uint16_t kEthertypeVlan = 0x8100;   // 802.1Q
constexpr std::uint16_t kEthertypeQinQ = 0x88a8;   // 802.1ad
constexpr std::uint16_t kEthertypeQinQOld = 0x9100;
constexpr std::uint8_t kProtoTcp = 6;

constexpr std::size_t kEthernetHeader = 14;
constexpr std::size_t kSllHeader = 16;   // protocol at offset 14
constexpr std::size_t kSll2Header = 20;  // protocol at offset 0
constexpr std::size_t kIpv4MinHeader = 20;
constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kTcpMinHeader = 20;

std::uint16_t be16(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}

std::uint32_t be32(std::span<const std::uint8_t> b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) | (std::uint32_t{b[at + 2]} << 8) |
         std::uint32_t{b[at + 3]};
}

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v));
}

std::string address_text(Family family, std::span<const std::uint8_t> raw) {
  std::array<char, INET6_ADDRSTRLEN> text{};
  const int af = family == Family::ipv4 ? AF_INET : AF_INET6;
  if (inet_ntop(af, raw.data(), text.data(), text.size()) == nullptr) return "?";
  return text.data();
}

// Where the IP header starts and which version it is, after the link-layer header.
struct NetworkLayer {
  std::size_t offset = 0;
  Family family = Family::ipv4;
};

std::optional<Family> family_of_ethertype(std::uint16_t ethertype) {
  if (ethertype == kEthertypeIpv4) return Family::ipv4;
  if (ethertype == kEthertypeIpv6) return Family::ipv6;
  return std::nullopt;
}

std::optional<NetworkLayer> network_layer(LinkType link, std::span<const std::uint8_t> f) {
  switch (link) {
    case LinkType::ethernet: {
      if (f.size() < kEthernetHeader) return std::nullopt;
      std::size_t at = 12;
      std::uint16_t ethertype = be16(f, at);
      // VLAN tags (a capture on a trunk or a bridge) each push the real ethertype 4 bytes on.
      while (ethertype == kEthertypeVlan || ethertype == kEthertypeQinQ || ethertype == kEthertypeQinQOld) {
        at += 4;
        if (f.size() < at + 2) return std::nullopt;
        ethertype = be16(f, at);
      }
      const auto family = family_of_ethertype(ethertype);
      if (!family) return std::nullopt;
      return NetworkLayer{at + 2, *family};
    }
    case LinkType::linux_sll: {
      if (f.size() < kSllHeader) return std::nullopt;
      const auto family = family_of_ethertype(be16(f, 14));
      if (!family) return std::nullopt;
      return NetworkLayer{kSllHeader, *family};
    }
    case LinkType::linux_sll2: {
      if (f.size() < kSll2Header) return std::nullopt;
      const auto family = family_of_ethertype(be16(f, 0));
      if (!family) return std::nullopt;
      return NetworkLayer{kSll2Header, *family};
    }
    case LinkType::raw: {
      if (f.empty()) return std::nullopt;
      const int version = f[0] >> 4;
      if (version == 4) return NetworkLayer{0, Family::ipv4};
      if (version == 6) return NetworkLayer{0, Family::ipv6};
      return std::nullopt;
    }
  }
  return std::nullopt;
}

// Where the TCP header starts and how many bytes of TCP (header + payload) the IP header
// announces; nullopt when the packet is not TCP or not the first fragment.
struct TransportLayer {
  std::size_t offset = 0;
  std::optional<std::size_t> tcp_length;  // unknown for an IPv4 total length of 0 (TSO) or a jumbogram
};

std::optional<TransportLayer> ipv4_transport(std::span<const std::uint8_t> f, std::size_t at, Packet& p) {
  if (f.size() < at + kIpv4MinHeader || (f[at] >> 4) != 4) return std::nullopt;
  const std::size_t header = std::size_t{f[at] & 0x0fu} * 4;
  if (header < kIpv4MinHeader || f.size() < at + header) return std::nullopt;
  if (f[at + 9] != kProtoTcp) return std::nullopt;
  if ((be16(f, at + 6) & 0x1fff) != 0) return std::nullopt;  // a later fragment has no TCP header
  p.src = address_text(Family::ipv4, f.subspan(at + 12, 4));
  p.dst = address_text(Family::ipv4, f.subspan(at + 16, 4));
  const std::size_t total = be16(f, at + 2);
  TransportLayer t{at + header, std::nullopt};
  if (total >= header) t.tcp_length = total - header;
  return t;
}

std::optional<TransportLayer> ipv6_transport(std::span<const std::uint8_t> f, std::size_t at, Packet& p) {
  if (f.size() < at + kIpv6Header || (f[at] >> 4) != 6) return std::nullopt;
  p.src = address_text(Family::ipv6, f.subspan(at + 8, 16));
  p.dst = address_text(Family::ipv6, f.subspan(at + 24, 16));
  const std::size_t payload = be16(f, at + 4);
  std::uint8_t next = f[at + 6];
  std::size_t offset = at + kIpv6Header;
  std::size_t extensions = 0;
  // Extension headers come before TCP; skip them (RFC 8200 section 4).
  for (;;) {
    if (next == kProtoTcp) break;
    if (f.size() < offset + 8) return std::nullopt;
    std::size_t length = 0;
    switch (next) {
      case 0:    // hop-by-hop options
      case 43:   // routing
      case 60:   // destination options
        length = (std::size_t{f[offset + 1]} + 1) * 8;
        break;
      case 44:  // fragment: only the first fragment carries the TCP header
        if ((be16(f, offset + 2) & 0xfff8) != 0) return std::nullopt;
        length = 8;
        break;
      case 51:  // authentication header
        length = (std::size_t{f[offset + 1]} + 2) * 4;
        break;
      default:
        return std::nullopt;
    }
    next = f[offset];
    offset += length;
    extensions += length;
  }
  TransportLayer t{offset, std::nullopt};
  if (payload != 0 && payload >= extensions) t.tcp_length = payload - extensions;
  return t;
}

void put_checksum(std::vector<std::uint8_t>& out, std::size_t at, std::uint32_t sum) {
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  const auto folded = static_cast<std::uint16_t>(~sum);
  out[at] = static_cast<std::uint8_t>(folded >> 8);
  out[at + 1] = static_cast<std::uint8_t>(folded);
}

// One's-complement sum of 16-bit words (RFC 1071), not yet folded.
std::uint32_t ones_sum(std::span<const std::uint8_t> bytes, std::uint32_t sum = 0) {
  std::size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) sum += be16(bytes, i);
  if (i < bytes.size()) sum += std::uint32_t{bytes[i]} << 8;
  return sum;
}

std::vector<std::uint8_t> parse_address(Family family, const std::string& text) {
  std::vector<std::uint8_t> raw(family == Family::ipv4 ? 4 : 16);
  const int af = family == Family::ipv4 ? AF_INET : AF_INET6;
  if (inet_pton(af, text.c_str(), raw.data()) != 1)
    throw std::invalid_argument(fmt::format("not an {} address: '{}'", to_string(family), text));
  return raw;
}

// Locally administered MAC addresses, so a synthetic capture never names a real vendor.
constexpr std::array<std::uint8_t, 6> kMacClient{0x02, 0, 0, 0, 0, 0x01};
constexpr std::array<std::uint8_t, 6> kMacServer{0x02, 0, 0, 0, 0, 0x02};

}  // namespace

std::string to_string(LinkType l) {
  switch (l) {
    case LinkType::ethernet: return "ethernet";
    case LinkType::linux_sll: return "linux-sll";
    case LinkType::linux_sll2: return "linux-sll2";
    case LinkType::raw: return "raw";
  }
  return "?";
}

int dlt_of(LinkType l) {
  switch (l) {
    case LinkType::ethernet: return DLT_EN10MB;
    case LinkType::linux_sll: return DLT_LINUX_SLL;
    case LinkType::linux_sll2: return DLT_LINUX_SLL2;
    case LinkType::raw: return DLT_RAW;
  }
  return DLT_RAW;
}

std::optional<LinkType> link_type_of(int dlt) {
  switch (dlt) {
    case DLT_EN10MB: return LinkType::ethernet;
    case DLT_LINUX_SLL: return LinkType::linux_sll;
    case DLT_LINUX_SLL2: return LinkType::linux_sll2;
    case DLT_RAW: return LinkType::raw;
    default: return std::nullopt;
  }
}

std::string flags_text(std::uint8_t flags) {
  // tcpdump's order and letters; "." stands for ACK.
  std::string out;
  if ((flags & tcp_flag::fin) != 0) out += 'F';
  if ((flags & tcp_flag::syn) != 0) out += 'S';
  if ((flags & tcp_flag::rst) != 0) out += 'R';
  if ((flags & tcp_flag::psh) != 0) out += 'P';
  if ((flags & tcp_flag::urg) != 0) out += 'U';
  if ((flags & tcp_flag::ece) != 0) out += 'E';
  if ((flags & tcp_flag::cwr) != 0) out += 'W';
  if ((flags & tcp_flag::ack) != 0) out += '.';
  return out.empty() ? "none" : out;
}

std::optional<Packet> decode_frame(LinkType link, std::span<const std::uint8_t> frame, double t_ms) {
  const auto net = network_layer(link, frame);
  if (!net) return std::nullopt;
  Packet p;
  p.t_ms = t_ms;
  p.family = net->family;
  const auto transport = net->family == Family::ipv4 ? ipv4_transport(frame, net->offset, p)
                                                     : ipv6_transport(frame, net->offset, p);
  if (!transport) return std::nullopt;
  const std::size_t at = transport->offset;
  if (frame.size() < at + kTcpMinHeader) return std::nullopt;
  const std::size_t header = std::size_t{frame[at + 12]} / 16 * 4;  // data offset, in 32-bit words
  if (header < kTcpMinHeader) return std::nullopt;
  p.sport = be16(frame, at);
  p.dport = be16(frame, at + 2);
  p.seq = be32(frame, at + 4);
  p.ack = be32(frame, at + 8);
  p.flags = frame[at + 13];
  p.window = be16(frame, at + 14);
  // The IP length, not the captured length: a short snap length cuts payload, not its size.
  const std::size_t tcp_length = transport->tcp_length.value_or(frame.size() - at);
  p.payload_len = tcp_length > header ? static_cast<std::uint32_t>(tcp_length - header) : 0;
  return p;
}

std::vector<std::uint8_t> encode_frame(const Packet& p, LinkType link, std::span<const std::uint8_t> payload) {
  const auto src = parse_address(p.family, p.src);
  const auto dst = parse_address(p.family, p.dst);
  const std::uint16_t ethertype = p.family == Family::ipv4 ? kEthertypeIpv4 : kEthertypeIpv6;

  std::vector<std::uint8_t> out;
  switch (link) {
    case LinkType::ethernet:
      out.insert(out.end(), kMacServer.begin(), kMacServer.end());
      out.insert(out.end(), kMacClient.begin(), kMacClient.end());
      put16(out, ethertype);
      break;
    case LinkType::linux_sll:
      put16(out, 0);  // packet type: addressed to this host
      put16(out, 1);  // ARPHRD_ETHER
      put16(out, 6);  // link-layer address length
      out.insert(out.end(), kMacClient.begin(), kMacClient.end());
      put16(out, 0);  // address padding to 8 bytes
      put16(out, ethertype);
      break;
    case LinkType::linux_sll2:
      put16(out, ethertype);
      put16(out, 0);  // reserved
      put32(out, 1);  // interface index
      put16(out, 1);  // ARPHRD_ETHER
      out.push_back(0);  // packet type
      out.push_back(6);  // link-layer address length
      out.insert(out.end(), kMacClient.begin(), kMacClient.end());
      put16(out, 0);
      break;
    case LinkType::raw:
      break;
  }

  const std::size_t tcp_length = kTcpMinHeader + p.payload_len;
  const std::size_t ip_at = out.size();
  if (p.family == Family::ipv4) {
    out.push_back(0x45);  // version 4, 5 words
    out.push_back(0);
    put16(out, static_cast<std::uint16_t>(kIpv4MinHeader + tcp_length));
    put16(out, 0);       // identification
    put16(out, 0x4000);  // don't fragment, as Linux sends TCP
    out.push_back(64);   // TTL
    out.push_back(kProtoTcp);
    put16(out, 0);  // checksum, below
    out.insert(out.end(), src.begin(), src.end());
    out.insert(out.end(), dst.begin(), dst.end());
    put_checksum(out, ip_at + 10, ones_sum(std::span(out).subspan(ip_at, kIpv4MinHeader)));
  } else {
    put32(out, 0x60000000);  // version 6, no traffic class or flow label
    put16(out, static_cast<std::uint16_t>(tcp_length));
    out.push_back(kProtoTcp);
    out.push_back(64);  // hop limit
    out.insert(out.end(), src.begin(), src.end());
    out.insert(out.end(), dst.begin(), dst.end());
  }

  const std::size_t tcp_at = out.size();
  put16(out, p.sport);
  put16(out, p.dport);
  put32(out, p.seq);
  put32(out, p.ack);
  out.push_back(static_cast<std::uint8_t>((kTcpMinHeader / 4) << 4));
  out.push_back(p.flags);
  put16(out, p.window);
  put16(out, 0);  // checksum, below
  put16(out, 0);  // urgent pointer
  for (std::size_t i = 0; i < p.payload_len; ++i) out.push_back(i < payload.size() ? payload[i] : 0);

  // Checksum over the pseudo-header (RFC 9293 3.1, RFC 8200 8.1) so tools that verify it stay quiet.
  std::uint32_t sum = ones_sum(src);
  sum = ones_sum(dst, sum);
  sum += kProtoTcp;
  sum += static_cast<std::uint32_t>(tcp_length);
  put_checksum(out, tcp_at + 16, ones_sum(std::span(out).subspan(tcp_at), sum));
  return out;
}

}  // namespace kah::evidence
