#pragma once
//! \file
//! The worker loop: poll the mailbox, run the handler to completion on one message, release the slot.
//! `serve_one` is the single-message step shared by both backends; `actor_kernel<H>` is the persistent
//! CUDA kernel (one thread block per actor) and the CPU backend calls serve_one from its worker threads.

#include <ringkernel/device/backoff.cuh>
#include <ringkernel/device/handler.cuh>

namespace rk::detail {

//! Runs H on the message in `slot` for `self`. Called by every thread of the worker with the same
//! arguments; the leader has already merged the HLC into `event_time`.
template <class H>
RK_HOST_DEVICE void run_handler(const system_view& sys, actor_index self, handler_state_t<H>& state,
                                const std::byte* slot, hlc_timestamp event_time) {
  const message m(slot);
  actor_context ctx(sys, self, sys.actors[self].tenant, event_time);
  H handler{};
  handler(ctx, state, m);
}

//! CPU backend step: handles at most one message for `self`. Returns whether one was handled.
//! Exceptions from the handler propagate to the caller (the worker thread records the fault).
template <class H>
bool cpu_serve_one(const system_view& sys, actor_index self, void* state) {
  const mailbox inbox(sys.actors[self].inbox);
  const std::byte* slot = inbox.try_peek();
  if (slot == nullptr) return false;
  const hlc_timestamp event_time =
      sys.clocks[self].observe(reinterpret_cast<const envelope*>(slot)->timestamp);
  run_handler<H>(sys, self, *static_cast<handler_state_t<H>*>(state), slot, event_time);
  inbox.pop();
  bump(sys.counters[self].handled);
  return true;
}

//! Parameters of one actor kernel launch (one kernel per handler type; block i runs worker_actors[i]).
struct actor_kernel_params {
  system_view sys;
  const actor_index* worker_actors = nullptr; //!< device memory, one per block
  void* states = nullptr;                     //!< device memory, handler_state_t<H>[blocks]
  std::uint32_t first_worker = 0;             //!< index of block 0 in sys.workers
};

#if defined(__CUDACC__)
//! How often a busy worker looks at the (mapped, slow to read) control block.
inline constexpr std::uint32_t control_poll_interval = 64;

template <class H>
__device__ void device_worker_loop(const actor_kernel_params& p) {
  __shared__ const std::byte* shared_slot;
  __shared__ int shared_command;
  enum : int { command_exit, command_idle, command_handle };

  const system_view& sys = p.sys;
  const actor_index self = p.worker_actors[blockIdx.x];
  auto* state = static_cast<handler_state_t<H>*>(p.states) + blockIdx.x;
  worker_status& status_word = sys.workers[p.first_worker + blockIdx.x];
  const mailbox inbox(sys.actors[self].inbox);
  actor_counters& counters = sys.counters[self];

  backoff idle(sys.device_idle_sleep_max_ns);
  std::uint32_t polls = 0;
  bool busy = false;
  bool paused = false;
  if (threadIdx.x == 0) store_pcie(status_word.checked_in, 1u);

  for (;;) {
    if (threadIdx.x == 0) {
      int command = command_idle;
      const bool check_control = !busy || (++polls % control_poll_interval) == 0;
      if (check_control && terminate_requested(sys)) {
        command = command_exit;
      } else {
        if (check_control && pause_requested(sys) != paused) {
          paused = !paused;
          store_pcie(status_word.paused, paused ? 1u : 0u);
        }
        if (!paused) {
          shared_slot = inbox.try_peek();
          if (shared_slot != nullptr) command = command_handle;
        }
      }
      if (command == command_handle && !busy) store_pcie(status_word.busy_actor, self + 1);
      if (command != command_handle && busy) store_pcie(status_word.busy_actor, 0u);
      busy = command == command_handle;
      if (check_control) store_pcie(status_word.heartbeat, static_cast<std::uint64_t>(polls));
      shared_command = command;
    }
    __syncthreads();
    const int command = shared_command;
    if (command == command_exit) break;
    if (command == command_handle) {
      __shared__ hlc_timestamp shared_time;
      if (threadIdx.x == 0) {
        shared_time = sys.clocks[self].observe(reinterpret_cast<const envelope*>(shared_slot)->timestamp);
        idle.reset();
      }
      __syncthreads();
      run_handler<H>(sys, self, *state, shared_slot, shared_time);
      __syncthreads(); // every thread is done with the slot before it is released
      if (threadIdx.x == 0) {
        inbox.pop();
        bump(counters.handled);
      }
    } else if (threadIdx.x == 0) {
      ++polls;
      idle.pause();
    }
    __syncthreads(); // shared_command / shared_slot are rewritten next iteration
  }
  if (threadIdx.x == 0) store_pcie(status_word.busy_actor, 0u);
}
#endif

} // namespace rk::detail

#if defined(__CUDACC__)
namespace rk {
//! The persistent actor kernel for handler type H. Launched once per runtime with one block per actor
//! of type H; returns when the host sets terminate. Named so that Nsight shows `rk::actor_kernel<H>`.
template <class H>
__global__ void actor_kernel(detail::actor_kernel_params params) {
  detail::device_worker_loop<H>(params);
}
} // namespace rk
#endif
