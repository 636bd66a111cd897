#pragma once
// The bytes one proxy sends another in one MPI message: a batch of messages for the receiving rank.
//
//   batch   := header message*            header: magic (u32), count (u32)
//   message := envelope (64 bytes) payload (envelope.payload_length bytes) padding to a multiple of 8
//
// The envelope is as the sending rank's device wrote it, with `destination` made the actor id on the
// receiving rank (host_actor: its host) and `source` left as the sender's id on the sending rank
// (host_actor: its host). decode_batch() checks every length against the buffer and the largest payload
// this rank accepts, and refuses the whole batch on the first inconsistency (a peer never sends one).

#include <ringkernel/device/envelope.cuh>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace rk::detail::wire {

inline constexpr std::uint32_t batch_magic = 0x524B'4231u; // "RKB1"
inline constexpr std::size_t header_bytes = 8;

constexpr std::size_t padded(std::size_t bytes) noexcept {
  return (bytes + 7) / 8 * 8;
}
//! Bytes `payload_length` takes in a batch, envelope included.
constexpr std::size_t message_bytes(std::uint32_t payload_length) noexcept {
  return envelope_bytes + padded(payload_length);
}

//! A batch being filled: starts with its header; add() appends one message.
class batch_builder {
public:
  batch_builder() { clear(); }
  void clear();
  void add(const envelope& header, std::span<const std::byte> payload);
  std::uint32_t count() const noexcept { return count_; }
  std::size_t bytes() const noexcept { return buffer_.size(); }
  //! The finished batch (the count written into the header); the builder is empty afterwards.
  std::vector<std::byte> take();

private:
  std::vector<std::byte> buffer_;
  std::uint32_t count_ = 0;
};

struct decoded_message {
  envelope header{};
  std::span<const std::byte> payload;
};

//! Splits `batch` into its messages. Returns an empty string and fills `out`, or says what is wrong
//! (and leaves `out` empty). `max_payload`: the largest payload length accepted.
std::string decode_batch(std::span<const std::byte> batch, std::uint32_t max_payload,
                         std::vector<decoded_message>& out);

} // namespace rk::detail::wire
