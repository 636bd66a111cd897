// A rank of three dies in the middle of a collective exchange, its row reaching one survivor and not the
// other: the survivors must still decide alike. Each test is one scenario (one death per run); ctest runs
// the binary once per test, filtered, under `mpiexec --enable-recovery -np 3`. Rank 2 is the one that dies.
//
// The fault is injected through MPI's profiling interface: this binary's MPI_Isend (which the cluster's
// calls resolve to) passes every call on to PMPI_Isend, and once armed, raises SIGKILL right after the
// victim's n-th send on the MPI tag of the exchange named (cluster/src/survivors.cpp: 8100 + the step). An
// exchange sends to the other ranks in rank order, so the first send of one reaches rank 0 only.
//
// With --enable-recovery the launcher's exit status says nothing about the survivors, so rank 1 tells rank 0
// how its test went, and rank 0 prints "both survivors passed" only when both did: ctest looks for it.

#include "cluster_test_options.hpp"

#include <ringkernel/cluster/cluster.hpp>
#include <ringkernel/cluster/collectives.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <atomic>
#include <csignal>
#include <vector>

namespace {

using namespace std::chrono_literals;
using rk::status;
using rk_cluster_cases::mailbox;
using rk_cluster_cases::name_of;

constexpr std::uint32_t victim = 2;
constexpr int collective_tag = 8102;    //!< a collective's exchange (survivors.cpp: step_collective)
constexpr int last_shutdown_tag = 8101; //!< shutdown's last exchange (step_sends)
constexpr std::uint32_t msg_contribute = 10;
constexpr std::uint32_t msg_partial = 11;

std::atomic<int> kill_on_tag{-1};  //!< armed on the victim only
std::atomic<int> sends_to_kill{1}; //!< the victim dies right after this many sends on that tag

void arm(int tag, int sends) {
  sends_to_kill = sends;
  kill_on_tag = tag;
}

rk::cluster_options options() {
  rk::cluster_options o = rk_cluster_cases::small_rank_options();
  o.heartbeat_interval = 50ms;
  o.failure_timeout = 1500ms;
  o.drain_timeout = 10s;
  return o;
}

//! Every rank contributes 10^rank, so the sum says whose partials it holds.
std::uint64_t contribution_of(std::uint32_t rank) {
  std::uint64_t v = 1;
  for (std::uint32_t i = 0; i < rank; ++i) v *= 10;
  return v;
}

std::vector<std::uint32_t> only_the_victim() {
  return {victim};
}

TEST(ClusterAgreement, AllreduceLeavesARankThatDiesMidExchangeOutOnEverySurvivor) {
  rk::cluster c(options());
  ASSERT_EQ(c.size(), 3u) << "run with mpiexec -np 3";
  auto sum = rk::make_reduction<std::uint64_t, rk::reduce_op::sum>(c, "sum", 1, msg_partial);
  c.start();
  for (std::uint64_t round = 0; round < 2; ++round) {
    if (round == 1 && c.rank() == victim) arm(collective_tag, 1); // its row reaches rank 0 only
    const rk::contribution<std::uint64_t> mine{round, contribution_of(c.rank())};
    ASSERT_EQ(c.local().send_wait(sum.address(), msg_contribute, rk::as_bytes(mine), 10s), status::delivered);
    const std::optional<std::uint64_t> total = rk::allreduce(c, sum, 20s);
    ASSERT_TRUE(total.has_value()) << "round " << round;
    EXPECT_EQ(*total, round == 0 ? 111u : 11u) << "round " << round << ": the same value on every survivor";
  }
  EXPECT_EQ(c.gone_ranks(), only_the_victim());
  const rk::cluster_report done = c.shutdown();
  EXPECT_EQ(done.gone_ranks, only_the_victim());
}

TEST(ClusterAgreement, BroadcastFromARootThatDiesMidExchangeFailsOnEverySurvivor) {
  rk::cluster c(options());
  ASSERT_EQ(c.size(), 3u) << "run with mpiexec -np 3";
  const rk::actor_index member = c.local().spawn<rk_cluster_cases::sequence_checker>("member", mailbox());
  const rk::actor_index members[1] = {member};
  (void)c.local().create_group("members", members);
  c.start();
  // The root's first exchange (roots and length) reaches both; its second (the bytes) rank 0 only. Before,
  // rank 0 sent the payload to its group and rank 1 threw.
  if (c.rank() == victim) arm(collective_tag, 3);
  const std::uint64_t payload = 42;
  EXPECT_THROW((void)c.broadcast(victim, "members", msg_contribute, rk::as_bytes(payload), 20s), rk::error)
      << "every survivor finds the root gone, or none";
  EXPECT_EQ(c.gone_ranks(), only_the_victim());
  (void)c.shutdown();
}

TEST(ClusterAgreement, ARankThatDiesInShutdownsLastExchangeIsGoneForEverySurvivorAndNoOneElseIs) {
  rk::cluster c(options());
  ASSERT_EQ(c.size(), 3u) << "run with mpiexec -np 3";
  (void)c.spawn<rk_cluster_cases::sequence_checker>(name_of("checker", c.rank()), mailbox());
  c.start();
  if (c.rank() == victim) arm(last_shutdown_tag, 1); // its row reaches rank 0 only
  // Before: rank 0 had every row and left (its proxy stopped) while rank 1 waited out the victim, then
  // held rank 0 gone too; rank 0 never learnt of the failure and could wait in MPI_Finalize at exit.
  const rk::cluster_report done = c.shutdown();
  EXPECT_EQ(done.gone_ranks, only_the_victim());
}

} // namespace

extern "C" int MPI_Isend(const void* buffer, int count, MPI_Datatype type, int destination, int tag,
                         MPI_Comm comm, MPI_Request* request) {
  const int rc = PMPI_Isend(buffer, count, type, destination, tag, comm, request);
  if (tag == kill_on_tag.load() && sends_to_kill.fetch_sub(1) == 1) {
    int done = 0;
    (void)PMPI_Test(request, &done, MPI_STATUS_IGNORE); // push the row out before dying
    std::raise(SIGKILL);
  }
  return rc;
}

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  return rk_cluster_cases::report_survivors(RUN_ALL_TESTS() != 0 ? 1 : 0, 2, "both survivors passed");
}
