// From a run's capture back to a runnable case (issue 11, item 6), as a user would do it
// with the binary: library cases run with --pcap, each client's capture converted with
// `analyze --to-case`, the written cases run, and each connection ends as the original
// did, with the outcome, the same number of probes.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "read_text.h"

namespace fs = std::filesystem;

namespace {

using kah::test::read_text;

// `kaharness ARGS`, its output in `log`; the exit code.
int kaharness(const std::string& args, const fs::path& log) {
  const int status = std::system(fmt::format("{} {} >{} 2>&1", KAH_BINARY, args, log.string()).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct Ended {
  std::string outcome;
  int probes = -1;
};

// case name / connection name -> how it ended, from a result JSON.
std::map<std::string, Ended> ends(const fs::path& result_json) {
  std::map<std::string, Ended> out;
  const auto run = nlohmann::json::parse(read_text(result_json));
  for (const auto& c : run.at("cases"))
    for (const auto& conn : c.at("connections")) {
      const auto& observed = conn.at("observed");
      out[fmt::format("{}/{}", c.at("name").get<std::string>(), conn.at("name").get<std::string>())] = {
          observed.at("outcome").get<std::string>(), observed.value("probes", -1)};
    }
  return out;
}

}  // namespace

TEST_CASE("a case written from a run's capture ends as the run did, after as many probes", "[to-case]") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("kah-to-case-run-{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir / "written");
  const fs::path cases = fs::path(KAH_SOURCE_DIR) / "cases";

  const int original_rc = kaharness(fmt::format("run {} {} --pcap {} --pcap-all --json {}", (cases / "peer-power-off.toml").string(),
                                                (cases / "peer-reboot.toml").string(), (dir / "pcap").string(),
                                                (dir / "original.json").string()),
                                    dir / "original.log");
  INFO(read_text(dir / "original.log"));
  REQUIRE(original_rc == 0);
  const auto original = ends(dir / "original.json");
  REQUIRE(original.size() == 4);  // two cases, IPv4 and IPv6 each

  // One case per captured connection, named after it: peer-reboot/client-v6 -> peer-reboot-client-v6.
  std::map<std::string, std::string> written_from;  // written case name -> original case/connection
  for (const auto& [key, end] : original) {
    const auto slash = key.find('/');
    const std::string case_name = key.substr(0, slash), connection = key.substr(slash + 1);
    const fs::path pcap = dir / "pcap" / case_name / (connection + ".client.pcap");
    const std::string written = case_name + "-" + connection;
    const int rc = kaharness(fmt::format("analyze {} --to-case {}", pcap.string(), (dir / "written" / (written + ".toml")).string()),
                             dir / "analyze.log");
    INFO(key << ": " << read_text(dir / "analyze.log"));
    REQUIRE(rc == 0);
    written_from[written] = key;
  }

  const int written_rc = kaharness(fmt::format("run {} --json {}", (dir / "written").string(), (dir / "written.json").string()),
                                   dir / "written.log");
  INFO(read_text(dir / "written.log"));
  CHECK(written_rc == 0);
  const auto reproduced = ends(dir / "written.json");
  REQUIRE(reproduced.size() == 4);
  for (const auto& [key, end] : reproduced) {
    const auto& from = original.at(written_from.at(key.substr(0, key.find('/'))));
    INFO(key << " from " << written_from.at(key.substr(0, key.find('/'))));
    CHECK(end.outcome == from.outcome);
    CHECK(end.probes == from.probes);
    CHECK(end.probes >= 1);
  }
  fs::remove_all(dir);
}
