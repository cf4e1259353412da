// Case files: what a good file turns into, and that every bad one is refused with
// the file:line:column a user needs to fix it. Positions are asserted exactly:
// they are the contract with editors and CI logs that link to them.
#include "harness/case/case.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

const fs::path kSourceDir = KAH_SOURCE_DIR;

kah::CaseError error_of_text(const std::string& text) {
  try {
    kah::parse_case(text, "case.toml");
  } catch (const kah::CaseError& e) {
    return e;
  }
  FAIL("accepted, but should have been refused:\n" << text);
  throw std::logic_error("unreachable");
}

kah::CaseError error_of_file(const fs::path& file) {
  try {
    kah::load_case(file);
  } catch (const kah::CaseError& e) {
    return e;
  }
  FAIL("accepted, but should have been refused: " << file);
  throw std::logic_error("unreachable");
}

// Just enough to be valid, so that each test adds the one thing it is about.
const std::string kMinimal = R"(name = "t"
description = "d"
[[connection]]
name = "c1"
[expect]
outcome = "alive"
)";

// A folder under the system temp dir, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("kah-test-case-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  void write(const fs::path& relative, const std::string& text) const {
    fs::create_directories((path / relative).parent_path());
    std::ofstream(path / relative) << text;
  }
};

}  // namespace

TEST_CASE("a case file with every key", "[case]") {
  const std::string text = R"(# a comment
name = "full-case"
description = "every key set"
horizon_s = 12.5

[[connection]]
name = "c1"
family = "ipv6"
keepalive = { idle = 2, interval = 1, count = 3 }
user_timeout_ms = 4500
copies = 7
traffic = "sending"

[sysctl.client]
"net.ipv4.tcp_keepalive_time" = 10
"net.ipv4.tcp_keepalive_intvl" = "5"

[sysctl.server]
"net.ipv4.tcp_retries2" = 3

[[fault]]
kind = "drop-to-client"

[expect]
outcome = "timeout"
deadline_ms = 120000
)";
  const kah::Case c = kah::parse_case(text, "dir/full.toml");
  CHECK(c.name == "full-case");
  CHECK(c.description == "every key set");
  CHECK(c.file == fs::path("dir/full.toml"));
  CHECK(c.where.str() == "dir/full.toml:1:1");
  REQUIRE(c.horizon_s.has_value());
  CHECK(*c.horizon_s == 12.5);

  REQUIRE(c.connections.size() == 1);
  const kah::ConnectionSpec& conn = c.connections[0];
  CHECK(conn.name == "c1");
  CHECK(conn.family == kah::Family::ipv6);
  CHECK(conn.keepalive.enabled);
  CHECK(conn.keepalive.idle_s == 2);
  CHECK(conn.keepalive.interval_s == 1);
  CHECK(conn.keepalive.count == 3);
  CHECK(conn.user_timeout_ms == 4500);
  CHECK(conn.copies == 7);
  CHECK(conn.traffic == kah::Traffic::sending);
  CHECK(conn.where.str() == "dir/full.toml:6:1");

  CHECK(c.sysctls.at("client").at("net.ipv4.tcp_keepalive_time") == "10");
  CHECK(c.sysctls.at("client").at("net.ipv4.tcp_keepalive_intvl") == "5");
  CHECK(c.sysctls.at("client").size() == 2);
  CHECK(c.sysctls.at("server").at("net.ipv4.tcp_retries2") == "3");

  REQUIRE(c.faults.size() == 1);
  CHECK(c.faults[0].kind == kah::FaultKind::drop_to_client);
  CHECK(c.faults[0].where.str() == "dir/full.toml:21:1");

  CHECK(c.expect.outcome == kah::ExpectedOutcome::timeout);
  CHECK(c.expect.deadline_ms == 120000.0);
  CHECK(c.expect.where.str() == "dir/full.toml:24:1");
}

TEST_CASE("defaults for every optional key", "[case]") {
  const kah::Case c = kah::parse_case(kMinimal, "min.toml");
  CHECK_FALSE(c.horizon_s.has_value());
  CHECK(c.sysctls.empty());
  REQUIRE(c.connections.size() == 1);
  const kah::ConnectionSpec& conn = c.connections[0];
  CHECK(conn.family == kah::Family::ipv4);
  CHECK(conn.keepalive.enabled);  // no keepalive key = SO_KEEPALIVE on, timers from sysctls
  CHECK_FALSE(conn.keepalive.idle_s.has_value());
  CHECK_FALSE(conn.keepalive.interval_s.has_value());
  CHECK_FALSE(conn.keepalive.count.has_value());
  CHECK(conn.user_timeout_ms == 0);
  CHECK(conn.copies == 1);
  CHECK(conn.traffic == kah::Traffic::idle);
  // No [[fault]]: one "none", positioned at the file only since it is not written there.
  REQUIRE(c.faults.size() == 1);
  CHECK(c.faults[0].kind == kah::FaultKind::none);
  CHECK(c.faults[0].where.str() == "min.toml");
  CHECK(c.expect.outcome == kah::ExpectedOutcome::alive);
  CHECK_FALSE(c.expect.deadline_ms.has_value());
}

TEST_CASE("a case in a hurry: a name, a connection and an expectation, no description", "[case]") {
  const kah::Case c = kah::parse_case("name = \"quick\"\n[[connection]]\nname = \"c1\"\n[expect]\noutcome = \"alive\"\n",
                                      "quick.toml");
  CHECK(c.name == "quick");
  CHECK(c.description.empty());
}

TEST_CASE("keepalive as a boolean or a partial table", "[case]") {
  auto with_keepalive = [](const std::string& value) {
    std::string text = kMinimal;
    text.insert(text.find("[expect]"), "keepalive = " + value + "\n");
    return kah::parse_case(text, "k.toml").connections.at(0).keepalive;
  };
  const kah::KeepaliveSpec on = with_keepalive("true");
  CHECK(on.enabled);
  CHECK_FALSE(on.idle_s.has_value());

  const kah::KeepaliveSpec off = with_keepalive("false");
  CHECK_FALSE(off.enabled);

  // A key left out falls back to the namespace sysctl.
  const kah::KeepaliveSpec partial = with_keepalive("{ idle = 2, interval = 1 }");
  CHECK(partial.enabled);
  CHECK(partial.idle_s == 2);
  CHECK(partial.interval_s == 1);
  CHECK_FALSE(partial.count.has_value());

  const kah::KeepaliveSpec empty = with_keepalive("{}");
  CHECK(empty.enabled);
  CHECK_FALSE(empty.idle_s.has_value());

  // The limits themselves are accepted.
  const kah::KeepaliveSpec edges = with_keepalive("{ idle = 32767, interval = 1, count = 127 }");
  CHECK(edges.idle_s == 32767);
  CHECK(edges.count == 127);
}

TEST_CASE("family = both expands into an ipv4 and an ipv6 connection", "[case]") {
  const std::string text = R"(name = "t"
description = "d"
[[connection]]
name = "c1"
family = "both"
keepalive = { idle = 2, interval = 1, count = 3 }
user_timeout_ms = 100
copies = 4
[[connection]]
name = "c2"
[expect]
outcome = "timeout"
)";
  const kah::Case c = kah::parse_case(text, "b.toml");
  REQUIRE(c.connections.size() == 3);
  CHECK(c.connections[0].name == "c1-v4");
  CHECK(c.connections[0].family == kah::Family::ipv4);
  CHECK(c.connections[1].name == "c1-v6");
  CHECK(c.connections[1].family == kah::Family::ipv6);
  for (int i : {0, 1}) {
    const kah::ConnectionSpec& conn = c.connections[static_cast<std::size_t>(i)];
    CHECK(conn.keepalive.idle_s == 2);
    CHECK(conn.keepalive.count == 3);
    CHECK(conn.user_timeout_ms == 100);
    CHECK(conn.copies == 4);
    CHECK(conn.where.str() == "b.toml:3:1");
  }
  CHECK(c.connections[2].name == "c2");
}

TEST_CASE("sysctls: integers, strings and unquoted dotted names", "[case]") {
  std::string text = kMinimal;
  text += R"(
[sysctl.client]
net.ipv4.tcp_keepalive_time = 30
"net.ipv4.tcp_keepalive_probes" = "4"
[sysctl.server]
"net.ipv4.tcp_fin_timeout" = 0
)";
  const kah::Case c = kah::parse_case(text, "s.toml");
  CHECK(c.sysctls.at("client").at("net.ipv4.tcp_keepalive_time") == "30");
  CHECK(c.sysctls.at("client").at("net.ipv4.tcp_keepalive_probes") == "4");
  CHECK(c.sysctls.at("server").at("net.ipv4.tcp_fin_timeout") == "0");
}

// ---- The bad files in tests/data/bad: one mistake each -----------------------

namespace {
struct BadFile {
  const char* file;
  int line;
  int column;
  const char* message;  // the whole message, after "error: "
};
}  // namespace

TEST_CASE("bad case files are refused with file:line:column and a message", "[case]") {
  const BadFile bad = GENERATE(values<BadFile>({
      {"syntax-error.toml", 3, 40, "invalid TOML: while parsing string: "},
      {"unknown-key.toml", 7, 1, "unknown key 'keepalive_idle' in [[connection]]; did you mean 'keepalive'?"},
      {"wrong-type.toml", 7, 47, "expected an integer for 'count', found a string (\"3\"); write it without quotes"},
      {"idle-zero.toml", 7, 22, "'idle' must be 1..32767 (TCP_KEEPIDLE), found 0"},
      {"count-too-big.toml", 7, 47, "'count' must be 1..127 (TCP_KEEPCNT), found 200"},
      {"missing-expect.toml", 1, 1, "missing required table [expect]"},
      {"duplicate-names.toml", 10, 8, "duplicate connection name 'c1'; first defined at line 6"},
      {"bad-fault-kind.toml", 9, 8, "unknown fault kind 'blackhol'; did you mean 'blackhole'?"},
      {"sysctl-outside-net.toml", 10, 1, "sysctl 'kernel.panic' is outside net.: only network sysctls are per namespace"},
      {"two-faults.toml", 11, 1, "only one [[fault]] per case is supported for now, found 2"},
      {"middlebox-fault-on-pair.toml", 9, 8, "fault \"conntrack-expire\" acts on the router: it needs topology = \"routed\""},
      {"loss-without-survival.toml", 14, 1, "missing required key 'survival' in [expect]"},
  }));
  const fs::path file = kSourceDir / "tests/data/bad" / bad.file;
  INFO(file);
  const kah::CaseError e = error_of_file(file);
  INFO(e.what());
  CHECK(e.where().file == file.string());
  CHECK(e.where().line == bad.line);
  CHECK(e.where().column == bad.column);
  CHECK_THAT(e.message(), StartsWith(bad.message));
  const std::string prefix = file.string() + ":" + std::to_string(bad.line) + ":" + std::to_string(bad.column) +
                             ": error: " + bad.message;
  CHECK_THAT(std::string(e.what()), StartsWith(prefix));
}

// ---- More mistakes, inline ----------------------------------------------------

namespace {
struct BadText {
  const char* what;     // what the test is about
  std::string text;
  int line;
  int column;
  const char* message;  // substring of the message
};

std::string minimal_with(const std::string& connection_extra, const std::string& tail = "") {
  return "name = \"t\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\n" + connection_extra +
         "[expect]\noutcome = \"alive\"\n" + tail;
}
}  // namespace

TEST_CASE("every kind of mistake is reported where it is", "[case]") {
  const BadText bad = GENERATE(values<BadText>({
      {"unknown top-level key", "nmae = \"x\"\n" + kMinimal, 1, 1,
       "unknown key 'nmae' at the top level; did you mean 'name'?"},
      {"unknown key, nothing close", minimal_with("zzz = 1\n"), 5, 1,
       "unknown key 'zzz' in [[connection]]; known keys: name, family, keepalive, user_timeout_ms, copies, traffic"},
      {"unknown keepalive key", minimal_with("keepalive = { idel = 2 }\n"), 5, 15,
       "unknown key 'idel' in keepalive; did you mean 'idle'?"},
      {"unknown [expect] key", minimal_with("", "deadline = 5\n"), 7, 1,
       "unknown key 'deadline' in [expect]; did you mean 'deadline_ms'?"},
      {"unknown [[fault]] key", minimal_with("", "[[fault]]\nkind = \"none\"\nat = 3\n"), 9, 1,
       "unknown key 'at' in [[fault]]"},
      {"keepalive of the wrong type", minimal_with("keepalive = 5\n"), 5, 13,
       "expected a table ({ idle = ..., interval = ..., count = ... }) or a boolean for 'keepalive', found an "
       "integer (5)"},
      {"float where an integer is needed", minimal_with("keepalive = { idle = 2.5 }\n"), 5, 22,
       "expected an integer for 'idle', found a floating-point number (2.5)"},
      {"interval 0", minimal_with("keepalive = { interval = 0 }\n"), 5, 26,
       "'interval' must be 1..32767 (TCP_KEEPINTVL), found 0"},
      {"idle too large", minimal_with("keepalive = { idle = 32768 }\n"), 5, 22,
       "'idle' must be 1..32767 (TCP_KEEPIDLE), found 32768"},
      {"count 0", minimal_with("keepalive = { count = 0 }\n"), 5, 23, "'count' must be 1..127 (TCP_KEEPCNT), found 0"},
      {"negative user timeout", minimal_with("user_timeout_ms = -1\n"), 5, 19,
       "'user_timeout_ms' must be 0..2147483647 (TCP_USER_TIMEOUT), found -1"},
      {"copies 0", minimal_with("copies = 0\n"), 5, 10, "'copies' must be 1..10000, found 0"},
      {"unknown family", minimal_with("family = \"ipv5\"\n"), 5, 10,
       "unknown family 'ipv5'; did you mean 'ipv4'?"},
      {"unknown traffic", minimal_with("traffic = \"busy\"\n"), 5, 11,
       "unknown traffic 'busy'; expected one of: idle, sending, connect"},
      {"unknown outcome", "name = \"t\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\n"
                          "[expect]\noutcome = \"dead\"\n",
       6, 11,
       "unknown outcome 'dead'; expected one of: timeout, reset, alive"},
      {"connection name with capitals", "name = \"t\"\ndescription = \"d\"\n[[connection]]\nname = \"C1\"\n"
                                        "[expect]\noutcome = \"alive\"\n",
       4, 8, "'name' must match [a-z0-9-]+ (lowercase letters, digits, '-'), found \"C1\""},
      {"case name with a space", "name = \"peer blackhole\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\n"
                                 "[expect]\noutcome = \"alive\"\n",
       1, 8, "'name' must match [a-z0-9-]+"},
      {"missing case name", "description = \"d\"\n[[connection]]\nname = \"c1\"\n[expect]\noutcome = \"alive\"\n",
       1, 1, "missing required key 'name' at the top level"},
      {"empty description", "name = \"t\"\ndescription = \" \"\n[[connection]]\nname = \"c1\"\n"
                            "[expect]\noutcome = \"alive\"\n",
       2, 15, "'description' must not be empty"},
      {"missing connection name", "name = \"t\"\ndescription = \"d\"\n[[connection]]\nfamily = \"ipv4\"\n"
                                  "[expect]\noutcome = \"alive\"\n",
       3, 1, "missing required key 'name' in [[connection]]"},
      {"no connection", "name = \"t\"\ndescription = \"d\"\n[expect]\noutcome = \"alive\"\n", 1, 1,
       "missing [[connection]]: a case needs at least one connection"},
      {"connection as a single table", "name = \"t\"\ndescription = \"d\"\n[connection]\nname = \"c1\"\n"
                                       "[expect]\noutcome = \"alive\"\n",
       3, 1, "expected an array of tables ([[connection]]) for 'connection', found a table"},
      {"missing outcome", "name = \"t\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\n"
                          "[expect]\ndeadline_ms = 5\n",
       5, 1,
       "missing required key 'outcome' in [expect]"},
      {"deadline 0", minimal_with("", "deadline_ms = 0\n"), 7, 15, "'deadline_ms' must be a number > 0, found 0"},
      {"horizon 0", "horizon_s = 0\n" + kMinimal, 1, 13, "'horizon_s' must be > 0 and <= 86400 (one day), found 0"},
      {"horizon in milliseconds", "horizon_s = 5000000\n" + kMinimal, 1, 13,
       "'horizon_s' must be > 0 and <= 86400"},
      {"horizon as a string", "horizon_s = \"5\"\n" + kMinimal, 1, 13,
       "expected a number for 'horizon_s', found a string (\"5\")"},
      {"expect as a string", "name = \"t\"\ndescription = \"d\"\nexpect = \"alive\"\n[[connection]]\nname = \"c1\"\n",
       3, 10, "expected a table for 'expect', found a string (\"alive\")"},
      {"both collides with an explicit name",
       "name = \"t\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\nfamily = \"both\"\n"
       "[[connection]]\nname = \"c1-v6\"\n[expect]\noutcome = \"alive\"\n",
       7, 8,
       "duplicate connection name 'c1-v6'; first defined at line 4 (made by family = \"both\" on 'c1')"},
      {"missing fault kind", minimal_with("", "[[fault]]\n"), 7, 1, "missing required key 'kind' in [[fault]]"},
      {"unknown host in [sysctl]", minimal_with("", "[sysctl.clinet]\n\"net.ipv4.tcp_sack\" = 1\n"), 7, 9,
       "unknown key 'clinet' in [sysctl]"},
      {"unknown sysctl, listed", minimal_with("", "[sysctl.client]\n\"net.core.somaxconn\" = 1\n"), 8, 1,
       "unknown sysctl 'net.core.somaxconn' in [sysctl.client]; known: net.ipv4.tcp_keepalive_time, "},
      {"sysctl misspelt", minimal_with("", "[sysctl.client]\n\"net.ipv4.tcp_keepalive_timeout\" = 1\n"), 8, 1,
       "did you mean 'net.ipv4.tcp_keepalive_time'?"},
      {"sysctl without net.ipv4.", minimal_with("", "[sysctl.client]\ntcp_keepalive_time = 1\n"), 8, 1,
       "is outside net.: only network sysctls are per namespace, any other would change the whole machine; "
       "did you mean 'net.ipv4.tcp_keepalive_time'?"},
      {"sysctl out of range", minimal_with("", "[sysctl.client]\n\"net.ipv4.tcp_keepalive_time\" = 0\n"), 8, 33,
       "'net.ipv4.tcp_keepalive_time' must be 1..32767 (as TCP_KEEPIDLE), found 0"},
      {"sysctl probes out of range", minimal_with("", "[sysctl.client]\n\"net.ipv4.tcp_keepalive_probes\" = 128\n"),
       8, 35, "'net.ipv4.tcp_keepalive_probes' must be 1..127 (as TCP_KEEPCNT), found 128"},
      {"sysctl string that is no number", minimal_with("", "[sysctl.client]\n\"net.ipv4.tcp_sack\" = \"on\"\n"), 8,
       23, "expected an integer for 'net.ipv4.tcp_sack', found a string (\"on\")"},
      {"sysctl boolean", minimal_with("", "[sysctl.client]\n\"net.ipv4.tcp_sack\" = true\n"), 8, 23,
       "expected an integer or a string for 'net.ipv4.tcp_sack', found a boolean (true)"},
      {"sysctl set twice, quoted and dotted",
       minimal_with("", "[sysctl.client]\n\"net.ipv4.tcp_sack\" = 1\nnet.ipv4.tcp_sack = 0\n"), 9, 10,
       "sysctl 'net.ipv4.tcp_sack' is set twice in [sysctl.client]; first at line 8"},
      {"the earliest of several errors wins",
       "name = \"t\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\ncopies = 0\n"
       "keepalive = { count = 500 }\n",  // and no [expect]: reported at 1:1, which is earlier still
       1, 1, "missing required table [expect]"},
      {"the earliest of several errors wins, within a table",
       minimal_with("keepalive = { count = 500 }\ncopies = 0\n"), 5, 23, "'count' must be 1..127"},
  }));
  INFO(bad.what);
  INFO(bad.text);
  const kah::CaseError e = error_of_text(bad.text);
  INFO(e.what());
  CHECK(e.where().file == "case.toml");
  CHECK(e.where().line == bad.line);
  CHECK(e.where().column == bad.column);
  CHECK_THAT(e.message(), Contains(bad.message));
  CHECK_THAT(std::string(e.what()), StartsWith(e.where().str() + ": error: "));
}

TEST_CASE("SourcePos leaves unknown parts out", "[case]") {
  CHECK(kah::SourcePos{"f.toml", 3, 7}.str() == "f.toml:3:7");
  CHECK(kah::SourcePos{"f.toml", 3, 0}.str() == "f.toml:3");
  CHECK(kah::SourcePos{"f.toml", 0, 0}.str() == "f.toml");
  CHECK(kah::CaseError(kah::SourcePos{"f.toml"}, "gone").what() == std::string("f.toml: error: gone"));
}

TEST_CASE("enum spellings round-trip", "[case]") {
  using kah::FaultKind;
  for (const auto& row : kah::fault_kinds()) CHECK(kah::fault_kind_from_string(kah::to_string(row.kind)) == row.kind);
  CHECK(kah::to_string(FaultKind::drop_to_client) == "drop-to-client");
  CHECK(kah::to_string(FaultKind::peer_reboot) == "peer-reboot");
  CHECK_FALSE(kah::fault_kind_from_string("drop_to_client").has_value());
  CHECK_FALSE(kah::fault_kind_from_string("Blackhole").has_value());

  for (kah::Family f : {kah::Family::ipv4, kah::Family::ipv6}) CHECK(kah::family_from_string(kah::to_string(f)) == f);
  CHECK_FALSE(kah::family_from_string("both").has_value());

  for (auto o : {kah::ExpectedOutcome::timeout, kah::ExpectedOutcome::reset, kah::ExpectedOutcome::alive}) {
    CHECK(kah::expected_outcome_from_string(kah::to_string(o)) == o);
  }
  for (auto t : {kah::Traffic::idle, kah::Traffic::sending, kah::Traffic::connecting}) CHECK(kah::traffic_from_string(kah::to_string(t)) == t);
}

TEST_CASE("load_case reports files it cannot read", "[case]") {
  const TempDir dir;
  const kah::CaseError missing = error_of_file(dir.path / "nope.toml");
  CHECK(missing.where().file == (dir.path / "nope.toml").string());
  CHECK(missing.where().line == 0);
  CHECK_THAT(missing.message(), StartsWith("cannot open: "));

  const kah::CaseError folder = error_of_file(dir.path);
  CHECK_THAT(folder.message(), Contains("is a folder"));
}

TEST_CASE("find_case_files: folders recursively and sorted, files as given", "[case]") {
  const TempDir dir;
  dir.write("b.toml", kMinimal);
  dir.write("a.toml", kMinimal);
  dir.write("sub/c.toml", kMinimal);
  dir.write("sub/notes.txt", "not a case");
  dir.write("other.conf", kMinimal);

  const auto found = kah::find_case_files({dir.path});
  REQUIRE(found.size() == 3);
  CHECK(found[0] == dir.path / "a.toml");
  CHECK(found[1] == dir.path / "b.toml");
  CHECK(found[2] == dir.path / "sub/c.toml");

  // A file named explicitly is taken whatever its extension; a file met twice is listed once.
  const auto mixed = kah::find_case_files({dir.path / "other.conf", dir.path, dir.path / "a.toml"});
  REQUIRE(mixed.size() == 4);
  CHECK(mixed[0] == dir.path / "other.conf");
  CHECK(mixed[1] == dir.path / "a.toml");

  try {
    kah::find_case_files({dir.path / "a.toml", dir.path / "missing"});
    FAIL("a missing path was accepted");
  } catch (const kah::CaseError& e) {
    CHECK(e.where().file == (dir.path / "missing").string());
    CHECK(std::string(e.what()) == (dir.path / "missing").string() + ": error: no such file or folder");
  }
}

TEST_CASE("find_case_files: a folder named long runs only when named", "[case]") {
  const TempDir dir;
  dir.write("a.toml", kMinimal);
  dir.write("long/hours.toml", kMinimal);
  dir.write("sub/long/deep.toml", kMinimal);
  const auto found = kah::find_case_files({dir.path});
  REQUIRE(found.size() == 1);
  CHECK(found[0] == dir.path / "a.toml");
  const auto named = kah::find_case_files({dir.path / "long"});
  REQUIRE(named.size() == 1);
  CHECK(named[0] == dir.path / "long/hours.toml");
}

TEST_CASE("the library's long cases: not in `run cases/`, and they parse", "[case][library]") {
  const auto library = kah::find_case_files({kSourceDir / "cases"});
  for (const auto& file : library) CHECK(file.parent_path().filename() != "long");
  const auto long_cases = kah::find_case_files({kSourceDir / "cases" / "long"});
  REQUIRE_FALSE(long_cases.empty());
  for (const auto& file : long_cases) {
    INFO(file);
    kah::Case c;
    REQUIRE_NOTHROW(c = kah::load_case(file));
    CHECK(c.name == file.stem().string());
  }
}

TEST_CASE("every case in the library parses", "[case][library]") {
  const auto files = kah::find_case_files({kSourceDir / "cases"});
  REQUIRE(files.size() >= 12);
  for (const fs::path& file : files) {
    INFO(file);
    kah::Case c;
    REQUIRE_NOTHROW(c = kah::load_case(file));
    // One file per scenario, found by its name in reports.
    CHECK(c.name == file.stem().string());
    // Every scenario runs on both families.
    REQUIRE(c.connections.size() % 2 == 0);
    for (const kah::ConnectionSpec& conn : c.connections) {
      const bool v4 = conn.family == kah::Family::ipv4;
      CHECK_THAT(conn.name, Catch::Matchers::EndsWith(v4 ? "-v4" : "-v6"));
    }
    // Short timers: the library runs in parallel in CI.
    if (c.horizon_s) CHECK(*c.horizon_s <= 12);
    for (const kah::ConnectionSpec& conn : c.connections) {
      const auto& k = conn.keepalive;
      if (k.idle_s) CHECK(*k.idle_s <= 10);
      if (k.interval_s && k.count) CHECK(k.idle_s.value_or(0) + *k.interval_s * *k.count <= 12);
    }
  }
}

// ---- Middleboxes, the server application, and statistical expectations -------

TEST_CASE("a routed case with a router, a server application and every new key", "[case][middlebox]") {
  const std::string text = R"(name = "routed"
description = "every middlebox key"
topology = "routed"

[router]
nat = true
firewall = true
conntrack_loose = false
established_timeout_s = 2

[server]
protocol = "http"
idle_close_s = 2.5

[[connection]]
name = "c1"
family = "both"
traffic = "sending"
send_after_s = 3

[sysctl.router]
"net.ipv4.tcp_retries2" = 3

[[fault]]
kind = "conntrack-timeout"

[expect]
outcome = "timeout"
errno = "EHOSTUNREACH"
)";
  // idle_close_s wants idle connections and no fault: drop those two for this test.
  std::string good = text;
  good.replace(good.find("[server]"), std::string("[server]\nprotocol = \"http\"\nidle_close_s = 2.5\n").size(),
               "[server]\nprotocol = \"http\"\n");
  const kah::Case c = kah::parse_case(good, "routed.toml");
  CHECK(c.topology == kah::TopologyKind::routed);
  CHECK(c.router.nat);
  CHECK(c.router.firewall);
  REQUIRE(c.router.conntrack_loose.has_value());
  CHECK_FALSE(*c.router.conntrack_loose);
  CHECK(c.router.established_timeout_s == 2);
  CHECK(c.router.where.str() == "routed.toml:5:1");
  CHECK(c.server.protocol == kah::AppProtocol::http);
  CHECK_FALSE(c.server.idle_close_s.has_value());
  REQUIRE(c.connections.size() == 2);
  CHECK(c.connections[0].send_after_s == 3.0);
  CHECK(c.sysctls.at("router").at("net.ipv4.tcp_retries2") == "3");
  CHECK(c.faults.front().kind == kah::FaultKind::conntrack_timeout);
  CHECK(c.expect.errno_name == "EHOSTUNREACH");
}

TEST_CASE("defaults: pair topology, kernel router settings, raw server without idle timeout", "[case][middlebox]") {
  const kah::Case c = kah::parse_case(kMinimal, "m.toml");
  CHECK(c.topology == kah::TopologyKind::pair);
  CHECK_FALSE(c.router.nat);
  CHECK_FALSE(c.router.firewall);
  CHECK_FALSE(c.router.conntrack_loose.has_value());
  CHECK_FALSE(c.router.established_timeout_s.has_value());
  CHECK(c.server.protocol == kah::AppProtocol::raw);
  CHECK_FALSE(c.server.idle_close_s.has_value());
  CHECK_FALSE(c.connections[0].send_after_s.has_value());
  CHECK_FALSE(c.expect.errno_name.has_value());
  CHECK_FALSE(c.expect.survival.has_value());
}

TEST_CASE("loss: probability and survival", "[case][middlebox]") {
  const kah::Case c = kah::parse_case(R"(name = "l"
description = "d"
topology = "routed"
[[connection]]
name = "c1"
copies = 40
[[fault]]
kind = "loss"
probability = 0.3
[expect]
outcome = "timeout"
survival = 0.49
)",
                                      "l.toml");
  CHECK(c.faults.front().probability == 0.3);
  CHECK(c.expect.survival == 0.49);
  CHECK(c.expect.outcome == kah::ExpectedOutcome::timeout);
}

namespace {
const std::string kRouted = "name = \"t\"\ndescription = \"d\"\ntopology = \"routed\"\n";
// Line 4 onwards: what each test adds, then one connection and an expectation.
std::string routed_with(const std::string& head, const std::string& fault = "", const std::string& expect = "") {
  return kRouted + head + "[[connection]]\nname = \"c1\"\n" + fault + "[expect]\noutcome = \"timeout\"\n" + expect;
}
}  // namespace

TEST_CASE("middlebox mistakes are reported where they are", "[case][middlebox]") {
  const BadText bad = GENERATE(values<BadText>({
      {"unknown topology", "topology = \"star\"\n" + kMinimal, 1, 12, "unknown topology 'star'; expected one of: pair, routed"},
      {"[router] on the pair topology", "name = \"t\"\ndescription = \"d\"\n[router]\nnat = true\n[[connection]]\nname = \"c1\"\n[expect]\noutcome = \"alive\"\n",
       3, 1, "[router] needs topology = \"routed\""},
      {"unknown [router] key", routed_with("[router]\nmasquerade = true\n"), 5, 1,
       "unknown key 'masquerade' in [router]; known keys: nat, firewall"},
      {"router flag of the wrong type", routed_with("[router]\nnat = \"yes\"\n"), 5, 7,
       "expected a boolean (true or false) for 'nat', found a string (\"yes\")"},
      {"established timeout out of range", routed_with("[router]\nestablished_timeout_s = 0\n"), 5, 25,
       "'established_timeout_s' must be 1..2147483"},
      {"conntrack fault without state", routed_with("", "[[fault]]\nkind = \"conntrack-expire\"\n"), 7, 8,
       "needs connection state on the router: set nat = true or firewall = true"},
      {"conntrack-timeout without a timeout", routed_with("[router]\nnat = true\n", "[[fault]]\nkind = \"conntrack-timeout\"\n"),
       9, 8, "set established_timeout_s in [router]"},
      {"probability without loss", routed_with("", "[[fault]]\nkind = \"reject-rst\"\nprobability = 0.3\n"), 8, 15,
       "'probability' applies to a random fault only, not to kind = \"reject-rst\""},
      {"probability out of range", routed_with("", "[[fault]]\nkind = \"loss\"\nprobability = 1.5\n", "survival = 0.5\n"),
       8, 15, "'probability' must be > 0 and < 1, found 1.5"},
      {"loss without probability", routed_with("", "[[fault]]\nkind = \"loss\"\n", "survival = 0.5\n"), 6, 1,
       "missing required key 'probability' in [[fault]] of kind \"loss\""},
      {"survival without loss", routed_with("", "", "survival = 0.5\n"), 8, 12,
       "'survival' applies to a random fault (kind = \"loss\") only"},
      {"survival out of range", routed_with("", "[[fault]]\nkind = \"loss\"\nprobability = 0.3\n", "survival = 2\n"),
       11, 12, "'survival' is a probability: 0..1, found 2"},
      {"unknown errno", minimal_with("", "errno = \"EWHATEVER\"\n"), 7, 9, "unknown errno 'EWHATEVER'"},
      {"errno with alive", minimal_with("", "errno = \"ETIMEDOUT\"\n"), 7, 9,
       "'errno' goes with outcome \"timeout\" or \"reset\""},
      {"send_after_s without sending", minimal_with("send_after_s = 3\n"), 5, 16,
       "'send_after_s' is when the client writes: it needs traffic = \"sending\""},
      {"send_after_s not positive", minimal_with("traffic = \"sending\"\nsend_after_s = -1\n"), 6, 16,
       "'send_after_s' must be > 0"},
      {"[sysctl.router] on the pair topology", minimal_with("", "[sysctl.router]\n\"net.ipv4.tcp_retries2\" = 3\n"), 7, 1,
       "[sysctl.router] needs topology = \"routed\""},
      {"middlebox fault with connect traffic", routed_with("", "traffic = \"connect\"\n[[fault]]\nkind = \"reject-rst\"\n"),
       8, 8, "acts on established flows; connection 'c1' has traffic = \"connect\""},
      {"unknown [server] key", kMinimal + "[server]\nidle = 3\n", 8, 1, "unknown key 'idle' in [server]"},
      {"unknown protocol", kMinimal + "[server]\nprotocol = \"ftp\"\n", 8, 12, "unknown protocol 'ftp'"},
      {"idle_close_s not positive", kMinimal + "[server]\nidle_close_s = 0\n", 8, 16, "'idle_close_s' must be > 0"},
      {"idle_close_s with a fault",
       minimal_with("", "[[fault]]\nkind = \"blackhole\"\n") + "[server]\nidle_close_s = 3\n", 8, 8,
       "[server] idle_close_s needs a working path"},
      {"idle_close_s with sending", minimal_with("traffic = \"sending\"\n") + "[server]\nidle_close_s = 3\n", 5, 11,
       "[server] idle_close_s needs idle connections"},
  }));
  INFO(bad.what);
  INFO(bad.text);
  const kah::CaseError e = error_of_text(bad.text);
  INFO(e.what());
  CHECK(e.where().line == bad.line);
  CHECK(e.where().column == bad.column);
  CHECK_THAT(e.message(), Contains(bad.message));
}
