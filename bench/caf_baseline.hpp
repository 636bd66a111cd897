#pragma once
// CAF (the C++ Actor Framework, Debian's libcaf-dev 0.17) doing what bench_scale measures for ringkernel,
// in the same process: spawn N actors, idle CPU, wake-up round trip to a random idle actor, Erlang's ring.
// Built only when CMake finds CAF (bench/CMakeLists.txt); compiled by the host compiler, not nvcc.

#include <cstdint>
#include <vector>

namespace rk::bench {

struct caf_scale_result {
  double spawn_s = 0;
  double bytes_per_actor = 0;    //!< resident set after the spawn minus before the actor system, / N
  double idle_core_share = 0;    //!< process CPU time / wall time while idle
  std::vector<double> wakeup_us; //!< host (scoped_actor) request -> random idle actor -> reply
  double ring_ns_per_hop = 0;
  double fan_s = -1; //!< an aggregator asks all N members and counts their answers; -1: not measured
};

//! `threads`: CAF scheduler threads (the same count as ringkernel's pool in the comparison). `sharing`:
//! CAF's "sharing" scheduler policy (one shared queue) instead of its default work stealing, whose steal
//! walks the victim's queue (a fan-out of 10^5 took 42 s here); with work stealing the fan-out is measured
//! only up to `stealing_fan_limit` actors.
inline constexpr std::uint32_t stealing_fan_limit = 100'000;
caf_scale_result measure_caf_scale(std::uint32_t actors, double idle_seconds, std::uint64_t wakeups,
                                   std::uint64_t ring_hops, unsigned threads, bool sharing);

} // namespace rk::bench
