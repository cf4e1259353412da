// The floors of the house, checked in the source: every #include of a project header
// must point into the including file's own layer or one that its layer links
// (cmake/layers.cmake; the DEPENDS of each kah_layer() are the truth). The linker
// already refuses a call that runs back up (the kah_layer_check_* executables); this
// catches a header that does, inline code and types included.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Layer name -> the layers it declares (kah::x), from every kah_layer() call.
std::map<std::string, std::set<std::string>> declared_layers(const fs::path& root) {
  std::map<std::string, std::set<std::string>> layers;
  const std::regex call(R"(kah_layer\(\s*NAME\s+(\w+)([^)]*)\))");
  const std::regex dep(R"(kah::(\w+))");
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.path().filename() != "CMakeLists.txt" || entry.path().string().find("/build") != std::string::npos)
      continue;
    const std::string text = read_text(entry.path());
    for (std::sregex_iterator it(text.begin(), text.end(), call), end; it != end; ++it) {
      auto& deps = layers[(*it)[1]];
      const std::string rest = (*it)[2];
      for (std::sregex_iterator d(rest.begin(), rest.end(), dep); d != end; ++d) deps.insert((*d)[1]);
    }
  }
  return layers;
}

std::set<std::string> reachable(const std::map<std::string, std::set<std::string>>& layers, const std::string& from) {
  std::set<std::string> seen{from};
  std::vector<std::string> todo{from};
  while (!todo.empty()) {
    const auto name = todo.back();
    todo.pop_back();
    const auto it = layers.find(name);
    if (it == layers.end()) continue;
    for (const auto& d : it->second)
      if (seen.insert(d).second) todo.push_back(d);
  }
  return seen;
}

// The layer a project path belongs to: netns/x.h -> netns, harness/run/x.h -> run.
std::string layer_of(const std::string& path) {
  if (path.rfind("netns/", 0) == 0) return "netns";
  const std::regex harness(R"(^harness/(\w+)/)");
  std::smatch m;
  return std::regex_search(path, m, harness) ? std::string(m[1]) : "";
}

}  // namespace

TEST_CASE("layers: no include runs back up", "[layers]") {
  const fs::path root = KAH_SOURCE_DIR;
  const auto layers = declared_layers(root);
  REQUIRE(layers.size() >= 10);
  // The order of the house, bottom to top, as the README and docs draw it.
  CHECK(reachable(layers, "cli").count("netns") == 1);
  CHECK(reachable(layers, "model").size() == 1);
  CHECK(reachable(layers, "report").count("run") == 0);

  const std::regex include(R"re(#include "((?:harness|netns)/[^"]+)")re");
  std::size_t checked = 0;
  for (const char* top : {"harness", "netns"}) {
    for (const auto& entry : fs::recursive_directory_iterator(root / top)) {
      const auto ext = entry.path().extension();
      if (ext != ".h" && ext != ".cc") continue;
      const std::string file = fs::relative(entry.path(), root).generic_string();
      const std::string from = layer_of(file);
      REQUIRE_FALSE(from.empty());
      const auto allowed = reachable(layers, from);
      const std::string text = read_text(entry.path());
      for (std::sregex_iterator it(text.begin(), text.end(), include), end; it != end; ++it) {
        const std::string target = (*it)[1];
        INFO(file << " includes " << target);
        CHECK(allowed.count(layer_of(target)) == 1);
        ++checked;
      }
    }
  }
  CHECK(checked > 100);
}

TEST_CASE("layers: the picture in docs/architecture.md matches the link lines", "[layers]") {
  const fs::path root = KAH_SOURCE_DIR;
  const auto layers = declared_layers(root);
  const std::string doc = read_text(root / "docs" / "architecture.md");
  // Arrows "  a --> b" of the mermaid flowchart ("case_" is the node of "case").
  std::map<std::string, std::set<std::string>> drawn;
  const std::regex arrow(R"(\n\s*(\w+) --> (\w+))");
  const auto name = [](std::string n) { return n == "case_" ? std::string("case") : n; };
  for (std::sregex_iterator it(doc.begin(), doc.end(), arrow), end; it != end; ++it)
    drawn[name((*it)[1])].insert(name((*it)[2]));
  REQUIRE_FALSE(drawn.empty());
  for (const auto& [from, deps] : layers) {
    const auto in_picture = reachable(drawn, from);
    const auto linked = reachable(layers, from);
    INFO("layer " << from);
    // Every arrow drawn is a link, and every link is drawn (directly or through others).
    CHECK(in_picture == linked);
  }
}
