// Reading one frame from an AF_PACKET socket together with what the kernel says of
// it: the direction (on lo both copies of a frame pass the tap, PACKET_OUTGOING and
// PACKET_HOST), the kernel's stamp (SO_TIMESTAMPNS: CLOCK_REALTIME) and, with
// PACKET_AUXDATA on, the length on the wire. Used by the clock canary's tap on lo,
// the captures on lo (harness/evidence/capture.h) and their tests.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace kah::netns {

struct PacketFrame {
  std::size_t length = 0;       // bytes stored in the buffer (at most its size)
  std::uint32_t wire_len = 0;   // on the wire: PACKET_AUXDATA's tp_len, else what recvmsg returned
  unsigned char pkttype = 0;    // sockaddr_ll::sll_pkttype: PACKET_OUTGOING, PACKET_HOST, ...
  std::optional<std::int64_t> realtime_ns;  // SCM_TIMESTAMPNS, ns since the epoch; none without SO_TIMESTAMPNS
};

// Reads one frame into `buffer` without waiting (a frame longer than the buffer is
// cut). nullopt when none is queued; throws std::system_error for any other failure
// (EINTR is retried).
std::optional<PacketFrame> read_packet_frame(int fd, std::span<std::uint8_t> buffer);

}  // namespace kah::netns
