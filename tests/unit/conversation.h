// A TCP conversation written by hand, segment by segment, for tests of the evidence
// layer: each side keeps its own sequence numbers as a stack would, so the classifier
// sees what it would see on a wire, and through_pcap() writes it as a pcap file and
// reads it back, the path `kaharness analyze` takes.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "harness/evidence/packet.h"
#include "harness/evidence/pcap_file.h"

namespace kah::test {

using evidence::Capture;
using evidence::LinkType;
using evidence::Packet;
using evidence::PcapWriter;
namespace tcp_flag = evidence::tcp_flag;

constexpr double kT0 = 1714000000000.0;  // capture clock: ms since the epoch

// A TCP conversation written segment by segment, each side keeping its own sequence
// numbers as a stack would. Times are ms from kT0.
class Conversation {
 public:
  Conversation(Family family, std::string client, std::string server) {
    client_.family = server_.family = family;
    client_.src = server_.dst = std::move(client);
    client_.dst = server_.src = std::move(server);
    client_.sport = server_.dport = 40001;
    client_.dport = server_.sport = 8080;
    client_.window = 502;
    server_.window = 509;
  }

  void handshake(double t) {
    emit(client_, t, tcp_flag::syn, 0, 0);
    emit(server_, t + 0.1, tcp_flag::syn | tcp_flag::ack, 0, client_next_);
    emit(client_, t + 0.2, tcp_flag::ack, 0, server_next_);
  }
  void client_data(double t, std::uint32_t len) { emit(client_, t, tcp_flag::psh | tcp_flag::ack, len, server_next_); }
  void server_data(double t, std::uint32_t len) { emit(server_, t, tcp_flag::psh | tcp_flag::ack, len, client_next_); }
  void client_ack(double t) { emit(client_, t, tcp_flag::ack, 0, server_next_); }
  void server_ack(double t) { emit(server_, t, tcp_flag::ack, 0, client_next_); }
  // A keepalive probe at SND.NXT - 1: Linux sends 0 bytes, Windows one byte.
  void client_probe(double t, std::uint32_t len) { probe(client_, client_next_, server_next_, t, len); }
  void server_probe(double t, std::uint32_t len) { probe(server_, server_next_, client_next_, t, len); }
  // A byte sent again although the peer has not acknowledged it.
  void client_retransmit_last(double t) { probe(client_, client_next_, server_next_, t, 1); }
  void client_rst(double t) { emit(client_, t, tcp_flag::rst | tcp_flag::ack, 0, server_next_); }
  void server_rst(double t, std::uint32_t seq) { at(server_, t, seq, tcp_flag::rst, 0, 0); }
  void client_fin(double t) { emit(client_, t, tcp_flag::fin | tcp_flag::ack, 0, server_next_); }
  void server_fin(double t) { emit(server_, t, tcp_flag::fin | tcp_flag::ack, 0, client_next_); }
  void server_window(std::uint16_t w) { server_.window = w; }

  const std::vector<Packet>& packets() const { return packets_; }

 private:
  void emit(Packet& side, double t, std::uint8_t flags, std::uint32_t len, std::uint32_t ack) {
    std::uint32_t& next = &side == &client_ ? client_next_ : server_next_;
    at(side, t, next, flags, len, ack);
    next += len + ((flags & tcp_flag::syn) != 0 ? 1u : 0u) + ((flags & tcp_flag::fin) != 0 ? 1u : 0u);
  }
  void probe(Packet& side, std::uint32_t next, std::uint32_t ack, double t, std::uint32_t len) {
    at(side, t, next - 1, tcp_flag::ack, len, ack);
  }
  void at(Packet side, double t, std::uint32_t seq, std::uint8_t flags, std::uint32_t len, std::uint32_t ack) {
    side.t_ms = kT0 + t;
    side.seq = seq;
    side.ack = ack;
    side.flags = flags;
    side.payload_len = len;
    side.frame = packets_.size() + 1;  // as a capture of this conversation alone numbers it
    packets_.push_back(side);
  }

  Packet client_;
  Packet server_;
  std::uint32_t client_next_ = 0xffffffc0u;  // wraps with the first data: sequence arithmetic must be modular
  std::uint32_t server_next_ = 777000;
  std::vector<Packet> packets_;
};

// 198.18.0.1:40001 -> 198.18.0.2:8080 opened at 0 ms: the handshake, 10 bytes from the
// client at 5 ms, and the server's ACK at 6 ms, the client's last received segment.
inline Conversation opened() {
  Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
  c.handshake(0);
  c.client_data(5, 10);
  c.server_ack(6);
  return c;
}

// Two conversations in one capture, in the order given.
inline std::vector<Packet> together(const Conversation& one, const Conversation& two) {
  std::vector<Packet> all = one.packets();
  all.insert(all.end(), two.packets().begin(), two.packets().end());
  for (std::size_t i = 0; i < all.size(); ++i) all[i].frame = i + 1;
  return all;
}

inline void write_pcap(const std::vector<Packet>& packets, LinkType link, const std::filesystem::path& file) {
  PcapWriter writer(file, link);
  for (const auto& p : packets) writer.write(p.t_ms, encode_frame(p, link));
}

// Writes the conversation as a pcap and reads it back: the path `kaharness analyze` takes.
inline Capture through_pcap(const Conversation& c, LinkType link, const std::string& name) {
  const auto file = std::filesystem::temp_directory_path() / fmt::format("kah-{}-{}.pcap", ::getpid(), name);
  write_pcap(c.packets(), link, file);
  Capture capture = evidence::read_pcap(file);
  std::filesystem::remove(file);
  return capture;
}

}  // namespace kah::test
