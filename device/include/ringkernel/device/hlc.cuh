#pragma once
//! \file
//! Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
//!
//! A timestamp is (physical_ns, logical). Physical time is nanoseconds since the Unix epoch on both
//! sides: `%globaltimer` on the device (the driver keeps it in Unix time) and, on the host
//! (hlc_physical_ns), std::chrono::steady_clock moved to the Unix epoch once per process (it does not
//! follow later steps of the wall clock), so a device and a host timestamp can be compared and the logical
//! counter only has to absorb the small skew between the two. The logical counter orders events whose
//! physical parts tie; when it would overflow it carries into the physical part, so timestamps are strictly
//! increasing per clock, never wrap backwards, and a receive is always later than the matching send. The
//! one exception is the largest timestamp (physical 2^64 - 1, logical 2^32 - 1), which only a hostile or
//! corrupt remote timestamp can bring near: it has no successor, so the clock saturates there (later
//! results equal it) instead of wrapping to 0.
//! Durations (timeouts, handler time, rate buckets) use physical_clock_ns, which on the host is the
//! monotonic steady_clock instead.
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

//! Nanoseconds for measuring durations: `%globaltimer` on the device, steady_clock (monotonic, any epoch)
//! on the host.
RK_HOST_DEVICE inline std::uint64_t physical_clock_ns() noexcept {
  NV_IF_TARGET(NV_IS_DEVICE,
               (std::uint64_t t; asm volatile("mov.u64 %0, %%globaltimer;"
                                              : "=l"(t));
                return t;),
               (return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                      std::chrono::steady_clock::now().time_since_epoch())
                                                      .count());))
}

#if !defined(__CUDA_ARCH__)
//! system_clock - steady_clock, read once per process. The host's HLC physical time is steady_clock moved
//! to the Unix epoch by it: one clock read then gives both a handler's start (a duration) and its event
//! time, and the physical part never steps back when the wall clock is set back. It tracks NTP's rate
//! corrections (steady_clock is slewed with them) but not a step made after the first use.
inline std::uint64_t host_epoch_offset_ns() noexcept {
  static const std::uint64_t offset = [] {
    using namespace std::chrono;
    const auto wall = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
    const auto steady = duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
    return static_cast<std::uint64_t>(wall) - static_cast<std::uint64_t>(steady);
  }();
  return offset;
}
#endif

//! The HLC physical time (nanoseconds since the Unix epoch) at the moment physical_clock_ns() returned
//! `physical`: `%globaltimer` already is on the device.
RK_HOST_DEVICE inline std::uint64_t hlc_physical_at(std::uint64_t physical) noexcept {
  NV_IF_TARGET(NV_IS_DEVICE, (return physical;), (return physical + host_epoch_offset_ns();))
}

//! Nanoseconds since the Unix epoch, the HLC's physical time on both sides: `%globaltimer` on the device,
//! steady_clock moved to the Unix epoch on the host (see host_epoch_offset_ns).
RK_HOST_DEVICE inline std::uint64_t hlc_physical_ns() noexcept {
  return hlc_physical_at(physical_clock_ns());
}

class hlc_clock {
public:
  RK_HOST_DEVICE constexpr hlc_clock() noexcept = default;
  //! A clock that continues from `last` (restoring a clock, or testing the logical counter's carry).
  RK_HOST_DEVICE constexpr explicit hlc_clock(const hlc_timestamp& last) noexcept : last_(last) {}

  //! Local or send event at physical time `physical_now`. Strictly greater than every earlier result
  //! (equal once saturated at the largest timestamp).
  RK_HOST_DEVICE hlc_timestamp tick(std::uint64_t physical_now) noexcept {
    if (physical_now > last_.physical_ns) {
      last_.physical_ns = physical_now;
      last_.logical = 0;
    } else {
      advance(last_.physical_ns, last_.logical);
    }
    return last_;
  }

  //! Receive event: the result is strictly greater than both the previous local time and `remote` (equal
  //! to the largest timestamp once saturated there).
  RK_HOST_DEVICE hlc_timestamp merge(const hlc_timestamp& remote, std::uint64_t physical_now) noexcept {
    const std::uint64_t local = last_.physical_ns;
    std::uint64_t next = local > remote.physical_ns ? local : remote.physical_ns;
    if (physical_now > next) next = physical_now;
    std::uint32_t logical = 0;
    if (next == local && next == remote.physical_ns) {
      logical = last_.logical > remote.logical ? last_.logical : remote.logical;
      advance(next, logical);
    } else if (next == local) {
      logical = last_.logical;
      advance(next, logical);
    } else if (next == remote.physical_ns) {
      logical = remote.logical;
      advance(next, logical);
    }
    last_.physical_ns = next;
    last_.logical = logical;
    return last_;
  }

  RK_HOST_DEVICE hlc_timestamp now() noexcept { return tick(hlc_physical_ns()); }
  RK_HOST_DEVICE hlc_timestamp observe(const hlc_timestamp& remote) noexcept {
    return merge(remote, hlc_physical_ns());
  }
  //! observe() at physical_clock_ns() reading `physical` (a caller that read the clock anyway).
  RK_HOST_DEVICE hlc_timestamp observe_at(const hlc_timestamp& remote, std::uint64_t physical) noexcept {
    return merge(remote, hlc_physical_at(physical));
  }
  RK_HOST_DEVICE const hlc_timestamp& last() const noexcept { return last_; }

private:
  //! The timestamp right after (physical, logical): the logical counter carries into the physical part
  //! instead of wrapping. The largest timestamp stays as it is: a step from it would wrap to (0, 0), far
  //! before every earlier result (see the file comment).
  RK_HOST_DEVICE static void advance(std::uint64_t& physical, std::uint32_t& logical) noexcept {
    if (logical != 0xFFFF'FFFFu) {
      ++logical;
    } else if (physical != ~std::uint64_t{0}) {
      ++physical;
      logical = 0;
    }
  }

  hlc_timestamp last_{};
};

} // namespace rk
