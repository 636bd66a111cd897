// A rank of four dies (SIGKILL) while another rank's handler streams messages to it: the others declare it
// gone after failure_timeout, sends to it end as `unreachable` (handler sends decided on the device, host
// sends at once or by the gateway), refusal notices meant for it are counted apart from handlers' sends,
// the audit log records it, the survivors still reach each other, and shutdown completes among them. Run by
// ctest under `mpiexec --enable-recovery -np 4` (Open MPI: without it the launcher ends the whole job when
// one rank dies). Rank 3 is the one that dies.
//
// With --enable-recovery the launcher's exit status says nothing about the survivors, so they tell rank 0
// how their tests went, and rank 0 prints "all 3 survivors passed" only when they all did: ctest looks
// for that line.

#include "cluster_test_options.hpp"
#include "test_handlers.hpp" // echo

#include <ringkernel/cluster/cluster.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <csignal>
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

constexpr std::uint32_t victim = 3;
constexpr std::uint32_t msg_ping = 1;
constexpr std::uint32_t msg_start = 2;
constexpr std::uint32_t msg_tick = 3;
constexpr std::uint32_t msg_report = 4;
constexpr std::uint32_t msg_try = 5;

//! Counts what arrives; never answers.
struct sink {
  struct state {
    std::uint64_t count = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx&, state& s, const rk::message&) {
    ++s.count;
  }
};

struct report {
  std::uint32_t final_status = 0;
  std::uint32_t reserved = 0;
  std::uint64_t delivered = 0;
  std::uint64_t queue_full = 0;
};

//! msg_start (payload: a target id) starts a loop of self-addressed ticks; each tick sends one message to
//! the target. The first outcome other than delivered or queue_full ends the loop and goes to the host.
//! msg_try (payload: a target id) makes one send and reports its outcome.
struct streamer {
  struct state {
    actor_index target = rk::host_actor;
    report r{};
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == msg_try) {
      report once{};
      if (const auto* t = m.as<actor_index>())
        once.final_status = static_cast<std::uint32_t>(ctx.send(*t, msg_ping, m.payload()));
      (void)ctx.send_host(msg_report, rk::as_bytes(once));
      return;
    }
    if (m.type() == msg_start) {
      if (const auto* t = m.as<actor_index>()) s.target = *t;
    }
    const status st = ctx.send(s.target, msg_ping, rk::as_bytes(s.r.delivered));
    if (st == status::delivered) {
      ++s.r.delivered;
    } else if (st == status::queue_full) {
      ++s.r.queue_full;
    } else {
      s.r.final_status = static_cast<std::uint32_t>(st);
      (void)ctx.send_host(msg_report, rk::as_bytes(s.r));
      return;
    }
    if (ctx.send(ctx.self(), msg_tick, {}) != status::delivered) {
      s.r.final_status = static_cast<std::uint32_t>(status::aborted); // cannot happen: its only message
      (void)ctx.send_host(msg_report, rk::as_bytes(s.r));
    }
  }
};

rk::cluster_options options() {
  rk::cluster_options o = rk_cluster_cases::small_rank_options();
  o.outbound = {64, 256};
  o.batch_bytes = 4096;
  o.max_batches_in_flight = 2;
  o.heartbeat_interval = 50ms;
  o.failure_timeout = 1500ms;
  o.drain_timeout = 30s;
  return o;
}

report await_report(rk::cluster& c) {
  const auto m = c.receive(30s);
  if (!m || m->type() != msg_report) {
    ADD_FAILURE() << "rank " << c.rank() << ": no report from the streamer";
    return {};
  }
  return m->as<report>();
}

TEST(ClusterFailure, ARankThatDiesIsDeclaredGoneAndTheOthersFinish) {
  rk::cluster c(options());
  ASSERT_EQ(c.size(), 4u) << "run with mpiexec -np 4";
  (void)c.spawn<echo>(name_of("echo", c.rank()), mailbox());
  const global_address own_sink = c.spawn<sink>(name_of("sink", c.rank()), mailbox(1024));
  const global_address streaming = c.spawn<streamer>(name_of("streamer", c.rank()), mailbox(16));
  c.start();

  // Before: every host reaches every rank's echo.
  for (std::uint32_t r = 0; r < c.size(); ++r) {
    const std::uint64_t hello = r;
    EXPECT_EQ(c.send_blocking(c.find(name_of("echo", r)), msg_ping, rk::as_bytes(hello), 10s),
              status::enqueued);
  }
  for (std::uint32_t r = 0; r < c.size(); ++r) EXPECT_TRUE(c.receive(20s).has_value()) << "echo " << r;

  // Rank 1's handler streams to the victim's sink while the victim dies.
  if (c.rank() == 1) {
    const actor_index far_sink = c.address_of(c.find(name_of("sink", victim)));
    EXPECT_EQ(c.local().send_wait(streaming.actor, msg_start, rk::as_bytes(far_sink), 10s),
              status::delivered);
  }
  // Rank 2's sink stops and the victim's handler streams to it: rank 2 refuses every arrival and sends a
  // refusal notice back, so notices for the victim are under way when it dies.
  if (c.rank() == 2) {
    EXPECT_TRUE(c.local().stop(own_sink.actor, 10s));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (c.rank() == victim) {
    const actor_index stopped_sink = c.address_of(c.find(name_of("sink", 2)));
    EXPECT_EQ(c.local().send_wait(streaming.actor, msg_start, rk::as_bytes(stopped_sink), 10s),
              status::delivered);
    const auto asked = std::chrono::steady_clock::now();
    while (c.stats().refused_remotely == 0 && std::chrono::steady_clock::now() - asked < 20s)
      std::this_thread::sleep_for(1ms); // polling a counter: the notices come back when they come
  }
  MPI_Barrier(MPI_COMM_WORLD); // the application's own communicator: the victim is still there
  const auto died_about = std::chrono::steady_clock::now();
  if (c.rank() == victim) std::raise(SIGKILL);

  // It is declared gone, not before failure_timeout.
  while (c.gone_ranks().empty() && std::chrono::steady_clock::now() - died_about < 30s)
    std::this_thread::sleep_for(10ms); // polling a gauge, not synchronising: the proxy decides
  const auto detected = std::chrono::steady_clock::now() - died_about;
  EXPECT_EQ(c.gone_ranks(), std::vector<std::uint32_t>{victim});
  EXPECT_GE(detected, 1s) << "declared gone before failure_timeout (1.5 s) of silence";

  // Handler sends to it end as unreachable, decided on this device.
  if (c.rank() == 1) {
    const report r = await_report(c);
    EXPECT_EQ(r.final_status, static_cast<std::uint32_t>(status::unreachable))
        << rk::to_string(static_cast<status>(r.final_status));
    EXPECT_GT(r.delivered, 0u) << "the stream was running when the victim died";
  }
  const actor_index victim_echo = c.address_of(c.find(name_of("echo", victim)));
  EXPECT_EQ(c.local().send_wait(streaming.actor, msg_try, rk::as_bytes(victim_echo), 10s), status::delivered);
  EXPECT_EQ(await_report(c).final_status, static_cast<std::uint32_t>(status::unreachable));
  // Host sends: at once through the cluster, by the gateway through the runtime.
  const std::uint64_t hello = 7;
  EXPECT_EQ(c.send(c.find(name_of("echo", victim)), msg_ping, rk::as_bytes(hello)), status::unreachable);
  EXPECT_EQ(c.local().send_wait(victim_echo, msg_ping, rk::as_bytes(hello), 10s), status::unreachable);

  // The audit log says which rank went.
  EXPECT_EQ(c.local().flush_audit(10s), rk::wait_result::ready);
  bool audited = false;
  for (const rk::audit_entry& e : c.local().audit_records())
    audited = audited || (e.record.event == rk::audit_event::rank_unreachable && e.record.detail == victim);
  EXPECT_TRUE(audited) << "no rank_unreachable record naming rank " << victim;

  // The survivors still reach each other.
  for (std::uint32_t r = 0; r < victim; ++r)
    EXPECT_EQ(c.send_blocking(c.find(name_of("echo", r)), msg_ping, rk::as_bytes(hello), 10s),
              status::enqueued);
  for (std::uint32_t r = 0; r < victim; ++r) EXPECT_TRUE(c.receive(20s).has_value()) << "echo " << r;

  const rk::cluster_report done = c.shutdown();
  EXPECT_TRUE(done.drained) << "in flight among the survivors: " << done.in_flight;
  EXPECT_EQ(done.gone_ranks, std::vector<std::uint32_t>{victim});
  const rk::cluster_stats s = c.stats();
  if (c.rank() == 1) {
    EXPECT_GT(s.unreachable + s.abandoned, 0u) << "the stream's last messages could not be carried";
  }
  if (c.rank() == 2) { // its handlers sent nothing to the victim: only refusal notices were for it
    EXPECT_EQ(s.unreachable, 0u);
    EXPECT_EQ(s.abandoned, 0u);
    EXPECT_GT(s.refusals_noticed + s.notices_unreachable, 0u);
  }
}

} // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  return rk_cluster_cases::report_survivors(RUN_ALL_TESTS() != 0 ? 1 : 0, static_cast<int>(victim),
                                            "all 3 survivors passed");
}
