#pragma once
// What the cluster tests share: a small CPU-backend rank (four ranks share two cores in CI), mailboxes of a
// given size, per-rank names, a checker of per-rank message order, and the survivors' report of the tests
// that kill a rank.

#include <ringkernel/cluster/cluster.hpp>

#include <mpi.h>

#include <cstdio>
#include <string>

namespace rk_cluster_cases {

inline rk::cluster_options small_rank_options() {
  rk::cluster_options o;
  o.runtime.backend = rk::backend::cpu;
  o.runtime.announce_backend = false;
  o.runtime.cpu_workers = 1;
  o.runtime.max_actors = 256;
  o.runtime.host_ring = {256, 256};
  o.outbound = {256, 256};
  o.announce = false;
  return o;
}

inline rk::actor_options mailbox(std::uint32_t slots = 256) {
  rk::actor_options a;
  a.mailbox = {slots, 256};
  return a;
}

inline std::string name_of(const char* what, std::uint32_t rank) {
  return what + std::to_string(rank);
}

//! A message numbered per producing rank.
struct numbered {
  std::uint64_t from_rank = 0;
  std::uint64_t sequence = 0;
};

//! Checks that each producing rank's numbered messages arrive once each, in order: counts them, and the
//! ones lost, duplicated, reordered or not numbered (violations).
struct sequence_checker {
  struct state {
    std::uint64_t count = 0;
    std::uint64_t violations = 0;
    std::uint64_t next[64] = {};
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx&, state& s, const rk::message& m) {
    const auto* p = m.as<numbered>();
    if (p == nullptr || p->from_rank >= 64) {
      ++s.violations;
      return;
    }
    if (p->sequence != s.next[p->from_rank]) ++s.violations;
    s.next[p->from_rank] = p->sequence + 1;
    ++s.count;
  }
};

//! For tests run under --enable-recovery, where the launcher's exit status says nothing about the ranks
//! that live on: ranks 1 .. survivors - 1 tell rank 0 whether their tests failed (`failed`), and rank 0
//! prints `passed_line` only when every survivor passed (ctest looks for it). Returns the exit code.
inline int report_survivors(int failed, int survivors, const char* passed_line) {
  int initialized = 0;
  MPI_Initialized(&initialized); // by the cluster, which also finalises it at exit
  if (initialized == 0) return 1;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    MPI_Send(&failed, 1, MPI_INT, 0, 99, MPI_COMM_WORLD);
    return failed;
  }
  int survivors_failed = failed;
  for (int r = 1; r < survivors; ++r) {
    int theirs = 1;
    MPI_Recv(&theirs, 1, MPI_INT, r, 99, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    survivors_failed += theirs;
  }
  if (survivors_failed == 0) std::printf("%s\n", passed_line);
  return survivors_failed == 0 ? 0 : 1;
}

} // namespace rk_cluster_cases
