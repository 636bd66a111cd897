#pragma once
// The scheduler's host side: the run queues scheduled workers take actors from, and the channel through
// which the host asks the gateway to wake an actor whose lifecycle word it changed (see schedule.cuh).
//
// Owns (device memory, from start()): one run queue per handler type and the array of their views
// (sys.sched.queues); (mapped) the wake ring (sys.sched.wakes). The per-actor scheduled words belong to
// the actor table. Called by run control (start: queues and the pool's size; terminate) and by the actor
// table after it writes a lifecycle word (wake). wake() may come from any thread holding the setup lock.

#include "memory.hpp"

#include <ringkernel/device/backoff.cuh>

#include <atomic>
#include <mutex>

namespace rk::detail {

class scheduler {
public:
  scheduler(memory_pool& memory, backend_impl& backend, const runtime_options& options);
  void describe(system_view& sys) const;

  //! start(), before the launch: run queues for `kinds` handler types, each holding up to `actors`
  //! actors, and their views in `sys`. Throws rk::error (nothing kept) when memory runs out.
  void create_queues(std::uint32_t kinds, std::uint32_t actors, system_view& sys);
  //! Scheduled workers per handler type (runtime_options::scheduled_workers, or the backend's default).
  std::uint32_t workers_per_kind() const;

  //! Whether the gateway runs and takes wake requests: set after the launch, cleared at terminate.
  void set_gateway_running(bool running) noexcept { gateway_running_.store(running); }
  //! Asks the gateway to look at actor `id` (its lifecycle word changed). Waits (bounded) for room in the
  //! wake ring; a no-op while the gateway does not run (nothing is scheduled then, and start() needs no
  //! wake: an actor with nothing queued has nothing to acknowledge). Throws rk::error if the ring stays
  //! full for 10 s (the gateway is not draining it).
  void wake(actor_index id);

private:
  memory_pool& memory_;
  backend_impl& backend_;
  const runtime_options& options_;
  mapped_block wake_memory_;
  ring_view h_wakes_;
  ring_view d_wakes_;
  device_block queue_memory_;
  device_block view_memory_;
  std::atomic<bool> gateway_running_{false};
  std::mutex wake_mutex_; //!< host producers claim one at a time (the ring is MPSC; this keeps waits simple)
};

} // namespace rk::detail
