// A small well-formedness checker that stands in for an XML parser in the unit tests
// of everything that writes XML or XML-syntax HTML (JUnit, the HTML report, the
// margins page), so the tests need nothing beyond Catch2.
#pragma once

#include <cctype>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace kah::test {

inline bool name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' || c == ':'; }
inline bool name_char(char c) {
  return name_start(c) || std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.';
}

// Whether `s` (text or an attribute value) uses '&' only in references XML knows.
inline bool references_ok(std::string_view s) {
  for (std::size_t at = s.find('&'); at != std::string_view::npos; at = s.find('&', at + 1)) {
    const auto end = s.find(';', at);
    if (end == std::string_view::npos) return false;
    const auto ref = s.substr(at + 1, end - at - 1);
    static const std::set<std::string_view> named{"amp", "lt", "gt", "quot", "apos"};
    if (named.count(ref) != 0) continue;
    if (ref.size() < 2 || ref[0] != '#') return false;
    const bool hex = ref[1] == 'x';
    const auto digits = ref.substr(hex ? 2 : 1);
    if (digits.empty()) return false;
    for (const char c : digits)
      if (hex ? std::isxdigit(static_cast<unsigned char>(c)) == 0 : std::isdigit(static_cast<unsigned char>(c)) == 0)
        return false;
  }
  return true;
}

// "" when `doc` is well-formed XML (one root, tags nested and matched, attributes quoted
// and unique, no stray '<' or '&'), else what is wrong and where. Allows a leading
// <?xml?> declaration and <!DOCTYPE>, so it also reads the HTML report, which keeps to
// XML syntax.
inline std::string xml_problem(std::string_view doc) {
  std::vector<std::string> open;
  int roots = 0;
  std::size_t i = 0;
  const auto fail = [&](const std::string& what) { return fmt::format("{} at offset {}", what, i); };
  while (i < doc.size()) {
    if (doc[i] != '<') {
      const auto end = std::min(doc.find('<', i), doc.size());
      const auto text = doc.substr(i, end - i);
      if (!references_ok(text)) return fail("bad '&' in text");
      if (open.empty() && text.find_first_not_of(" \t\r\n") != std::string_view::npos) return fail("text outside the root");
      i = end;
      continue;
    }
    if (doc.substr(i, 5) == "<?xml") {
      if (i != 0) return fail("XML declaration not at the start");
      const auto end = doc.find("?>", i);
      if (end == std::string_view::npos) return fail("unterminated declaration");
      i = end + 2;
      continue;
    }
    if (doc.substr(i, 4) == "<!--") {
      const auto end = doc.find("-->", i);
      if (end == std::string_view::npos) return fail("unterminated comment");
      i = end + 3;
      continue;
    }
    if (doc.substr(i, 9) == "<!DOCTYPE") {
      if (roots != 0) return fail("DOCTYPE after the root");
      i = doc.find('>', i) + 1;
      continue;
    }
    const bool closing = doc.substr(i, 2) == "</";
    std::size_t j = i + (closing ? 2 : 1);
    if (j >= doc.size() || !name_start(doc[j])) return fail("bad tag name");
    const std::size_t name_at = j;
    while (j < doc.size() && name_char(doc[j])) ++j;
    const std::string name(doc.substr(name_at, j - name_at));
    if (closing) {
      while (j < doc.size() && std::isspace(static_cast<unsigned char>(doc[j])) != 0) ++j;
      if (j >= doc.size() || doc[j] != '>') return fail("bad end tag");
      if (open.empty() || open.back() != name) return fail(fmt::format("</{}> does not close <{}>", name, open.empty() ? "" : open.back()));
      open.pop_back();
      i = j + 1;
      continue;
    }
    std::set<std::string> attributes;
    for (;;) {
      const std::size_t before = j;
      while (j < doc.size() && std::isspace(static_cast<unsigned char>(doc[j])) != 0) ++j;
      if (j >= doc.size()) return fail("unterminated tag");
      if (doc[j] == '>' || doc.substr(j, 2) == "/>") break;
      if (j == before) return fail("no space before an attribute");
      const std::size_t attr_at = j;
      if (!name_start(doc[j])) return fail("bad attribute name");
      while (j < doc.size() && name_char(doc[j])) ++j;
      const std::string attr(doc.substr(attr_at, j - attr_at));
      if (!attributes.insert(attr).second) return fail("duplicate attribute " + attr);
      if (j + 1 >= doc.size() || doc[j] != '=' || (doc[j + 1] != '"' && doc[j + 1] != '\'')) return fail("unquoted attribute " + attr);
      const char quote = doc[j + 1];
      const auto end = doc.find(quote, j + 2);
      if (end == std::string_view::npos) return fail("unterminated attribute");
      const auto value = doc.substr(j + 2, end - j - 2);
      if (value.find('<') != std::string_view::npos || !references_ok(value)) return fail("bad attribute value " + attr);
      j = end + 1;
    }
    const bool empty_element = doc[j] == '/';
    if (open.empty()) ++roots;
    if (roots > 1) return fail("second root element");
    if (!empty_element) open.push_back(name);
    i = j + (empty_element ? 2 : 1);
  }
  if (!open.empty()) return fmt::format("<{}> never closed", open.back());
  if (roots != 1) return "no root element";
  return "";
}

}  // namespace kah::test
