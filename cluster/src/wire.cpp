// Batch encoding between proxies (see wire.hpp).

#include "wire.hpp"

#include <cstring>

namespace rk::detail::wire {

void batch_builder::clear() {
  buffer_.assign(header_bytes, std::byte{0});
  count_ = 0;
}

void batch_builder::add(const envelope& header, std::span<const std::byte> payload) {
  envelope h = header;
  h.payload_length = static_cast<std::uint32_t>(payload.size());
  const std::size_t at = buffer_.size();
  buffer_.resize(at + message_bytes(h.payload_length), std::byte{0});
  std::memcpy(buffer_.data() + at, &h, envelope_bytes);
  if (!payload.empty()) std::memcpy(buffer_.data() + at + envelope_bytes, payload.data(), payload.size());
  ++count_;
}

std::vector<std::byte> batch_builder::take() {
  std::memcpy(buffer_.data(), &batch_magic, sizeof batch_magic);
  std::memcpy(buffer_.data() + 4, &count_, sizeof count_);
  std::vector<std::byte> out = std::move(buffer_);
  clear();
  return out;
}

std::string decode_batch(std::span<const std::byte> batch, std::uint32_t max_payload,
                         std::vector<decoded_message>& out) {
  out.clear();
  if (batch.size() < header_bytes)
    return "a batch of " + std::to_string(batch.size()) + " bytes has no header";
  std::uint32_t magic = 0;
  std::uint32_t count = 0;
  std::memcpy(&magic, batch.data(), sizeof magic);
  std::memcpy(&count, batch.data() + 4, sizeof count);
  if (magic != batch_magic) return "the batch does not start with the ringkernel batch magic";
  // Every message takes at least an envelope: a count beyond that cannot be honest (and bounds reserve()).
  if (count > (batch.size() - header_bytes) / envelope_bytes)
    return "the batch claims " + std::to_string(count) + " messages in " + std::to_string(batch.size()) +
           " bytes";
  out.reserve(count);
  std::size_t at = header_bytes;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (batch.size() - at < envelope_bytes) {
      out.clear();
      return "message " + std::to_string(i) + " of " + std::to_string(count) +
             " starts past the end of the batch";
    }
    decoded_message m;
    std::memcpy(&m.header, batch.data() + at, envelope_bytes);
    if (m.header.payload_length > max_payload) {
      out.clear();
      return "message " + std::to_string(i) + " has a payload of " + std::to_string(m.header.payload_length) +
             " bytes; this rank takes at most " + std::to_string(max_payload);
    }
    const std::size_t size = message_bytes(m.header.payload_length);
    if (size > batch.size() - at) {
      out.clear();
      return "message " + std::to_string(i) + " runs past the end of the batch";
    }
    m.payload = batch.subspan(at + envelope_bytes, m.header.payload_length);
    out.push_back(m);
    at += size;
  }
  if (at != batch.size()) {
    out.clear();
    return std::to_string(batch.size() - at) + " bytes follow the batch's last message";
  }
  return {};
}

} // namespace rk::detail::wire
