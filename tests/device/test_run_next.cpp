// The CUDA scheduled workers' run-next slot (detail::device_run_next, schedule.cuh), on the host: which
// wakes it keeps, that exactly one of many concurrent senders claims it, and the order in which a worker
// takes actors from it and from the run queue (streak limit, fairness). The device loop that calls these
// (scheduled_loop.cuh) runs only on a GPU; these are the decisions it makes.

#include <ringkernel/device/detail/schedule.cuh>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace {

using rk::actor_index;
using rk::detail::device_run_next;
using rk::detail::keep_on_this_worker;
using rk::detail::run_next_streak_limit;
using rk::detail::take_next;

//! One run queue (kind 0) behind a system_view, as the scheduler lays it out.
class one_queue {
public:
  one_queue() : memory_(rk::detail::run_queue_bytes(capacity)) {
    rk::detail::init_run_queue_image(memory_.data(), capacity);
    queue_ = rk::detail::make_run_queue_view(memory_.data(), capacity);
    sys_.sched.queues = &queue_;
    sys_.sched.kinds = 1;
  }
  const rk::detail::system_view& sys() const { return sys_; }
  void push(actor_index a) { ASSERT_TRUE(rk::detail::run_queue_push(queue_, a)); }
  std::vector<actor_index> drain() {
    std::vector<actor_index> out;
    actor_index a = 0;
    while (rk::detail::run_queue_pop(queue_, a)) out.push_back(a);
    return out;
  }

private:
  static constexpr std::uint32_t capacity = 64;
  std::vector<std::byte> memory_;
  rk::detail::run_queue_view queue_{};
  rk::detail::system_view sys_{};
};

TEST(RunNext, KeepsOnlyTheWorkersOwnHandlerTypeAndOneActor) {
  device_run_next slot{0, 0, 3};
  EXPECT_FALSE(keep_on_this_worker(slot, 2, 7)) << "another handler type's actor must go to its own queue";
  EXPECT_EQ(slot.full, 0u);
  EXPECT_TRUE(keep_on_this_worker(slot, 3, 7));
  EXPECT_EQ(slot.full, 1u);
  EXPECT_EQ(slot.actor, 7u);
  EXPECT_FALSE(keep_on_this_worker(slot, 3, 8)) << "a second woken actor must go to the queue";
  EXPECT_EQ(slot.actor, 7u);
}

TEST(RunNext, ExactlyOneOfManyConcurrentSendersClaimsTheSlot) {
  for (int round = 0; round < 200; ++round) {
    device_run_next slot{0, 0, 0};
    std::atomic<int> kept{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> senders;
    for (actor_index id = 1; id <= 4; ++id)
      senders.emplace_back([&, id] {
        while (!go.load(std::memory_order_acquire)) {
        }
        if (keep_on_this_worker(slot, 0, id)) kept.fetch_add(1);
      });
    go.store(true, std::memory_order_release);
    for (auto& t : senders) t.join();
    ASSERT_EQ(kept.load(), 1) << "round " << round;
    ASSERT_GE(slot.actor, 1u);
    ASSERT_LE(slot.actor, 4u);
  }
}

TEST(RunNext, TheSlotsActorComesFirstAndTheQueueWaits) {
  one_queue q;
  q.push(20);
  device_run_next slot{0, 0, 0};
  ASSERT_TRUE(keep_on_this_worker(slot, 0, 10));
  std::uint32_t streak = 0;
  actor_index next = 0;
  ASSERT_TRUE(take_next(q.sys(), 0, slot, streak, next));
  EXPECT_EQ(next, 10u);
  EXPECT_EQ(streak, 1u);
  EXPECT_EQ(slot.full, 0u);
  ASSERT_TRUE(take_next(q.sys(), 0, slot, streak, next));
  EXPECT_EQ(next, 20u) << "an empty slot: the queue's head";
  EXPECT_EQ(streak, 0u);
  EXPECT_FALSE(take_next(q.sys(), 0, slot, streak, next)) << "nothing anywhere";
}

TEST(RunNext, AfterTheStreakLimitAQueuedActorGoesFirstAndTheSlotsActorQueuesBehindIt) {
  one_queue q;
  q.push(20);
  device_run_next slot{0, 0, 0};
  std::uint32_t streak = 0;
  actor_index next = 0;
  for (std::uint32_t turn = 0; turn < run_next_streak_limit; ++turn) {
    ASSERT_TRUE(keep_on_this_worker(slot, 0, 10));
    ASSERT_TRUE(take_next(q.sys(), 0, slot, streak, next));
    ASSERT_EQ(next, 10u) << "turn " << turn;
  }
  EXPECT_EQ(streak, run_next_streak_limit);
  ASSERT_TRUE(keep_on_this_worker(slot, 0, 10));
  ASSERT_TRUE(take_next(q.sys(), 0, slot, streak, next));
  EXPECT_EQ(next, 20u) << "the queued actor must not starve behind a ping-pong";
  EXPECT_EQ(streak, 0u);
  EXPECT_EQ(slot.full, 0u);
  EXPECT_EQ(q.drain(), std::vector<actor_index>{10}) << "the slot's actor goes to the queue, not lost";
}

TEST(RunNext, AfterTheStreakLimitWithNobodyQueuedTheSlotsActorGoesOn) {
  one_queue q;
  device_run_next slot{0, 0, 0};
  std::uint32_t streak = run_next_streak_limit;
  actor_index next = 0;
  ASSERT_TRUE(keep_on_this_worker(slot, 0, 10));
  ASSERT_TRUE(take_next(q.sys(), 0, slot, streak, next));
  EXPECT_EQ(next, 10u);
  EXPECT_EQ(streak, 0u);
  EXPECT_TRUE(q.drain().empty());
}

} // namespace
