#include "harness/report/html_report.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "harness/evidence/probe_check.h"
#include "harness/report/text_file.h"
#include "harness/report/xml.h"
#include "netns/sockdiag.h"

namespace kah {
using namespace evidence;
namespace {

// Calm palette: greys for structure, one blue for the model, amber for the outcome
// window, green/red only where something passed or failed.
constexpr const char* kStyle = R"css(
:root { --ink:#1f2328; --muted:#656d76; --line:#d0d7de; --panel:#ffffff; --page:#f6f8fa;
        --pass:#1a7f37; --fail:#cf222e; --error:#9a6700; --skip:#6e7781; --model:#3b6fb6; --outcome:#bf8700; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink);
       font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; font-weight: 600; }
h2 { font-size: 17px; margin: 0; font-weight: 600; display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
h3 { font-size: 15px; margin: 0 0 6px; font-weight: 600; display: flex; gap: 8px; align-items: baseline; }
.meta, .file, .family, .note { color: var(--muted); font-weight: 400; }
.file, code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 16px 0; }
.case > .conn { border-top: 1px solid var(--line); margin-top: 12px; padding-top: 12px; }
.badge { display: inline-block; min-width: 46px; text-align: center; font-size: 11px; font-weight: 600;
         letter-spacing: .04em; padding: 1px 6px; border-radius: 10px; color: #fff; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); }
.badge.error { background: var(--error); } .badge.skip { background: var(--skip); }
.badge.interrupted, .badge.not-judged { background: var(--skip); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 10px 4px 0; border-bottom: 1px solid #eaeef2; vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; padding-right: 22px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0 0 8px; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
.message { background: #fff5f5; border-left: 3px solid var(--fail); padding: 6px 10px; margin: 8px 0;
           white-space: pre-wrap; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.message.error { background: #fff8e6; border-left-color: var(--error); }
.message.skip { background: #f6f8fa; border-left-color: var(--skip); }
svg.timeline { width: 100%; height: auto; display: block; margin: 6px 0 4px; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--ink); }
svg text.lane { fill: var(--muted); font-size: 11px; }
.v-ok { color: var(--pass); } .v-bad { color: var(--fail); }
details summary { cursor: pointer; color: var(--muted); }
details ol { margin: 6px 0 0; padding-left: 22px; font-size: 13px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 12.5px; color: var(--muted); }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
a { color: var(--model); }
footer { color: var(--muted); font-size: 12px; margin-top: 24px; }
)css";

constexpr const char* kPass = "#1a7f37";
constexpr const char* kFail = "#cf222e";
constexpr const char* kModel = "#3b6fb6";
constexpr const char* kOutcome = "#bf8700";
constexpr const char* kFault = "#8250df";
constexpr const char* kGrey = "#656d76";
constexpr const char* kReset = "#82071e";
// The kernel timer lane: one hue per timer kind, none of them the model's blue, the
// fault's purple or the verdict colours.
constexpr const char* kKeepaliveTimer = "#1b7c83";
constexpr const char* kRetransmitTimer = "#bc4c00";
constexpr const char* kOtherTimer = "#7d4e00";
constexpr const char* kNoTimer = "#afb8c1";

const char* timer_colour(const std::string& kind) {
  if (kind == "keepalive") return kKeepaliveTimer;
  if (kind == "on") return kRetransmitTimer;
  if (kind == "none") return kNoTimer;
  return kOtherTimer;
}

std::string badge(Verdict v) {
  const auto name = to_string(v);
  std::string upper = name;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return fmt::format("<span class=\"badge {}\">{}</span>", name, upper);
}

// A relative link that survives spaces and '#' in file names.
std::string href_of(const std::filesystem::path& file) {
  std::string out;
  for (const char c : file.generic_string()) {
    const auto u = static_cast<unsigned char>(c);
    const bool plain = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
                       c == '-' || c == '_' || c == '.' || c == '~' || c == '/';
    out += plain ? std::string(1, c) : fmt::format("%{:02X}", u);
  }
  return out;
}

std::string ms_text(double ms) { return std::isfinite(ms) ? fmt::format("{:.1f} ms", ms) : "never"; }

std::string observed_text(const Observed& o) {
  switch (o.outcome) {
    case ObservedOutcome::alive: return fmt::format("still open at {} (the horizon)", ms_text(o.at_ms));
    case ObservedOutcome::eof: return fmt::format("eof at {}", ms_text(o.at_ms));
    case ObservedOutcome::closed: return fmt::format("closed by the program at {}", ms_text(o.at_ms));
    case ObservedOutcome::timeout:
    case ObservedOutcome::reset:
    case ObservedOutcome::error:
      return fmt::format("{}{} at {} after {} probe{}", to_string(o.outcome),
                         o.errno_name.empty() ? "" : fmt::format(" ({})", o.errno_name), ms_text(o.at_ms), o.probes,
                         o.probes == 1 ? "" : "s");
  }
  return "?";
}

// Axis ticks at 1, 2 or 5 times a power of ten, about eight across.
double tick_step(double span_ms) {
  const double raw = span_ms / 8;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double m : {1.0, 2.0, 5.0})
    if (raw <= m * power) return m * power;
  return 10 * power;
}

std::string tick_label(double t_ms, double step_ms) {
  if (std::abs(t_ms) < step_ms / 2) return "0";
  if (step_ms >= 1000) return fmt::format("{:g} s", std::round(t_ms / step_ms) * step_ms / 1000);
  return fmt::format("{:g} ms", std::round(t_ms / step_ms) * step_ms);
}

// The timeline of one connection, in ms from t = 0.
class Timeline {
 public:
  explicit Timeline(const ConnectionResult& r) : r_(r), evidence_(r.evidence) {
    if (evidence_.flow) {
      flow_ = &*evidence_.flow;
      origin_ = origin_of(evidence_);
    }
    if (!evidence_.timer_samples.empty()) {
      samples_ = &evidence_.timer_samples;
      axis_y_ = kTimer.y + kTimer.h + 10;
    }
    fit();
  }

  std::string svg() const {
    std::string s = fmt::format(
        "<svg class=\"timeline\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"timeline of {}\" "
        "xmlns=\"http://www.w3.org/2000/svg\">\n",
        kWidth, axis_y_ + 32, xml_attr(r_.name));
    std::vector<Lane> lanes{kProbes, kEnd, kCapture};
    if (samples_ != nullptr) lanes.push_back(kTimer);
    for (const auto& lane : lanes) {
      s += fmt::format("<text class=\"lane\" x=\"8\" y=\"{}\">{}</text>\n", lane.y + lane.h / 2 + 4, lane.name);
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#f6f8fa\"/>\n", kX0, lane.y, kX1 - kX0,
                       lane.h);
    }
    s += model_bands();
    s += axis();
    s += markers();
    s += capture();
    if (samples_ != nullptr) s += kernel_timer();
    s += "</svg>\n";
    return s;
  }

 private:
  // Horizontal bands of the drawing. The end window has a lane of its own because it
  // often overlaps the last probe window (a reset comes one round trip after the probe).
  struct Lane {
    const char* name;
    double y, h;
  };
  static constexpr double kWidth = 960;
  static constexpr double kX0 = 96, kX1 = 944;
  // The row of marker labels, and a generous width of one 11px character in it.
  static constexpr double kLabelY = 18, kLabelCharPx = 6.5;
  static constexpr Lane kProbes{"probe windows", 36, 26}, kEnd{"end window", 66, 16}, kCapture{"capture", 86, 28};
  // Only when the runner sampled the kernel's timer: below the capture, so a probe
  // sits right above the line that announced it.
  static constexpr Lane kTimer{"kernel timer", 118, 30};

  double x(double t) const { return kX0 + (t - t0_) / (t1_ - t0_) * (kX1 - kX0); }
  double clamp_x(double t) const { return std::clamp(x(t), kX0, kX1); }

  // The window of times to draw: everything the model and the capture say, plus margins.
  void fit() {
    std::vector<double> ts{0.0, r_.observed.at_ms};
    const auto add_window = [&](const model::Window& w) {
      ts.push_back(w.earliest_ms);
      if (w.bounded()) ts.push_back(w.latest_ms);
    };
    for (const auto& p : r_.prediction.probes) add_window(p.window);
    add_window(r_.expected.window);
    if (evidence_.fault_ms) ts.push_back(*evidence_.fault_ms);
    if (samples_ != nullptr)
      for (const auto& sample : *samples_) ts.push_back(sample.t_ms);
    if (flow_ != nullptr && origin_) {
      for (const auto& run : flow_->runs)
        for (const auto& p : run.probes)
          if (p.t_ms >= *origin_) ts.push_back(p.t_ms - *origin_);
      if (flow_->end_ms && *flow_->end_ms >= *origin_) ts.push_back(*flow_->end_ms - *origin_);
    }
    double lo = 0, hi = 0;
    for (const double t : ts)
      if (std::isfinite(t)) {
        lo = std::min(lo, t);
        hi = std::max(hi, t);
      }
    if (hi - lo < 1) hi = lo + 1000;
    const double span = hi - lo;
    t0_ = lo - span * 0.04;
    t1_ = hi + span * 0.07;
  }

  std::string model_bands() const {
    std::string s;
    const auto band = [&](const Lane& lane, const model::Window& w, const char* colour, double opacity,
                          const std::string& label, const std::string& tip) {
      const double left = clamp_x(w.earliest_ms);
      const double right = w.bounded() ? clamp_x(w.latest_ms) : kX1;
      const double width = std::max(right - left, 2.0);  // a window narrower than a pixel stays visible
      std::string b = fmt::format(
          "<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\" fill-opacity=\"{}\" stroke=\"{}\" "
          "stroke-opacity=\"0.55\"><title>{}</title></rect>\n",
          left, lane.y, width, lane.h, colour, opacity, colour, xml_text(tip));
      if (!label.empty() && width >= 7.0 * static_cast<double>(label.size()))
        b += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" fill=\"{}\">{}</text>\n", left + width / 2,
                         lane.y + lane.h / 2 + 4, colour, xml_text(label));
      return b;
    };
    const auto& outcome = r_.expected.window;
    const auto outcome_name = to_string(r_.expected.outcome);
    s += band(kEnd, outcome, kOutcome, 0.16, outcome.bounded() ? outcome_name : outcome_name + " \u2192",
              fmt::format("{} expected {}", outcome_name, window_text(outcome)));
    for (const auto& p : r_.prediction.probes)
      s += band(kProbes, p.window, kModel, p.certain ? 0.22 : 0.10, std::to_string(p.index + 1),
                fmt::format("probe {} expected {}{}", p.index + 1, window_text(p.window),
                            p.certain ? "" : " (only for some timer alignments)"));
    return s;
  }

  std::string axis() const {
    std::string s = fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#8c959f\"/>\n", kX0, axis_y_, kX1,
                                axis_y_);
    const double step = tick_step(t1_ - t0_);
    for (double t = std::ceil(t0_ / step) * step; t <= t1_; t += step) {
      s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#8c959f\"/>\n", x(t), axis_y_,
                       axis_y_ + 4);
      s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" fill=\"#656d76\">{}</text>\n", x(t),
                       axis_y_ + 17, tick_label(t, step));
    }
    return s;
  }

  // Vertical lines across both lanes: t = 0, the fault, the observed end.
  std::string markers() const {
    std::string s;
    const auto line = [&](double t, const char* colour, const char* dash, double width, const std::string& tip) {
      return fmt::format(
          "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"{3}\" stroke-width=\"{4}\"{5}>"
          "<title>{6}</title></line>\n",
          x(t), kProbes.y - 8, axis_y_, colour, width, dash[0] != '\0' ? fmt::format(" stroke-dasharray=\"{}\"", dash) : "",
          xml_text(tip));
    };
    // The labels share one row above the lanes, left to right: each starts just right
    // of its line, or further right when the label before it is still there (t = 0
    // and a fault a few ms later), and ends at its line near the right edge.
    double free_from = 0;
    const auto label = [&](double t, const char* colour, const std::string& text) {
      const double width = kLabelCharPx * static_cast<double>(text.size());
      double start = std::max(x(t) + 4, free_from);
      if (start + width > kWidth - 4) start = std::max(free_from, x(t) - 4 - width);
      free_from = start + width + 10;
      return fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"start\" fill=\"{}\">{}</text>\n", start,
                         kLabelY, colour, xml_text(text));
    };
    s += line(0, kGrey, "", 1, "t = 0: the client's last received segment");
    s += label(0, kGrey, "t = 0 last received");
    if (evidence_.fault_ms) {
      s += line(*evidence_.fault_ms, kFault, "4 3", 1.5, fmt::format("fault at {:.1f} ms", *evidence_.fault_ms));
      s += label(*evidence_.fault_ms, kFault, "fault");
    }
    const auto& o = r_.observed;
    const char* colour = r_.verdict == Verdict::pass ? kPass : r_.verdict == Verdict::fail ? kFail : kGrey;
    const std::string what = o.outcome == ObservedOutcome::alive
                                 ? "alive at horizon"
                                 : fmt::format("{}{}", to_string(o.outcome), o.errno_name.empty() ? "" : " " + o.errno_name);
    s += line(o.at_ms, colour, "", 2, fmt::format("observed {}", observed_text(o)));
    s += label(o.at_ms, colour, fmt::format("{} {}", what, ms_text(o.at_ms)));
    return s;
  }

  std::string capture() const {
    if (flow_ == nullptr || !origin_) {
      const std::string why = !evidence_.flow ? "no capture for this connection" : "capture without a t = 0 (no probe run)";
      return fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#656d76\">{}</text>\n", kX0 + 8, kCapture.y + kCapture.h / 2 + 4, why);
    }
    std::string s;
    const double mid = kCapture.y + kCapture.h / 2;
    // Other segments as faint ticks: the exchange before t = 0 and anything after.
    for (const auto& seg : flow_->segments) {
      const double t = seg.packet.t_ms - *origin_;
      if (t < t0_ || t > t1_ || seg.kind == SegmentKind::keepalive_probe) continue;
      if (seg.kind == SegmentKind::rst) {
        const bool by_prober = flow_->prober && seg.from == *flow_->prober;
        s += fmt::format(
            "<path d=\"M{0:.1f},{1} l-6,-9 h12 z\" fill=\"{2}\"><title>RST from {3} at {4:.1f} ms</title></path>\n",
            x(t), mid + 1, by_prober ? kGrey : kReset, xml_text(flow_->endpoint(seg.from).str()), t);
        continue;
      }
      s += fmt::format(
          "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#afb8c1\"><title>{3} from {4} at {5:.1f} "
          "ms</title></line>\n",
          x(t), kCapture.y + kCapture.h - 9, kCapture.y + kCapture.h - 1, to_string(seg.kind),
          xml_text(flow_->endpoint(seg.from).str()), t);
    }
    int number = 0;
    for (const auto& p : flow_->probes_of(flow_->prober.value_or(Side::a))) {
      if (p.t_ms < *origin_) continue;
      ++number;
      const double t = p.t_ms - *origin_;
      std::string state;
      std::string circle;
      switch (p.answer) {
        case ProbeAnswer::ack:
          state = fmt::format("ACKed after {:.1f} ms", p.answered_ms.value_or(p.t_ms) - p.t_ms);
          circle = fmt::format("fill=\"{}\" stroke=\"{}\"", kPass, kPass);
          break;
        case ProbeAnswer::reset:
          state = "answered by RST";
          circle = fmt::format("fill=\"{}\" stroke=\"{}\"", kReset, kReset);
          break;
        case ProbeAnswer::other:
          state = "followed by other traffic";
          circle = fmt::format("fill=\"#ffffff\" stroke=\"{}\"", kGrey);
          break;
        case ProbeAnswer::none:
          state = "lost (no answer)";
          circle = fmt::format("fill=\"#ffffff\" stroke=\"{}\"", kFail);
          break;
      }
      s += fmt::format(
          "<circle cx=\"{:.1f}\" cy=\"{}\" r=\"5.5\" stroke-width=\"2\" {}><title>probe {} ({}-byte) sent at {:.1f} ms, "
          "{}</title></circle>\n",
          x(t), mid - 3, circle, number, p.payload_len, t, state);
    }
    return s;
  }

  // The kernel's own view of the socket's timer: at each sample a dot, and a thin line
  // forward to when the kernel says the timer will fire, ending in a short tick. Lines
  // of successive samples that end on the same tick mean the timer was not re-armed in
  // between; a new tick, labelled with the new counter, means it was (a probe went out).
  std::string kernel_timer() const {
    std::string s;
    const double mark_y = kTimer.y + 20;
    std::optional<int> labelled;  // the counter shown last
    for (const auto& sample : *samples_) {
      if (!std::isfinite(sample.t_ms)) continue;
      const char* colour = timer_colour(sample.kind);
      const bool pending = sample.kind != "none";
      const double at = x(sample.t_ms);
      const auto expires = static_cast<std::uint32_t>(std::lround(std::clamp(sample.expires_in_ms, 0.0, 4.0e9)));
      // ss prints an expiry of 0 as nothing ("timer:(keepalive,,0)"): the timer is due and
      // the wheel has not run it yet; say so rather than leave the gap unexplained.
      const std::string tip =
          pending ? fmt::format("timer:({},{},{}) at {:.0f} ms{}", sample.kind, netns::ss_duration(expires), sample.probes,
                                sample.t_ms, expires == 0 ? " (due, not yet run)" : "")
                  : fmt::format("no timer pending at {:.0f} ms", sample.t_ms);
      s += fmt::format("<g><title>{}</title>", xml_text(tip));
      if (pending) {
        const double end = clamp_x(sample.t_ms + sample.expires_in_ms);
        s += fmt::format(
            "<line x1=\"{0:.1f}\" y1=\"{2}\" x2=\"{1:.1f}\" y2=\"{2}\" stroke=\"{3}\" stroke-opacity=\"0.45\"/>", at,
            end, mark_y, colour);
        if (end < kX1)  // past the drawing's right edge the kernel's expiry is not shown
          s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"{3}\"/>", end,
                           mark_y - 4, mark_y + 4, colour);
      }
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{}\" r=\"2.5\" fill=\"{}\"/></g>\n", at, mark_y, colour);
      if (pending && labelled != sample.probes) {
        s += fmt::format(
            "<text class=\"timer-count\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" fill=\"{}\">{}</text>\n", at,
            kTimer.y + 10, colour, sample.probes);
        labelled = sample.probes;
      }
    }
    return s;
  }

  const ConnectionResult& r_;
  const CaptureFindings& evidence_;
  const FlowAnalysis* flow_ = nullptr;
  const std::vector<TimerSample>* samples_ = nullptr;  // set when there is a kernel timer lane
  std::optional<double> origin_;
  double t0_ = 0, t1_ = 1000;
  double axis_y_ = kCapture.y + kCapture.h + 10;
};

std::string answer_text(ProbeAnswer a) {
  switch (a) {
    case ProbeAnswer::none: return "no answer";
    case ProbeAnswer::ack: return "ACK";
    case ProbeAnswer::reset: return "RST";
    case ProbeAnswer::other: return "other traffic";
  }
  return "?";
}

std::string probe_table(const ConnectionResult& r) {
  const auto& e = r.evidence;
  const auto origin = origin_of(e);
  if (!e.flow || !origin) return {};
  const auto checks = check_probes(*e.flow, r.prediction, *origin);
  if (checks.empty()) return "<p class=\"note\">No probes expected and none in the capture.</p>\n";
  std::string s =
      "<table class=\"probes\"><tr><th>probe</th><th>expected</th><th class=\"num\">seen</th><th>answer</th>"
      "<th>check</th></tr>\n";
  for (const auto& c : checks) {
    const bool good = c.verdict == ProbeVerdict::ok;
    s += fmt::format(
        "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"num mono\">{}</td><td>{}</td><td class=\"{}\">{}</td></tr>\n",
        c.index + 1, c.expected ? xml_text(window_text(*c.expected)) : "not expected",
        c.seen_ms ? fmt::format("{:.1f} ms", *c.seen_ms) : "&#8212;", c.seen_ms ? answer_text(c.answer) : "",
        good ? "v-ok" : "v-bad", xml_text(good ? to_string(c.verdict) : c.message));
  }
  return s + "</table>\n";
}

// The capture file as the report folder sees it; empty: none was written.
std::filesystem::path pcap_link(const CaptureFindings& e, const HtmlOptions& options) {
  if (e.pcap_client.empty()) return {};
  std::error_code error;
  const auto absolute = std::filesystem::absolute(options.pcap_dir / e.pcap_client, error);
  return std::filesystem::proximate(absolute, std::filesystem::absolute(options.report_dir, error), error);
}

std::string connection_html(const ConnectionResult& r, const HtmlOptions& options) {
  std::string s = "<article class=\"conn\">\n";
  s += fmt::format("<h3>{} {} <span class=\"family\">{}</span></h3>\n", badge(r.verdict), xml_text(r.name),
                   to_string(r.family));
  s += "<dl class=\"facts\">";
  s += fmt::format("<dt>expected</dt><dd>{} {}{}</dd>", to_string(r.expected.outcome),
                   xml_text(window_text(r.expected.window)),
                   r.expected.deadline_ms ? fmt::format(", deadline {:.1f} ms", *r.expected.deadline_ms) : "");
  // A skipped connection never ran: its Observed holds defaults, not a measurement.
  const bool ran = r.verdict != Verdict::skip;
  s += fmt::format("<dt>observed</dt><dd>{}</dd>", ran ? xml_text(observed_text(r.observed)) : "not run");
  if (!r.where.file.empty()) s += fmt::format("<dt>defined at</dt><dd class=\"mono\">{}</dd>", xml_text(r.where.str()));
  s += "</dl>\n";
  if (!r.message.empty())
    s += fmt::format("<div class=\"message{}\">{}</div>\n", r.verdict == Verdict::error ? " error" : "",
                     xml_text(r.message));
  if (ran) {
    s += Timeline(r).svg();
    s += probe_table(r);
    if (const auto pcap = pcap_link(r.evidence, options); !pcap.empty())
      s += fmt::format("<p>capture: <a href=\"{}\">{}</a></p>\n", xml_attr(href_of(pcap)), xml_text(pcap.string()));
  }
  if (!r.prediction.steps.empty()) {
    s += "<details><summary>how the model got its windows</summary><ol>\n";
    for (const auto& step : r.prediction.steps) s += fmt::format("<li>{}</li>\n", xml_text(step));
    s += "</ol></details>\n";
  }
  return s + "</article>\n";
}

std::string legend(bool kernel_timer) {
  const auto swatch = [](const std::string& shape, const std::string& text) {
    return fmt::format("<span><svg width=\"18\" height=\"14\" viewBox=\"0 0 18 14\">{}</svg>{}</span>", shape, text);
  };
  std::string s = "<div class=\"legend\">";
  s += swatch(fmt::format("<rect x=\"1\" y=\"1\" width=\"16\" height=\"12\" fill=\"{0}\" fill-opacity=\"0.22\" stroke=\"{0}\"/>", kModel),
              "model: probe window");
  s += swatch(fmt::format("<rect x=\"1\" y=\"1\" width=\"16\" height=\"12\" fill=\"{0}\" fill-opacity=\"0.16\" stroke=\"{0}\"/>", kOutcome),
              "model: outcome window");
  s += swatch(fmt::format("<circle cx=\"9\" cy=\"7\" r=\"5\" fill=\"{0}\" stroke=\"{0}\" stroke-width=\"2\"/>", kPass), "probe ACKed");
  s += swatch(fmt::format("<circle cx=\"9\" cy=\"7\" r=\"5\" fill=\"#fff\" stroke=\"{}\" stroke-width=\"2\"/>", kFail), "probe lost");
  s += swatch(fmt::format("<circle cx=\"9\" cy=\"7\" r=\"5\" fill=\"{0}\" stroke=\"{0}\" stroke-width=\"2\"/>", kReset), "probe answered by RST");
  s += swatch(fmt::format("<path d=\"M9,12 l-6,-9 h12 z\" fill=\"{}\"/>", kGrey), "RST sent by the client");
  s += swatch("<line x1=\"9\" y1=\"4\" x2=\"9\" y2=\"13\" stroke=\"#afb8c1\" stroke-width=\"2\"/>", "other segment");
  s += swatch(fmt::format("<line x1=\"9\" y1=\"0\" x2=\"9\" y2=\"14\" stroke=\"{}\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>", kFault), "fault");
  s += swatch(fmt::format("<line x1=\"9\" y1=\"0\" x2=\"9\" y2=\"14\" stroke=\"{}\" stroke-width=\"2\"/>", kPass), "observed end (green: pass, red: fail)");
  if (kernel_timer) {
    const auto timer = [](const char* colour) {
      return fmt::format("<line x1=\"3\" y1=\"7\" x2=\"16\" y2=\"7\" stroke=\"{0}\" stroke-opacity=\"0.45\"/>"
                         "<line x1=\"16\" y1=\"3\" x2=\"16\" y2=\"11\" stroke=\"{0}\"/>"
                         "<circle cx=\"3\" cy=\"7\" r=\"2.5\" fill=\"{0}\"/>", colour);
    };
    s += swatch(timer(kKeepaliveTimer), "kernel: keepalive timer, sampled, to when it fires (number: unanswered probes)");
    s += swatch(timer(kRetransmitTimer), "kernel: retransmit timer (number: retransmissions)");
  }
  return s + "</div>\n";
}

}  // namespace

std::optional<double> origin_of(const CaptureFindings& evidence) {
  if (evidence.flow && evidence.origin_realtime_ms != 0) return evidence.origin_realtime_ms;
  if (evidence.flow)
    if (const ProbeRun* run = evidence.flow->last_run()) return run->last_rx_ms;
  return std::nullopt;
}

// The programs of a case, one lane each, in seconds from the fault (t = 0): a bar from
// start to exit (or to the end of the run when the harness stopped it), the ready
// instant, the last segment its connections received before the fault, each line of output (its text on hover), the exit, and the fault itself;
// then each expectation about what the program did, judged.
std::string programs_html(const CaseResult& c) {
  if (c.programs.empty()) return "";
  constexpr double kWidth = 960, kX0 = 150, kX1 = 944, kLaneH = 22, kTop = 8;
  double t0 = 0, t1 = 0;
  for (const auto& p : c.programs) {
    t0 = std::min(t0, p.started_ms);
    t1 = std::max(t1, p.exited_ms.value_or(0));
    for (const auto& line : p.output) t1 = std::max(t1, line.at_ms);
  }
  t1 = std::max(t1, c.wall_ms + t0);  // a program still running lasts as long as the case watched
  if (t1 - t0 < 1) t1 = t0 + 1;
  auto x = [&](double t) { return kX0 + (t - t0) / (t1 - t0) * (kX1 - kX0); };
  const double axis_y = kTop + kLaneH * static_cast<double>(c.programs.size()) + 6;
  std::string s = fmt::format(
      "<div class=\"conn\"><h3>programs <span class=\"note\">seconds from the fault</span></h3>\n"
      "<svg class=\"timeline\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"programs of {}\" "
      "xmlns=\"http://www.w3.org/2000/svg\">\n",
      kWidth, axis_y + 28, xml_attr(c.name));
  for (std::size_t i = 0; i < c.programs.size(); ++i) {
    const auto& p = c.programs[i];
    const double y = kTop + kLaneH * static_cast<double>(i);
    const double end = p.exited_ms.value_or(t1);
    s += fmt::format("<text class=\"lane\" x=\"8\" y=\"{:.1f}\">{} ({})</text>\n", y + 14, xml_text(p.name), p.host);
    s += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"10\" fill=\"#d0d7de\"><title>{} started {:.3f} s, "
        "{}</title></rect>\n",
        x(p.started_ms), y + 5, std::max(1.0, x(end) - x(p.started_ms)), xml_text(p.name), p.started_ms / 1000,
        p.exited_ms ? fmt::format("exited {:.3f} s with status {}", *p.exited_ms / 1000, p.exit_status.value_or(-1))
                    : std::string("running when the case ended (stopped by the harness)"));
    if (p.ready_ms)
      s += fmt::format("<path d=\"M{0:.1f} {1:.1f} l5 5 l-5 5 l-5 -5 z\" fill=\"var(--model)\"><title>ready at {2:.3f} s"
                       "</title></path>\n",
                       x(*p.ready_ms), y + 5, *p.ready_ms / 1000);
    if (p.last_received_ms)
      s += fmt::format("<path class=\"last-received\" d=\"M{0:.1f} {1:.1f} v14\" stroke=\"var(--model)\" "
                       "stroke-width=\"2\"><title>last segment its connections received before the fault, at {2:.3f} s: "
                       "keepalive counts from here (and its timing checks, with counted_from = \"last_received\")"
                       "</title></path>\n",
                       x(*p.last_received_ms), y + 3, *p.last_received_ms / 1000);
    for (const auto& line : p.output)
      s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"2\" height=\"14\" fill=\"{}\"><title>{:.3f} s {}: {}"
                       "</title></rect>\n",
                       x(line.at_ms) - 1, y + 3, line.stream == "stderr" ? "var(--outcome)" : "var(--ink)",
                       line.at_ms / 1000, line.stream, xml_text(line.text));
    if (p.exited_ms)
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"var(--fail)\" text-anchor=\"middle\">&#215;<title>exit "
                       "status {} at {:.3f} s</title></text>\n",
                       x(*p.exited_ms), y + 14, p.exit_status.value_or(-1), *p.exited_ms / 1000);
  }
  s += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2:.1f}\" stroke=\"var(--fail)\" "
                   "stroke-dasharray=\"3 2\"><title>the fault</title></line>\n",
                   x(0), kTop, axis_y);
  const double step = tick_step(t1 - t0);
  for (double t = std::ceil(t0 / step) * step; t <= t1; t += step)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x(t), axis_y + 16,
                     tick_label(t, step));
  s += "</svg>\n<table><tr><th>program</th><th>check</th><th>verdict</th><th>what happened</th></tr>\n";
  for (const auto& p : c.programs)
    for (const auto& check : p.checks)
      s += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", xml_text(p.name),
                       xml_text(check.what), badge(check.verdict), xml_text(check.message));
  s += "</table></div>\n";
  return s;
}

std::string html_report(const RunResult& run, const HtmlOptions& options) {
  int counts[6] = {0, 0, 0, 0, 0, 0};  // by Verdict
  std::size_t connections = 0;
  for (const auto& c : run.cases) {
    ++counts[static_cast<int>(c.verdict)];
    connections += c.connections.size();
  }
  std::string s = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>{}</title>\n<style>{}</style>\n"
      "</head>\n<body>\n<main>\n<h1>{}</h1>\n",
      xml_text(options.title), kStyle, xml_text(options.title));
  s += fmt::format(
      "<p class=\"meta\">kernel {} &#183; HZ {}{} &#183; {} case{}: {} passed, {} failed, {} error{}, {} skipped{}{} "
      "&#183; {} connection{} &#183; {:.1f} s</p>\n",
      xml_text(run.kernel.empty() ? "unknown" : run.kernel), run.hz ? std::to_string(*run.hz) : "unknown",
      run.hz_source.empty() ? "" : fmt::format(" ({})", xml_text(run.hz_source)), run.cases.size(),
      run.cases.size() == 1 ? "" : "s", counts[static_cast<int>(Verdict::pass)], counts[static_cast<int>(Verdict::fail)],
      counts[static_cast<int>(Verdict::error)], counts[static_cast<int>(Verdict::error)] == 1 ? "" : "s",
      counts[static_cast<int>(Verdict::skip)],
      counts[static_cast<int>(Verdict::interrupted)]
          ? fmt::format(", {} interrupted", counts[static_cast<int>(Verdict::interrupted)])
          : "",
      counts[static_cast<int>(Verdict::not_judged)]
          ? fmt::format(", {} not judged", counts[static_cast<int>(Verdict::not_judged)])
          : "",
      connections, connections == 1 ? "" : "s", run.wall_ms / 1000.0);

  s += "<section class=\"panel\"><table><tr><th>verdict</th><th>case</th><th>file</th><th class=\"num\">connections</th>"
       "<th class=\"num\">time</th></tr>\n";
  for (std::size_t i = 0; i < run.cases.size(); ++i) {
    const auto& c = run.cases[i];
    s += fmt::format(
        "<tr><td>{}</td><td><a href=\"#case-{}\">{}</a></td><td class=\"mono\">{}</td><td class=\"num\">{}</td>"
        "<td class=\"num\">{:.1f} s</td></tr>\n",
        badge(c.verdict), i + 1, xml_text(c.name), xml_text(c.file), c.connections.size(), c.wall_ms / 1000.0);
  }
  s += "</table></section>\n";
  const bool kernel_timer = std::any_of(run.cases.begin(), run.cases.end(), [](const CaseResult& c) {
    return std::any_of(c.connections.begin(), c.connections.end(),
                       [](const ConnectionResult& r) { return !r.evidence.timer_samples.empty(); });
  });
  s += legend(kernel_timer);

  for (std::size_t i = 0; i < run.cases.size(); ++i) {
    const auto& c = run.cases[i];
    s += fmt::format("<section class=\"panel case\" id=\"case-{}\">\n<h2>{} {} <span class=\"file\">{}</span></h2>\n", i + 1,
                     badge(c.verdict), xml_text(c.name), xml_text(c.file));
    s += fmt::format("<p class=\"description\">{}</p>\n", xml_text(c.description.empty() ? c.name : c.description));
    if (!c.error.empty()) s += fmt::format("<div class=\"message error\">{}</div>\n", xml_text(c.error));
    if (!c.reason.empty()) s += fmt::format("<div class=\"message skip\">skipped: {}</div>\n", xml_text(c.reason));
    for (const auto& r : c.connections) s += connection_html(r, options);
    s += programs_html(c);
    s += "</section>\n";
  }
  s += "<footer>Times are milliseconds from t = 0, the last segment the client received before the fault "
       "(the instant the kernel's idle clock starts). Windows come from the timing model; probe times from the "
       "capture.</footer>\n</main>\n</body>\n</html>\n";
  return s;
}

void write_html_report(const RunResult& run, const std::filesystem::path& dir, HtmlOptions options) {
  options.report_dir = dir;
  write_text_file(dir / "index.html", html_report(run, options));
}

}  // namespace kah
