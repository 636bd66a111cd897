#pragma once
//! \file
//! Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
//!
//! A timestamp is (physical_ns, logical). Physical time comes from `%globaltimer` on the device and from
//! std::chrono::steady_clock on the host; the logical counter orders events whose physical parts tie, so
//! timestamps are strictly increasing per clock and a receive is always later than the matching send,
//! whatever the skew between the two time sources.
//!
//! An hlc_clock has a single writer (the worker that runs its actor, or the host under a lock); it is not
//! itself thread-safe.

#include <ringkernel/device/config.cuh>

#if !defined(__CUDA_ARCH__)
#include <chrono>
#endif

namespace rk {

struct hlc_timestamp {
  std::uint64_t physical_ns = 0;
  std::uint32_t logical = 0;
  std::uint32_t reserved_ = 0; //!< keeps the size at 16 bytes on both targets; always zero

  RK_HOST_DEVICE friend constexpr bool operator==(const hlc_timestamp& a, const hlc_timestamp& b) {
    return a.physical_ns == b.physical_ns && a.logical == b.logical;
  }
  RK_HOST_DEVICE friend constexpr bool operator<(const hlc_timestamp& a, const hlc_timestamp& b) {
    return a.physical_ns < b.physical_ns || (a.physical_ns == b.physical_ns && a.logical < b.logical);
  }
  RK_HOST_DEVICE friend constexpr bool operator>(const hlc_timestamp& a, const hlc_timestamp& b) {
    return b < a;
  }
  RK_HOST_DEVICE friend constexpr bool operator<=(const hlc_timestamp& a, const hlc_timestamp& b) {
    return !(b < a);
  }
};
static_assert(sizeof(hlc_timestamp) == 16);

//! Nanoseconds from the calling side's physical clock: `%globaltimer` on the device, steady_clock on the
//! host. The two have different epochs; the HLC merge rule tolerates that.
RK_HOST_DEVICE inline std::uint64_t physical_clock_ns() noexcept {
  NV_IF_TARGET(NV_IS_DEVICE,
               (std::uint64_t t; asm volatile("mov.u64 %0, %%globaltimer;"
                                              : "=l"(t));
                return t;),
               (return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                      std::chrono::steady_clock::now().time_since_epoch())
                                                      .count());))
}

class hlc_clock {
public:
  //! Local or send event at physical time `physical_now`. Strictly greater than every earlier result.
  RK_HOST_DEVICE hlc_timestamp tick(std::uint64_t physical_now) noexcept {
    if (physical_now > last_.physical_ns) {
      last_.physical_ns = physical_now;
      last_.logical = 0;
    } else {
      ++last_.logical;
    }
    return last_;
  }

  //! Receive event: the result is strictly greater than both the previous local time and `remote`.
  RK_HOST_DEVICE hlc_timestamp merge(const hlc_timestamp& remote, std::uint64_t physical_now) noexcept {
    const std::uint64_t local = last_.physical_ns;
    std::uint64_t next = local > remote.physical_ns ? local : remote.physical_ns;
    if (physical_now > next) next = physical_now;
    if (next == local && next == remote.physical_ns) {
      last_.logical = (last_.logical > remote.logical ? last_.logical : remote.logical) + 1;
    } else if (next == local) {
      ++last_.logical;
    } else if (next == remote.physical_ns) {
      last_.logical = remote.logical + 1;
    } else {
      last_.logical = 0;
    }
    last_.physical_ns = next;
    return last_;
  }

  RK_HOST_DEVICE hlc_timestamp now() noexcept { return tick(physical_clock_ns()); }
  RK_HOST_DEVICE hlc_timestamp observe(const hlc_timestamp& remote) noexcept {
    return merge(remote, physical_clock_ns());
  }
  RK_HOST_DEVICE const hlc_timestamp& last() const noexcept { return last_; }

private:
  hlc_timestamp last_{};
};

} // namespace rk
