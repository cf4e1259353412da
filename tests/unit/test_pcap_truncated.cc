// `kaharness analyze` on a capture cut inside a frame (issue 9, item 8): the complete
// frames are analysed and the cut is reported, instead of refusing the file.
#include <catch2/catch.hpp>

#include "cli_call.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "harness/cli/cli.h"
#include "harness/evidence/packet.h"
#include "harness/evidence/pcap_file.h"

using namespace kah;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using kah::test::cli;

}  // namespace

namespace {
struct TempPcap {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / fmt::format("kah-{}-truncated.pcap", ::getpid());
  ~TempPcap() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

evidence::Packet probe_segment(double t_ms) {
  evidence::Packet p;
  p.family = Family::ipv4;
  p.src = "198.18.0.1";
  p.dst = "198.18.0.2";
  p.sport = 40001;
  p.dport = 7000;
  p.seq = 1000;
  p.ack = 2000;
  p.flags = evidence::tcp_flag::ack;
  p.t_ms = t_ms;
  return p;
}
}  // namespace

TEST_CASE("a pcap cut inside a frame is analysed up to the cut, and says so", "[evidence][pcap]") {
  TempPcap file;
  {
    evidence::PcapWriter writer(file.path, evidence::LinkType::raw);
    for (int i = 0; i < 3; ++i) {
      const auto p = probe_segment(1714000000000.0 + 1000.0 * i);
      writer.write(p.t_ms, evidence::encode_frame(p, evidence::LinkType::raw));
    }
  }
  std::filesystem::resize_file(file.path, std::filesystem::file_size(file.path) - 10);
  evidence::Capture capture;
  REQUIRE_NOTHROW(capture = evidence::read_pcap(file.path));
  CHECK(capture.frames == 2);
  CHECK(capture.packets.size() == 2);
  CHECK(has(capture.truncated, "truncated"));
  CHECK(cli({"analyze", file.path.string()}) == 0);
  CHECK(cli({"analyze", "--json", file.path.string()}) == 0);
}
