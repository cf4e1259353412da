#include "harness/report/margins.h"
#include "harness/report/text_file.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <map>
#include <stdexcept>
#include <system_error>
#include <tuple>

#include <fmt/format.h>

#include "harness/report/xml.h"

namespace kah {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Verdict verdict_from_string(const std::string& s) {
  for (Verdict v : {Verdict::pass, Verdict::fail, Verdict::error, Verdict::skip, Verdict::interrupted, Verdict::not_judged})
    if (to_string(v) == s) return v;
  throw std::invalid_argument(fmt::format("unknown verdict '{}'", s));
}

ObservedOutcome observed_outcome_from_string(const std::string& s) {
  for (ObservedOutcome o : {ObservedOutcome::timeout, ObservedOutcome::reset, ObservedOutcome::alive,
                            ObservedOutcome::eof, ObservedOutcome::error, ObservedOutcome::closed})
    if (to_string(o) == s) return o;
  throw std::invalid_argument(fmt::format("unknown observed outcome '{}'", s));
}

// A number, or `fallback` for null or a missing key (latest_ms is null when unbounded).
double number_or(const nlohmann::json& j, const char* key, double fallback) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? fallback : it->get<double>();
}

std::string string_or_empty(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? std::string() : it->get<std::string>();
}

// "c1-v4#2" -> "c1-v4": copies of one connection are observations of the same thing.
std::string fold_copy(const std::string& name) {
  const auto hash = name.rfind('#');
  if (hash == std::string::npos || hash + 1 == name.size()) return name;
  if (!std::all_of(name.begin() + static_cast<std::ptrdiff_t>(hash) + 1, name.end(),
                   [](char c) { return c >= '0' && c <= '9'; }))
    return name;
  return name.substr(0, hash);
}

std::string ms_text(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:.1f}", v);
}

// A bin's range for its tooltip: "[10, 20)", "[-inf, 0)", and "[90, 100]" for the bin
// whose upper edge sits just above 100 % so that 100 % itself is inside.
std::string range_text(double lo, double hi) {
  const auto edge = [](double v) {
    if (std::isinf(v)) return std::string(v > 0 ? "inf" : "-inf");
    return fmt::format("{}", std::abs(v - std::round(v)) < 1e-9 ? std::round(v) : v);
  };
  const bool closed = std::isfinite(hi) && hi != std::round(hi) && std::abs(hi - std::round(hi)) < 1e-9;
  return closed ? fmt::format("[{}, {}]", edge(lo), edge(std::round(hi))) : fmt::format("[{}, {})", edge(lo), edge(hi));
}

// The label under a bin: its lower edge, short ("<0", "1k", "90-100", ">100").
std::string bin_label(const std::vector<double>& edges, std::size_t i, bool pct) {
  // Edges set just above a round number (100 %, so that 100 % is inside) read as it.
  const auto snap = [](double v) { return std::isfinite(v) && std::abs(v - std::round(v)) < 1e-9 ? std::round(v) : v; };
  const double lo = snap(edges[i]), hi = snap(edges[i + 1]);
  if (std::isinf(lo)) return fmt::format("<{}", hi);
  if (pct) return std::isinf(hi) ? fmt::format(">{}", lo) : fmt::format("{}", lo);
  const auto k = [](double v) { return v >= 1000 ? fmt::format("{}k", v / 1000) : fmt::format("{}", v); };
  return std::isinf(hi) ? k(lo) + "+" : k(lo);
}

// Calm, as the HTML report: greys for structure, blue inside, red for misses.
constexpr const char* kStyle = R"css(
:root { --ink:#1f2328; --muted:#656d76; --line:#d0d7de; --panel:#ffffff; --page:#f6f8fa;
        --inside:#3b6fb6; --miss:#cf222e; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink);
       font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; font-weight: 600; }
h2 { font-size: 17px; margin: 0 0 8px; font-weight: 600; }
.meta, .note { color: var(--muted); }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 16px 0; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 20px; }
svg.hist { width: 100%; height: auto; display: block; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--ink); }
svg text.axis { fill: var(--muted); }
svg text.misscount { fill: var(--miss); font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid #eaeef2; vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; padding-right: 18px; }
td.bad, span.bad { color: var(--miss); font-weight: 600; }
.legend { display: flex; gap: 18px; font-size: 12.5px; color: var(--muted); }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
footer { color: var(--muted); font-size: 12px; margin-top: 24px; }
)css";

// One histogram as SVG: a bar per bin, inside (blue) under missed (red), the count
// above; bins left of 0 (and right of 100 %) are outside the window by definition.
std::string svg_histogram(const std::string& title, const std::string& axis, const Histogram& h, bool pct) {
  constexpr double W = 500, H = 230, L = 34, R = 8, T = 28, B = 46;
  const std::size_t bins = h.inside.size();
  const double pw = W - L - R, ph = H - T - B, bw = pw / static_cast<double>(bins);
  int top = 1;
  for (std::size_t i = 0; i < bins; ++i) top = std::max(top, h.inside[i] + h.misses[i]);
  // A bar of a few among hundreds would vanish: inside bars get at least 2 px, misses
  // 4 px, so one miss among a thousand observations still shows.
  const auto height = [&](int count, double min_px) { return count == 0 ? 0.0 : std::max(min_px, ph * count / top); };
  std::string s = fmt::format(
      "<svg class=\"hist\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" role=\"img\" "
      "aria-label=\"{}\">\n<text x=\"{}\" y=\"16\" font-weight=\"600\">{}</text>\n",
      W, H, xml_attr(title), L, xml_text(title));
  // Axes and the one gridline at the top count.
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#8c959f\"/>\n", L, T + ph, L + pw);
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#eaeef2\"/>\n", L, T, L + pw);
  s += fmt::format("<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", L - 4, T + 4, top);
  s += fmt::format("<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\n", L - 4, T + ph + 4);
  for (std::size_t i = 0; i < bins; ++i) {
    const double x = L + bw * static_cast<double>(i);
    const bool outside_bin = std::isinf(h.edges[i]) || (pct && std::isinf(h.edges[i + 1]));
    if (outside_bin)  // a faint red ground: anything here is a miss
      s += fmt::format("<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"#fff5f5\"/>\n", x, T, bw, ph);
    const int in = h.inside[i], miss = h.misses[i];
    const double in_h = height(in, 2), miss_h = height(miss, 4), base = T + ph;
    const std::string range = range_text(h.edges[i], h.edges[i + 1]);
    if (in > 0)
      s += fmt::format(
          "<rect class=\"inside\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#3b6fb6\">"
          "<title>{} {}: {} inside</title></rect>\n",
          x + 1, base - in_h, bw - 2, in_h, xml_text(range), pct ? "%" : "ms", in);
    if (miss > 0)
      s += fmt::format(
          "<rect class=\"miss\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#cf222e\">"
          "<title>{} {}: {} missed</title></rect>\n",
          x + 1, base - in_h - miss_h, bw - 2, miss_h, xml_text(range), pct ? "%" : "ms", miss);
    if (in + miss > 0)
      s += fmt::format("<text{} x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                       miss > 0 ? " class=\"misscount\"" : "", x + bw / 2, base - in_h - miss_h - 3,
                       in + miss);
    s += fmt::format("<text class=\"axis\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x + bw / 2,
                     T + ph + 14, xml_text(bin_label(h.edges, i, pct)));
  }
  s += fmt::format("<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", L + pw / 2, H - 8,
                   xml_text(axis));
  return s + "</svg>\n";
}

}  // namespace

RunResult run_result_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("cases")) throw std::invalid_argument("not a kaharness result (no \"cases\")");
  RunResult run;
  run.kernel = string_or_empty(j, "kernel");
  if (j.contains("hz") && !j.at("hz").is_null()) run.hz = j.at("hz").get<int>();
  run.hz_source = string_or_empty(j, "hz_source");
  run.calibrated = j.value("calibrated", false);
  run.wall_ms = number_or(j, "wall_ms", 0);
  for (const auto& jc : j.at("cases")) {
    CaseResult c;
    c.name = jc.at("name").get<std::string>();
    c.file = string_or_empty(jc, "file");
    c.verdict = verdict_from_string(jc.at("verdict").get<std::string>());
    c.error = string_or_empty(jc, "error");
    for (const auto& jr : jc.at("connections")) {
      ConnectionResult r;
      r.name = jr.at("name").get<std::string>();
      if (auto f = family_from_string(jr.value("family", "ipv4"))) r.family = *f;
      const auto& e = jr.at("expected");
      const auto outcome = expected_outcome_from_string(e.at("outcome").get<std::string>());
      if (!outcome) throw std::invalid_argument(fmt::format("unknown expected outcome in {}/{}", c.name, r.name));
      r.expected.outcome = *outcome;
      r.expected.window = {number_or(e, "earliest_ms", 0), number_or(e, "latest_ms", kInf)};
      const auto& o = jr.at("observed");
      r.observed = observed(observed_outcome_from_string(o.at("outcome").get<std::string>()),
                            string_or_empty(o, "errno"), number_or(o, "at_ms", 0), o.value("probes", 0));
      r.observed.timed_by = o.value("timed_by", std::string("wakeup"));
      r.verdict = verdict_from_string(jr.at("verdict").get<std::string>());
      r.message = string_or_empty(jr, "message");
      c.connections.push_back(std::move(r));
    }
    for (const auto& jp : jc.value("programs", nlohmann::json::array())) {
      ProgramResult p;
      p.name = jp.at("name").get<std::string>();
      p.verdict = verdict_from_string(jp.at("verdict").get<std::string>());
      for (const auto& jk : jp.value("checks", nlohmann::json::array()))
        p.checks.push_back({jk.at("what").get<std::string>(), verdict_from_string(jk.at("verdict").get<std::string>()),
                            string_or_empty(jk, "message")});
      c.programs.push_back(std::move(p));
    }
    run.cases.push_back(std::move(c));
  }
  return run;
}

double Observation::to_earliest_pct() const {
  const double w = width_ms();
  if (w <= 0) return to_earliest_ms() == 0 ? 0 : std::copysign(kInf, to_earliest_ms());
  return 100.0 * to_earliest_ms() / w;
}

double Observation::to_latest_pct() const {
  const double w = width_ms();
  if (w <= 0) return to_latest_ms() == 0 ? 0 : std::copysign(kInf, to_latest_ms());
  return 100.0 * to_latest_ms() / w;
}

std::vector<Observation> observations(const std::vector<LabelledRun>& runs) {
  std::vector<Observation> out;
  for (const auto& lr : runs)
    for (const auto& c : lr.run.cases)
      for (const auto& r : c.connections) {
        // Alive: no edge to be near. Closed (a program closed its own connection before
        // the kernel's earliest end): the window is the kernel's, which it must not
        // reach, not one to fall in. Error or skip: nothing was observed.
        if (r.expected.outcome == ExpectedOutcome::alive || r.expected.outcome == ExpectedOutcome::closed ||
            !r.expected.window.bounded())
          continue;
        if (r.verdict != Verdict::pass && r.verdict != Verdict::fail) continue;
        // A copy that outlived a random fault (lossy path): staying open is as good as
        // ending inside the window, and is judged over the copies, not by an edge.
        if (r.observed.outcome == ObservedOutcome::alive && r.verdict == Verdict::pass) continue;
        out.push_back({lr.label, c.name, fold_copy(r.name), r.expected.window.earliest_ms,
                       r.expected.window.latest_ms, r.observed.at_ms, r.verdict});
      }
  return out;
}

std::vector<FalseVerdict> false_verdicts(const std::vector<LabelledRun>& runs) {
  std::vector<FalseVerdict> out;
  for (const auto& lr : runs)
    for (const auto& c : lr.run.cases) {
      if (c.connections.empty() && c.verdict != Verdict::pass)  // the case never got to its connections
        out.push_back({lr.label, c.name, "-", c.verdict, c.error});
      for (const auto& r : c.connections)
        if (r.verdict != Verdict::pass) out.push_back({lr.label, c.name, r.name, r.verdict, r.message});
      // A program's expectation (its output, exit, settings) is a verdict too: the run is
      // red for it as for a connection.
      for (const auto& p : c.programs) {
        if (p.verdict == Verdict::pass) continue;
        std::string why;
        for (const auto& check : p.checks)
          if (check.verdict == p.verdict) {
            why = check.message;
            break;
          }
        out.push_back({lr.label, c.name, "program " + p.name, p.verdict, why});
      }
    }
  return out;
}

std::vector<EdgeMargins> smallest_margins(const std::vector<Observation>& obs) {
  std::map<std::pair<std::string, std::string>, EdgeMargins> by;
  for (const auto& o : obs) {
    auto& m = by[{o.case_name, o.connection}];
    m.case_name = o.case_name;
    m.connection = o.connection;
    ++m.observations;
    m.misses += o.miss();
    if (o.to_earliest_ms() < m.to_earliest_ms) m.to_earliest_ms = o.to_earliest_ms(), m.earliest_run = o.run;
    if (o.to_latest_ms() < m.to_latest_ms) m.to_latest_ms = o.to_latest_ms(), m.latest_run = o.run;
  }
  std::vector<EdgeMargins> out;
  for (auto& [key, m] : by) out.push_back(std::move(m));
  std::stable_sort(out.begin(), out.end(), [](const EdgeMargins& a, const EdgeMargins& b) {
    return std::min(a.to_earliest_ms, a.to_latest_ms) < std::min(b.to_earliest_ms, b.to_latest_ms);
  });
  return out;
}

int Histogram::total() const {
  int n = 0;
  for (std::size_t i = 0; i < inside.size(); ++i) n += inside[i] + misses[i];
  return n;
}

Histogram make_histogram(const std::vector<Observation>& obs, double (Observation::*margin)() const,
                         std::vector<double> edges) {
  if (edges.size() < 2 || !std::isinf(edges.front()) || !std::isinf(edges.back()))
    throw std::invalid_argument("histogram edges must run from -inf to +inf");
  Histogram h;
  h.edges = std::move(edges);
  h.inside.assign(h.edges.size() - 1, 0);
  h.misses.assign(h.edges.size() - 1, 0);
  for (const auto& o : obs) {
    const double v = (o.*margin)();
    // The last edge not above v: bins are [lo, hi); +inf itself falls in the last bin.
    auto it = std::upper_bound(h.edges.begin(), h.edges.end(), v);
    std::size_t bin = static_cast<std::size_t>(it - h.edges.begin());
    bin = bin == 0 ? 0 : std::min(bin - 1, h.inside.size() - 1);
    (o.miss() ? h.misses : h.inside)[bin]++;
  }
  return h;
}

std::vector<double> ms_edges() {
  return {-kInf, 0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, kInf};
}

std::vector<double> pct_edges() {
  // 100 % itself (observed on the other edge) is inside: the last inside bin is [90, 100].
  return {-kInf, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90, std::nextafter(100.0, kInf), kInf};
}

namespace {

// Grouped by case and copy-folded connection, at most 5 messages each.
std::string list_by_connection(const std::vector<FalseVerdict>& list) {
  std::map<std::pair<std::string, std::string>, std::vector<const FalseVerdict*>> by;
  for (const auto& f : list) by[{f.case_name, fold_copy(f.connection)}].push_back(&f);
  std::string s;
  for (const auto& [key, group] : by) {
    s += fmt::format("  {}/{}: {}\n", key.first, key.second, group.size());
    for (std::size_t i = 0; i < group.size() && i < 5; ++i)
      s += fmt::format("      {}: {} {}{}\n", group[i]->run, group[i]->connection, to_string(group[i]->verdict),
                       group[i]->message.empty() ? "" : ": " + group[i]->message);
    if (group.size() > 5) s += fmt::format("      ... {} more\n", group.size() - 5);
  }
  return s;
}

}  // namespace

std::string margins_text(const std::vector<LabelledRun>& runs) {
  const auto obs = observations(runs);
  const auto all = false_verdicts(runs);
  std::vector<FalseVerdict> fv, doubted;
  for (const auto& f : all) (f.red() ? fv : doubted).push_back(f);
  const auto errors = std::count_if(fv.begin(), fv.end(), [](const FalseVerdict& f) { return f.verdict == Verdict::error; });
  // Both make a run red; an error says the harness could not do its part (and why), a
  // failure that the kernel and the model disagreed. Not judged is listed apart: late
  // while the machine held the kernel, it does not make a run red.
  std::string s = fmt::format("false verdicts over {} runs: {} ({} failed, {} errors)\n", runs.size(), fv.size(),
                              static_cast<long>(fv.size()) - errors, errors);
  s += list_by_connection(fv);
  s += fmt::format("not judged (late while the machine held a CPU or stepped the clock; not red): {}\n", doubted.size());
  s += list_by_connection(doubted);
  int misses = 0;
  for (const auto& o : obs) misses += o.miss();
  s += fmt::format(
      "\nsmallest margin to each window edge, ms (negative: outside), {} observations, {} missed:\n"
      "  {:<48}{:>4}{:>6}{:>19}  {:<12}{:>17}  {:<12}\n",
      obs.size(), misses, "case/connection", "n", "miss", "observed-earliest", "run", "latest-observed", "run");
  for (const auto& m : smallest_margins(obs))
    s += fmt::format("  {:<48}{:>4}{:>6}{:>19}  {:<12}{:>17}  {:<12}\n", m.case_name + "/" + m.connection,
                     m.observations, m.misses, ms_text(m.to_earliest_ms), m.earliest_run, ms_text(m.to_latest_ms),
                     m.latest_run);
  return s;
}

std::string margins_html(const std::vector<LabelledRun>& runs, const std::string& title) {
  const auto obs = observations(runs);
  const auto fv = false_verdicts(runs);  // and the connections not judged, which are not red
  const auto doubted = std::count_if(fv.begin(), fv.end(), [](const FalseVerdict& f) { return !f.red(); });
  int misses = 0;
  for (const auto& o : obs) misses += o.miss();
  std::string kernels;
  for (const auto& lr : runs)
    if (!lr.run.kernel.empty() && kernels.find(lr.run.kernel) == std::string::npos)
      kernels += (kernels.empty() ? "" : ", ") + lr.run.kernel;

  std::string s = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>" + xml_text(title) +
                  "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n<main>\n";
  s += "<h1>" + xml_text(title) + "</h1>\n";
  s += fmt::format(
      "<p class=\"meta\">{} run{}, {} observation{} with a bounded window, <span class=\"{}\">{} missed</span>, "
      "{} false verdict{}, {} not judged{}</p>\n",
      runs.size(), runs.size() == 1 ? "" : "s", obs.size(), obs.size() == 1 ? "" : "s", misses ? "bad" : "", misses,
      static_cast<long>(fv.size()) - doubted, fv.size() - doubted == 1 ? "" : "s", doubted,
      kernels.empty() ? "" : "; kernel " + xml_text(kernels));

  s += "<section class=\"panel\">\n<h2>Where each observation fell in its window</h2>\n";
  s += "<p class=\"legend\"><span><i style=\"background:#3b6fb6\"></i>inside, verdict pass</span>"
       "<span><i style=\"background:#cf222e\"></i>missed: outside the window, or verdict not pass</span>"
       "<span><i style=\"background:#fff5f5;border:1px solid #f0c0c0\"></i>outside the window</span></p>\n";
  s += "<div class=\"charts\">\n";
  s += svg_histogram("Margin to the earliest edge (observed − earliest)", "ms (bin from its lower edge)",
                     make_histogram(obs, &Observation::to_earliest_ms, ms_edges()), false);
  s += svg_histogram("Margin to the latest edge (latest − observed)", "ms (bin from its lower edge)",
                     make_histogram(obs, &Observation::to_latest_ms, ms_edges()), false);
  s += svg_histogram("Margin to the earliest edge, % of the window", "% of the window's width",
                     make_histogram(obs, &Observation::to_earliest_pct, pct_edges()), true);
  s += svg_histogram("Margin to the latest edge, % of the window", "% of the window's width",
                     make_histogram(obs, &Observation::to_latest_pct, pct_edges()), true);
  s += "</div>\n<p class=\"note\">A drift shows as bars moving left, towards 0, before any turns red. "
       "Copies of a connection count once each; connections expected alive, and copies that passed by staying "
       "open through a random fault, have no edge and are left out. Edges are the model's: the judge allows an "
       "end timed by the event loop's wake-up 10 ms more, so a red bar can belong to a passing connection.</p>\n"
       "</section>\n";

  s += "<section class=\"panel\">\n<h2>False verdicts, and connections not judged (not red)</h2>\n";
  if (fv.empty()) {
    s += "<p>None: every connection of every run passed.</p>\n";
  } else {
    s += "<table>\n<tr><th>run</th><th>case</th><th>connection</th><th>verdict</th><th>why</th></tr>\n";
    for (const auto& f : fv)
      s += fmt::format("<tr class=\"false\"><td>{}</td><td>{}</td><td>{}</td><td class=\"bad\">{}</td><td>{}</td></tr>\n",
                       xml_text(f.run), xml_text(f.case_name), xml_text(f.connection), to_string(f.verdict),
                       xml_text(f.message));
    s += "</table>\n";
  }
  s += "</section>\n";

  s += "<section class=\"panel\">\n<h2>Smallest margin per case and connection</h2>\n<table>\n"
       "<tr><th>case/connection</th><th class=\"num\">n</th><th class=\"num\">missed</th>"
       "<th class=\"num\">observed − earliest, ms</th><th>run</th><th class=\"num\">latest − observed, ms</th>"
       "<th>run</th></tr>\n";
  for (const auto& m : smallest_margins(obs)) {
    const auto cell = [](double v) {
      return fmt::format("<td class=\"num{}\">{}</td>", v < 0 ? " bad" : "", ms_text(v));
    };
    s += fmt::format("<tr class=\"margin\"><td><code>{}/{}</code></td><td class=\"num\">{}</td>"
                     "<td class=\"num{}\">{}</td>{}<td>{}</td>{}<td>{}</td></tr>\n",
                     xml_text(m.case_name), xml_text(m.connection), m.observations, m.misses ? " bad" : "", m.misses,
                     cell(m.to_earliest_ms), xml_text(m.earliest_run), cell(m.to_latest_ms), xml_text(m.latest_run));
  }
  s += "</table>\n</section>\n";
  s += "<footer>Margins in milliseconds from the model's window edges; times from t = 0, the last segment the "
       "client received before the fault. Runs: ";
  for (std::size_t i = 0; i < runs.size(); ++i) s += (i ? ", " : "") + xml_text(runs[i].label);
  s += ".</footer>\n</main>\n</body>\n</html>\n";
  return s;
}

void write_margins_html(const std::vector<LabelledRun>& runs, const std::filesystem::path& file,
                        const std::string& title) {
  write_text_file(file, margins_html(runs, title));
}

}  // namespace kah
