#pragma once
//! \file
//! Parking idle scheduled-pool threads on the CPU backend, so an idle runtime costs next to no CPU while
//! a message still wakes a worker within microseconds. Host only; on CUDA the pool's blocks back off with
//! __nanosleep instead (scheduler_view::parked is null there).
//!
//! An event count on two words: `parked` (threads about to sleep or asleep) and `signal` (bumped for
//! every wake-up). Every access to `parked` is a read-modify-write, so they are totally ordered:
//!   - a pool thread that found nothing: seen = signal; parked += 1; look at the run queues again; if
//!     still nothing, sleep on `signal` while it equals `seen` (futex; the host's control-word changes
//!     bump `signal` and wake everyone, and a long timeout is only a backstop); parked -= 1.
//!   - after pushing a ready actor: if (parked += 0) != 0: signal += 1; wake one sleeper.
//! If the pusher's read of `parked` comes after the thread's increment, it sees the thread and bumps
//! `signal` after the thread read `seen`, so the futex wait returns at once or is woken. If it comes
//! before, the thread's increment reads from it, so the push happens before the thread's second look at
//! the queues, which finds the actor.

#include <ringkernel/device/detail/system.cuh>

#if !defined(__CUDA_ARCH__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <ctime>
#endif

namespace rk::detail {

#if !defined(__CUDA_ARCH__)
inline cuda::atomic_ref<std::uint32_t, peer_scope> park_word(std::uint32_t* word) noexcept {
  return cuda::atomic_ref<std::uint32_t, peer_scope>(*word);
}

//! Sleeps while `*word == expected`, at most `timeout_ns` (< 1 s); returns early on a wake or a change.
inline void futex_wait_for(std::uint32_t* word, std::uint32_t expected, long timeout_ns) noexcept {
  const timespec timeout{0, timeout_ns};
  (void)syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, &timeout, nullptr, 0);
}

inline void futex_wake_one(std::uint32_t* word) noexcept {
  (void)syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

inline void futex_wake_all(std::uint32_t* word) noexcept {
  (void)syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}

//! After a push that made an actor ready: wakes one parked pool thread, if any.
inline void host_notify_parked(const scheduler_view& s) noexcept {
  if (park_word(s.parked).fetch_add(0u, cuda::std::memory_order_acq_rel) == 0) return;
  park_word(s.park_signal).fetch_add(1u, cuda::std::memory_order_acq_rel);
  futex_wake_one(s.park_signal);
}
#endif

//! Shared code calls this after pushing a ready actor; a no-op on the device and without parking.
RK_HOST_DEVICE inline void notify_parked(const scheduler_view& s) noexcept {
  NV_IF_TARGET(NV_IS_HOST, (if (s.parked != nullptr) host_notify_parked(s);))
}

} // namespace rk::detail
