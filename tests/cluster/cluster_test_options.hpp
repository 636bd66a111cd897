#pragma once
// What the cluster tests share: a small CPU-backend rank (four ranks share two cores in CI), mailboxes of a
// given size, per-rank names, and a checker of per-rank message order.

#include <ringkernel/cluster/cluster.hpp>

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

} // namespace rk_cluster_cases
