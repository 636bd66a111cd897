// Fuzz target: decode_batch (cluster/src/wire.hpp), the parser of what one rank's proxy receives from
// another. Oracles: no read outside the input (ASan); a batch it accepts has exactly the messages it
// reports, each inside the input and within the payload limit; encoding those messages again and decoding
// the result gives the same messages.

#include "wire.hpp"

#include <cstdlib>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace rk::detail::wire;
  constexpr std::uint32_t max_payload = 960;
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  std::vector<decoded_message> messages;
  if (!decode_batch(input, max_payload, messages).empty()) {
    if (!messages.empty()) std::abort(); // a refused batch yields nothing
    return 0;
  }
  batch_builder again;
  for (const decoded_message& m : messages) {
    if (m.header.payload_length > max_payload || m.payload.size() != m.header.payload_length) std::abort();
    if (m.payload.data() < input.data() || m.payload.data() + m.payload.size() > input.data() + input.size())
      std::abort();
    again.add(m.header, m.payload);
  }
  const std::vector<std::byte> bytes = again.take();
  if (bytes.size() != size) std::abort(); // the same layout: only padding bytes may differ
  std::vector<decoded_message> round_trip;
  if (!decode_batch(bytes, max_payload, round_trip).empty() || round_trip.size() != messages.size())
    std::abort();
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (std::memcmp(&round_trip[i].header, &messages[i].header, sizeof(rk::envelope)) != 0) std::abort();
    if (!std::equal(round_trip[i].payload.begin(), round_trip[i].payload.end(), messages[i].payload.begin()))
      std::abort();
  }
  return 0;
}
