#pragma once
//! \file
//! Backoff and bounded waiting. Every spin loop in the project goes through these so that it backs off,
//! can be aborted, and has a timeout form.

#include <ringkernel/device/hlc.cuh>

#if !defined(__CUDA_ARCH__)
#include <thread>
#endif

namespace rk {

//! Exponential backoff for an idle poller. On the device it sleeps with `__nanosleep`, doubling up to
//! `max_sleep_ns`; on the host it spins with a pause hint, then yields, then sleeps (capped), so an idle
//! CPU worker does not burn a core.
class backoff {
public:
  static constexpr std::uint32_t default_device_max_sleep_ns = 1'000;
  static constexpr std::uint32_t default_host_max_sleep_ns = 50'000;

  RK_HOST_DEVICE constexpr backoff() noexcept = default;
  RK_HOST_DEVICE constexpr explicit backoff(std::uint32_t max_sleep_ns) noexcept
      : max_sleep_ns_(max_sleep_ns) {}
  //! Host waits that must react within microseconds: spin, then yield, but never sleep (a sleep costs
  //! tens of microseconds of timer slack on Linux).
  RK_HOST_DEVICE static constexpr backoff busy_poll() noexcept {
    backoff b;
    b.may_sleep_ = false;
    return b;
  }

  RK_HOST_DEVICE void pause() noexcept { NV_IF_TARGET(NV_IS_DEVICE, (device_pause();), (host_pause();)) }
  RK_HOST_DEVICE void reset() noexcept { step_ = 0; }
  RK_HOST_DEVICE std::uint32_t step() const noexcept { return step_; }
  //! (Host.) The spin stage's pause hint alone, for a loop that is waiting but must not back off yet.
  static void spin_hint() noexcept {
#if !defined(__CUDA_ARCH__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#endif
  }

private:
#if defined(__CUDACC__)
  __device__ void device_pause() noexcept {
#if defined(__CUDA_ARCH__)
    const std::uint32_t cap = max_sleep_ns_ ? max_sleep_ns_ : default_device_max_sleep_ns;
    const std::uint32_t shift = step_ < 16 ? step_ : 16;
    std::uint32_t ns = 32u << shift;
    __nanosleep(ns < cap ? ns : cap);
    if (step_ < 31) ++step_;
#endif
  }
#endif
  void host_pause() noexcept {
#if !defined(__CUDA_ARCH__)
    constexpr std::uint32_t spin_steps = 64;
    constexpr std::uint32_t yield_steps = 128;
    if (step_ < spin_steps) {
      spin_hint();
    } else if (step_ < yield_steps || !may_sleep_) {
      std::this_thread::yield();
    } else {
      const std::uint32_t cap = max_sleep_ns_ ? max_sleep_ns_ : default_host_max_sleep_ns;
      const std::uint32_t shift = step_ - yield_steps < 16 ? step_ - yield_steps : 16;
      const std::uint64_t ns = 1'000ull << shift;
      std::this_thread::sleep_for(std::chrono::nanoseconds(ns < cap ? ns : cap));
    }
    if (step_ < 1'000) ++step_;
#endif
  }

  std::uint32_t step_ = 0;
  std::uint32_t max_sleep_ns_ = 0; // 0 = the target's default
  bool may_sleep_ = true;          // host only; see busy_poll()
};

enum class wait_result : std::uint8_t { ready, timed_out, aborted };

inline constexpr std::uint64_t wait_forever = ~std::uint64_t{0};

//! (Host code; also declared in the device pass so host templates that use it compile in .cu files.)
//! A duration as a wait_until timeout, without overflow: negative counts as 0, and one too long for 64-bit
//! nanoseconds (e.g. milliseconds::max()) as wait_forever.
template <class Rep, class Period>
std::uint64_t timeout_ns(std::chrono::duration<Rep, Period> d) noexcept {
  if (d <= d.zero()) return 0;
  // Decide in double (no overflow), convert exactly in integers below 2^63 ns (292 years).
  if (!(std::chrono::duration<double, std::nano>(d).count() < 9.2e18)) return wait_forever;
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

//! Polls `ready()` until it returns true, `should_abort()` returns true, or `timeout_ns` elapses on the
//! caller's physical clock. The abort and clock checks run every 16 polls so a hot poll stays cheap.
//! With `timeout_ns == wait_forever` this is the plain (abortable) form.
template <class Ready, class ShouldAbort>
RK_HOST_DEVICE wait_result wait_until(Ready&& ready, ShouldAbort&& should_abort, std::uint64_t timeout_ns,
                                      backoff idle = backoff{}) {
  const std::uint64_t start = physical_clock_ns();
  for (std::uint32_t polls = 0;; ++polls) {
    if (ready()) return wait_result::ready;
    if ((polls & 15u) == 0) {
      if (should_abort()) return wait_result::aborted;
      if (timeout_ns != wait_forever && physical_clock_ns() - start >= timeout_ns)
        return wait_result::timed_out;
    }
    idle.pause();
  }
}

} // namespace rk
