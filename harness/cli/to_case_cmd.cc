#include "harness/cli/to_case_cmd.h"

#include <cctype>
#include <cmath>
#include <system_error>
#include <filesystem>

#include <fmt/format.h>

#include "harness/case/case.h"
#include "harness/clock/jiffies.h"
#include "harness/evidence/pcap_file.h"
#include "harness/evidence/to_case.h"
#include "harness/report/text_file.h"
#include "harness/run/load_checks.h"

namespace kah {
namespace {

constexpr int kExitWritten = 0;
constexpr int kExitBadInput = 2;
constexpr double kDefaultMaxDurationS = 600;  // `run --max-duration`'s default

// The case's name from the file's: "Field Capture_2.toml" -> "field-capture-2".
std::string case_name(const std::filesystem::path& file) {
  std::string name;
  for (const char ch : file.stem().string()) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0)
      name += static_cast<char>(std::tolower(c));
    else if (!name.empty() && name.back() != '-')
      name += '-';
  }
  while (!name.empty() && name.back() == '-') name.pop_back();
  return name.empty() ? "from-capture" : name;
}

// Loads the written text back and checks it as `run` would (the model must agree with
// the outcome it expects). Returns how long the case watches after the fault, in ms.
double checked_duration_ms(const std::string& text, const std::string& case_file) {
  const Case c = parse_case(text, case_file);
  LoadLimits limits;
  limits.kernel.hz = detect_hz().hz;
  limits.max_duration_s = 0;  // said below instead: the case is written either way
  return check_case(c, limits).duration_ms;
}

}  // namespace

int to_case_command(const std::string& capture_file, const std::string& case_file, const std::string& flow) {
  try {
    const auto capture = evidence::read_pcap(capture_file);
    if (!capture.truncated.empty())
      fmt::print(stderr, "kaharness: {}: the capture is truncated: inferring from the {} complete frames ({})\n",
                 capture_file, capture.frames, capture.truncated);
    const auto analysis = evidence::analyze(capture);
    const auto inferred = evidence::infer_case(analysis, evidence::choose_flow(analysis, flow));
    const std::string text = evidence::case_file_text(inferred, case_name(case_file));
    const double duration_ms = checked_duration_ms(text, case_file);
    write_text_file(case_file, text);

    fmt::print("flow {}: {} <-> {} ({}); the prober, {}, is the case's client\n", inferred.flow + 1,
               inferred.client.str(), inferred.server.str(), to_string(inferred.family), inferred.client.str());
    for (const auto& note : inferred.keepalive_evidence) fmt::print("  {}\n", note);
    fmt::print("  {}\n", inferred.outcome_evidence);
    fmt::print("wrote {}: expect {}, fault {}; the case watches {:.1f} s after the fault\n", case_file,
               to_string(inferred.outcome), fault_info(inferred.fault).name, duration_ms / 1000);
    if (duration_ms / 1000 > kDefaultMaxDurationS)
      fmt::print("note: longer than `run`'s default --max-duration of {:g} s: run it with --max-duration {:.0f}\n",
                 kDefaultMaxDurationS, std::ceil(duration_ms / 1000) + 1);
    return kExitWritten;
  } catch (const evidence::PcapError& e) {
    fmt::print(stderr, "kaharness: {}\n", e.what());
  } catch (const evidence::CaseInferenceError& e) {
    fmt::print(stderr, "kaharness: {}: cannot write a case: {}\n", capture_file, e.what());
  } catch (const CaseError& e) {
    fmt::print(stderr, "kaharness: the case inferred from {} does not check, so it was not written:\n{}\n",
               capture_file, e.what());
  } catch (const std::system_error& e) {
    fmt::print(stderr, "kaharness: {}\n", e.what());
  }
  return kExitBadInput;
}

}  // namespace kah
