#pragma once
//! \file
//! Parking idle scheduled-pool threads (and the gateway, and host threads blocked in receive()) on the
//! CPU backend, so an idle runtime costs next to no CPU while a message still wakes a worker within
//! microseconds. Host only; on CUDA the pool's blocks back off with
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
inline cuda::atomic_ref<std::uint32_t, peer_scope> park_word(std::uint32_t& word) noexcept {
  return cuda::atomic_ref<std::uint32_t, peer_scope>(word);
}

//! A thread about to sleep takes its ticket: the `seen` to pass to park_sleep. It must then look for work
//! (and at its control words) once more before sleeping, and call park_leave afterwards.
inline std::uint32_t park_enter(park_lot& lot) noexcept {
  const std::uint32_t seen = park_word(lot.signal).load(cuda::std::memory_order_acquire);
  park_word(lot.parked).fetch_add(1u, cuda::std::memory_order_acq_rel);
  return seen;
}

//! Sleeps while nobody signalled since `seen`, at most `timeout_ns` (< 1 s).
inline void park_sleep(park_lot& lot, std::uint32_t seen, long timeout_ns) noexcept {
  // tv_nsec must stay below one second (futex refuses it, EINVAL, and returns at once).
  const timespec timeout{timeout_ns / 1'000'000'000, timeout_ns % 1'000'000'000};
  (void)syscall(SYS_futex, &lot.signal, FUTEX_WAIT_PRIVATE, seen, &timeout, nullptr, 0);
}

inline void park_leave(park_lot& lot) noexcept {
  park_word(lot.parked).fetch_sub(1u, cuda::std::memory_order_acq_rel);
}

//! After publishing work: wakes one parked thread, if any (the read of `parked` is an RMW, see above).
inline void park_notify_one(park_lot& lot) noexcept {
  if (park_word(lot.parked).fetch_add(0u, cuda::std::memory_order_acq_rel) == 0) return;
  park_word(lot.signal).fetch_add(1u, cuda::std::memory_order_acq_rel);
  (void)syscall(SYS_futex, &lot.signal, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

//! After changing what every parked thread must read (control words): wakes them all.
inline void park_notify_all(park_lot& lot) noexcept {
  park_word(lot.signal).fetch_add(1u, cuda::std::memory_order_acq_rel);
  (void)syscall(SYS_futex, &lot.signal, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}
#endif

//! Shared code calls this after pushing a ready actor; a no-op on the device and without parking.
RK_HOST_DEVICE inline void notify_parked(const scheduler_view& s) noexcept {
  NV_IF_TARGET(NV_IS_HOST, (if (s.pool_lot != nullptr) park_notify_one(*s.pool_lot);))
}

//! Shared code calls this after publishing to the host's egress ring: wakes a host thread parked in
//! receive() (CPU backend; on CUDA the host polls with a backoff).
RK_HOST_DEVICE inline void notify_host_receiver(const system_view& s) noexcept {
  NV_IF_TARGET(NV_IS_HOST, (if (s.receive_lot != nullptr) park_notify_one(*s.receive_lot);))
}

} // namespace rk::detail
