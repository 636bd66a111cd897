#pragma once
//! \file
//! What a handler sees (rk::message, a view of a mailbox slot) and what a sender passes (rk::byte_view).

#include <ringkernel/device/envelope.cuh>

#include <cuda/std/type_traits>

namespace rk {

//! A non-owning run of bytes. Construct from (pointer, size) or from a trivially copyable object with
//! rk::as_bytes(object).
struct byte_view {
  const void* data = nullptr;
  std::uint32_t size = 0;

  RK_HOST_DEVICE constexpr byte_view() noexcept = default;
  RK_HOST_DEVICE constexpr byte_view(const void* d, std::uint32_t n) noexcept : data(d), size(n) {}
  RK_HOST_DEVICE const std::byte* bytes() const noexcept { return static_cast<const std::byte*>(data); }
};

template <class T>
RK_HOST_DEVICE byte_view as_bytes(const T& object) noexcept {
  static_assert(cuda::std::is_trivially_copyable_v<T>,
                "only trivially copyable objects can be sent as bytes");
  return byte_view{&object, static_cast<std::uint32_t>(sizeof(T))};
}

//! A received message: the envelope and inline payload, read in place from the mailbox slot. Valid only
//! during the handler call that received it (the slot is released when the handler returns).
class message {
public:
  RK_HOST_DEVICE explicit message(const std::byte* slot) noexcept
      : header_(reinterpret_cast<const envelope*>(slot)), payload_(slot + envelope_bytes) {}

  RK_HOST_DEVICE const envelope& header() const noexcept { return *header_; }
  RK_HOST_DEVICE std::uint32_t type() const noexcept { return header_->type_id; }
  RK_HOST_DEVICE actor_index source() const noexcept { return header_->source; }
  RK_HOST_DEVICE actor_index destination() const noexcept { return header_->destination; }
  RK_HOST_DEVICE std::uint64_t tenant() const noexcept { return header_->tenant; }
  RK_HOST_DEVICE std::uint64_t correlation_id() const noexcept { return header_->correlation_id; }
  RK_HOST_DEVICE hlc_timestamp timestamp() const noexcept { return header_->timestamp; }
  RK_HOST_DEVICE rk::priority priority() const noexcept {
    return static_cast<rk::priority>(header_->priority);
  }
  RK_HOST_DEVICE std::uint32_t hops() const noexcept { return header_->hops; }
  RK_HOST_DEVICE bool from_host() const noexcept { return header_->source == host_actor; }

  RK_HOST_DEVICE byte_view payload() const noexcept { return {payload_, header_->payload_length}; }
  RK_HOST_DEVICE std::uint32_t size() const noexcept { return header_->payload_length; }

  //! The payload as a T, or null when the payload is shorter than sizeof(T). Slots keep the payload
  //! 64-byte aligned, so any T with alignof(T) <= 64 is safe to read in place.
  template <class T>
  RK_HOST_DEVICE const T* as() const noexcept {
    static_assert(cuda::std::is_trivially_copyable_v<T>);
    static_assert(alignof(T) <= 64);
    return header_->payload_length >= sizeof(T) ? reinterpret_cast<const T*>(payload_) : nullptr;
  }

private:
  const envelope* header_;
  const std::byte* payload_;
};

} // namespace rk
