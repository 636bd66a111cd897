// Parking idle CPU threads (detail/host_park.cuh): a sleep ends at its timeout, also past one second (the
// CPU pool's backstop grows with the pool), and a notify wakes a sleeper at once.

#include <ringkernel/device/detail/host_park.cuh>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A timeout of a second or more went to the futex as tv_nsec >= 10^9: refused (EINVAL), so the sleep
// returned at once and an idle pool of 4,096 threads spun on its backstop (over one core).
TEST(HostPark, ASleepOfMoreThanASecondLastsUntilItsTimeout) {
  rk::detail::park_lot lot{};
  const std::uint32_t seen = rk::detail::park_enter(lot);
  const auto begin = clock_type::now();
  rk::detail::park_sleep(lot, seen, 1'200'000'000);
  const auto slept = clock_type::now() - begin;
  rk::detail::park_leave(lot);
  EXPECT_GE(slept, 1s) << "nobody woke it: it must sleep (about) its 1.2 s timeout";
}

TEST(HostPark, ANotifyWakesASleeperBeforeItsTimeout) {
  rk::detail::park_lot lot{};
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    const std::uint32_t seen = rk::detail::park_enter(lot);
    rk::detail::park_sleep(lot, seen, 30'000'000'000); // 30 s
    rk::detail::park_leave(lot);
    woke.store(true);
  });
  // Parked (or about to sleep: its ticket is taken, so the notify cannot be missed).
  while (rk::detail::park_word(lot.parked).load(cuda::std::memory_order_acquire) == 0)
    std::this_thread::yield();
  const auto begin = clock_type::now();
  rk::detail::park_notify_one(lot);
  sleeper.join();
  EXPECT_TRUE(woke.load());
  EXPECT_LT(clock_type::now() - begin, 10s) << "woken by the notify, not by its 30 s timeout";
}

} // namespace
