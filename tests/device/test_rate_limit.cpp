// The tenant rate limiter (deliver.cuh: take_token_with_clock, take_token_at_time, return_tokens) against its
// contract, on a synthetic clock: a bucket never used or idle for any time holds `burst` tokens, whatever the
// clock reads; over any stretch it passes at most burst + rate x time messages and, under steady demand,
// close to that.

#include <ringkernel/device/detail/deliver.cuh>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>

namespace {

using rk::detail::return_tokens;
using rk::detail::take_token_at_time;
using rk::detail::tenant_entry;

constexpr std::uint64_t second_ns = 1'000'000'000;
// Clocks the backends read: steady_clock a day after boot, %globaltimer (ns since 1970) in 2026.
constexpr std::uint64_t clocks[] = {86'400 * second_ns, 1'796'000'000 * second_ns};

tenant_entry bucket(std::uint64_t rate, std::uint64_t burst) {
  tenant_entry t;
  t.rate_per_second = rate;
  t.burst = burst;
  return t;
}

//! Single-message sends at `now` until one is refused; how many passed.
std::uint64_t drain(tenant_entry& t, std::uint64_t now, std::uint64_t limit = 1u << 22) {
  std::uint64_t passed = 0;
  while (passed < limit && take_token_at_time(t, 1, t.rate_per_second, now)) ++passed;
  return passed;
}

TEST(RateLimit, ANewBucketHoldsBurstWhateverTheClockReads) {
  for (std::uint64_t now : clocks) {
    tenant_entry t = bucket(1, 100'000); // it once passed ~1 message per second of uptime instead
    EXPECT_EQ(drain(t, now), 100'000u) << now;
    tenant_entry small = bucket(1, 1'000);
    EXPECT_EQ(drain(small, now), 1'000u) << now;
    tenant_entry one = bucket(3, 1); // a rate whose interval is not a whole number of units
    EXPECT_EQ(drain(one, now), 1u) << now;
  }
}

TEST(RateLimit, BurstZeroIsOneSecondsWorthAtAnyRate) {
  for (std::uint64_t rate : {1ull, 1'000ull, 2'000'000ull}) { // 2e6 was capped at ~2^20 tokens
    tenant_entry t = bucket(rate, 0);
    EXPECT_EQ(drain(t, clocks[1], 4'000'000), rate);
  }
}

TEST(RateLimit, AnIdleBucketRefillsToBurstAndNoFurther) {
  for (std::uint64_t idle_s : {1ull, 11ull, 3'600ull, 86'400ull * 365}) {
    tenant_entry t = bucket(10, 50);
    std::uint64_t now = clocks[1];
    ASSERT_EQ(drain(t, now), 50u);
    now += idle_s * second_ns;
    EXPECT_EQ(drain(t, now), std::min<std::uint64_t>(50, 10 * idle_s)) << "after " << idle_s << " s";
  }
}

TEST(RateLimit, SteadyDemandPassesTheRateAndNoMore) {
  // Sends every `gap` ns for up to two seconds; the bucket starts full. It once passed 28-36% too many at a
  // few hundred thousand per second (the refill time was rounded down and credited again).
  struct load {
    std::uint64_t rate, burst, gap_ns;
  };
  for (const load l : {load{300'000, 1'000, 1'000}, load{300'000, 100'000, 700}, load{3'000, 10, 50'000},
                       load{30'000'000, 1'000, 20}, load{7, 3, 1'000'000}}) {
    tenant_entry t = bucket(l.rate, l.burst);
    const std::uint64_t start = clocks[1];
    const std::uint64_t span = std::min<std::uint64_t>(2 * second_ns, 4'000'000 * l.gap_ns); // bounded work
    std::uint64_t passed = 0;
    for (std::uint64_t now = start; now < start + span; now += l.gap_ns)
      passed += take_token_at_time(t, 1, l.rate, now) ? 1 : 0;
    const double ceiling =
        static_cast<double>(l.burst) + static_cast<double>(l.rate) * static_cast<double>(span) / 1e9 + 1;
    EXPECT_LE(static_cast<double>(passed), ceiling) << l.rate << "/s, burst " << l.burst;
    EXPECT_GE(static_cast<double>(passed), 0.99 * (ceiling - 1) - 1) << l.rate << "/s, burst " << l.burst;
  }
}

TEST(RateLimit, BatchesCostTheirSizeAndGivenBackTokensCanBeTakenAgain) {
  tenant_entry t = bucket(100, 10);
  const std::uint64_t now = clocks[0];
  EXPECT_FALSE(take_token_at_time(t, 11, 100, now)) << "more than the bucket holds";
  EXPECT_TRUE(take_token_at_time(t, 8, 100, now));
  EXPECT_FALSE(take_token_at_time(t, 3, 100, now));
  return_tokens(t, 8);
  EXPECT_TRUE(take_token_at_time(t, 10, 100, now)) << "all 10 back";
  EXPECT_FALSE(take_token_at_time(t, 1, 100, now));
  return_tokens(t, 1'000); // more than was taken: the bucket is full, not fuller
  EXPECT_EQ(drain(t, now), 10u);
  EXPECT_FALSE(take_token_at_time(t, 1u << 31, 100, now)) << "a batch no bucket holds";
  EXPECT_TRUE(take_token_at_time(t, 0, 100, now + 10 * second_ns)) << "nothing costs nothing";
}

TEST(RateLimit, AQuotaChangeTakesEffectAtOnce) {
  // set_quota() rewrites rate and burst under a bucket that owes in the old rate's time: raising the rate
  // from 1 to 10^6 left a drained bucket locked for the old refill time (50 s here, 12 days at most).
  tenant_entry t = bucket(1, 50);
  std::uint64_t now = clocks[1];
  ASSERT_EQ(drain(t, now), 50u);
  t.rate_per_second = 1'000'000;
  t.burst = 100;
  now += second_ns / 1'000;
  EXPECT_EQ(drain(t, now), 0u) << "capped at an empty bucket of the new quota, not 50 s behind";
  now += 100'000; // 100 us: a full bucket's worth at the new rate
  EXPECT_EQ(drain(t, now), 100u);
  t.rate_per_second = 1; // lowering the rate: the 100 us still owed stay owed, a sliver of a token now
  t.burst = 2;
  EXPECT_EQ(drain(t, now), 1u);
  EXPECT_EQ(drain(t, now + 3 * second_ns), 2u);
}

TEST(RateLimit, ARaisedQuotaRefillsFromTheChangeNotFromTheNextSend) {
  // The cap came at the first send after set_quota(), however long after: a bucket drained at 1/s and
  // raised to 1,000/s passed 0..2 of 100 sends 3 s later, fewer than the old rate would have.
  for (const std::uint64_t start : clocks) {
    tenant_entry t = bucket(1, 10);
    std::uint64_t now = start;
    ASSERT_EQ(drain(t, now), 10u);
    t.quota_changed_ns = now;
    t.rate_per_second = 1'000;
    t.burst = 100;
    now += 3 * second_ns;
    EXPECT_EQ(drain(t, now), 100u) << "3 s at the new rate fill the new bucket";
    // 50 ms after a change: 50 tokens of the new rate, not a full bucket nor an empty one.
    t = bucket(1, 10);
    ASSERT_EQ(drain(t, now), 10u);
    t.quota_changed_ns = now;
    t.rate_per_second = 1'000;
    t.burst = 100;
    EXPECT_EQ(drain(t, now + 50'000'000), 50u);
    // A change time ahead of the bucket's clock (the host's clock ahead of %globaltimer) counts as now.
    t = bucket(1, 10);
    ASSERT_EQ(drain(t, now), 10u);
    t.quota_changed_ns = now + 10 * second_ns;
    t.rate_per_second = 1'000;
    t.burst = 100;
    EXPECT_EQ(drain(t, now), 0u);
    EXPECT_EQ(drain(t, now + 100'000'000), 100u);
  }
}

TEST(RateLimit, ASenderWithAStaleReadingNeverGivesBackTokensOthersSpent) {
  // A sender whose clock reading is 20 ms old when it reaches the bucket (held up in between) found it
  // owing more than the tolerance, took that for a quota change and rewound the bucket to its stale time:
  // 10 more passed at the same instant (found by a probe: two senders at 1,000/s passed up to 1,080).
  for (const std::uint64_t start : clocks) {
    tenant_entry t = bucket(1'000, 10);
    const std::uint64_t now = start + second_ns;
    ASSERT_EQ(drain(t, now), 10u);
    int reads = 0;
    const auto held_up = [&] { return ++reads == 1 ? now - 20'000'000 : now; };
    EXPECT_FALSE(rk::detail::take_token_with_clock(t, 1, t.rate_per_second, held_up));
    EXPECT_EQ(reads, 2) << "read again before moving the bucket back";
    EXPECT_EQ(drain(t, now), 0u) << "nothing was given back";
    EXPECT_EQ(drain(t, now + 10'000'000), 10u) << "10 ms later the bucket is full again, and no fuller";
  }
}

TEST(RateLimit, NoRateMeansNoLimit) {
  tenant_entry t = bucket(0, 0);
  EXPECT_EQ(drain(t, clocks[0], 1'000'000), 1'000'000u);
}

} // namespace
