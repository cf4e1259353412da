// Frames in and out of pcap files: decoding every link layer the harness captures on,
// and PcapWriter/read_pcap round trips with nanosecond files.
#include <catch2/catch.hpp>

#include <pcap/pcap.h>
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>

#include "harness/evidence/pcap_file.h"

using namespace kah;
using namespace kah::evidence;

namespace {

// A temporary file removed when the test ends, so a failed assertion leaves nothing behind.
struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& name)
      : path(std::filesystem::temp_directory_path() / fmt::format("kah-{}-{}", ::getpid(), name)) {}
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

Packet segment(Family family) {
  Packet p;
  p.family = family;
  p.src = family == Family::ipv4 ? "198.18.0.1" : "fd00:6b61:68::1";
  p.dst = family == Family::ipv4 ? "198.18.0.2" : "fd00:6b61:68::2";
  p.sport = 40001;
  p.dport = 8080;
  p.seq = 0xfffffff0u;  // near the wrap, where sign mistakes show
  p.ack = 123456789;
  p.flags = tcp_flag::psh | tcp_flag::ack;
  p.payload_len = 17;
  p.window = 502;
  return p;
}

void check_same_segment(const Packet& got, const Packet& want) {
  CHECK(got.family == want.family);
  CHECK(got.src == want.src);
  CHECK(got.dst == want.dst);
  CHECK(got.sport == want.sport);
  CHECK(got.dport == want.dport);
  CHECK(got.seq == want.seq);
  CHECK(got.ack == want.ack);
  CHECK(got.flags == want.flags);
  CHECK(got.payload_len == want.payload_len);
  CHECK(got.window == want.window);
}

// Offset of the IP header in frames made by encode_frame.
std::size_t ip_offset(LinkType link) {
  switch (link) {
    case LinkType::ethernet: return 14;
    case LinkType::linux_sll: return 16;
    case LinkType::linux_sll2: return 20;
    case LinkType::raw: return 0;
  }
  return 0;
}

}  // namespace

TEST_CASE("every link layer and both families decode what encode_frame wrote", "[evidence][packet]") {
  for (const auto link : {LinkType::ethernet, LinkType::linux_sll, LinkType::linux_sll2, LinkType::raw}) {
    for (const auto family : {Family::ipv4, Family::ipv6}) {
      INFO(to_string(link) << " " << to_string(family));
      const Packet want = segment(family);
      const auto frame = encode_frame(want, link);
      const auto got = decode_frame(link, frame, 1234.5);
      REQUIRE(got);
      check_same_segment(*got, want);
      CHECK(got->t_ms == 1234.5);
      CHECK(link_type_of(dlt_of(link)) == link);
    }
  }
}

TEST_CASE("the TCP checksum of an encoded frame verifies", "[evidence][packet]") {
  // Summing the pseudo-header and the whole segment, checksum included, gives 0xffff.
  const Packet p = segment(Family::ipv4);
  const auto frame = encode_frame(p, LinkType::raw);
  std::uint32_t sum = 0;
  for (std::size_t i = 12; i < 20; i += 2) sum += static_cast<std::uint32_t>((frame[i] << 8) | frame[i + 1]);
  sum += 6 + 20 + p.payload_len;
  for (std::size_t i = 20; i + 1 < frame.size(); i += 2) sum += static_cast<std::uint32_t>((frame[i] << 8) | frame[i + 1]);
  if ((frame.size() - 20) % 2 == 1) sum += static_cast<std::uint32_t>(frame.back() << 8);
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  CHECK(sum == 0xffff);
}

TEST_CASE("frames that are not TCP, or cut short, are not segments", "[evidence][packet]") {
  auto frame = encode_frame(segment(Family::ipv4), LinkType::ethernet);
  SECTION("UDP") {
    frame[14 + 9] = 17;
    CHECK_FALSE(decode_frame(LinkType::ethernet, frame, 0));
  }
  SECTION("ARP") {
    frame[12] = 0x08;
    frame[13] = 0x06;
    CHECK_FALSE(decode_frame(LinkType::ethernet, frame, 0));
  }
  SECTION("a later IPv4 fragment") {
    frame[14 + 6] = 0x00;
    frame[14 + 7] = 0xb9;  // offset 185 * 8 bytes
    CHECK_FALSE(decode_frame(LinkType::ethernet, frame, 0));
  }
  SECTION("cut inside the TCP header") {
    frame.resize(14 + 20 + 12);
    CHECK_FALSE(decode_frame(LinkType::ethernet, frame, 0));
  }
  SECTION("empty") { CHECK_FALSE(decode_frame(LinkType::raw, std::span<const std::uint8_t>{}, 0)); }
}

TEST_CASE("every truncation of a frame is decoded or refused, never read past its end", "[evidence][packet]") {
  // Each prefix is copied into an allocation of exactly its size, so a sanitizer build
  // catches any read beyond it.
  for (const auto link : {LinkType::ethernet, LinkType::linux_sll, LinkType::linux_sll2, LinkType::raw}) {
    for (const auto family : {Family::ipv4, Family::ipv6}) {
      const Packet want = segment(family);
      const auto frame = encode_frame(want, link);
      const std::size_t headers = ip_offset(link) + (family == Family::ipv4 ? 20 : 40) + 20;
      for (std::size_t n = 0; n <= frame.size(); ++n) {
        const std::vector<std::uint8_t> prefix(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
        const auto got = decode_frame(link, prefix, 0);
        INFO(to_string(link) << " " << to_string(family) << " prefix " << n);
        CHECK(got.has_value() == (n >= headers));
        if (got) CHECK(got->payload_len == want.payload_len);
      }
    }
  }
}

TEST_CASE("a VLAN tag is skipped", "[evidence][packet]") {
  const Packet want = segment(Family::ipv6);
  auto frame = encode_frame(want, LinkType::ethernet);
  const std::uint8_t tag[] = {0x81, 0x00, 0x00, 0x2a};  // 802.1Q, VLAN 42; the real ethertype follows
  frame.insert(frame.begin() + 12, std::begin(tag), std::end(tag));
  const auto got = decode_frame(LinkType::ethernet, frame, 0);
  REQUIRE(got);
  check_same_segment(*got, want);
}

TEST_CASE("IPv6 extension headers are skipped and not counted as payload", "[evidence][packet]") {
  const Packet want = segment(Family::ipv6);
  auto frame = encode_frame(want, LinkType::raw);
  // A hop-by-hop header (8 bytes: next header TCP, length 0, PadN) before TCP.
  const std::uint8_t hop_by_hop[] = {6, 0, 1, 4, 0, 0, 0, 0};
  frame.insert(frame.begin() + 40, std::begin(hop_by_hop), std::end(hop_by_hop));
  frame[6] = 0;  // next header: hop-by-hop
  const std::size_t payload = static_cast<std::size_t>((frame[4] << 8) | frame[5]) + sizeof hop_by_hop;
  frame[4] = static_cast<std::uint8_t>(payload >> 8);
  frame[5] = static_cast<std::uint8_t>(payload);
  const auto got = decode_frame(LinkType::raw, frame, 0);
  REQUIRE(got);
  check_same_segment(*got, want);
}

TEST_CASE("payload length comes from the IP header, not the captured bytes", "[evidence][packet]") {
  Packet want = segment(Family::ipv4);
  want.payload_len = 1400;
  for (const auto link : {LinkType::ethernet, LinkType::linux_sll, LinkType::linux_sll2, LinkType::raw}) {
    auto frame = encode_frame(want, link);
    frame.resize(ip_offset(link) + 20 + 20);  // a 40-byte snap length after the link header
    const auto got = decode_frame(link, frame, 0);
    REQUIRE(got);
    CHECK(got->payload_len == 1400);
  }
}

TEST_CASE("flags print as tcpdump prints them", "[evidence][packet]") {
  CHECK(flags_text(tcp_flag::syn) == "S");
  CHECK(flags_text(tcp_flag::syn | tcp_flag::ack) == "S.");
  CHECK(flags_text(tcp_flag::rst | tcp_flag::ack) == "R.");
  CHECK(flags_text(tcp_flag::fin | tcp_flag::psh | tcp_flag::ack) == "FP.");
  CHECK(flags_text(0) == "none");
}

TEST_CASE("encode_frame refuses an address of the wrong family", "[evidence][packet]") {
  Packet p = segment(Family::ipv4);
  p.src = "fd00::1";
  CHECK_THROWS_AS(encode_frame(p, LinkType::raw), std::invalid_argument);
}

TEST_CASE("PcapWriter and read_pcap round-trip frames and timestamps", "[evidence][pcap]") {
  TempFile file("roundtrip.pcap");
  const double t0 = 1714000000123.0;  // ms since the epoch, as a capture stores it
  const Packet v4 = segment(Family::ipv4);
  const Packet v6 = segment(Family::ipv6);
  {
    PcapWriter writer(file.path, LinkType::linux_sll2);
    writer.write(t0, encode_frame(v4, LinkType::linux_sll2));
    writer.write(t0 + 2004.567891, encode_frame(v6, LinkType::linux_sll2));
    const std::uint8_t arp_like[] = {0x08, 0x06, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    writer.write(t0 + 3000, arp_like);
    writer.close();
    CHECK_FALSE(writer.is_open());
    CHECK_THROWS_AS(writer.write(t0, arp_like), PcapError);
  }
  const Capture capture = read_pcap(file.path);
  CHECK(capture.link == LinkType::linux_sll2);
  CHECK(capture.frames == 3);
  REQUIRE(capture.packets.size() == 2);
  check_same_segment(capture.packets[0], v4);
  check_same_segment(capture.packets[1], v6);
  CHECK(capture.packets[0].frame == 1);
  CHECK(capture.packets[1].frame == 2);
  CHECK(capture.packets[0].t_ms == Approx(t0).epsilon(0).margin(1e-3));
  // Sub-microsecond digits survive: the file is nanosecond-precision.
  CHECK(capture.packets[1].t_ms - capture.packets[0].t_ms == Approx(2004.567891).epsilon(0).margin(1e-3));

  std::ifstream in(file.path, std::ios::binary);
  unsigned char magic[4] = {};
  in.read(reinterpret_cast<char*>(magic), 4);
  const std::uint32_t m = static_cast<std::uint32_t>(magic[0] | (magic[1] << 8) | (magic[2] << 16) | (magic[3] << 24));
  CHECK((m == 0xa1b23c4du || m == 0x4d3cb2a1u));  // the nanosecond pcap magic, either byte order
}

TEST_CASE("timestamps keep nanoseconds", "[evidence][pcap]") {
  // Close to the epoch a double holds nanoseconds exactly enough to see them (at today's
  // epoch offset its resolution is about 0.24 us, still far below any model window).
  TempFile file("nanoseconds.pcap");
  {
    PcapWriter writer(file.path, LinkType::raw);
    writer.write(1000.000123, encode_frame(segment(Family::ipv4), LinkType::raw));
  }
  const Capture capture = read_pcap(file.path);
  REQUIRE(capture.packets.size() == 1);
  CHECK(capture.packets[0].t_ms == Approx(1000.000123).epsilon(0).margin(1e-7));
}

TEST_CASE("a short snap length keeps the original length in the record", "[evidence][pcap]") {
  TempFile file("snaplen.pcap");
  Packet p = segment(Family::ipv4);
  p.payload_len = 1000;
  {
    PcapWriter writer(file.path, LinkType::ethernet, 96);
    writer.write(1000, encode_frame(p, LinkType::ethernet));
  }  // the destructor closes and flushes
  const Capture capture = read_pcap(file.path);
  REQUIRE(capture.packets.size() == 1);
  CHECK(capture.packets[0].payload_len == 1000);
}

TEST_CASE("a moved PcapWriter leaves one owner", "[evidence][pcap]") {
  TempFile file("moved.pcap");
  PcapWriter first(file.path, LinkType::raw);
  PcapWriter second(std::move(first));
  CHECK_FALSE(first.is_open());  // NOLINT(bugprone-use-after-move): the point of the test
  CHECK(second.is_open());
  second.write(5, encode_frame(segment(Family::ipv4), LinkType::raw));
  PcapWriter third(file.path.string() + ".other", LinkType::raw);
  third = std::move(second);
  CHECK_FALSE(second.is_open());  // NOLINT(bugprone-use-after-move)
  CHECK(third.file() == file.path);
  third.close();
  std::filesystem::remove(file.path.string() + ".other");
  CHECK(read_pcap(file.path).packets.size() == 1);
}

TEST_CASE("read_pcap names the file and the problem", "[evidence][pcap]") {
  SECTION("missing file") {
    try {
      read_pcap("/nonexistent/kah-missing.pcap");
      FAIL("no exception");
    } catch (const PcapError& e) {
      CHECK_THAT(e.what(), Catch::Contains("/nonexistent/kah-missing.pcap"));
    }
  }
  SECTION("a link layer that is not decoded") {
    TempFile file("null.pcap");
    pcap_t* dead = pcap_open_dead(DLT_NULL, 65535);
    REQUIRE(dead != nullptr);
    pcap_dumper_t* dumper = pcap_dump_open(dead, file.path.c_str());
    REQUIRE(dumper != nullptr);
    pcap_dump_close(dumper);
    pcap_close(dead);
    try {
      read_pcap(file.path);
      FAIL("no exception");
    } catch (const PcapError& e) {
      CHECK_THAT(e.what(), Catch::Contains("not decoded"));
      CHECK_THAT(e.what(), Catch::Contains(file.path.string()));
    }
  }
}
