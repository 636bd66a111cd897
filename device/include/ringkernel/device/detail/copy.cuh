#pragma once
//! \file
//! Copies into ring slots with the widest accesses the source allows. On the device a plain memcpy of a
//! run-time length compiles to a loop of byte loads and stores; a 256-byte slot then costs hundreds of
//! instructions (and, for host rings, that many PCIe transactions). Slots are 64-byte aligned and their
//! payload area is a multiple of 64 bytes, so the destination may be written in whole 4-, 8- or 16-byte
//! words up to the next word boundary; the source is read only within its `bytes`.
//! On the host (CPU backend) this is std::memcpy, which glibc already does this way.

#include <ringkernel/device/config.cuh>

#include <cuda/std/bit>

#include <cstring>

namespace rk::detail {

struct alignas(16) slot_chunk {
  std::uint64_t low;
  std::uint64_t high;
};

//! Copies `bytes` from `source` to `destination`. `destination` must be 16-byte aligned and writable up
//! to `bytes` rounded up to a multiple of 4 (the padding bytes get unspecified values).
RK_HOST_DEVICE inline void copy_to_slot(void* destination, const void* source, std::uint32_t bytes) noexcept {
  NV_IF_TARGET(
      NV_IS_DEVICE,
      (
          auto* to = static_cast<std::byte*>(destination);
          const auto* from = static_cast<const std::byte*>(source);
          const auto address = reinterpret_cast<std::uintptr_t>(from); std::uint32_t i = 0;
          if ((address & 15u) == 0) {
            for (; i + 16 <= bytes; i += 16)
              *reinterpret_cast<slot_chunk*>(to + i) = *reinterpret_cast<const slot_chunk*>(from + i);
          } else if ((address & 7u) == 0) {
            for (; i + 8 <= bytes; i += 8)
              *reinterpret_cast<std::uint64_t*>(to + i) = *reinterpret_cast<const std::uint64_t*>(from + i);
          } else if ((address & 3u) == 0) {
            for (; i + 4 <= bytes; i += 4)
              *reinterpret_cast<std::uint32_t*>(to + i) = *reinterpret_cast<const std::uint32_t*>(from + i);
          }
          // The rest (under 16 bytes, or all of an unaligned source): bytes in, whole words out.
          for (; i < bytes; i += 4) {
            std::uint32_t word = 0;
            for (std::uint32_t k = 0; k < 4 && i + k < bytes; ++k)
              word |= static_cast<std::uint32_t>(static_cast<unsigned char>(from[i + k])) << (8 * k);
            *reinterpret_cast<std::uint32_t*>(to + i) = word;
          }),
      (if (bytes != 0) std::memcpy(destination, source, bytes);))
}

//! `Words` 16-byte words: what a fixed-size slot record (an envelope, an audit record) is moved as.
template <std::size_t Words>
struct slot_words {
  slot_chunk words[Words];
};

//! Writes trivially copyable `value` (a multiple of 16 bytes, e.g. an envelope or an audit record) to a
//! 16-byte aligned slot address with 16-byte stores. Going through bit_cast keeps the value in registers
//! (taking its address would put it in local memory).
template <class T>
RK_HOST_DEVICE inline void store_words(void* slot, const T& value) noexcept {
  static_assert(sizeof(T) % sizeof(slot_chunk) == 0);
  constexpr std::size_t n = sizeof(T) / sizeof(slot_chunk);
  const slot_words<n> w = cuda::std::bit_cast<slot_words<n>>(value);
  auto* to = static_cast<slot_chunk*>(slot);
  for (std::size_t k = 0; k < n; ++k) to[k] = w.words[k];
}

//! Reads a `T` (a multiple of 16 bytes) from a 16-byte aligned slot address with 16-byte loads.
template <class T>
RK_HOST_DEVICE inline T load_words(const void* slot) noexcept {
  static_assert(sizeof(T) % sizeof(slot_chunk) == 0);
  constexpr std::size_t n = sizeof(T) / sizeof(slot_chunk);
  slot_words<n> w;
  const auto* from = static_cast<const slot_chunk*>(slot);
  for (std::size_t k = 0; k < n; ++k) w.words[k] = from[k];
  return cuda::std::bit_cast<T>(w);
}

} // namespace rk::detail
