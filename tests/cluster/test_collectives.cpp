// Collectives among actors of an rk::cluster (collectives.hpp), run by ctest under mpiexec with 1, 2 and 4
// ranks of the CPU backend. Rank r has 2 + r contributing actors; every expected value is computed here
// from the same formula the contributors use, so the checks hold for any number of ranks.

#include "cluster_test_options.hpp"

#include <ringkernel/cluster/collectives.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using rk::actor_index;
using rk::status;

constexpr std::uint32_t msg_go = 1;       //!< host -> contributor: contribute to this round
constexpr std::uint32_t msg_partial = 50; //!< reducer -> host (kept by the cluster)
constexpr std::uint32_t msg_news = 3;     //!< broadcast payload
constexpr std::uint32_t msg_heard = 4;    //!< listener -> host: what it got
constexpr std::uint32_t msg_marker = 5;   //!< forger -> host: after its forged partial

//! The value contributor `index` (cluster-wide) gives in `round`.
template <class T>
T value_of(std::uint64_t index, std::uint64_t round) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(index) * T(0.5) - static_cast<T>(round) * T(1.25);
  } else if constexpr (std::is_signed_v<T>) {
    return static_cast<T>(static_cast<std::int64_t>(index * 7 % 13) - static_cast<std::int64_t>(round) - 5);
  } else {
    return static_cast<T>(index * 7 % 13 + round);
  }
}

//! On msg_go (payload: the round) sends its value for that round to its rank's reducer.
template <class T>
struct contributor {
  struct state {
    actor_index reducer = rk::host_actor;
    std::uint64_t index = 0; //!< cluster-wide
    std::uint64_t refused = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const auto* round = m.as<std::uint64_t>();
    if (round == nullptr) return;
    const rk::contribution<T> c{*round, value_of<T>(s.index, *round)};
    const status st = ctx.send(s.reducer, msg_go, rk::as_bytes(c));
    if (st == status::queue_full) {
      ctx.defer();
      return;
    }
    if (st != status::delivered) ++s.refused;
  }
};

//! Hands what it hears to the host.
struct listener {
  struct state {};
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state&, const rk::message& m) {
    (void)ctx.send_host(msg_heard, m.payload());
  }
};

//! On any message sends a host a partial result of msg_partial's type for round 0, then msg_marker.
struct forger {
  struct state {
    actor_index host = rk::host_actor;
    std::uint64_t refused = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message&) {
    const rk::partial_result<std::int64_t> forged{0, 1, 1'000'000};
    if (ctx.send(s.host, msg_partial, rk::as_bytes(forged)) != status::delivered) ++s.refused;
    if (ctx.send(s.host, msg_marker, rk::as_bytes(forged)) != status::delivered) ++s.refused;
  }
};

rk::cluster_options options() {
  return rk_cluster_cases::small_rank_options();
}

std::uint32_t contributors_on(std::uint32_t rank) {
  return 2 + rank;
}
std::uint64_t first_index_on(std::uint32_t rank) {
  std::uint64_t first = 0;
  for (std::uint32_t r = 0; r < rank; ++r) first += contributors_on(r);
  return first;
}

template <class T, rk::reduce_op Op>
T expected(std::uint32_t ranks, std::uint64_t round) {
  std::uint64_t all = 0;
  for (std::uint32_t r = 0; r < ranks; ++r) all += contributors_on(r);
  T v = value_of<T>(0, round); // computed here, independently of rk::combine
  for (std::uint64_t i = 1; i < all; ++i) {
    const T x = value_of<T>(i, round);
    if constexpr (Op == rk::reduce_op::sum) {
      v = static_cast<T>(v + x);
    } else if constexpr (Op == rk::reduce_op::min) {
      v = std::min(v, x);
    } else {
      v = std::max(v, x);
    }
  }
  return v;
}

//! Runs `rounds` rounds of an allreduce of T with Op; contributions of round k + 1 are sent before the
//! host asks for round k, so every reducer also sees early contributions.
template <class T, rk::reduce_op Op>
void check_allreduce(std::uint64_t rounds) {
  rk::cluster c(options());
  const std::uint32_t mine = contributors_on(c.rank());
  rk::actor_options box;
  box.mailbox = {64, 256};
  rk::reduction<T, Op> sum = rk::make_reduction<T, Op>(c, "reducer", mine, msg_partial, box);
  std::vector<actor_index> members;
  for (std::uint32_t k = 0; k < mine; ++k)
    members.push_back(c.local().spawn<contributor<T>>(
        "contributor" + std::to_string(k), box,
        typename contributor<T>::state{sum.address(), first_index_on(c.rank()) + k, 0}));
  c.start();
  const auto go = [&](std::uint64_t round) {
    for (const actor_index m : members)
      EXPECT_EQ(c.local().send_blocking(m, msg_go, rk::as_bytes(round), 5s), status::enqueued);
  };
  go(0);
  for (std::uint64_t round = 0; round < rounds; ++round) {
    if (round + 1 < rounds) go(round + 1); // early: the reducer keeps them for the next round
    const std::optional<T> got = rk::allreduce(c, sum, 10s);
    ASSERT_TRUE(got.has_value()) << "round " << round;
    EXPECT_EQ(*got, (expected<T, Op>(c.size(), round))) << "round " << round << " on rank " << c.rank();
  }
  EXPECT_TRUE(c.shutdown().drained);
  for (const actor_index m : members) EXPECT_EQ(c.local().state<contributor<T>>(m).refused, 0u);
}

// Integer sums wrap modulo 2^bits, signed ones too: as a constant expression, the signed overflow they
// had (undefined) did not compile.
static_assert(rk::combine<std::int64_t, rk::reduce_op::sum>(INT64_MAX, 1) == INT64_MIN);
static_assert(rk::combine<std::int8_t, rk::reduce_op::sum>(127, 1) == -128);
static_assert(rk::combine<std::uint64_t, rk::reduce_op::sum>(UINT64_MAX, 2) == 1u);
static_assert(rk::combine<double, rk::reduce_op::sum>(1.5, 2.0) == 3.5);

TEST(Collectives, AllreduceSumsIntegersOverEveryContributorOfEveryRank) {
  check_allreduce<std::int64_t, rk::reduce_op::sum>(20);
}
TEST(Collectives, AllreduceFindsTheMinimumOfDoubles) {
  check_allreduce<double, rk::reduce_op::min>(10);
}
TEST(Collectives, AllreduceFindsTheMaximumOfUnsigned32BitValues) {
  check_allreduce<std::uint32_t, rk::reduce_op::max>(10);
}
TEST(Collectives, AllreduceSumsFloats) {
  check_allreduce<float, rk::reduce_op::sum>(5);
}

// Two reductions in one cluster (another operation, another reply type) are two handler types, each
// combining its own contributions.
TEST(Collectives, TwoReductionsOfOneClusterEachCombineTheirOwn) {
  rk::cluster c(options());
  const std::uint32_t mine = contributors_on(c.rank());
  rk::actor_options box;
  box.mailbox = {64, 256};
  auto sum = rk::make_reduction<std::int64_t, rk::reduce_op::sum>(c, "sum", mine, msg_partial, box);
  auto max = rk::make_reduction<std::int64_t, rk::reduce_op::max>(c, "max", mine, msg_partial + 1, box);
  std::vector<actor_index> members;
  for (std::uint32_t k = 0; k < mine; ++k)
    for (const auto& [to, reducer] : {std::pair{"to_sum", sum.address()}, std::pair{"to_max", max.address()}})
      members.push_back(c.local().spawn<contributor<std::int64_t>>(
          to + std::to_string(k), box,
          contributor<std::int64_t>::state{reducer, first_index_on(c.rank()) + k, 0}));
  c.start();
  const std::uint64_t round = 0;
  for (const actor_index m : members)
    EXPECT_EQ(c.local().send_blocking(m, msg_go, rk::as_bytes(round), 5s), status::enqueued);
  const std::optional<std::int64_t> summed = rk::allreduce(c, sum, 10s);
  const std::optional<std::int64_t> largest = rk::allreduce(c, max, 10s);
  ASSERT_TRUE(summed.has_value() && largest.has_value());
  EXPECT_EQ(*summed, (expected<std::int64_t, rk::reduce_op::sum>(c.size(), round)));
  EXPECT_EQ(*largest, (expected<std::int64_t, rk::reduce_op::max>(c.size(), round)));
  EXPECT_TRUE(c.shutdown().drained);
}

// Ranks that reduce different operations (or types) in one round are told so, every one of them, instead
// of each combining the others' bits its own way.
TEST(Collectives, RanksReducingDifferentKindsAreToldSoOnEveryRank) {
  rk::cluster c(options());
  if (c.size() < 2) GTEST_SKIP() << "needs two ranks at least";
  (void)c.local().spawn<listener>("someone"); // a runtime needs one actor
  const auto run = [&](auto reduction) {
    c.start();
    try {
      (void)rk::allreduce(c, reduction, 5s);
      ADD_FAILURE() << "rank " << c.rank() << " combined a round the ranks disagree on";
    } catch (const rk::error& e) {
      EXPECT_NE(std::string(e.what()).find("different types or operations"), std::string::npos) << e.what();
    }
  };
  if (c.rank() == 0) {
    run(rk::make_reduction<std::int64_t, rk::reduce_op::max>(c, "reducer", 0, msg_partial));
  } else {
    run(rk::make_reduction<std::int64_t, rk::reduce_op::sum>(c, "reducer", 0, msg_partial));
  }
  EXPECT_TRUE(c.shutdown().drained);
}

// Two reductions of one kind (each with its own reply type) called on different ranks in one round: each
// rank combined the others' partials of the other reduction as its own. Now every rank is told so, and the
// next call, the same on every rank, goes on in step.
TEST(Collectives, RanksRunningDifferentReductionsOfOneKindAreToldSo) {
  rk::cluster c(options());
  if (c.size() < 2) GTEST_SKIP() << "needs two ranks at least";
  (void)c.local().spawn<listener>("someone"); // a runtime needs one actor
  auto first = rk::make_reduction<std::int64_t, rk::reduce_op::sum>(c, "first", 0, msg_partial);
  auto second = rk::make_reduction<std::int64_t, rk::reduce_op::sum>(c, "second", 0, msg_partial + 1);
  c.start();
  try {
    (void)rk::allreduce(c, c.rank() == 0 ? first : second, 5s);
    ADD_FAILURE() << "rank " << c.rank() << " combined another reduction's partials";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("different reductions"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW((void)rk::allreduce(c, first, 5s)) << "the ranks are in step again";
  EXPECT_TRUE(c.shutdown().drained);
}

// A root that differs between ranks, or is out of range on one of them, is an error on every rank after
// the round's exchange: a rank that threw before it left the others waiting there for good (and their
// shutdown() with them).
TEST(Collectives, RootMistakesOnOneRankAreAnErrorOnEveryRankNotAHang) {
  rk::cluster c(options());
  if (c.size() < 2) GTEST_SKIP() << "needs two ranks at least";
  auto r = rk::make_reduction<std::int64_t, rk::reduce_op::sum>(c, "reducer", 0, msg_partial);
  (void)c.local().spawn<listener>("someone"); // a runtime needs one actor
  c.start();
  const bool last = c.rank() == c.size() - 1;
  const auto everywhere = [&](const char* what, auto&& call, const char* needle) {
    try {
      call();
      ADD_FAILURE() << what << ": rank " << c.rank() << " went on";
    } catch (const rk::error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << what << ": " << e.what();
    }
  };
  everywhere(
      "reduce, root 99 on the last rank", [&] { (void)rk::reduce(c, r, last ? 99 : 0, 5s); },
      "different roots");
  everywhere(
      "reduce here, allreduce there",
      [&] { (void)(last ? rk::allreduce(c, r, 5s) : rk::reduce(c, r, 0, 5s)); },
      "every rank must make the same collective calls in the same order");
  everywhere(
      "reduce, root 99 everywhere", [&] { (void)rk::reduce(c, r, 99, 5s); }, "out of range");
  everywhere(
      "broadcast, root 99 on the last rank",
      [&] { (void)c.broadcast(last ? 99 : 0, "nobody", msg_news, {}, 1s); }, "pass the same root");
  everywhere(
      "broadcast, each rank its own root", [&] { (void)c.broadcast(c.rank(), "nobody", msg_news, {}, 1s); },
      "pass the same root");
  everywhere(
      "broadcast, root 99 everywhere", [&] { (void)c.broadcast(99, "nobody", msg_news, {}, 1s); },
      "out of range");
  // The collectives still work afterwards.
  EXPECT_EQ(c.broadcast(0, "nobody", msg_news, {}, 1s), 0u);
  EXPECT_FALSE(rk::allreduce(c, r, 1s).has_value()) << "nobody contributes";
  EXPECT_TRUE(c.shutdown().drained);
}

// A rank that calls shutdown() while the others wait for it in a collective: they are told so (an error
// naming the rank) instead of each waiting for the other for ever; then their shutdown() completes.
TEST(Collectives, AShutdownMetInACollectiveIsAnErrorNotAHang) {
  rk::cluster c(options());
  if (c.size() < 2) GTEST_SKIP() << "needs two ranks at least";
  auto r = rk::make_reduction<std::int64_t, rk::reduce_op::sum>(c, "reducer", 0, msg_partial);
  (void)c.local().spawn<listener>("someone"); // a runtime needs one actor
  c.start();
  if (c.rank() != 0) {
    try {
      (void)rk::allreduce(c, r, 1s);
      ADD_FAILURE() << "rank " << c.rank() << " finished a collective rank 0 never called";
    } catch (const rk::error& e) {
      EXPECT_NE(std::string(e.what()).find("rank 0 called shutdown()"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(c.shutdown().drained);
}

TEST(Collectives, ReduceKeepsTheValueAtTheRootAndARankWithoutContributorsTakesPart) {
  rk::cluster c(options());
  // Only rank 0 contributes (3 actors); the other ranks have no reducer.
  const std::uint32_t mine = c.rank() == 0 ? 3 : 0;
  rk::actor_options box;
  box.mailbox = {64, 256};
  auto r = rk::make_reduction<std::int64_t, rk::reduce_op::sum>(c, "reducer", mine, msg_partial, box);
  std::vector<actor_index> members;
  for (std::uint32_t k = 0; k < mine; ++k)
    members.push_back(c.local().spawn<contributor<std::int64_t>>(
        "contributor" + std::to_string(k), box, contributor<std::int64_t>::state{r.address(), k, 0}));
  (void)c.local().spawn<listener>("someone", box); // a runtime needs one actor
  c.start();
  const std::uint64_t round = 0;
  for (const actor_index m : members)
    EXPECT_EQ(c.local().send_blocking(m, msg_go, rk::as_bytes(round), 5s), status::enqueued);
  const std::uint32_t root = c.size() - 1;
  const std::optional<std::int64_t> got = rk::reduce(c, r, root, 10s);
  const std::int64_t want =
      value_of<std::int64_t>(0, 0) + value_of<std::int64_t>(1, 0) + value_of<std::int64_t>(2, 0);
  if (c.rank() == root) {
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, want);
  } else {
    EXPECT_FALSE(got.has_value()) << "only the root keeps the value";
  }
  EXPECT_THROW((void)rk::reduce(c, r, c.size(), 1s), rk::error) << "root out of range";
  EXPECT_TRUE(c.shutdown().drained);
  EXPECT_THROW((void)rk::allreduce(c, r, 1s), rk::error) << "after shutdown";
}

TEST(Collectives, BroadcastReachesEveryMemberOfTheGroupOnEveryRankAndNothingElse) {
  rk::cluster c(options());
  rk::actor_options box;
  box.mailbox = {64, 256};
  std::vector<actor_index> listeners;
  for (std::uint32_t k = 0; k < 1 + c.rank(); ++k)
    listeners.push_back(c.local().spawn<listener>("listener" + std::to_string(k), box));
  const actor_index outsider = c.local().spawn<listener>("outsider", box);
  (void)c.local().create_group("audience", listeners);
  c.start();
  const std::uint32_t root = c.size() / 2;
  const std::string news = "news from rank " + std::to_string(root) + ", 33 bytes long";
  const std::string noise = "ignored on the other ranks";
  const std::string& mine = c.rank() == root ? news : noise;
  const std::uint64_t enqueued = c.broadcast(
      root, "audience", msg_news,
      {reinterpret_cast<const std::byte*>(mine.data()), static_cast<std::uint32_t>(mine.size())}, 5s);
  EXPECT_EQ(enqueued, listeners.size());
  for (std::size_t k = 0; k < listeners.size(); ++k) {
    const auto m = c.receive(10s);
    ASSERT_TRUE(m.has_value()) << "listener " << k << " of rank " << c.rank();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->payload.data()), m->payload.size()), news);
  }
  EXPECT_EQ(c.broadcast(root, "nobody", msg_news, {}, 1s), 0u) << "no such group: nobody here";
  EXPECT_THROW((void)c.broadcast(c.size(), "audience", msg_news, {}, 1s), rk::error);
  EXPECT_TRUE(c.shutdown().drained);
  for (const rk::actor_stats& a : c.local().stats().actors)
    if (a.id == outsider) {
      EXPECT_EQ(a.received, 0u) << "the outsider is not in the group";
    }
}

//! Waits (bounded) until this rank's reducer of `r` has handed its partial of `round` to the host.
template <class T, rk::reduce_op Op>
bool partial_at_host(rk::cluster& c, const rk::reduction<T, Op>& r, std::uint64_t round) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.local().snapshot_state<rk::reducer<T, Op>>(r.address()).round <= round) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms); // polls a real condition, bounded above
  }
  return true;
}

//! A cluster with one reduction of int64 sums and contributors_on(rank) contributors on each rank.
struct summing_cluster {
  rk::cluster c{options()};
  rk::reduction<std::int64_t, rk::reduce_op::sum> sum;
  std::vector<actor_index> members;

  explicit summing_cluster(const rk::actor_options& box) {
    const std::uint32_t mine = contributors_on(c.rank());
    sum = rk::make_reduction<std::int64_t, rk::reduce_op::sum>(c, "reducer", mine, msg_partial, box);
    for (std::uint32_t k = 0; k < mine; ++k)
      members.push_back(c.local().spawn<contributor<std::int64_t>>(
          "contributor" + std::to_string(k), box,
          contributor<std::int64_t>::state{sum.address(), first_index_on(c.rank()) + k, 0}));
  }
  void go(std::uint64_t round) {
    for (const actor_index m : members)
      EXPECT_EQ(c.local().send_blocking(m, msg_go, rk::as_bytes(round), 5s), status::enqueued);
  }
  std::int64_t want(std::uint64_t round) const {
    return expected<std::int64_t, rk::reduce_op::sum>(c.size(), round);
  }
};

rk::actor_options mailbox() {
  rk::actor_options box;
  box.mailbox = {64, 256};
  return box;
}

// An actor of another tenant (on another rank, or this one with one rank) sends each rank's host a message
// of the reduction's reply type that looks like a partial of round 0, before the reducer's. It is no
// partial (only this rank's reducer sends those): receive() returns it, and allreduce combines the
// contributions alone. Before, allreduce returned the forged value on every rank.
TEST(Collectives, AMessageOfTheReplyTypeFromAnyoneButTheReducerIsNoPartial) {
  summing_cluster s(mailbox());
  rk::cluster& c = s.c;
  c.local().tenants().add(7, rk::tenant_quota::standard());
  rk::actor_options in_seven = mailbox();
  in_seven.tenant = 7;
  const std::uint32_t next = (c.rank() + 1) % c.size();
  const actor_index forger_id =
      c.local().spawn<forger>("forger", in_seven, forger::state{c.host_address(next, 7), 0});
  EXPECT_THROW((void)(rk::make_reduction<std::int64_t, rk::reduce_op::max>(c, "again", 1, msg_partial)),
               rk::error)
      << "a reply type two reductions share";
  c.start();
  rk::send_options as_seven;
  as_seven.tenant = 7;
  EXPECT_EQ(c.local().send_wait(forger_id, msg_go, {}, 10s, as_seven), status::delivered);
  // The forged message comes before the marker, from the same sender.
  const auto forged = c.receive(20s);
  ASSERT_TRUE(forged.has_value()) << "rank " << c.rank();
  EXPECT_EQ(forged->type(), msg_partial);
  EXPECT_EQ(c.origin_of(*forged).rank, (c.rank() + c.size() - 1) % c.size());
  const auto marker = c.receive(20s);
  ASSERT_TRUE(marker.has_value());
  EXPECT_EQ(marker->type(), msg_marker);
  s.go(0);
  const std::optional<std::int64_t> got = rk::allreduce(c, s.sum, 10s);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, s.want(0)) << "on rank " << c.rank();
  EXPECT_TRUE(c.shutdown().drained);
  EXPECT_EQ(c.local().state<forger>(forger_id).refused, 0u);
}

// Application threads wait in receive() while the main thread runs allreduce(): the partial one of them
// takes from the runtime reaches allreduce at once. Before, allreduce went on waiting in the runtime for a
// message that was kept already, and each round whose partial another thread took timed out (with three
// such threads, most rounds).
TEST(Collectives, APartialAReceiveOnAnotherThreadTakesReachesAllreduceAtOnce) {
  summing_cluster s(mailbox());
  rk::cluster& c = s.c;
  c.start();
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> theirs{0};
  std::vector<std::thread> application;
  for (int k = 0; k < 3; ++k)
    application.emplace_back([&] {
      while (!stop.load())
        if (c.receive(100ms)) ++theirs;
    });
  for (std::uint64_t round = 0; round < 10; ++round) {
    s.go(round);
    const auto began = std::chrono::steady_clock::now();
    const std::optional<std::int64_t> got = rk::allreduce(c, s.sum, 5s);
    EXPECT_EQ(got.value_or(-1), s.want(round)) << "round " << round << " on rank " << c.rank();
    EXPECT_LT(std::chrono::steady_clock::now() - began, 3s) << "round " << round;
  }
  // With timeout 0 too: a partial at the host already is found, whichever thread takes it.
  s.go(10);
  ASSERT_TRUE(partial_at_host(c, s.sum, 10));
  EXPECT_EQ(rk::allreduce(c, s.sum, 0ms).value_or(-1), s.want(10)) << "on rank " << c.rank();
  stop = true;
  for (std::thread& t : application) t.join();
  EXPECT_EQ(theirs.load(), 0u) << "no message here is the application's";
  EXPECT_TRUE(c.shutdown().drained);
}

// A timeout of 0 takes a partial that has reached the host already (before, it gave up before looking);
// a partial that comes after its round failed is dropped (counted), not kept for good.
TEST(Collectives, ATimeoutOfZeroTakesAPartialThatIsThereAndLatePartialsAreDropped) {
  summing_cluster s(mailbox());
  rk::cluster& c = s.c;
  c.start();
  s.go(0);
  ASSERT_TRUE(partial_at_host(c, s.sum, 0));
  const std::optional<std::int64_t> at_once = rk::allreduce(c, s.sum, 0ms);
  ASSERT_TRUE(at_once.has_value()) << "on rank " << c.rank();
  EXPECT_EQ(*at_once, s.want(0));
  EXPECT_FALSE(rk::allreduce(c, s.sum, 0ms).has_value()) << "round 1: nobody contributed yet";
  s.go(1); // late: round 1 failed
  ASSERT_TRUE(partial_at_host(c, s.sum, 1));
  s.go(2);
  const std::optional<std::int64_t> next = rk::allreduce(c, s.sum, 10s);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, s.want(2));
  EXPECT_EQ(c.stats().stale_partials, 1u) << "round 1's partial";
  EXPECT_TRUE(c.shutdown().drained);
}

// Ranks that call different collectives are all told so by the same exchange, and none makes another
// exchange of that call: the next collectives, the same on every rank, work (the failed allreduce took no
// round, and its partial is the next allreduce's). Before, rank 0 read the others' broadcast rows as
// another reduction, the others found rank 0 "gone" and exchanged once more, out of step from then on.
TEST(Collectives, RanksInDifferentCollectivesAreAllToldSoAndStayInStep) {
  summing_cluster s(mailbox());
  rk::cluster& c = s.c;
  if (c.size() < 2) GTEST_SKIP() << "needs two ranks at least";
  c.start();
  s.go(0);
  const auto mismatched = [&](const char* what, auto&& call, const char* needle) {
    try {
      call();
      ADD_FAILURE() << what << ": rank " << c.rank() << " went on";
    } catch (const rk::error& e) {
      const std::string said = e.what();
      EXPECT_NE(said.find(needle), std::string::npos) << what << ": " << said;
      EXPECT_NE(said.find("every rank must make the same collective calls in the same order"),
                std::string::npos)
          << said;
    }
  };
  const bool first = c.rank() == 0;
  const auto reduce_or_broadcast = [&](bool reduces, bool all) {
    if (!reduces) {
      (void)c.broadcast(0, "nobody", msg_news, {}, 1s);
    } else {
      (void)(all ? rk::allreduce(c, s.sum, 10s) : rk::reduce(c, s.sum, 0, 10s));
    }
  };
  mismatched(
      "allreduce on rank 0, broadcast elsewhere", [&] { reduce_or_broadcast(first, true); },
      first ? "called rk::cluster::broadcast() while this rank called rk::allreduce()"
            : "rank 0 called rk::allreduce() while this rank called rk::cluster::broadcast()");
  mismatched(
      "broadcast on rank 0, reduce elsewhere", [&] { reduce_or_broadcast(!first, false); },
      first ? "called rk::reduce() while this rank called rk::cluster::broadcast()"
            : "rank 0 called rk::cluster::broadcast() while this rank called rk::reduce()");
  EXPECT_EQ(s.sum.next_round(), 0u) << "a call that threw takes no round";
  const std::optional<std::int64_t> got = rk::allreduce(c, s.sum, 10s);
  ASSERT_TRUE(got.has_value()) << "on rank " << c.rank();
  EXPECT_EQ(*got, s.want(0));
  EXPECT_EQ(c.broadcast(0, "nobody", msg_news, {}, 1s), 0u);
  s.go(1);
  const std::optional<std::int64_t> then = rk::allreduce(c, s.sum, 10s);
  ASSERT_TRUE(then.has_value());
  EXPECT_EQ(*then, s.want(1));
  EXPECT_TRUE(c.shutdown().drained);
}

} // namespace
