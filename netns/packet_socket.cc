#include "netns/packet_socket.h"

#include <linux/if_packet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <system_error>

namespace kah::netns {

std::optional<PacketFrame> read_packet_frame(int fd, std::span<std::uint8_t> buffer) {
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(timespec)) + CMSG_SPACE(sizeof(tpacket_auxdata))> control{};
  for (;;) {
    sockaddr_ll from{};
    iovec iov{buffer.data(), buffer.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
      throw std::system_error(errno, std::generic_category(), "recvmsg on a packet socket");
    }
    PacketFrame frame;
    frame.length = std::min(static_cast<std::size_t>(n), buffer.size());
    frame.wire_len = static_cast<std::uint32_t>(n);
    frame.pkttype = from.sll_pkttype;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts{};
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        frame.realtime_ns = std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
      } else if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
        tpacket_auxdata aux{};
        std::memcpy(&aux, CMSG_DATA(c), sizeof aux);
        frame.wire_len = aux.tp_len;
      }
    }
    return frame;
  }
}

}  // namespace kah::netns
