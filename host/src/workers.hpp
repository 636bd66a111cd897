#pragma once
// The worker registry: the control block and one worker_status entry per worker, who holds which entry,
// and what the host learns from them (check-in, pause acknowledgements, quiescence, exit).
//
// Owns (mapped memory): control_block (sys.control) and worker_status[capacity + 1] (sys.workers; the
// last entry is the gateway's). Owns the per-launch device arrays (worker_actors, state pointers).
// Called by run control (start, late launches, pause, shutdown) and by grace periods; setup calls are
// serialised by the coordinator, the wait and read calls may come from any thread (internally locked).
// Never touches the routing table, mailboxes or tenant and region tables.

#include "memory.hpp"

#include <ringkernel/device/backoff.cuh>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace rk::detail {

//! The workers of one handler type within a launch, and the device arrays they read at start.
struct launch_group {
  const actor_type_ops* ops = nullptr;
  //! A scheduled pool of `pool_workers` workers for handler type `kind` (no actor list), else one worker
  //! per actor in `actors`.
  bool scheduled = false;
  std::uint32_t kind = 0;
  std::uint32_t pool_workers = 0;
  std::vector<actor_index> actors;
  std::vector<void*> states; //!< each actor's handler state (device memory)
  std::string description;   //!< "pong, ping" for error messages and stream names
  device_block d_actors;
  device_block d_states;

  std::uint32_t workers() const noexcept {
    return scheduled ? pool_workers : static_cast<std::uint32_t>(actors.size());
  }
};

//! One batch of workers started together: one kernel per handler type on CUDA, threads on the CPU.
struct launch_record {
  std::uint32_t first = 0; //!< worker_status entries [first, first + reserved) belong to it
  std::uint32_t reserved = 0;
  std::uint32_t used = 0; //!< entries the backend used (CPU workers may serve several actors)
  bool started = false;   //!< the backend accepted it (its workers may run at some point)
  bool abandoned = false; //!< its check-in timed out: it may start later, and exits when it does
  std::vector<launch_group> groups;

  //! What the backend needs to start it.
  std::vector<worker_group> backend_groups(const system_view& sys) const;
};

class worker_registry {
public:
  worker_registry(memory_pool& memory, backend_impl& backend, std::uint32_t capacity);

  void describe(system_view& sys) const;
  control_block* host_control() const noexcept { return static_cast<control_block*>(control_.host()); }
  const worker_status* host_status() const noexcept {
    return static_cast<const worker_status*>(status_.host());
  }
  std::uint32_t gateway_entry() const noexcept { return capacity_; }

  //! A launch of `groups` (ops, actors and states filled in): entries reserved and zeroed, worker and
  //! state arrays uploaded. Throws rk::error (nothing kept) when entries or memory run out.
  launch_record& prepare(std::vector<launch_group> groups, const std::string& who);
  //! The backend started `launch` using `used` entries: the rest go back.
  void started(launch_record& launch, std::uint32_t used);
  //! Undoes prepare() for a launch the backend refused before anything ran.
  void discard(launch_record& launch) noexcept;
  //! The launch's check-in timed out: keep its entries and arrays until it is seen to exit.
  void abandon(launch_record& launch) noexcept;

  //! The gateway was started with the first launch (entry gateway_entry()).
  void gateway_started() noexcept;
  //! Waits until the launch's workers (and, if asked, the gateway) checked in. `abort` is polled.
  wait_result await_check_in(const launch_record* launch, bool gateway, std::uint64_t timeout_ns,
                             const std::function<bool()>& abort, backoff idle) const;
  std::uint32_t checked_in(const launch_record& launch) const;

  void request_terminate() noexcept;
  void request_pause(bool pause) noexcept;
  bool pause_requested() const noexcept;
  //! Whether every running worker acknowledged the global pause.
  bool all_paused() const;

  //! Starts a grace period and returns its epoch (see note_quiescent).
  std::uint32_t begin_grace();
  //! Whether every worker that may still run reported quiescence for `epoch` (or exited).
  bool grace_passed(std::uint32_t epoch) const;
  //! Gives back launches whose workers all exited (tells the backend). Returns how many.
  std::size_t collect_exits();
  //! Workers are joined: every launch is over.
  void forget_launches() noexcept;

  //! Actor id + 1 of each worker inside a handler now (for fault reports).
  std::vector<std::uint32_t> busy_actors() const;

  //! What the watchdog reads of one running worker.
  struct worker_sample {
    std::uint32_t entry = 0;
    std::uint32_t busy_actor = 0; //!< actor id + 1, or 0
    std::uint32_t busy_type = 0;
    std::uint64_t heartbeat = 0;
  };
  //! Every actor worker that checked in and has not exited.
  std::vector<worker_sample> sample() const;
  //! Whether worker `entry` is still in the handler call a sample saw (busy_actor and heartbeat as then).
  bool in_call(std::uint32_t entry, std::uint32_t busy_actor, std::uint64_t heartbeat) const;
  //! What worker `entry` was launched for (state dumps).
  struct worker_role {
    std::string serves; //!< its launch group's description ("pong, ping"), or the launch's
    bool scheduled = false;
  };
  worker_role role_of(std::uint32_t entry) const;

private:
  bool exited(std::uint32_t entry) const;
  const worker_status& entry(std::uint32_t w) const {
    return static_cast<const worker_status*>(status_.host())[w];
  }

  memory_pool& memory_;
  backend_impl& backend_;
  std::uint32_t capacity_;
  mapped_block control_;
  device_block live_control_; //!< device_control: what workers poll (see system.cuh)
  mapped_block status_;
  mutable std::mutex mutex_; //!< guards the launch list and entry allocator (read by waits and grace checks)
  range_allocator entries_;
  std::vector<std::unique_ptr<launch_record>> launches_;
  bool gateway_started_ = false;
  std::uint32_t grace_epoch_ = 0; //!< the host's copy of control_block::grace_epoch
  //! Writes one word of the device_control (and returns whether the copy succeeded: after a device fault
  //! it cannot, and then the kernels are gone anyway).
  bool publish_control(std::uint32_t device_control::*word, std::uint32_t value) noexcept;
};

} // namespace rk::detail
