// Output paths are checked before anything is built (issue 9, item 6), and the
// exit code's precedence when a case failed and an output could not be written.
#include <catch2/catch.hpp>

#include "cli_call.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "harness/cli/cli.h"
#include "harness/cli/output_paths.h"

using namespace kah;
namespace fs = std::filesystem;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using kah::test::cli;

// A fresh folder under the temporary directory, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kah-outputs-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// The single problem found, or a note saying how many there were.
std::string only_problem(const OutputPaths& p) {
  const auto problems = check_output_paths(p);
  if (problems.size() != 1) return std::to_string(problems.size()) + " problems";
  return problems[0].str();
}

}  // namespace

TEST_CASE("a --json file that cannot be created is named with the reason", "[outputs]") {
  OutputPaths p;
  p.json = "/proc/kaharness-test.json";
  const auto problems = check_output_paths(p);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].option == "--json");
  CHECK(has(problems[0].str(), "/proc/kaharness-test.json"));
  CHECK(has(problems[0].str(), "cannot create the file"));

  TempDir tmp;
  p.json = (tmp.path / "no-such-folder" / "out.json").string();
  CHECK(has(only_problem(p), "no-such-folder/out.json: cannot create the file"));
  p.json = tmp.path.string();
  CHECK(has(only_problem(p), "is a folder, expected a file"));
}

TEST_CASE("checking outputs leaves nothing behind and touches no existing file", "[outputs]") {
  TempDir tmp;
  OutputPaths p;
  p.json = (tmp.path / "out.json").string();
  p.junit = (tmp.path / "junit.xml").string();
  p.report = (tmp.path / "report" / "deeper").string();
  p.pcap = (tmp.path / "pcap").string();
  {
    std::ofstream(p.junit) << "keep me";
  }
  CHECK(check_output_paths(p).empty());
  CHECK_FALSE(fs::exists(p.json));
  CHECK_FALSE(fs::exists(tmp.path / "report"));
  CHECK_FALSE(fs::exists(p.pcap));
  std::ifstream in(p.junit);
  std::string text;
  std::getline(in, text);
  CHECK(text == "keep me");
}

TEST_CASE("a --report that is a file is refused, a folder with files needs --force", "[outputs]") {
  TempDir tmp;
  OutputPaths p;
  p.report = (tmp.path / "a-file").string();
  { std::ofstream(p.report) << "x"; }
  CHECK(has(only_problem(p), "exists and is not a folder"));

  p.report = (tmp.path / "full").string();
  fs::create_directory(p.report);
  { std::ofstream(tmp.path / "full" / "index.html") << "an older report"; }
  CHECK(has(only_problem(p), "already holds files"));
  CHECK(has(only_problem(p), "--force"));
  p.force = true;
  CHECK(check_output_paths(p).empty());

  p.force = false;
  p.report = (tmp.path / "empty").string();
  fs::create_directory(p.report);
  CHECK(check_output_paths(p).empty());
}

TEST_CASE("the same path for --json and --junit is refused", "[outputs]") {
  TempDir tmp;
  OutputPaths p;
  p.json = (tmp.path / "out").string();
  p.junit = (tmp.path / "." / "out").string();
  CHECK(has(only_problem(p), "is also the --json file"));
}

TEST_CASE("exit code precedence: interrupted, then a failed case, then an unwritten output", "[outputs]") {
  CHECK(final_exit_code(0, 0, true) == 0);
  CHECK(final_exit_code(0, 0, false) == 2);
  CHECK(final_exit_code(0, 1, false) == 1);  // the failure is never hidden
  CHECK(final_exit_code(0, 1, true) == 1);
  CHECK(final_exit_code(130, 1, false) == 130);
  CHECK(final_exit_code(143, 0, true) == 143);
}

TEST_CASE("run refuses an unusable --report before anything is built (exit 2, not 3 after the run)", "[outputs][cli]") {
  TempDir tmp;
  const auto file = (tmp.path / "report-is-a-file").string();
  { std::ofstream(file) << "x"; }
  const std::string one_case = std::string(KAH_SOURCE_DIR) + "/cases/peer-power-off.toml";
  CHECK(cli({"run", "--report", file, one_case}) == 2);
  fs::create_directory(tmp.path / "full");
  { std::ofstream(tmp.path / "full" / "notes.txt") << "mine"; }
  CHECK(cli({"run", "--report", (tmp.path / "full").string(), "--dry-run", one_case}) == 2);
  CHECK(cli({"run", "--report", (tmp.path / "full").string(), "--force", "--dry-run", one_case}) == 0);
  CHECK(cli({"run", "--json", "/proc/kaharness-test.json", "--dry-run", one_case}) == 2);
}
