// detail::fault_actor (deliver.cuh), the device side of ctx.fault() and of a contained handler fault: the
// first fault of an epoch wins. On CUDA every thread of a worker block may call ctx.fault() at once, with
// different codes; the actor's fault_code and its one actor_fault audit record must then name the same
// code (they could differ when each caller stored its code before racing for the state word). Threads of
// the CPU backend stand in for the block's threads here.

#include <ringkernel/device/detail/deliver.cuh>

#include "audit_test_support.hpp"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

namespace {

using rk::detail::actor_counters;
using rk::detail::fault_actor;
using rk::detail::route_entry;
using rk::detail::system_view;

//! One actor (slot 0 of a two-slot table) and an audit ring: what fault_actor touches.
struct one_actor {
  one_actor() : audit(64) {
    sys.routes = routes;
    sys.counters = counters;
    sys.route_capacity = 2;
    sys.actor_slot_bits = 1;
    sys.audit = audit.channel;
  }
  //! The actor_fault records in the ring, taken out.
  std::vector<rk::audit_record> take_records() {
    std::vector<rk::audit_record> out;
    const rk::audit_ring ring(audit.ring.view());
    while (const std::byte* slot = ring.try_peek()) {
      rk::audit_record r;
      std::memcpy(&r, slot + rk::envelope_bytes, sizeof r);
      out.push_back(r);
      ring.pop();
    }
    return out;
  }
  route_entry routes[2]{};
  actor_counters counters[2]{};
  audit_test::test_ring audit;
  system_view sys{};
};

TEST(FaultActor, ConcurrentFaultsWithDifferentCodesAgreeOnOneCode) {
  // Two threads fault the same fresh actor at once, round after round: this thread with code 1, a
  // partner spinning on the round number with code 2. Spinning, not a blocking barrier, keeps their
  // starts within a cache-line transfer of each other, so the callers race inside fault_actor.
  constexpr int rounds = 100'000;
  one_actor a;
  std::atomic<int> go{-1};
  std::atomic<int> done{-1};
  std::thread partner([&] {
    for (int r = 0; r < rounds; ++r) {
      while (go.load(std::memory_order_acquire) != r) {
      }
      fault_actor(a.sys, 0, 2, {});
      done.store(r, std::memory_order_release);
    }
  });
  int disagreements = 0;
  int records_other_than_one = 0;
  int won_by_partner = 0;
  for (int r = 0; r < rounds; ++r) {
    a.counters[0] = {};
    a.routes[0].device_word = 0;
    go.store(r, std::memory_order_release);
    fault_actor(a.sys, 0, 1, {});
    while (done.load(std::memory_order_acquire) != r) {
    }
    const std::vector<rk::audit_record> records = a.take_records();
    if (records.size() != 1) {
      ++records_other_than_one;
      continue;
    }
    if (a.counters[0].fault_code != records[0].detail) ++disagreements;
    if (records[0].detail == 2) ++won_by_partner;
  }
  partner.join();
  EXPECT_EQ(records_other_than_one, 0) << "one actor_fault record per fault, whoever calls";
  EXPECT_EQ(disagreements, 0) << "fault_code must be the code of the fault the audit record names";
  std::printf("partner won %d of %d rounds\n", won_by_partner, rounds);
}

TEST(FaultActor, ALaterFaultOfTheSameEpochChangesNothing) {
  one_actor a;
  fault_actor(a.sys, 0, 0, {}); // code 0 is a code like any other
  fault_actor(a.sys, 0, 7, {});
  const std::vector<rk::audit_record> records = a.take_records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].detail, 0u);
  EXPECT_EQ(a.counters[0].fault_code, 0u);
}

TEST(FaultActor, AClearedClaimLetsTheNextEpochFaultAgain) {
  one_actor a;
  fault_actor(a.sys, 0, 3, {});
  // What respawn does (actor_table::rewrite_state, then a new epoch in the host word): the code and the
  // claim go.
  a.counters[0].fault_code = 0;
  a.counters[0].fault_claimed = 0;
  a.routes[0].host_word = rk::detail::make_state_word(1, 0);
  EXPECT_FALSE(rk::detail::faulted_in_epoch(a.sys, 0));
  fault_actor(a.sys, 0, 9, {});
  const std::vector<rk::audit_record> records = a.take_records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].detail, 9u);
  EXPECT_EQ(a.counters[0].fault_code, 9u);
  EXPECT_TRUE(rk::detail::faulted_in_epoch(a.sys, 0));
}

} // namespace
