#pragma once
//! \file
//! Zero-copy regions: a device buffer registered with the runtime, and descriptors that name a byte range
//! of it. A message may carry a descriptor (envelope_flags::descriptor) instead of inline bytes; the
//! device validates it before delivery (see detail/deliver.cuh) and the receiver reads the bytes in place
//! with actor_context::region_bytes.

#include <ringkernel/device/config.cuh>

namespace rk {

//! What may happen to a region's bytes after registration, which decides whether a descriptor is safe.
enum class region_policy : std::uint8_t {
  immutable = 0,   //!< never written after registration: any in-bounds descriptor is valid
  append_only = 1, //!< written only beyond the append cursor: descriptors must end at or before it
  slab = 2,        //!< rewritten in place at any time: never valid in a descriptor (bytes could change
                   //!< between the check and the read)
};

//! Names `length` bytes at `offset` in region `region` as registered in generation `generation`. A
//! descriptor names less than 4 GiB (`length` at most max_descriptor_length, the largest view a receiver
//! can be given); a longer one is refused on delivery like any invalid descriptor. Larger buffers travel as
//! several descriptors.
struct region_descriptor {
  std::uint32_t region = 0;
  std::uint32_t generation = 0;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};
static_assert(sizeof(region_descriptor) == 24);

//! The longest byte range a descriptor may name (byte_view::size is 32-bit).
inline constexpr std::uint64_t max_descriptor_length = 0xFFFF'FFFFu;

//! A region as the host refers to it: slot and generation (the generation changes when it is
//! unregistered, which invalidates every descriptor made from this handle), and the runtime that gave it
//! out. The runtime's calls taking a handle refuse one another runtime gave out (or one built by hand).
//! A descriptor carries slot and generation only: it names a region of the runtime that delivers it.
struct region_handle {
  std::uint32_t region = 0;
  std::uint32_t generation = 0;
  std::uint32_t issuer = 0; //!< the runtime that gave it out: a number unique in the process (0: none)
  RK_HOST_DEVICE constexpr region_descriptor describe(std::uint64_t offset,
                                                      std::uint64_t length) const noexcept {
    return {region, generation, offset, length};
  }
};

} // namespace rk
