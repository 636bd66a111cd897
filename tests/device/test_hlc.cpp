// Hybrid logical clock: strictly increasing per clock, receive later than send, whatever the skew.
#include <ringkernel/device/hlc.cuh>

#include <gtest/gtest.h>

#include <random>

namespace {

using rk::hlc_clock;
using rk::hlc_timestamp;

TEST(Hlc, TickIsStrictlyMonotonicWhenPhysicalTimeStallsOrGoesBackwards) {
  hlc_clock c;
  hlc_timestamp prev = c.tick(1'000);
  EXPECT_EQ(prev.physical_ns, 1'000u);
  EXPECT_EQ(prev.logical, 0u);
  for (std::uint64_t physical : {1'000u, 1'000u, 999u, 500u, 1'000u}) {
    const hlc_timestamp next = c.tick(physical);
    EXPECT_LT(prev, next) << "physical " << physical;
    EXPECT_EQ(next.physical_ns, 1'000u) << "HLC physical part never goes back";
    prev = next;
  }
  EXPECT_EQ(prev.logical, 5u);
  const hlc_timestamp later = c.tick(2'000);
  EXPECT_EQ(later.physical_ns, 2'000u);
  EXPECT_EQ(later.logical, 0u) << "logical part resets when physical time advances";
}

TEST(Hlc, MergeIsLaterThanBothLocalAndRemote) {
  hlc_clock receiver;
  receiver.tick(5'000);
  // Remote ahead of local and of the physical clock (sender's clock is skewed forward).
  const hlc_timestamp remote{9'000, 3};
  const hlc_timestamp merged = receiver.merge(remote, 6'000);
  EXPECT_EQ(merged.physical_ns, 9'000u);
  EXPECT_EQ(merged.logical, 4u);
  EXPECT_LT(remote, merged);

  // Local ahead: logical increments from local.
  const hlc_timestamp old_remote{1'000, 50};
  const hlc_timestamp merged2 = receiver.merge(old_remote, 2'000);
  EXPECT_EQ(merged2.physical_ns, 9'000u);
  EXPECT_EQ(merged2.logical, 5u);

  // Physical clock ahead of both: logical resets.
  const hlc_timestamp merged3 = receiver.merge(hlc_timestamp{9'500, 7}, 20'000);
  EXPECT_EQ(merged3.physical_ns, 20'000u);
  EXPECT_EQ(merged3.logical, 0u);

  // All three tie: max logical + 1.
  hlc_clock tie;
  tie.tick(100); // (100, 0)
  tie.tick(100); // (100, 1)
  const hlc_timestamp t = tie.merge(hlc_timestamp{100, 7}, 100);
  EXPECT_EQ(t.physical_ns, 100u);
  EXPECT_EQ(t.logical, 8u);
}

TEST(Hlc, AHostileRemoteTimestampAtTheEndOfTimeSaturatesInsteadOfWrapping) {
  // The largest timestamp has no successor: advancing it wrapped the physical part to 0, so one forged
  // remote stamp sent a clock back to 1970 (and every later event before every earlier one).
  constexpr hlc_timestamp end{~std::uint64_t{0}, 0xFFFF'FFFFu};
  hlc_clock c;
  const hlc_timestamp before = c.tick(1'000);
  const hlc_timestamp merged = c.merge(end, 2'000);
  EXPECT_FALSE(merged < end) << "never earlier than the remote";
  EXPECT_LT(before, merged);
  EXPECT_EQ(merged, end) << "saturated";
  EXPECT_EQ(c.tick(3'000), end) << "never backwards: it stays at the end";
  hlc_clock restored(end);
  EXPECT_EQ(restored.tick(5), end);
  EXPECT_EQ(restored.merge(hlc_timestamp{~std::uint64_t{0}, 7}, 5), end);
  // One step before the end still carries normally.
  hlc_clock almost(hlc_timestamp{~std::uint64_t{0} - 1, 0xFFFF'FFFFu});
  EXPECT_EQ(almost.tick(0), (hlc_timestamp{~std::uint64_t{0}, 0}));
}

TEST(Hlc, CausalityHoldsAcrossSkewedClocksInARandomExchange) {
  // Two parties with physical clocks 1 ms apart exchange messages; every receive must be later than its
  // send and every clock strictly increasing, whatever the interleaving.
  std::mt19937_64 rng(42);
  hlc_clock a, b;
  std::uint64_t pa = 1'000'000, pb = 0; // b's physical clock is 1 ms behind
  hlc_timestamp last_a{}, last_b{};
  for (int i = 0; i < 100'000; ++i) {
    pa += rng() % 3;
    pb += rng() % 3;
    const bool a_sends = rng() & 1;
    hlc_clock& sender = a_sends ? a : b;
    hlc_clock& receiver = a_sends ? b : a;
    const hlc_timestamp sent = sender.tick(a_sends ? pa : pb);
    const hlc_timestamp received = receiver.merge(sent, a_sends ? pb : pa);
    ASSERT_LT(sent, received);
    hlc_timestamp& last_s = a_sends ? last_a : last_b;
    hlc_timestamp& last_r = a_sends ? last_b : last_a;
    ASSERT_LT(last_s, sent);
    ASSERT_LT(last_r, received);
    last_s = sent;
    last_r = received;
  }
}

TEST(Hlc, RealClockNowIsMonotonic) {
  hlc_clock c;
  hlc_timestamp prev = c.now();
  for (int i = 0; i < 10'000; ++i) {
    const hlc_timestamp next = c.now();
    ASSERT_LT(prev, next);
    prev = next;
  }
}

} // namespace

namespace {

TEST(Hlc, TheLogicalCounterCarriesIntoThePhysicalPartInsteadOfWrapping) {
  constexpr std::uint32_t top = 0xFFFF'FFFFu;
  hlc_clock c(hlc_timestamp{1'000, top - 1});
  const hlc_timestamp at_top = c.tick(500); // a clock ahead of physical time keeps counting
  EXPECT_EQ(at_top.physical_ns, 1'000u);
  EXPECT_EQ(at_top.logical, top);
  const hlc_timestamp carried = c.tick(500);
  EXPECT_LT(at_top, carried) << "never backwards";
  EXPECT_EQ(carried.physical_ns, 1'001u);
  EXPECT_EQ(carried.logical, 0u);

  hlc_clock receiver(hlc_timestamp{7, 3});
  const hlc_timestamp merged = receiver.merge(hlc_timestamp{2'000, top}, 100);
  EXPECT_LT((hlc_timestamp{2'000, top}), merged) << "a receive is later than the send, even at the top";
  EXPECT_EQ(merged.physical_ns, 2'001u);
  EXPECT_EQ(merged.logical, 0u);

  hlc_clock tie(hlc_timestamp{50, top});
  const hlc_timestamp t = tie.merge(hlc_timestamp{50, 4}, 50);
  EXPECT_EQ(t.physical_ns, 51u);
  EXPECT_EQ(t.logical, 0u);
}

TEST(Hlc, HostTimeIsUnixTimeLikeTheDevicesGlobalTimer) {
  const auto unix_ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                      std::chrono::system_clock::now().time_since_epoch())
                                                      .count());
  hlc_clock c;
  const hlc_timestamp t = c.now();
  EXPECT_LT((t.physical_ns > unix_ns ? t.physical_ns - unix_ns : unix_ns - t.physical_ns), 1'000'000'000u)
      << "the host's HLC physical time is nanoseconds since the Unix epoch";
}

} // namespace
