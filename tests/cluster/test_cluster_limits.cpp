// rk::cluster at the edges of its options and under overload, on the CPU backend, run by ctest under
// mpiexec (2 and 4 ranks). Every rank runs every test in the same order; each test is collective.
// What is checked: the smallest buffers the options allow still move every message once and in order
// (backpressure, never loss); a receiver that takes nothing holds its senders back within the batches
// in flight (nothing piles up in MPI); a message one byte too large for the outbound slot is refused on the
// sending rank, by the host and by a handler; a shutdown whose drain timeout is shorter than the traffic
// still returns on every rank and accounts for what it cut off; a rank that calls shutdown() late still
// gets the whole drain; a sender that defers on a full outbound ring while asking for refusal notices gets
// every one of them (they once stalled its link until drain_timeout), and notices past notice_backlog are
// dropped and counted, never lost without a trace.

#include "cluster_test_options.hpp"

#include <ringkernel/cluster/cluster.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using rk::actor_index;
using rk::global_address;
using rk::status;
using rk_cluster_cases::mailbox;
using rk_cluster_cases::name_of;
using rk_cluster_cases::numbered;
using rk_cluster_cases::sequence_checker;

constexpr std::uint32_t msg_sequence = 1;
constexpr std::uint32_t msg_kick = 2;
constexpr std::uint32_t msg_verdict = 3;

//! On msg_kick {destination, bytes}: sends `bytes` bytes there and tells its host the verdict.
struct sizer {
  struct kick {
    actor_index to = 0;
    std::uint32_t bytes = 0;
  };
  struct state {};
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state&, const rk::message& m) {
    const auto* k = m.as<kick>();
    if (m.type() != msg_kick || k == nullptr) return;
    std::byte buffer[256] = {};
    const std::uint32_t bytes = k->bytes <= sizeof(buffer) ? k->bytes : sizeof(buffer);
    const status verdict = ctx.send(k->to, msg_sequence, rk::byte_view(buffer, bytes));
    const auto code = static_cast<std::uint32_t>(verdict);
    (void)ctx.send_host(msg_verdict, rk::as_bytes(code));
  }
};

std::uint64_t sum_over_ranks(std::uint64_t mine) {
  std::uint64_t all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  return all;
}

//! The smallest outbound ring (2 slots of 128 bytes: 64-byte payloads), batches of one message, one batch
//! in flight per rank, and a 2-slot mailbox at the receiver: every message still arrives once, in order.
TEST(ClusterLimits, TheSmallestBuffersStillMoveEveryMessageOnceAndInOrder) {
  rk::cluster_options o = rk_cluster_cases::small_rank_options();
  o.outbound = {2, 128};
  o.batch_bytes = 8 + 128; // the batch header and one message with a full 64-byte payload
  o.max_batches_in_flight = 1;
  o.runtime.host_ring = {2, 128};
  // Every message crosses ~8 thread hand-offs one at a time here: on a loaded 2-core machine with 4 ranks
  // that is slow (a few hundred messages a second), and this test is about loss and order, not speed.
  o.drain_timeout = std::chrono::minutes(2);
  rk::cluster c(o);
  const global_address checker = c.spawn<sequence_checker>(name_of("checker", c.rank()), mailbox(2));
  c.start();
  const global_address next = c.find(name_of("checker", (c.rank() + 1) % c.size()));
  const actor_index to = c.address_of(next);
  constexpr std::uint64_t messages = 2'000;
  for (std::uint64_t i = 0; i < messages; ++i) {
    const numbered n{c.rank(), i};
    ASSERT_EQ(c.local().send_blocking(to, msg_sequence, rk::as_bytes(n), 120s), status::enqueued) << i;
  }
  const rk::cluster_report report = c.shutdown();
  EXPECT_TRUE(report.drained);
  EXPECT_EQ(report.in_flight, 0u);
  const sequence_checker::state s = c.local().state<sequence_checker>(checker.actor);
  EXPECT_EQ(s.violations, 0u);
  EXPECT_EQ(s.count, messages);
  const rk::cluster_stats st = c.stats();
  const std::uint64_t sent = sum_over_ranks(st.sent);
  const std::uint64_t relayed = sum_over_ranks(st.relayed);
  const std::uint64_t batches = sum_over_ranks(st.sent_batches);
  EXPECT_EQ(sent, relayed);
  if (c.size() > 1) {
    EXPECT_EQ(sent, messages * c.size());
    EXPECT_EQ(batches, sent) << "a batch holds one message at this batch_bytes";
  }
  EXPECT_EQ(sum_over_ranks(st.dropped + st.refused + st.unreachable + st.abandoned), 0u);
}

//! A receiver that takes nothing (its actor paused) holds its senders back: what a rank hands to MPI for
//! it stays within what the receiving rank holds (mailbox, its gateway's per-destination credit, the
//! batch its proxy took and holds) plus max_batches_in_flight unfinished batches; host sends then time
//! out instead of piling up in MPI. Resumed, the receiver gets every message that was enqueued, once and in
//! order.
TEST(ClusterLimits, APausedReceiverHoldsItsSendersBackWithinTheBatchesInFlight) {
  constexpr std::uint32_t mailbox_slots = 8;
  constexpr std::uint32_t per_destination = 8;
  constexpr std::uint32_t batch_messages = 4;
  constexpr std::uint32_t batches_in_flight = 2;
  rk::cluster_options o = rk_cluster_cases::small_rank_options();
  o.outbound = {4, 128};
  o.batch_bytes = 8 + batch_messages * (64 + sizeof(numbered)); // four numbered messages a batch
  o.max_batches_in_flight = batches_in_flight;
  o.runtime.host_parking_per_destination = per_destination;
  rk::cluster c(o);
  const global_address checker =
      c.spawn<sequence_checker>(name_of("checker", c.rank()), mailbox(mailbox_slots));
  c.start();
  ASSERT_TRUE(c.local().pause_actor(checker.actor, 10s));
  MPI_Barrier(MPI_COMM_WORLD); // every receiver is paused before anyone sends
  const actor_index to = c.address_of(c.find(name_of("checker", (c.rank() + 1) % c.size())));
  std::uint64_t enqueued = 0;
  for (std::uint64_t i = 0; i < 2'000; ++i) {
    const numbered n{c.rank(), i};
    const status s = c.local().send_blocking(to, msg_sequence, rk::as_bytes(n), 300ms);
    if (s != status::enqueued) {
      EXPECT_EQ(s, status::timed_out);
      break;
    }
    ++enqueued;
  }
  const std::uint64_t handed_to_mpi = c.stats().sent;
  MPI_Barrier(MPI_COMM_WORLD);
  c.local().resume_actor(checker.actor);
  if (c.size() > 1) {
    EXPECT_LT(enqueued, 2'000u) << "the senders were never held back";
    EXPECT_LE(handed_to_mpi, mailbox_slots + per_destination + batch_messages * (batches_in_flight + 1))
        << "a paused receiver let its sender hand MPI more than the batches in flight";
  }
  const rk::cluster_report report = c.shutdown();
  EXPECT_TRUE(report.drained);
  const sequence_checker::state s = c.local().state<sequence_checker>(checker.actor);
  EXPECT_EQ(s.violations, 0u);
  EXPECT_EQ(sum_over_ranks(s.count), sum_over_ranks(enqueued)) << "every enqueued message arrived";
}

//! A payload one byte over the outbound slot's capacity is refused on the sending rank (too_large), by
//! the host and by a handler; one at the capacity goes through.
TEST(ClusterLimits, APayloadOneByteOverTheOutboundSlotIsRefusedOnTheSendingRank) {
  rk::cluster_options o = rk_cluster_cases::small_rank_options();
  o.outbound = {8, 128}; // 64-byte payloads
  rk::cluster c(o);
  const global_address checker = c.spawn<sequence_checker>(name_of("checker", c.rank()), mailbox(16));
  const global_address sender = c.spawn<sizer>(name_of("sizer", c.rank()), mailbox(16));
  c.start();
  if (c.size() > 1) {
    const actor_index far = c.address_of(c.find(name_of("checker", (c.rank() + 1) % c.size())));
    std::byte bytes[65] = {};
    EXPECT_EQ(c.local().send_wait(far, msg_sequence, rk::byte_view(bytes, 65), 10s), status::too_large);
    for (const std::uint32_t size : {64u, 65u, 256u}) {
      const sizer::kick k{far, size};
      ASSERT_EQ(c.local().send_wait(sender.actor, msg_kick, rk::as_bytes(k), 10s), status::delivered);
      const auto verdict = c.receive(20s);
      ASSERT_TRUE(verdict.has_value());
      EXPECT_EQ(verdict->type(), msg_verdict);
      EXPECT_EQ(static_cast<status>(verdict->as<std::uint32_t>()),
                size <= 64 ? status::delivered : status::too_large)
          << size;
    }
  }
  EXPECT_TRUE(c.shutdown().drained);
  const sequence_checker::state s = c.local().state<sequence_checker>(checker.actor);
  EXPECT_EQ(s.count + s.violations, c.size() > 1 ? 1u : 0u) << "only the 64-byte send arrived";
  EXPECT_EQ(sum_over_ranks(c.stats().sent), c.size() > 1 ? c.size() : 0u);
}

//! Receivers paused with full mailboxes and a 1 ms drain timeout: shutdown() gives up waiting, returns
//! promptly on every rank, and accounts for every message handed to MPI (relayed, dropped or refused).
TEST(ClusterLimits, AShutdownThatCutsTrafficOffReturnsAndAccountsForEveryMessage) {
  rk::cluster_options o = rk_cluster_cases::small_rank_options();
  o.outbound = {4, 128};
  o.batch_bytes = 8 + 128;
  o.max_batches_in_flight = 1;
  o.drain_timeout = 1ms;
  rk::cluster c(o);
  const global_address checker = c.spawn<sequence_checker>(name_of("checker", c.rank()), mailbox(2));
  c.start();
  // Paused receivers: the cluster cannot fall quiet, so shutdown() has to give up on it.
  ASSERT_TRUE(c.local().pause_actor(checker.actor, 10s));
  MPI_Barrier(MPI_COMM_WORLD);
  const actor_index to = c.address_of(c.find(name_of("checker", (c.rank() + 1) % c.size())));
  constexpr std::uint64_t messages = 2'000;
  std::uint64_t enqueued = 0;
  for (std::uint64_t i = 0; i < messages; ++i) {
    const numbered n{c.rank(), i};
    if (c.local().send(to, msg_sequence, rk::as_bytes(n)) == status::enqueued) ++enqueued;
  }
  const auto begin = std::chrono::steady_clock::now();
  const rk::cluster_report report = c.shutdown();
  // Neither the runtime's own drain (5 s: messages parked for other ranks end as unreachable once the
  // proxy stopped) nor the wait for unfinished sends (batches the proxy was filling are let go of).
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 4s);
  const sequence_checker::state s = c.local().state<sequence_checker>(checker.actor);
  EXPECT_EQ(s.violations, 0u) << "what arrived arrived once and in order";
  if (c.size() > 1) {
    EXPECT_FALSE(report.drained);
  }
  EXPECT_TRUE(report.gone_ranks.empty());
  const rk::cluster_stats st = c.stats();
  // Every message handed to MPI was taken by its receiving proxy before the proxies stopped, and ended
  // relayed, dropped or refused there (no refusal notices in this test).
  EXPECT_EQ(sum_over_ranks(st.sent), sum_over_ranks(st.relayed + st.dropped + st.refused));
  EXPECT_EQ(sum_over_ranks(st.abandoned + st.unreachable), 0u);
  EXPECT_EQ(sum_over_ranks(st.refusals_noticed), 0u);
  // The receiver handled at most what was relayed to it.
  EXPECT_LE(s.count, st.relayed);
  EXPECT_LE(s.count, sum_over_ranks(enqueued));
}

//! On msg_kick {destinations, messages}: sends `messages` numbered messages to each destination as fast
//! as the outbound ring takes them (deferring while it is full), counting the verdicts.
struct pump {
  struct kick {
    actor_index to[3] = {};
    std::uint32_t destinations = 0;
    std::uint32_t messages = 0;
  };
  struct state {
    kick k{};
    std::uint64_t next[3] = {};
    std::uint64_t delivered = 0; //!< written to the outbound ring
    std::uint64_t other = 0;     //!< refused otherwise (unreachable once the proxy stopped)
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == msg_kick && m.as<kick>() != nullptr) s.k = *m.as<kick>();
    bool more = false;
    for (std::uint32_t d = 0; d < s.k.destinations && d < 3; ++d) {
      for (int burst = 0; burst < 16 && s.next[d] < s.k.messages; ++burst) {
        const numbered n{ctx.self(), s.next[d]};
        const status st = ctx.send(s.k.to[d], msg_sequence, rk::as_bytes(n));
        if (st == status::queue_full) break;
        ++(st == status::delivered ? s.delivered : s.other);
        ++s.next[d];
      }
      more = more || s.next[d] < s.k.messages;
    }
    if (more) ctx.defer();
  }
};

//! Handlers stream to every other rank through the smallest buffers while shutdown() gives up at once:
//! every message a handler was told `delivered` for (written to the outbound ring) is counted once on its
//! rank, as sent (handed to MPI), unsent (never handed over: also those left in the ring when the proxy
//! stopped, which nothing counted) or unreachable.
TEST(ClusterLimits, HandlerSendsCutOffByShutdownAreEachCountedOnce) {
  rk::cluster_options o = rk_cluster_cases::small_rank_options();
  o.outbound = {4, 128};
  o.batch_bytes = 8 + 2 * 128;
  o.max_batches_in_flight = 1;
  o.drain_timeout = 1ms;
  rk::cluster c(o);
  (void)c.spawn<rk_cluster_cases::sequence_checker>(name_of("sink", c.rank()), mailbox(4));
  const global_address source = c.spawn<pump>(name_of("pump", c.rank()), mailbox(4));
  c.start();
  pump::kick k;
  k.messages = 20'000;
  for (std::uint32_t r = 0; r < c.size() && k.destinations < 3; ++r)
    if (r != c.rank()) k.to[k.destinations++] = c.address_of(c.find(name_of("sink", r)));
  ASSERT_EQ(c.local().send_wait(source.actor, msg_kick, rk::as_bytes(k), 10s), status::delivered);
  MPI_Barrier(MPI_COMM_WORLD);
  (void)c.shutdown();
  const pump::state p = c.local().state<pump>(source.actor);
  const rk::cluster_stats st = c.stats();
  EXPECT_EQ(p.delivered, st.sent + st.unsent + st.unreachable)
      << "sent " << st.sent << ", unsent " << st.unsent << ", unreachable " << st.unreachable;
  EXPECT_EQ(sum_over_ranks(st.sent), sum_over_ranks(st.relayed + st.dropped + st.refused));
}

TEST(ClusterLimits, ARankThatCallsShutdownLateStillGetsTheWholeDrain) {
  // Rank 0 calls shutdown() at once; the others only after more than drain_timeout, having just sent
  // rank 0 a few thousand messages. The drain is counted from the last call, so they all arrive.
  rk::cluster_options o = rk_cluster_cases::small_rank_options();
  o.drain_timeout = 1s;
  rk::cluster c(o);
  const global_address checker =
      c.spawn<rk_cluster_cases::sequence_checker>(name_of("checker", c.rank()), mailbox(1024));
  c.start();
  constexpr std::uint64_t messages = 2'000;
  if (c.rank() != 0) {
    std::this_thread::sleep_for(1500ms); // the scenario, not a synchronisation: a rank that comes late
    const global_address to = c.find(name_of("checker", 0));
    for (std::uint64_t i = 0; i < messages; ++i) {
      const numbered n{c.rank(), i};
      ASSERT_EQ(c.send_blocking(to, msg_sequence, rk::as_bytes(n), 10s), status::enqueued);
    }
  }
  const rk::cluster_report report = c.shutdown();
  EXPECT_TRUE(report.drained) << "in flight: " << report.in_flight;
  if (c.rank() == 0) {
    const auto s = c.local().state<rk_cluster_cases::sequence_checker>(checker.actor);
    EXPECT_EQ(s.count, messages * (c.size() - 1));
    EXPECT_EQ(s.violations, 0u);
  }
}

//! On msg_kick: sends `count` messages, alternately to a stopped actor, asking for refusal notices
//! (correlation ids 1, 3, 5, ...), and to a live checker (numbered), deferring on queue_full (the
//! documented idiom). Counts the notices it gets, those that are not the next refusal, or not urgent.
struct deferring_producer {
  struct kick {
    actor_index stopped = 0;
    actor_index checker = 0;
    std::uint64_t count = 0;
    std::uint64_t rank = 0;
  };
  struct state {
    kick k{};
    std::uint64_t next = 0;
    std::uint64_t notices = 0;
    std::uint64_t wrong_notices = 0;
    std::uint64_t not_urgent = 0;
    std::uint64_t last_refused = 0;
    std::uint64_t not_delivered = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == rk::refusal_notice_type) {
      const auto* n = m.as<rk::refusal_notice>();
      ++s.notices;
      if (n == nullptr || m.source() != s.k.stopped || n->why() != status::not_found ||
          n->correlation_id <= s.last_refused || n->correlation_id % 2 != 1) {
        ++s.wrong_notices;
      } else {
        s.last_refused = n->correlation_id;
      }
      if (m.priority() != rk::priority::urgent) ++s.not_urgent;
      return;
    }
    if (m.type() != msg_kick || m.as<kick>() == nullptr) return;
    s.k = *m.as<kick>();
    while (s.next < s.k.count) {
      status st;
      if (s.next % 2 == 1) {
        rk::send_options o;
        o.correlation_id = s.next;
        o.flags = rk::envelope_flags::notify_refusal;
        st = ctx.send(s.k.stopped, msg_sequence, rk::as_bytes(s.next), o);
      } else {
        const numbered n{s.k.rank, s.next / 2};
        st = ctx.send(s.k.checker, msg_sequence, rk::as_bytes(n));
      }
      if (st == status::queue_full) {
        ctx.defer();
        return;
      }
      if (st != status::delivered) ++s.not_delivered;
      ++s.next;
    }
  }
};

//! Every rank but 1 runs a deferring_producer of `count` messages against rank 1 through small buffers
//! (refusal records, batches and gateway credit all fill up while the producer defers); returns after a
//! shutdown that must drain, with this rank's producer state (rank 1: the checker's count in `next`).
struct refusal_load {
  deferring_producer::state producer{};
  rk::cluster_stats stats{};
  std::uint64_t checked = 0;
  std::uint64_t order_violations = 0;
};
refusal_load run_refusal_load(std::uint64_t count, std::uint32_t notice_backlog) {
  rk::cluster_options o = rk_cluster_cases::small_rank_options();
  o.outbound = {64, 128};
  o.batch_bytes = 4096;
  o.max_batches_in_flight = 2;
  o.runtime.host_ring = {1024, 256};
  o.runtime.host_parking_slots = 64;
  o.notice_backlog = notice_backlog;
  o.drain_timeout = 20s; // the stall lasted until drain_timeout: a drained shutdown proves there was none
  rk::cluster c(o);
  rk::actor_options small;
  small.mailbox = {16, 128};
  const bool receiver = c.rank() == 1;
  actor_index producer = 0, checker = 0, stopped = 0;
  if (receiver) {
    checker = c.spawn<sequence_checker>("checker", small).actor;
    stopped = c.spawn<sequence_checker>("stopped", small).actor;
  } else {
    producer = c.spawn<deferring_producer>(name_of("producer", c.rank()), small).actor;
  }
  c.start();
  if (receiver) {
    EXPECT_TRUE(c.local().stop(stopped, 10s));
  }
  MPI_Barrier(MPI_COMM_WORLD); // the scenario: rank 1's actor is stopped before anyone sends to it
  if (!receiver) {
    const deferring_producer::kick k{c.address_of(c.find("stopped")), c.address_of(c.find("checker")), count,
                                     c.rank()};
    EXPECT_EQ(c.local().send_wait(producer, msg_kick, rk::as_bytes(k), 10s), status::delivered);
  }
  const rk::cluster_report report = c.shutdown();
  EXPECT_TRUE(report.drained) << "in flight: " << report.in_flight;
  refusal_load r;
  r.stats = c.stats();
  if (receiver) {
    const sequence_checker::state s = c.local().state<sequence_checker>(checker);
    r.checked = s.count;
    r.order_violations = s.violations;
  } else {
    r.producer = c.local().state<deferring_producer>(producer);
  }
  return r;
}

TEST(ClusterLimits, ASenderThatDefersWhileAskingForNoticesGetsEveryNotice) {
  constexpr std::uint64_t count = 8'000; // before the fix, the same load stalled 2 ranks at 5,000
  const refusal_load r = run_refusal_load(count, 65'536);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank == 1) {
    EXPECT_EQ(r.checked, (count / 2) * static_cast<std::uint64_t>(size - 1));
    EXPECT_EQ(r.order_violations, 0u);
    EXPECT_EQ(r.stats.refusals_noticed, (count / 2) * static_cast<std::uint64_t>(size - 1));
    return;
  }
  EXPECT_EQ(r.producer.next, count);
  EXPECT_EQ(r.producer.not_delivered, 0u);
  EXPECT_EQ(r.producer.notices, count / 2);
  EXPECT_EQ(r.producer.wrong_notices, 0u);
  EXPECT_EQ(r.producer.not_urgent, 0u);
  EXPECT_EQ(r.stats.refused_remotely, count / 2);
  EXPECT_EQ(r.stats.notices_relayed, count / 2);
  EXPECT_EQ(r.stats.notices_dropped, 0u);
}

TEST(ClusterLimits, NoticesPastTheBacklogAreDroppedAndCounted) {
  constexpr std::uint64_t count = 8'000;
  constexpr std::uint32_t backlog = 50; // the producer takes no notice until its last send
  const refusal_load r = run_refusal_load(count, backlog);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 1) return;
  EXPECT_EQ(r.producer.next, count);
  EXPECT_EQ(r.producer.wrong_notices, 0u) << "the notices that came are in order";
  EXPECT_EQ(r.stats.refused_remotely, count / 2) << "every refusal is counted (and audited)";
  EXPECT_GT(r.stats.notices_dropped, 0u);
  EXPECT_EQ(r.producer.notices, r.stats.notices_relayed);
  EXPECT_EQ(r.stats.notices_relayed + r.stats.notices_dropped, count / 2);
}

} // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  const int result = RUN_ALL_TESTS();
  MPI_Finalize();
  return result;
}
