#pragma once
//! \file
//! The scheduled worker loop on CUDA: rk::scheduled_actor_kernel<H> runs a fixed pool of thread blocks per
//! handler type; each block takes a ready actor from its type's run queue, serves it for at most
//! `turn_messages` messages, or until a call ends `turn_ns` after the turn's first began (same per-actor
//! rules as a dedicated worker: next_step, priorities, defers, lifecycle), then requeues it or gives it up
//! (schedule.cuh says how no wake-up is lost). Between actors it reads the control words and reports
//! quiescence; the CPU backend's pool (cpu_backend.cpp) follows the same steps on threads.

#include <ringkernel/device/actor_loop.cuh>
#include <ringkernel/device/detail/phase_profile.cuh>

namespace rk::detail {

#if defined(__CUDACC__)
template <class H>
__device__ void device_scheduled_loop(const actor_kernel_params& p) {
  __shared__ worker_step shared_step;
  __shared__ bool shared_exit;
  __shared__ hlc_timestamp shared_time;
  __shared__ actor_index shared_actor;
  __shared__ void* shared_state;
  __shared__ std::uint32_t shared_engagement; // the actor's engagement slot, read with its state pointer
  __shared__ device_run_next run_next;        // see "Run-next" in schedule.cuh
  __shared__ delivery_grant shared_grant;
  __shared__ envelope_copy shared_seen; // the traced message as delivered (trace_sampled)

  const system_view& sys = p.sys;
  worker_status& status_word = sys.workers[p.first_worker + blockIdx.x];

  // Thread 0 only below: the leader decides, every thread runs the handler.
  backoff idle(sys.device_idle_sleep_max_ns);
  // The leader's looks between actors (and its beats while holding one): the heartbeat's value. A turn's
  // holding iterations are paced by `turn`, which each of them advances by one.
  std::uint32_t polls = 0;
  std::uint32_t grace_seen = 0;
  std::uint32_t turn = 0;
  bool paused = false;
  bool holding = false; // owns `current` (schedule.cuh)
  actor_index current = 0;
  std::uint32_t reported_actor = 0;
  std::uint32_t reported_type = 0xFFFF'FFFFu;
  std::uint64_t handler_begin = 0;
  bool sampled = false;         // the call is traced (trace_sampled)
  std::uint64_t turn_begin = 0; // the turn's first call's begin; 0: none yet (turn_ns counts from it)
  std::uint32_t streak = 0;     // turns in a row taken from run_next
  if (threadIdx.x == 0) {
    run_next = {0, 0, p.kind}; // other threads touch it only in handler calls, after the first barrier
    grace_seen = check_in(sys, status_word);
  }
  RK_PHASE_START(stopwatch); // diagnostic builds only (phase_profile.cuh)

  for (;;) {
    if (threadIdx.x == 0) {
      worker_step step{};
      shared_exit = false;
      if (!holding) {
        ++polls;
        if (terminate_requested(sys)) {
          shared_exit = true;
        } else {
          note_quiescent(sys, status_word, grace_seen);
          if (!follow_pause(sys, status_word.paused, paused) &&
              take_next(sys, p.kind, run_next, streak, current)) {
            holding = true;
            turn = 0;
            turn_begin = 0;
          }
          if ((polls % heartbeat_poll_interval) == 0)
            store_pcie(status_word.heartbeat, static_cast<std::uint64_t>(polls));
        }
        RK_PHASE(holding ? phase_take : phase_idle, stopwatch);
      } else if (turn % control_poll_interval == control_poll_interval - 1) {
        // A busy worker beats each time it looks at the control words. (It beat only between actors, every
        // 16 looks: a turn of 32 messages, taken over and over, kept the remainder of polls % 16 the same,
        // and a worker serving one busy actor never beat: the watchdog reported a call stuck that was not.
        // Now either turns are short, and polls advances by one per turn, or every turn beats here.)
        store_pcie(status_word.heartbeat, static_cast<std::uint64_t>(++polls));
        if (terminate_requested(sys)) shared_exit = true;
      }
      if (holding && !shared_exit) {
        step = next_step(sys, current);
        if (step.kind == step_kind::release) { // retired: it stays owned for good
          holding = false;
          step = {};
        } else if (step.kind != step_kind::handle && step.kind != step_kind::discard) {
          end_turn(sys, current, false);
          holding = false;
          step = {};
        } else if (run_next.full != 0) {
          // The current actor goes on: an actor its last call woke is better off with another worker.
          hand_off(sys, p.kind, run_next.actor, false);
          run_next.full = 0;
        }
      }
      const std::uint32_t busy = step.kind == step_kind::handle ? current + 1 : 0u;
      if (busy != reported_actor) {
        if (reported_actor == 0)
          store_pcie(status_word.busy_actor, busy);
        else
          release_busy_actor(sys, status_word, reported_actor - 1, busy);
        reported_actor = busy;
      }
      if (step.kind == step_kind::handle) {
        const auto& header = *reinterpret_cast<const envelope*>(step.slot);
        shared_time = sys.privates[slot_of(sys, current)].clock.observe(header.timestamp);
        shared_grant = grant_of(step.slot); // before any thread of the handler can write the slot
        sampled = trace_sampled(sys, current, step.slot, shared_seen);
        if (header.type_id != reported_type) {
          reported_type = header.type_id;
          store_pcie(status_word.busy_type, reported_type);
        }
        const route_entry& entry = sys.routes[slot_of(sys, current)];
        shared_state = entry.state;
        shared_engagement = entry.engagement_slot;
        handler_begin = physical_clock_ns();
        if (turn_begin == 0) turn_begin = handler_begin;
      }
      shared_actor = current;
      shared_step = step;
      RK_PHASE(step.kind == step_kind::handle ? phase_pick : phase_idle, stopwatch);
    }
    __syncthreads();
    if (shared_exit) break;
    // Every thread needs the kind and the slot; the rest of the step (where to release the slot) stays in
    // shared memory for the leader, out of every thread's registers.
    const worker_step& step = shared_step;
    if (step.kind == step_kind::handle) {
      run_handler<H>(sys, shared_actor, *static_cast<handler_state_t<H>*>(shared_state), step.slot,
                     shared_time, shared_grant, &run_next);
      __syncthreads(); // every thread is done with the slot (and the state) before the leader moves on
      if (threadIdx.x == 0) RK_PHASE(phase_handler, stopwatch);
    }
    if (threadIdx.x == 0) {
      bool deferred = false;
      bool turn_timed_out = false; // the turn ran actor_turn_time: it ends as if its count were spent
      if (step.kind == step_kind::handle) {
        const std::uint64_t handler_end = physical_clock_ns();
        const std::uint64_t took = handler_end - handler_begin;
        turn_timed_out = handler_end - turn_begin >= sys.sched.turn_ns;
        charge_handler_time_to(sys, current, shared_engagement, took);
        if (took > 1'000'000) store_pcie(status_word.heartbeat, static_cast<std::uint64_t>(++polls));
        deferred = take_defer(sys, current);
        trace_call(sys, current, shared_seen, sampled, handler_begin, took,
                   deferred ? trace_outcome::deferred : trace_outcome::handled);
      }
      if (deferred) {
        // Before the requeue: another worker may take it next.
        restore_deferred(sys, step.slot, shared_seen, shared_grant);
        end_turn(sys, current, false); // the message stays: it is requeued behind the others
        holding = false;
        idle.pause();
      } else if (step.kind == step_kind::handle || step.kind == step_kind::discard) {
        finish_step(sys, current, step);
        idle.reset();
        if (++turn >= sys.sched.turn_messages || turn_timed_out) {
          end_turn(sys, current, true);
          holding = false;
        }
      } else if (!holding && (run_next.full == 0 || paused)) { // a held run-next actor is served next
        idle.pause();
      }
      RK_PHASE(step.kind == step_kind::handle ? phase_after : phase_idle, stopwatch);
    }
    __syncthreads(); // shared words are rewritten next iteration
  }
  if (threadIdx.x == 0) check_out(status_word);
}
#endif

} // namespace rk::detail

#if defined(__CUDACC__)
namespace rk {
//! The scheduled actor kernel for handler type H: a fixed pool of blocks serving every scheduled actor of
//! that type (launched once, at start; later spawns only register their actors). Exits on terminate.
//! Nsight shows `rk::scheduled_actor_kernel<H>`.
template <class H>
__global__ void scheduled_actor_kernel(detail::actor_kernel_params params) {
  detail::device_scheduled_loop<H>(params);
}
} // namespace rk
#endif
