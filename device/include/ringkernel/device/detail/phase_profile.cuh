#pragma once
//! \file
//! Diagnostic only: where a scheduled CUDA worker's time goes, by phase, in `clock64()` cycles of its
//! leader thread. Compiled in only when a translation unit defines RK_DEVICE_PHASE_PROFILE before it
//! includes ringkernel headers (the benchmark bench_k2k_phases does); otherwise every hook expands to
//! nothing. The counters are __device__ arrays local to that translation unit (its kernels are
//! instantiated there); it reads them with cudaMemcpyFromSymbol (phase_cycles, phase_events).
//!
//! Phases of one loop iteration that handles a message (scheduled_loop.cuh): taking a ready actor from the
//! run queue (`take`, only when the worker held none), choosing the actor's next message and the leader's
//! bookkeeping before the handler (`pick`), the handler call with the block's barriers (`handler`), and
//! what follows it: handler-time charge, defer check, trace, slot release, end of turn (`after`). Every
//! part of an iteration that handles nothing counts as `idle` (backoff sleeps included).

namespace rk::detail {

enum phase_kind : int { phase_take, phase_idle, phase_pick, phase_handler, phase_after, phase_count };
//! The phases' names, indexed by phase_kind (reports).
inline constexpr const char* phase_names[phase_count] = {"take", "idle", "pick", "handler", "after"};

#if defined(RK_DEVICE_PHASE_PROFILE) && defined(__CUDACC__)
static __device__ unsigned long long phase_cycles[phase_count];
static __device__ unsigned long long phase_events[phase_count];

//! Adds the cycles since `since` to phase `p` and restarts the stopwatch.
__device__ inline void phase_add(int p, long long& since) {
  const long long now = clock64();
  atomicAdd(&phase_cycles[p], static_cast<unsigned long long>(now - since));
  atomicAdd(&phase_events[p], 1ull);
  since = now;
}
#define RK_PHASE_START(stopwatch) long long stopwatch = clock64()
#define RK_PHASE(p, stopwatch) ::rk::detail::phase_add(p, stopwatch)
#else
#define RK_PHASE_START(stopwatch) static_cast<void>(0)
#define RK_PHASE(p, stopwatch) static_cast<void>(0)
#endif

} // namespace rk::detail
