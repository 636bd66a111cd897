// Keyed group routing (keyed_pick.cuh): the spread of keys over members, and what moves when a member
// stops.

#include <ringkernel/device/detail/keyed_pick.cuh>

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace {

using rk::detail::keyed_pick;

constexpr std::uint32_t members = 64;
constexpr std::uint64_t keys = 100'000;

std::vector<std::uint32_t> assign(const std::vector<bool>& live) {
  std::vector<std::uint32_t> owner(keys);
  for (std::uint64_t k = 0; k < keys; ++k)
    owner[k] =
        keyed_pick(k, static_cast<std::uint32_t>(live.size()), [&](std::uint32_t i) { return live[i]; });
  return owner;
}

TEST(KeyedPick, SpreadsKeysEvenly) {
  const std::vector<std::uint32_t> owner = assign(std::vector<bool>(members, true));
  std::vector<std::uint64_t> load(members);
  for (std::uint32_t o : owner) ++load[o];
  const double mean = static_cast<double>(keys) / members;
  const auto [lo, hi] = std::minmax_element(load.begin(), load.end());
  // 1562.5 keys per member on average; a uniform hash stays within about 4 standard deviations (~160).
  EXPECT_LE(static_cast<double>(*hi) / mean, 1.12) << "max/mean";
  EXPECT_GE(static_cast<double>(*lo) / mean, 0.88) << "min/mean";
}

TEST(KeyedPick, AStoppedMembersKeysSpreadAndNoOtherKeyMoves) {
  std::vector<bool> live(members, true);
  const std::vector<std::uint32_t> before = assign(live);
  const std::uint32_t stopped = 17;
  live[stopped] = false;
  const std::vector<std::uint32_t> after = assign(live);
  std::vector<std::uint64_t> gained(members);
  std::uint64_t moved = 0;
  for (std::uint64_t k = 0; k < keys; ++k) {
    if (before[k] != stopped) {
      EXPECT_EQ(after[k], before[k]) << "key " << k << " moved although its member is live";
      continue;
    }
    ASSERT_NE(after[k], stopped);
    ++gained[after[k]];
    ++moved;
  }
  ASSERT_GT(moved, 0u);
  const double share = static_cast<double>(moved) / (members - 1);
  // ~25 keys each: no member takes over the stopped one's keys (as a "next member" scheme would).
  EXPECT_LE(static_cast<double>(*std::max_element(gained.begin(), gained.end())), 3 * share);
  live[stopped] = true;
  EXPECT_EQ(assign(live), before) << "the keys return once the member is live again";
}

// With most members down, keys that miss every rehash go by rendezvous weight among the live ones: still
// even (scanning on from the last pick gave 2 of 64 live members 80% and 20%), and only a stopping
// member's keys move.
TEST(KeyedPick, KeysSpreadEvenlyAndStayPutWhenMostMembersAreDown) {
  for (const std::uint32_t up : {2u, 4u, 8u}) {
    std::vector<bool> live(members, false);
    for (std::uint32_t i = 0; i < up; ++i) live[i * (members / up) + 3] = true;
    const std::vector<std::uint32_t> before = assign(live);
    std::vector<std::uint64_t> load(members);
    for (std::uint32_t o : before) ++load[o];
    const double mean = static_cast<double>(keys) / up;
    for (std::uint32_t i = 0; i < members; ++i) {
      if (!live[i]) {
        EXPECT_EQ(load[i], 0u);
        continue;
      }
      // ~12,500..50,000 keys per live member: 4 standard deviations are under 2% of the mean.
      EXPECT_LE(static_cast<double>(load[i]) / mean, 1.03) << up << " live, member " << i;
      EXPECT_GE(static_cast<double>(load[i]) / mean, 0.97) << up << " live, member " << i;
    }
    const std::uint32_t stopping = members / up + 3;
    live[stopping] = false;
    const std::vector<std::uint32_t> after = assign(live);
    for (std::uint64_t k = 0; k < keys; ++k) {
      if (before[k] != stopping)
        ASSERT_EQ(after[k], before[k]) << up << " live: key " << k << " moved although its member is live";
      else
        ASSERT_TRUE(live[after[k]]);
    }
  }
}

TEST(KeyedPick, FindsTheLastLiveMemberAndReportsNone) {
  std::vector<bool> live(members, false);
  live[63] = true;
  for (std::uint64_t k = 0; k < 1000; ++k)
    EXPECT_EQ(keyed_pick(k, members, [&](std::uint32_t i) { return live[i]; }), 63u);
  live[63] = false;
  EXPECT_EQ(keyed_pick(5, members, [&](std::uint32_t i) { return live[i]; }), members);
  EXPECT_EQ(keyed_pick(5, 1, [](std::uint32_t) { return true; }), 0u);
}

} // namespace
