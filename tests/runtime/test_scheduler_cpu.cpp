// The scheduler on the CPU backend (also run under ThreadSanitizer): no lost wake-up and no actor served
// by two workers at once under many producers and tiny mailboxes, fair turns, late spawns served by the
// running pool, dedicated and scheduled actors side by side.

#include "case_fixture.hpp"

#include <array>
#include <atomic>
#include <set>

namespace rk_cases {
namespace {

constexpr std::uint32_t msg_hop = 20;
constexpr std::uint32_t ring_actors = 32;

//! Which actors are inside a handler call now, by id (the ids are 0 .. ring_actors-1: nothing is
//! forgotten), and how often a second call for the same actor began before the first returned.
std::array<std::atomic<int>, ring_actors> inside{};
std::atomic<std::uint64_t> overlaps{0};

struct hop_payload {
  std::uint64_t hops_left;
  std::uint64_t seed;
};

//! Passes a token on to a pseudo-random other actor until its hops run out. When that mailbox is full
//! it tries the following actors; with fewer tokens than actors one of them has room unless others fill
//! it meanwhile, and then the message is kept (ctx.defer) for the actor's next turn. Host-only: it touches
//! host atomics to catch overlapping calls.
struct hopper {
  static constexpr const char* name = "hopper";
  struct state {
    std::uint64_t finished = 0; //!< calls that passed the token on or ended it (not deferred ones)
    std::uint64_t refused = 0;  //!< sends refused for anything but a full mailbox (must stay 0)
    std::uint64_t full = 0;     //!< sends that found a full mailbox
  };
  template <class Ctx>
  void operator()(Ctx& ctx, state& s, const rk::message& m) {
    std::atomic<int>& flag = inside[ctx.self() % ring_actors];
    if (flag.exchange(1, std::memory_order_acq_rel) != 0) overlaps.fetch_add(1);
    const hop_payload* p = m.as<hop_payload>();
    if (p != nullptr && p->hops_left > 0) {
      const std::uint64_t next_seed = p->seed * 6364136223846793005ull + 1442695040888963407ull;
      const hop_payload next{p->hops_left - 1, next_seed};
      status st = status::queue_full;
      for (std::uint32_t k = 0; k < ring_actors && st == status::queue_full; ++k) {
        const auto to = static_cast<actor_index>(((next_seed >> 33) + k) % ring_actors);
        if (to == ctx.self()) continue;
        st = ctx.send(to, msg_hop, rk::as_bytes(next));
        if (st == status::queue_full) ++s.full;
      }
      if (st == status::queue_full) {
        ctx.defer();
        flag.store(0, std::memory_order_release);
        return;
      }
      if (st != status::delivered) ++s.refused;
    }
    ++s.finished;
    flag.store(0, std::memory_order_release);
  }
};

rk::runtime_options scheduled_options(std::uint32_t workers, std::uint32_t turn) {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.max_actors = 256;
  o.scheduled_workers = workers;
  o.actor_turn_messages = turn;
  o.drain_timeout = 60s;
  return o;
}

} // namespace

TEST(Scheduler, ManyProducersAndTinyMailboxesLoseNoWakeUpAndNeverOverlap) {
  overlaps = 0;
  rk::runtime rt(scheduled_options(4, 1)); // a turn of one message: the most hand-offs between workers
  rk::actor_options tiny;
  tiny.mailbox = {2, 128};
  tiny.priority_lanes = false;
  for (std::uint32_t i = 0; i < ring_actors; ++i)
    ASSERT_EQ(rt.spawn<hopper>(std::string("h").append(std::to_string(i)), tiny), i);
  rt.start();
  constexpr std::uint64_t tokens = ring_actors - 1;
  const std::uint64_t hops = 2000 / RK_TEST_SCALE_DIVISOR + 50;
  for (std::uint64_t t = 0; t < tokens; ++t) {
    const hop_payload p{hops, t + 1};
    ASSERT_EQ(rt.send_blocking(static_cast<actor_index>(t % ring_actors), msg_hop, rk::as_bytes(p), 30s),
              status::enqueued);
  }
  const rk::shutdown_report r = rt.shutdown();
  ASSERT_TRUE(r.drained) << "every token reached its last hop (a lost wake-up leaves one stranded)";
  std::uint64_t finished = 0, handled = 0, received = 0;
  const rk::runtime_stats s = rt.stats();
  for (std::uint32_t i = 0; i < ring_actors; ++i) {
    const auto st = rt.state<hopper>(i);
    finished += st.finished;
    EXPECT_EQ(st.refused, 0u);
    handled += s.actors[i].handled;
    received += s.actors[i].received;
  }
  EXPECT_EQ(finished, tokens * (hops + 1));
  EXPECT_EQ(handled, finished);
  EXPECT_EQ(received, handled) << "counters balance";
  EXPECT_EQ(overlaps.load(), 0u) << "an actor ran on two workers at once";
  std::uint64_t full = 0;
  for (std::uint32_t i = 0; i < ring_actors; ++i) full += rt.state<hopper>(i).full;
  EXPECT_GT(full, 0u) << "the mailboxes were never full: the test did not exercise what it is for";
}

namespace {
std::atomic<std::uint64_t> handled_clock{0};

//! Records when (in handled messages, runtime-wide) it handled its first and last message.
struct ordinal_recorder {
  static constexpr const char* name = "ordinal_recorder";
  struct state {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::uint64_t count = 0;
  };
  template <class Ctx>
  void operator()(Ctx&, state& s, const rk::message&) {
    const std::uint64_t now = handled_clock.fetch_add(1) + 1;
    if (s.count++ == 0) s.first = now;
    s.last = now;
  }
};
} // namespace

TEST(Scheduler, AFloodedActorYieldsAfterItsTurn) {
  handled_clock = 0;
  constexpr std::uint32_t turn = 4;
  rk::runtime rt(scheduled_options(1, turn)); // one worker: the order is the scheduler's alone
  const actor_index flooded = rt.spawn<ordinal_recorder>("flooded", small_mailbox(256, 128));
  const actor_index quiet = rt.spawn<ordinal_recorder>("quiet", small_mailbox(256, 128));
  rt.start();
  ASSERT_TRUE(rt.pause(5s)); // workers take no actor: both queue up, flooded first
  for (int i = 0; i < 100; ++i) ASSERT_EQ(rt.send(flooded, msg_count, {}), status::enqueued);
  ASSERT_EQ(rt.send(quiet, msg_count, {}), status::enqueued);
  ASSERT_EQ(rk::wait_until([&] { return rt.stats().gateway_processed == 101; }, [] { return false; },
                           30'000'000'000ull),
            rk::wait_result::ready);
  rt.resume();
  ASSERT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<ordinal_recorder>(flooded).count, 100u);
  EXPECT_EQ(rt.state<ordinal_recorder>(quiet).count, 1u);
  EXPECT_EQ(rt.state<ordinal_recorder>(quiet).first, turn + 1)
      << "the quiet actor runs right after the flooded one's first turn, not after its backlog";
}

namespace {
std::atomic<std::int64_t> slow_call_ns{0};

//! An ordinal_recorder whose calls take slow_call_ns of work (the handler's own, on its worker's thread).
struct slow_recorder {
  static constexpr const char* name = "slow_recorder";
  using state = ordinal_recorder::state;
  template <class Ctx>
  void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(slow_call_ns.load());
    while (std::chrono::steady_clock::now() < until) {
    }
    ordinal_recorder{}(ctx, s, m);
  }
};

//! One worker, a slow actor with 20 queued messages ahead of a quiet one with 1, a turn of up to 65,536
//! messages: where the quiet actor's message comes in the order the worker handled them.
std::uint64_t quiet_turn_after_slow_calls(std::chrono::microseconds turn_time,
                                          std::chrono::nanoseconds call) {
  handled_clock = 0;
  slow_call_ns = call.count();
  rk::runtime_options o = scheduled_options(1, 65536);
  o.actor_turn_time = turn_time;
  rk::runtime rt(o);
  const actor_index slow = rt.spawn<slow_recorder>("slow", small_mailbox(256, 128));
  const actor_index quiet = rt.spawn<ordinal_recorder>("quiet", small_mailbox(256, 128));
  rt.start();
  EXPECT_TRUE(rt.pause(5s)); // workers take no actor: both queue up, the slow one first
  for (int i = 0; i < 20; ++i) EXPECT_EQ(rt.send(slow, msg_count, {}), status::enqueued);
  EXPECT_EQ(rt.send(quiet, msg_count, {}), status::enqueued);
  EXPECT_EQ(rk::wait_until([&] { return rt.stats().gateway_processed == 21; }, [] { return false; },
                           30'000'000'000ull),
            rk::wait_result::ready);
  rt.resume();
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<slow_recorder>(slow).count, 20u);
  EXPECT_EQ(rt.state<ordinal_recorder>(quiet).count, 1u);
  return rt.state<ordinal_recorder>(quiet).first;
}
} // namespace

TEST(Scheduler, ASlowActorYieldsAfterTheCallThatEndsPastItsTurnTime) {
  // Calls of 2 ms against a turn time of 1 ms: the first call ends the slow actor's turn.
  EXPECT_EQ(quiet_turn_after_slow_calls(1ms, 2ms), 2u)
      << "the quiet actor runs after one call of the slow one, not after its whole backlog";
  // Calls of 100 us against the longest turn time: the turn ends by count only, after all 20.
  EXPECT_EQ(quiet_turn_after_slow_calls(1s, 100us), 21u);
}

namespace {
std::atomic<std::uint64_t> rally_hops{0};
std::atomic<std::uint64_t> rally_cap{~std::uint64_t{0}};
std::atomic<bool> rally_stop{false};
std::atomic<std::uint64_t> bystander_saw{0};
std::atomic<bool> bystander_ran{false};

//! Two of these bounce a ball: each send readies the peer on the sending thread's run-next slot, so
//! without the streak limit one pool thread would serve the pair forever.
struct rally {
  static constexpr const char* name = "rally";
  struct state {
    actor_index peer = 0;
  };
  template <class Ctx>
  void operator()(Ctx& ctx, state& s, const rk::message&) {
    if (rally_stop.load() || rally_hops.load() >= rally_cap.load()) return;
    rally_hops.fetch_add(1);
    (void)ctx.send(s.peer, msg_count, {});
  }
};

struct bystander {
  static constexpr const char* name = "bystander";
  struct state {
    std::uint64_t calls = 0;
  };
  template <class Ctx>
  void operator()(Ctx&, state& s, const rk::message&) {
    ++s.calls;
    bystander_saw = rally_hops.load();
    bystander_ran = true;
    rally_stop = true;
  }
};
} // namespace

TEST(Scheduler, AConversationKeptOnOneThreadDoesNotStarveTheQueue) {
  rally_hops = 0;
  rally_cap = ~std::uint64_t{0};
  rally_stop = false;
  bystander_ran = false;
  rk::runtime rt(scheduled_options(1, 32)); // one pool thread: the rally and the bystander share it
  const actor_index a = rt.spawn<rally>("a", {}, rally::state{1});
  const actor_index b = rt.spawn<rally>("b", {}, rally::state{0});
  ASSERT_EQ(a, 0u);
  ASSERT_EQ(b, 1u);
  const actor_index by = rt.spawn<bystander>("bystander");
  rt.start();
  ASSERT_EQ(rt.send(a, msg_count, {}), status::enqueued);
  ASSERT_EQ(rk::wait_until([] { return rally_hops.load() >= 1000; }, [] { return false; }, 30'000'000'000ull),
            rk::wait_result::ready);
  // From here the rally may take at most `allowance` more hops: enough for the gateway to deliver the
  // bystander's message and a few streaks, far from what a starved queue would take (forever).
  constexpr std::uint64_t allowance = 200'000;
  const std::uint64_t sent_at = rally_hops.load();
  rally_cap = sent_at + allowance;
  ASSERT_EQ(rt.send(by, msg_count, {}), status::enqueued);
  ASSERT_EQ(rk::wait_until([] { return bystander_ran.load(); }, [] { return false; }, 60'000'000'000ull),
            rk::wait_result::ready);
  EXPECT_LT(bystander_saw.load(), sent_at + allowance)
      << "the bystander waited until the rally gave up: the run-next chain starved the run queue";
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<bystander>(by).calls, 1u);
}

TEST(Scheduler, ActorsSpawnedWhileRunningAreServedByTheRunningPool) {
  rk::runtime rt(scheduled_options(2, 32));
  rt.spawn<echo>("first");
  rt.start();
  std::vector<actor_index> late;
  for (int i = 0; i < 200; ++i)
    late.push_back(rt.spawn<echo>(std::string("late").append(std::to_string(i)), small_mailbox(4, 128)));
  for (actor_index id : late) {
    const ping_payload p{id, id};
    ASSERT_EQ(rt.send(id, msg_ping, rk::as_bytes(p)), status::enqueued);
  }
  std::set<std::uint64_t> seen;
  for (std::size_t i = 0; i < late.size(); ++i) {
    const auto m = rt.receive(10s);
    ASSERT_TRUE(m.has_value());
    seen.insert(m->as<ping_payload>().sequence);
  }
  EXPECT_EQ(seen.size(), late.size());
  // Forgetting a scheduled actor waits for a pool worker to let go of it.
  ASSERT_TRUE(rt.stop(late[0], 5s));
  rt.forget(late[0]);
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST(Scheduler, DedicatedAndScheduledActorsTalkToEachOther) {
  rk::runtime rt(scheduled_options(2, 8));
  rk::actor_options own;
  own.dedicated_worker = true;
  const actor_index sink = rt.spawn<counter>("sink");
  const actor_index fwd = rt.spawn<forwarder>("fwd", own, forwarder::state{sink});
  rt.start();
  for (int i = 0; i < 500; ++i)
    ASSERT_EQ(rt.send_blocking(fwd, msg_count, rk::as_bytes(ping_payload{0, 1}), 30s), status::enqueued);
  ASSERT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<counter>(sink).count, rt.state<forwarder>(fwd).forwarded);
  EXPECT_EQ(rt.state<forwarder>(fwd).forwarded + rt.state<forwarder>(fwd).failed, 500u);
  EXPECT_GT(rt.state<counter>(sink).count, 0u);
}

TEST(Scheduler, AHundredThousandActorsEachHandleTheirMessage) {
  // At default actor options (issue 11: at least 100,000 actors on the CPU backend of a 2-core machine).
  const auto n = static_cast<std::uint32_t>(rk::test::scaled(100'000));
  rk::runtime_options o = scheduled_options(0, 32);
  o.max_actors = n;
  rk::runtime rt(o);
  const std::vector<actor_index> ids = rt.spawn_many<counter>("a", n);
  ASSERT_EQ(ids.size(), n);
  rt.start();
  for (std::uint32_t i = 0; i < n; ++i)
    ASSERT_EQ(rt.send_blocking(ids[i], msg_count, rk::as_bytes(ping_payload{i, i}), 30s), status::enqueued);
  const rk::shutdown_report r = rt.shutdown();
  ASSERT_TRUE(r.drained);
  std::uint64_t handled = 0;
  for (const rk::actor_stats& a : rt.stats().actors) handled += a.handled;
  EXPECT_EQ(handled, n);
  for (const std::uint32_t i : {0u, n / 2, n - 1}) {
    EXPECT_EQ(rt.state<counter>(ids[i]).count, 1u);
    EXPECT_EQ(rt.state<counter>(ids[i]).sum, i);
  }
}

TEST(Scheduler, OptionsAreCheckedAtTheEdges) {
  rk::runtime_options o = scheduled_options(1, 1);
  o.actor_turn_messages = 0;
  expect_refused([&] { rk::runtime rt(o); }, "actor_turn_messages must be between 1 and 65536");
  o.actor_turn_messages = 65537;
  expect_refused([&] { rk::runtime rt(o); }, "actor_turn_messages must be between 1 and 65536");
  o.actor_turn_messages = 65536;
  o.scheduled_workers = 4097;
  expect_refused([&] { rk::runtime rt(o); }, "scheduled_workers must be at most 4096");
  o.scheduled_workers = 4096;
  EXPECT_NO_THROW(rk::runtime rt(o));
  o.cpu_workers = 4097;
  expect_refused([&] { rk::runtime rt(o); }, "cpu_workers must be at most 4096");
  o.cpu_workers = 0;
  for (const std::chrono::microseconds bad :
       {0us, -1us, 1'000'001us, std::chrono::microseconds::min(), std::chrono::microseconds::max()}) {
    o.actor_turn_time = bad;
    expect_refused([&] { rk::runtime rt(o); }, "actor_turn_time must be between 1 microsecond and 1 second");
  }
  for (const std::chrono::microseconds good : {1us, 1'000'000us}) {
    o.actor_turn_time = good;
    EXPECT_NO_THROW(rk::runtime rt(o));
  }
  for (const std::uint32_t bad : {1'000'001u, UINT32_MAX}) {
    o.device_idle_sleep_max_ns = bad;
    expect_refused([&] { rk::runtime rt(o); }, "device_idle_sleep_max_ns must be at most 1000000");
  }
  for (const std::uint32_t good : {0u, 1u, 1'000'000u}) {
    o.device_idle_sleep_max_ns = good;
    EXPECT_NO_THROW(rk::runtime rt(o));
  }
}

// The largest pool starts, serves and stops: its threads sleep at the start gate instead of polling it
// while the rest are created (4,096 polling threads took 91 s to start on 2 cores). Sanitizer builds
// start fewer.
//! Calls of the self_feeder so far, and the most of them any turn_taker call saw.
std::atomic<std::uint64_t> feeder_calls{0};
std::atomic<std::uint64_t> feeder_calls_seen{0};

//! Keeps its own mailbox non-empty: every call sends it the next message (a busy actor for ever).
struct self_feeder {
  static constexpr const char* name = "self_feeder";
  template <class Ctx>
  void operator()(Ctx& ctx, rk::no_state&, const rk::message&) {
    feeder_calls.fetch_add(1);
    (void)ctx.send(ctx.self(), msg_count, {});
  }
};

//! Notes how many feeder calls had run when its turn came, and tells the host.
struct turn_taker {
  static constexpr const char* name = "turn_taker";
  template <class Ctx>
  void operator()(Ctx& ctx, rk::no_state&, const rk::message&) {
    const std::uint64_t now = feeder_calls.load();
    std::uint64_t seen = feeder_calls_seen.load();
    while (seen < now && !feeder_calls_seen.compare_exchange_weak(seen, now)) {
    }
    (void)ctx.send_host(msg_count, {});
  }
};

// One pool thread serves both handler types. It took one actor from each type in turn, so the busy actor
// of one type got a whole turn (32 calls) between every two actors of the other: the last of 200 ready
// actors waited 200 of its turns (6,400 calls). Now a round takes every actor a type had ready.
TEST(Scheduler, ReadyActorsOfAnotherTypeAreNotEachMadeToWaitATurnOfABusyOne) {
  rk::runtime_options o = scheduled_options(1, 32);
  o.max_actors = 512;
  rk::runtime rt(o);
  feeder_calls = 0;
  feeder_calls_seen = 0;
  const actor_index feeder = rt.spawn<self_feeder>("feeder");
  constexpr int takers = 200;
  std::vector<actor_index> taker_ids;
  for (int i = 0; i < takers; ++i) taker_ids.push_back(rt.spawn<turn_taker>("taker" + std::to_string(i)));
  rt.start();
  ASSERT_EQ(rt.send(feeder, msg_count, {}), status::enqueued);
  ASSERT_EQ(
      rk::wait_until([] { return feeder_calls.load() > 1000; }, [] { return false; }, 20'000'000'000ull),
      rk::wait_result::ready);
  ASSERT_TRUE(rt.pause(10s));
  for (actor_index t : taker_ids) ASSERT_EQ(rt.send(t, msg_count, {}), status::enqueued);
  // All of them ready (delivered, so in the run queue) before the pool thread runs again.
  ASSERT_EQ(rk::wait_until(
                [&] {
                  const rk::runtime_stats s = rt.stats();
                  for (actor_index t : taker_ids)
                    if (s.actors[t].received == 0) return false;
                  return true;
                },
                [] { return false; }, 20'000'000'000ull),
            rk::wait_result::ready);
  const std::uint64_t at_resume = feeder_calls.load();
  rt.resume();
  for (int i = 0; i < takers; ++i) ASSERT_TRUE(rt.receive(10s).has_value()) << i;
  const std::uint64_t meanwhile = feeder_calls_seen.load() - at_resume;
  EXPECT_LE(meanwhile, 8u * 32u) << "calls of the busy actor before the last of " << takers
                                 << " ready actors of another type had its turn";
  ASSERT_TRUE(rt.stop(feeder, 10s)); // a stopping actor's sends to itself are refused: it drains
  EXPECT_TRUE(rt.shutdown().drained);
}

//! Sends `count` numbered messages to `to`, deferring whenever its mailbox is full (backpressure).
struct deferring_producer {
  static constexpr const char* name = "deferring_producer";
  struct state {
    rk::address to = 0;
    std::uint32_t next = 0, count = 0;
  };
  template <class Ctx>
  void operator()(Ctx& ctx, state& s, const rk::message&) {
    for (; s.next < s.count; ++s.next)
      if (ctx.send(s.to, msg_count, rk::as_bytes(s.next)) == status::queue_full) return ctx.defer();
  }
};

// Hundreds of producers deferring on one consumer's full mailbox (order_book's trades aggregator): a round
// of the pool took every ready producer, each deferring again, before the consumer's one turn, and past
// 128 such turns each one slept up to 50 us. The full order_book did not finish in 10 minutes (it takes
// about 2 s). Now a turn that makes no progress ends its type's share of the round.
TEST(Scheduler, AConsumerBehindManyDeferringProducersIsServedBetweenTheirDefers) {
  rk::runtime_options o = scheduled_options(1, 32);
  o.max_actors = 1024;
  rk::runtime rt(o);
  const actor_index sink = rt.spawn<counter>("sink", small_mailbox(64, 128));
  constexpr std::uint32_t producers = 500, per_producer = 40;
  const std::vector<deferring_producer::state> initial(producers,
                                                       deferring_producer::state{sink, 0, per_producer});
  const std::vector<actor_index> ids = rt.spawn_many<deferring_producer>("producer", producers, {}, initial);
  rt.start();
  for (actor_index p : ids) ASSERT_EQ(rt.send_blocking(p, msg_count, {}, 10s), status::enqueued);
  constexpr std::uint64_t total = std::uint64_t{producers} * per_producer;
  ASSERT_EQ(rk::wait_until([&] { return rt.stats().actors[sink].handled == total; }, [] { return false; },
                           120'000'000'000ull),
            rk::wait_result::ready);
  std::uint64_t deferred = 0;
  for (const rk::actor_stats& a : rt.stats().actors) deferred += a.deferred;
  // About one defer per consumer turn (32 messages) now; before, about every producer deferred once per turn.
  EXPECT_LE(deferred, total) << "defers for " << total << " messages delivered";
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST(Scheduler, TheLargestPoolStartsServesAndStops) {
  rk::runtime_options o = scheduled_options(static_cast<std::uint32_t>(rk::test::scaled(4096)), 1);
  o.start_timeout = 60s;
  rk::runtime rt(o);
  const actor_index a = rt.spawn<counter>("a");
  const auto begin = std::chrono::steady_clock::now();
  rt.start();
  const auto started = std::chrono::steady_clock::now() - begin;
  for (std::uint64_t i = 0; i < 100; ++i)
    ASSERT_EQ(rt.send_blocking(a, msg_count, rk::as_bytes(ping_payload{i, i}), 30s), status::enqueued);
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<counter>(a).count, 100u);
  EXPECT_LT(started, 30s) << "start() of " << o.scheduled_workers << " pool threads";
}

} // namespace rk_cases
