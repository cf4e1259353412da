// Kernel-side evidence for each connection of a case, from the captures on both
// ends of its link: the connection's flow classified (probes, their answers, the
// RST), each probe checked against the model's window for it, the end of the
// connection timed by the kernel's capture stamp instead of by when user space
// woke up, and the flow written as pcap files when asked.
//
// Capture times are CLOCK_REALTIME (the kernel's skb stamps, as SO_TIMESTAMPNS);
// a connection's origin is its SO_TIMESTAMPNS receive stamp in the same clock.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "harness/clock/realtime_steps.h"
#include "harness/evidence/capture.h"
#include "harness/evidence/classify.h"
#include "harness/judge/result.h"

namespace kah {

struct CaseCaptures {
  evidence::LiveCapture client;  // the client's end of its link
  evidence::LiveCapture server;  // the server's end
  evidence::Analysis client_analysis;  // every flow the client's end saw, up to the horizon
};

// Classifies the client's capture, keeping segments up to `until_realtime_ms`.
CaseCaptures analyze_captures(evidence::LiveCapture client, evidence::LiveCapture server,
                              double until_realtime_ms);

struct FlowKey {
  Family family = Family::ipv4;
  std::string client_address, server_address;
  std::uint16_t client_port = 0, server_port = 0;
};

// The capture stamp of the last data segment of the flow the client received at or
// before `until_realtime_ms`: where the kernel's idle clock (rcv_tstamp) starts when the
// exchange's reply came twice (its ACK lost, the server sent it again: the copy the
// application read is the first) or was read without a kernel stamp. Only data: an
// answered keepalive probe before the fault is not a new t_r but a fault that came too
// late (fault_landing.h). nullopt when the capture has none.
std::optional<double> last_received_before(const std::vector<evidence::Packet>& client_packets, const FlowKey& key,
                                           double until_realtime_ms);

// Fills result.evidence from the flow the client's end saw: probe checks (unless the
// fault hides probes from the capture, as an unplugged link does: they are dropped
// before they reach it), and the capture time of the RST that ended the connection.
// With a capture-timed end, observed.at_ms becomes the kernel's time.
void attach_capture_evidence(ConnectionResult& result, const CaseCaptures& captures, const FlowKey& key,
                             double origin_realtime_ms, bool probes_visible);
// The same from any classified capture, `key.client_*` being the side under test (a
// program's socket, on whichever host it runs).
void attach_capture_evidence(ConnectionResult& result, const evidence::Analysis& analysis, const FlowKey& key,
                             double origin_realtime_ms, bool probes_visible);

// When a step of the realtime clock left some of this connection's capture stamps with
// two possible instants (realtime_steps.h): what to say instead of a failure timed by
// them, e.g. "the realtime clock stepped (+17.500 ms between CLOCK_MONOTONIC ... ms)
// and 3 of this connection's capture stamps could lie on either side of it". nullopt
// when every stamp of it was placed: another connection's ambiguous stamps do not
// excuse its failure. Its segments are matched by family and port pair, both
// directions, on either host (a middlebox may rewrite the addresses; one that rewrote
// the client's port hides the server's copies, but the client's end, which times the
// verdicts, is matched).
std::optional<std::string> clock_step_doubt(const CaseCaptures& captures, const FlowKey& key);

// The same from the packets of both ends (for tests).
std::optional<std::string> clock_step_doubt(const std::vector<evidence::Packet>& client,
                                            const std::vector<evidence::Packet>& server, const FlowKey& key,
                                            const std::vector<ClockStep>& steps);

// Writes the connection's segments from both ends as DIR/<case>/<connection>.{client,server}.pcap
// and records the paths (relative to DIR) in result.evidence.
void write_connection_pcaps(ConnectionResult& result, const CaseCaptures& captures, const FlowKey& key,
                            const std::filesystem::path& dir, const std::string& case_name);

}  // namespace kah
