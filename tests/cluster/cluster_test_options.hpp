#pragma once
// What the cluster tests share: a small CPU-backend rank (four ranks share two cores in CI), mailboxes of a
// given size, and per-rank names.

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

} // namespace rk_cluster_cases
