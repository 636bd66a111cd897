// The bookkeeping behind table slots and memory ranges (host/src/allocators.hpp).
#include "allocators.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <vector>

using rk::detail::range_allocator;
using rk::detail::slot_allocator;

TEST(RangeAllocator, FirstFitAlignsAndCoalescesBackToOneRange) {
  range_allocator r(1024);
  const auto a = r.allocate(100, 256);
  const auto b = r.allocate(100, 256);
  const auto c = r.allocate(100, 256);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(*a, 0u);
  EXPECT_EQ(*b, 256u);
  EXPECT_EQ(*c, 512u);
  EXPECT_EQ(r.used(), 300u);
  EXPECT_FALSE(r.allocate(300, 256)) << "768 is the last aligned start and only 256 fit there";
  r.free(*b, 100);
  EXPECT_EQ(r.allocate(100, 256), b) << "a freed range is reused";
  r.free(*a, 100);
  r.free(*c, 100);
  r.free(*b, 100);
  EXPECT_EQ(r.used(), 0u);
  EXPECT_EQ(r.largest_free(), 1024u) << "neighbours coalesce";
  EXPECT_EQ(r.allocate(1024), 0u);
}

TEST(RangeAllocator, RandomAllocateFreeNeverOverlapsAndEndsWhole) {
  range_allocator r(1 << 16);
  std::mt19937 rng(7);
  std::map<std::uint64_t, std::uint64_t> live;
  for (int i = 0; i < 20'000; ++i) {
    if (live.empty() || rng() % 2) {
      const std::uint64_t length = 1 + rng() % 700;
      if (const auto at = r.allocate(length, std::uint64_t{1} << (rng() % 5))) {
        const auto next = live.lower_bound(*at);
        ASSERT_TRUE(next == live.end() || *at + length <= next->first) << "overlaps the next range";
        if (next != live.begin()) {
          ASSERT_LE(std::prev(next)->first + std::prev(next)->second, *at) << "overlaps the previous range";
        }
        live.emplace(*at, length);
      }
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      r.free(it->first, it->second);
      live.erase(it);
    }
  }
  for (const auto& [at, length] : live) r.free(at, length);
  EXPECT_EQ(r.used(), 0u);
  EXPECT_EQ(r.largest_free(), std::uint64_t{1} << 16);
}

TEST(SlotAllocator, NumbersDenselyThenReusesOldestFirstWithANewGeneration) {
  slot_allocator s(4, 1u << 10);
  for (std::uint32_t i = 0; i < 4; ++i) {
    const auto id = s.acquire();
    ASSERT_TRUE(id);
    EXPECT_EQ(id->slot, i);
    EXPECT_EQ(id->generation, 0u);
  }
  EXPECT_FALSE(s.acquire()) << "full";
  s.release(2);
  s.release(0);
  const auto first = s.acquire();
  const auto second = s.acquire();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->slot, 2u) << "the oldest release first";
  EXPECT_EQ(first->generation, 1u);
  EXPECT_EQ(second->slot, 0u);
  EXPECT_EQ(s.in_use(), 4u);
}

TEST(SlotAllocator, UnacquireRestoresExactlyTheStateBefore) {
  slot_allocator s(8, 1u << 10);
  (void)s.acquire();
  (void)s.acquire();
  s.release(0);
  // Taken: fresh 2, 3 and the released 0 is only used once fresh slots run out; undo in reverse.
  const auto a = s.acquire();
  const auto b = s.acquire();
  ASSERT_TRUE(a && b);
  s.unacquire(b->slot);
  s.unacquire(a->slot);
  EXPECT_EQ(s.in_use(), 1u);
  EXPECT_EQ(s.acquire()->slot, a->slot);
  EXPECT_EQ(s.acquire()->slot, b->slot);

  slot_allocator full(2, 1u << 10);
  (void)full.acquire();
  (void)full.acquire();
  full.release(1);
  full.release(0);
  const auto x = full.acquire();
  const auto y = full.acquire();
  full.unacquire(y->slot);
  full.unacquire(x->slot);
  EXPECT_EQ(full.acquire()->slot, 1u) << "released slots come back in their old order";
  EXPECT_EQ(full.acquire()->slot, 0u);
}

TEST(SlotAllocator, ASlotIsRetiredAfterItsLastGenerationAndNeverReused) {
  slot_allocator s(2, 4);
  const auto other = s.acquire();
  ASSERT_TRUE(other);
  std::vector<std::uint32_t> generations;
  for (auto id = s.acquire(); id; id = s.acquire()) {
    ASSERT_EQ(id->slot, 1u);
    generations.push_back(id->generation);
    s.release(id->slot);
  }
  EXPECT_EQ(generations, (std::vector<std::uint32_t>{0, 1, 2, 3})) << "generation 0 never comes back";
  EXPECT_EQ(s.retired(), 1u);
  EXPECT_EQ(s.available(), 0u);
  EXPECT_EQ(s.in_use(), 1u);
  s.release(other->slot);
  EXPECT_EQ(s.available(), 1u);
  const auto again = s.acquire();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->slot, other->slot);
  EXPECT_EQ(again->generation, 1u);
}
