// rk::cluster on the CPU backend, run by ctest under mpiexec with 4 ranks (and 2). Every rank runs every
// test in the same order; each test is collective (constructor, start, shutdown). A rank that fails a check
// keeps going through the collective calls (EXPECT, not ASSERT, around them), so one failure does not hang
// the others; ctest's timeout is the backstop.

#include "cluster_test_options.hpp"
#include "test_handlers.hpp" // echo: replies to whoever sent the message, on any rank

#include <ringkernel/cluster/cluster.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using rk::actor_index;
using rk::global_address;
using rk::status;
using rk_cases::echo;
using rk_cluster_cases::mailbox;
using rk_cluster_cases::name_of;
using rk_cluster_cases::sequence_checker;

constexpr std::uint32_t msg_ping = 1;
constexpr std::uint32_t msg_token = 2;
constexpr std::uint32_t msg_set_next = 3;
constexpr std::uint32_t msg_sequence = 4;

using ping = rk_cluster_cases::numbered;

//! A stage of a ring that spans the ranks: msg_set_next tells it its successor (an id on this rank: the
//! next stage itself or its remote entry); a token with hops left goes on, one with none goes to the host.
struct stage {
  struct state {
    actor_index next = rk::host_actor;
    std::uint64_t passed = 0;
    std::uint64_t failed = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == msg_set_next) {
      if (const auto* next = m.as<actor_index>()) s.next = *next;
      return;
    }
    const auto* hops = m.as<std::uint64_t>();
    if (hops == nullptr) return;
    if (*hops == 0) {
      (void)ctx.send_host(msg_token, m.payload());
      return;
    }
    const std::uint64_t left = *hops - 1;
    if (ctx.send(s.next, msg_token, rk::as_bytes(left)) == status::delivered) {
      ++s.passed;
    } else {
      ++s.failed;
    }
  }
};

constexpr std::uint32_t msg_kick = 5;
constexpr std::uint32_t msg_notice_seen = 6;

//! What notified_sender hands its host for each refusal notice: the notice and the id it came from.
struct seen_notice {
  rk::refusal_notice notice;
  actor_index source = 0;
  std::uint32_t reserved = 0;
};

//! On msg_kick (payload: an actor id) sends a ping there, asking for a refusal notice; hands every
//! refusal notice it receives to its host.
struct notified_sender {
  static constexpr std::uint64_t correlation = 41;
  struct state {
    std::uint64_t notices = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == msg_kick) {
      const auto* to = m.as<actor_index>();
      if (to == nullptr) return;
      rk::send_options o;
      o.flags = rk::envelope_flags::notify_refusal;
      o.correlation_id = correlation;
      const std::uint64_t hello = 1;
      (void)ctx.send(*to, msg_ping, rk::as_bytes(hello), o);
      return;
    }
    const auto* n = m.as<rk::refusal_notice>();
    if (m.type() != rk::refusal_notice_type || n == nullptr) return;
    ++s.notices;
    const seen_notice seen{*n, m.source(), 0};
    (void)ctx.send_host(msg_notice_seen, rk::as_bytes(seen));
  }
};

rk::cluster_options options() {
  return rk_cluster_cases::small_rank_options();
}

std::uint64_t sum_over_ranks(std::uint64_t mine) {
  std::uint64_t all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  return all;
}

TEST(Cluster, NamesResolveOnEveryRankAndAddressesAreStable) {
  rk::cluster c(options());
  const global_address mine = c.spawn<echo>(name_of("echo", c.rank()), mailbox());
  EXPECT_EQ(mine.rank, c.rank());
  EXPECT_THROW((void)c.find("echo0"), rk::error) << "names are known after start()";
  c.start();
  for (std::uint32_t r = 0; r < c.size(); ++r) {
    const global_address a = c.find(name_of("echo", r));
    EXPECT_EQ(a.rank, r);
    const actor_index here = c.address_of(a);
    EXPECT_EQ(c.address_of(a), here) << "one remote entry per remote actor";
    if (r == c.rank()) {
      EXPECT_EQ(here, mine.actor);
    }
  }
  EXPECT_THROW((void)c.find("nobody"), rk::error);
  EXPECT_THROW((void)c.address_of({c.size(), 0}), rk::error) << "rank out of range";
  EXPECT_THROW((void)c.address_of({c.rank(), 123456}), rk::error) << "no such actor on this rank";
  EXPECT_THROW((void)c.host_address(c.rank(), 99), rk::error) << "tenant 99 is not registered";
  EXPECT_THROW(c.spawn<echo>("late"), rk::error) << "cluster-wide names are exchanged at start()";
  const rk::cluster_report r = c.shutdown();
  EXPECT_TRUE(r.drained);
  EXPECT_TRUE(r.local.drained);
}

TEST(Cluster, EveryHostReachesEveryRanksEchoAndHearsBackFromIt) {
  rk::cluster c(options());
  (void)c.spawn<echo>(name_of("echo", c.rank()), mailbox());
  c.start();
  constexpr std::uint64_t per_rank = 50;
  std::uint64_t expected = 0;
  for (std::uint32_t r = 0; r < c.size(); ++r) {
    for (std::uint64_t i = 0; i < per_rank; ++i) {
      const ping p{c.rank(), i};
      EXPECT_EQ(c.send_blocking(c.find(name_of("echo", r)), msg_ping, rk::as_bytes(p), 10s),
                status::enqueued);
      ++expected;
    }
  }
  std::vector<std::uint64_t> from(c.size(), 0);
  for (std::uint64_t got = 0; got < expected; ++got) {
    const auto reply = c.receive(20s);
    if (!reply) {
      ADD_FAILURE() << "rank " << c.rank() << " heard back " << got << " of " << expected;
      break;
    }
    const global_address origin = c.origin_of(*reply);
    EXPECT_EQ(origin, c.find(name_of("echo", origin.rank)));
    EXPECT_EQ(reply->as<ping>().from_rank, c.rank());
    ++from[origin.rank];
  }
  for (std::uint32_t r = 0; r < c.size(); ++r) EXPECT_EQ(from[r], per_rank) << "from rank " << r;
  const rk::cluster_report report = c.shutdown();
  EXPECT_TRUE(report.drained);
  const rk::cluster_stats s = c.stats();
  EXPECT_EQ(sum_over_ranks(s.sent), sum_over_ranks(s.relayed)) << "every message carried was handed over";
}

TEST(Cluster, HandlersOnEveryRankReachRankZerosHostWithoutItWritingFirst) {
  rk::cluster c(options());
  c.local().tenants().add(6, rk::tenant_quota::standard());
  rk::actor_options in_six = mailbox();
  in_six.tenant = 6;
  const actor_index to_zero = c.host_address(0); // before rank 0's host ever sent here
  EXPECT_EQ(c.address_of({0, rk::host_actor}), to_zero);
  const global_address fwd =
      c.spawn<rk_cases::forwarder>(name_of("fwd", c.rank()), mailbox(), rk_cases::forwarder::state{to_zero});
  const global_address fwd6 = c.spawn<rk_cases::forwarder>(name_of("fwd6_", c.rank()), in_six,
                                                           rk_cases::forwarder::state{c.host_address(0, 6)});
  EXPECT_THROW((void)c.host_address(c.size()), rk::error);
  EXPECT_THROW((void)c.host_address((c.rank() + 1) % c.size(), 99), rk::error) << "tenant 99 is unknown";
  c.start();
  const ping p{c.rank(), 1};
  rk::send_options as_six;
  as_six.tenant = 6;
  EXPECT_EQ(c.local().send_wait(fwd.actor, msg_ping, rk::as_bytes(p), 10s), status::delivered);
  EXPECT_EQ(c.local().send_wait(fwd6.actor, msg_ping, rk::as_bytes(p), 10s, as_six), status::delivered);
  if (c.rank() == 0) {
    std::vector<std::uint64_t> from(c.size(), 0);
    for (std::uint32_t k = 0; k < 2 * c.size(); ++k) {
      const auto m = c.receive(20s);
      if (!m) {
        ADD_FAILURE() << "heard " << k << " of " << 2 * c.size();
        break;
      }
      const global_address origin = c.origin_of(*m);
      EXPECT_EQ(m->as<ping>().from_rank, origin.rank);
      ++from[origin.rank];
    }
    for (std::uint32_t r = 0; r < c.size(); ++r) EXPECT_EQ(from[r], 2u) << "from rank " << r;
  }
  EXPECT_TRUE(c.shutdown().drained);
  EXPECT_EQ(c.local().state<rk_cases::forwarder>(fwd.actor).failed, 0u);
  EXPECT_EQ(c.local().state<rk_cases::forwarder>(fwd6.actor).failed, 0u) << "tenant 6 to the tenant-6 entry";
}

TEST(Cluster, ATokenGoesAroundTheRanksThroughHandlerSends) {
  rk::cluster c(options());
  const global_address me = c.spawn<stage>(name_of("stage", c.rank()), mailbox());
  c.start();
  const actor_index next = c.address_of(c.find(name_of("stage", (c.rank() + 1) % c.size())));
  EXPECT_EQ(c.local().send_wait(me.actor, msg_set_next, rk::as_bytes(next), 10s), status::delivered);
  MPI_Barrier(MPI_COMM_WORLD); // every stage knows its successor before the token starts
  constexpr std::uint64_t laps = 20;
  const std::uint64_t hops = laps * c.size();
  if (c.rank() == 0) {
    EXPECT_EQ(c.local().send(me.actor, msg_token, rk::as_bytes(hops)), status::enqueued);
    const auto done = c.receive(30s);
    EXPECT_TRUE(done.has_value()) << "the token did not come back";
  }
  const rk::cluster_report report = c.shutdown();
  EXPECT_TRUE(report.drained);
  const stage::state s = c.local().state<stage>(me.actor);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(sum_over_ranks(s.passed), hops) << "every hop was one handler send";
}

TEST(Cluster, TheSendingRankRefusesAForeignTenantBeforeAnythingLeaves) {
  rk::cluster c(options());
  c.local().tenants().add(5, rk::tenant_quota::standard());
  rk::actor_options in_five = mailbox();
  in_five.tenant = 5;
  (void)c.spawn<echo>(name_of("five", c.rank()), in_five);
  c.start();
  const global_address far = c.find(name_of("five", (c.rank() + 1) % c.size()));
  if (far.rank != c.rank()) {
    const ping p{c.rank(), 0};
    EXPECT_EQ(c.local().send_wait(c.address_of(far), msg_ping, rk::as_bytes(p), 10s),
              status::tenant_mismatch);
    rk::send_options as_five;
    as_five.tenant = 5;
    EXPECT_EQ(c.local().send_wait(c.address_of(far), msg_ping, rk::as_bytes(p), 10s, as_five),
              status::delivered);
    const auto reply = c.receive(20s);
    EXPECT_TRUE(reply.has_value());
  }
  EXPECT_TRUE(c.shutdown().drained);
  EXPECT_EQ(c.stats().sent, c.size() > 1 ? 2u : 0u)
      << "the tenant-5 send and the echo's reply to another rank's host; the tenant-0 send never left";
}

TEST(Cluster, AMillionMessagesAmongAllRanksArriveOnceEachAndInOrder) {
  int ranks = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  if (ranks < 2) GTEST_SKIP() << "needs two ranks at least";
  rk::cluster_options o = options();
  o.outbound = {64, 256}; // small buffers everywhere: backpressure, not memory, absorbs the load
  o.batch_bytes = 4096;
  o.max_batches_in_flight = 2;
  rk::cluster c(o);
  const global_address checker = c.spawn<sequence_checker>(name_of("checker", c.rank()), mailbox(1024));
  c.start();
  // 10^6 messages in all, every rank sending the same number to every other.
  const std::uint64_t per_destination = 1'000'000 / (std::uint64_t{c.size()} * (c.size() - 1));
  std::vector<actor_index> destinations;
  for (std::uint32_t r = 0; r < c.size(); ++r)
    if (r != c.rank()) destinations.push_back(c.address_of(c.find(name_of("checker", r))));
  for (std::uint64_t i = 0; i < per_destination; ++i) {
    const ping p{c.rank(), i};
    for (const actor_index d : destinations)
      ASSERT_EQ(c.local().send_blocking(d, msg_sequence, rk::as_bytes(p), 30s), status::enqueued) << i;
  }
  const rk::cluster_report report = c.shutdown();
  EXPECT_TRUE(report.drained);
  EXPECT_EQ(report.in_flight, 0u);
  const sequence_checker::state s = c.local().state<sequence_checker>(checker.actor);
  EXPECT_EQ(s.violations, 0u) << "lost, duplicated or reordered";
  EXPECT_EQ(s.count, per_destination * (c.size() - 1));
  const rk::cluster_stats st = c.stats();
  // Every rank makes the same collective calls, whatever it prints.
  const std::uint64_t sent = sum_over_ranks(st.sent);
  const std::uint64_t relayed = sum_over_ranks(st.relayed);
  const std::uint64_t batches = sum_over_ranks(st.sent_batches);
  EXPECT_EQ(sent, relayed);
  EXPECT_EQ(sent, per_destination * c.size() * (c.size() - 1));
  if (c.rank() == 0)
    std::printf("%llu messages among %u ranks; %llu MPI messages carried them\n",
                static_cast<unsigned long long>(sent), c.size(), static_cast<unsigned long long>(batches));
}

TEST(Cluster, BadOptionsAreRefusedOnEveryRank) {
  rk::cluster_options o = options();
  o.outbound = {3, 256};
  EXPECT_THROW(rk::cluster bad(o), rk::error);
  o = options();
  o.batch_bytes = 16;
  EXPECT_THROW(rk::cluster bad(o), rk::error);
  o = options();
  o.max_batches_in_flight = 0;
  EXPECT_THROW(rk::cluster bad(o), rk::error);
  for (const std::uint32_t backlog : {0u, (1u << 24) + 1}) {
    o = options();
    o.notice_backlog = backlog;
    EXPECT_THROW(rk::cluster bad(o), rk::error) << backlog;
  }
  o = options();
  o.heartbeat_interval = 0ms;
  EXPECT_THROW(rk::cluster bad(o), rk::error);
  o = options();
  o.heartbeat_interval = 2min;
  EXPECT_THROW(rk::cluster bad(o), rk::error);
  o = options();
  o.heartbeat_interval = 100ms;
  o.failure_timeout = 199ms;
  EXPECT_THROW(rk::cluster bad(o), rk::error) << "a timeout shorter than two heartbeats";
  o = options();
  o.failure_timeout = std::chrono::hours(25);
  EXPECT_THROW(rk::cluster bad(o), rk::error);
  // A host ring with smaller slots than the outbound ring's: a message another rank may send would not fit
  // this rank's gateway (it was refused there, its sender never told).
  o = options();
  o.runtime.host_ring = {o.runtime.host_ring.capacity, o.outbound.slot_bytes / 2};
  try {
    rk::cluster bad(o);
    ADD_FAILURE() << "a host ring with smaller slots than the outbound ring's was accepted";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("host_ring.slot_bytes"), std::string::npos) << e.what();
  }
  // Bad options on one rank only: that rank says why, every other rank that one failed; none waits.
  o = options();
  int rank = 0, size = 0; // MPI is initialised: the clusters above joined it
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size < 2) return;
  if (rank == 1) o.batch_bytes = 1;
  try {
    rk::cluster bad(o);
    ADD_FAILURE() << "rank " << rank << " made a cluster although rank 1's options are bad";
  } catch (const rk::error& e) {
    const std::string why = e.what();
    EXPECT_NE(why.find(rank == 1 ? "batch_bytes" : "failed on another rank"), std::string::npos) << why;
  }
  // Valid options that must agree between ranks but do not (a message rank 0 may send would not fit rank
  // 1; rank 1 would declare rank 0 gone between its heartbeats): every rank throws naming the option (the
  // ranks whose value was rank 0's said only that another rank failed).
  using differ_fn = void (*)(rk::cluster_options&);
  const std::pair<const char*, differ_fn> differences[] = {
      {"outbound.slot_bytes",
       [](rk::cluster_options& d) {
         d.outbound = {256, 128};
       }},
      {"heartbeat_interval",
       [](rk::cluster_options& d) {
         d.heartbeat_interval = 5s;
         d.failure_timeout = 20s;
       }},
      {"drain_timeout", [](rk::cluster_options& d) { d.drain_timeout = 1s; }}};
  for (const auto& [option, differ] : differences) {
    o = options();
    if (rank == 1) differ(o);
    try {
      rk::cluster bad(o);
      ADD_FAILURE() << "rank " << rank << " made a cluster although rank 1's options differ";
    } catch (const rk::error& e) {
      const std::string why = e.what();
      EXPECT_NE(why.find(std::string("cluster_options::") + option), std::string::npos) << why;
      EXPECT_NE(why.find("must be the same on every rank"), std::string::npos) << why;
    }
  }
}

TEST(Cluster, AStartAfterAFailedStartIsRefusedClearly) {
  rk::cluster c(options());
  if (c.rank() != 0) c.spawn<echo>(name_of("survivor", c.rank()), mailbox());
  // Rank 0 has no actor, so its runtime cannot start: every rank throws.
  EXPECT_THROW(c.start(), rk::error);
  try {
    c.start();
    ADD_FAILURE() << "a second start() after a failed one";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("an earlier start() of this cluster failed"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(c.running());
  (void)c.shutdown();
}

TEST(Cluster, AStartAfterShutdownIsRefusedAlsoWhenItNeverStarted) {
  rk::cluster c(options());
  c.spawn<echo>(name_of("never", c.rank()), mailbox());
  EXPECT_TRUE(c.shutdown().drained);
  try {
    c.start(); // it said "create a new rk::runtime", from the runtime shut down under it
    ADD_FAILURE() << "a start() after shutdown()";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("the cluster was shut down; create a new rk::cluster"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(c.running());
  EXPECT_TRUE(c.shutdown().drained) << "again: the first report";
}

TEST(Cluster, AReceivingRanksRefusalComesBackToItsSenderAsANoticeWhenAskedAndIsAlwaysCountedAndAudited) {
  rk::cluster c(options());
  if (c.size() < 2) GTEST_SKIP() << "needs two ranks at least";
  const global_address target = c.spawn<echo>(name_of("target", c.rank()), mailbox());
  const global_address sender = c.spawn<notified_sender>(name_of("notified", c.rank()), mailbox());
  c.start();
  EXPECT_TRUE(c.local().stop(target.actor));
  MPI_Barrier(MPI_COMM_WORLD); // every target stopped before anyone sends to one
  const std::uint32_t next = (c.rank() + 1) % c.size();
  const global_address far = c.find(name_of("target", next));
  const actor_index far_here = c.address_of(far);

  EXPECT_EQ(c.local().send(sender.actor, msg_kick, rk::as_bytes(far_here)), status::enqueued);
  rk::send_options notify;
  notify.flags = rk::envelope_flags::notify_refusal;
  notify.correlation_id = 77;
  const std::uint64_t hello = 2;
  EXPECT_EQ(c.send(far, msg_ping, rk::as_bytes(hello), notify), status::enqueued);
  EXPECT_EQ(c.send(far, msg_ping, rk::as_bytes(hello)), status::enqueued) << "no notice asked for";

  const auto expect_notice_of_far = [&](const rk::refusal_notice& n, std::uint64_t correlation) {
    EXPECT_EQ(n.rank, next);
    EXPECT_EQ(n.actor, far.actor) << "the destination as addressed, an id on the refusing rank";
    EXPECT_EQ(n.type_id, msg_ping);
    EXPECT_EQ(n.why(), status::not_found) << rk::to_string(n.why());
    EXPECT_EQ(n.correlation_id, correlation);
  };
  bool handler_heard = false;
  bool host_heard = false;
  while (!(handler_heard && host_heard)) {
    const auto m = c.receive(20s);
    if (!m) {
      ADD_FAILURE() << "rank " << c.rank() << ": handler notice " << handler_heard << ", host notice "
                    << host_heard;
      break;
    }
    if (m->type() == msg_notice_seen) {
      const auto seen = m->as<seen_notice>();
      expect_notice_of_far(seen.notice, notified_sender::correlation);
      EXPECT_EQ(seen.source, far_here) << "a notice comes from the refused destination";
      handler_heard = true;
    } else if (m->type() == rk::refusal_notice_type) {
      expect_notice_of_far(m->as<rk::refusal_notice>(), 77);
      EXPECT_EQ(m->correlation_id(), 77u);
      EXPECT_EQ(m->source(), far_here);
      host_heard = true;
    } else {
      ADD_FAILURE() << "unexpected message of type " << m->type();
    }
  }

  // The third refusal is counted and audited here, with no message.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (c.stats().refused_remotely < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  EXPECT_EQ(c.stats().refused_remotely, 3u);
  EXPECT_EQ(c.stats().notices_relayed, 2u);
  EXPECT_EQ(c.local().flush_audit(10s), rk::wait_result::ready);
  std::uint64_t audited_sender = 0;
  std::uint64_t audited_host = 0;
  for (const rk::audit_entry& e : c.local().audit_records()) {
    const rk::audit_record& r = e.record;
    if (r.event != rk::audit_event::remote_refusal) continue;
    EXPECT_EQ(static_cast<status>(r.detail), status::not_found);
    EXPECT_EQ(r.value, (std::uint64_t{next} << 32) | far.actor);
    audited_sender += r.actor == sender.actor ? 1 : 0;
    audited_host += r.actor == rk::host_actor ? 1 : 0;
  }
  EXPECT_EQ(audited_sender, 1u);
  EXPECT_EQ(audited_host, 2u);
  MPI_Barrier(MPI_COMM_WORLD); // every rank heard of its 3 refusals: each was counted where it was sent
  EXPECT_EQ(sum_over_ranks(c.stats().refusals_noticed), 3u * c.size()) << "each rank noticed its predecessor";
  const rk::cluster_report r = c.shutdown();
  EXPECT_TRUE(r.drained);
  EXPECT_EQ(c.local().state<notified_sender>(sender.actor).notices, 1u);
}

// A message whose sender's tenant is not registered on the receiving rank cannot get a stand-in there: that
// rank's proxy refuses it, and the sender hears of it like of any other refusal (counted, audited, noticed).
TEST(Cluster, ARankWithoutTheSendersTenantRefusesAndTheSenderHearsOfIt) {
  rk::cluster c(options());
  if (c.size() < 2) GTEST_SKIP() << "needs two ranks at least";
  if (c.rank() == 0) c.local().tenants().add(7, rk::tenant_quota::standard()); // on rank 0 only
  (void)c.spawn<echo>(name_of("echo", c.rank()), mailbox());
  c.start();
  if (c.rank() == 0) {
    rk::send_options o;
    o.tenant = 7;
    o.flags = rk::envelope_flags::notify_refusal;
    o.correlation_id = 5;
    const std::uint64_t hello = 1;
    EXPECT_EQ(c.local().send(c.host_address(1, 7), msg_ping, rk::as_bytes(hello), o), status::enqueued);
    const auto m = c.receive(20s);
    ASSERT_TRUE(m.has_value()) << "no notice came back";
    ASSERT_EQ(m->type(), rk::refusal_notice_type);
    const rk::refusal_notice n = m->as<rk::refusal_notice>();
    EXPECT_EQ(n.rank, 1u);
    EXPECT_EQ(n.why(), status::tenant_mismatch) << rk::to_string(n.why());
    EXPECT_EQ(n.correlation_id, 5u);
    EXPECT_EQ(c.stats().refused_remotely, 1u);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_EQ(sum_over_ranks(c.stats().refusals_noticed), 1u) << "rank 1 noticed it";
  EXPECT_EQ(sum_over_ranks(c.stats().refused), 1u);
  EXPECT_TRUE(c.shutdown().drained);
}

} // namespace
