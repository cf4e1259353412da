// Values echoed in case-file errors are clipped (issue 9, item 8): a 3 MB unknown
// kind is not printed whole, and a clipped name keeps whole UTF-8 characters.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "harness/case/case.h"

using namespace kah;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string error_of(const std::string& text) {
  try {
    parse_case(text, "case.toml");
  } catch (const CaseError& e) {
    return e.what();
  }
  return "";
}

// Whether `s` is well-formed UTF-8 (no character cut in half).
bool valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

}  // namespace

TEST_CASE("an unknown kind, outcome or family is clipped in the error, not echoed whole", "[case][clip]") {
  const std::string huge(3 * 1024 * 1024, 'x');
  for (const auto& [key, text] : std::vector<std::pair<std::string, std::string>>{
           {"fault kind", "name = \"t\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\n[[fault]]\nkind = \"" +
                              huge + "\"\n[expect]\noutcome = \"alive\"\n"},
           {"outcome", "name = \"t\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\n[expect]\noutcome = \"" +
                           huge + "\"\n"},
           {"family", "name = \"t\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\nfamily = \"" + huge +
                          "\"\n[expect]\noutcome = \"alive\"\n"},
       }) {
    const auto msg = error_of(text);
    INFO(key << ": " << msg.substr(0, 300));
    CHECK(has(msg, "unknown " + key + " 'xxxxxxxx"));
    CHECK(has(msg, "...' (3145728 bytes)"));
    CHECK(msg.size() < 400);
  }
}

TEST_CASE("a bad name is clipped on a character boundary", "[case][clip]") {
  std::string name = "a";
  for (int i = 0; i < 30; ++i) name += "\xc3\xa9";  // é: byte 40 falls inside one
  const auto msg = error_of("name = \"" + name + "\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\n"
                            "[expect]\noutcome = \"alive\"\n");
  INFO(msg);
  CHECK(has(msg, "'name' must match [a-z0-9-]+"));
  CHECK(has(msg, "...\" (61 bytes)"));
  CHECK(valid_utf8(msg));
}
