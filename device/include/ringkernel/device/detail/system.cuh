#pragma once
//! \file
//! The shared state of one runtime as seen from the device (or from CPU-backend worker threads).
//! Every field says who writes it and who reads it. `system_view` is trivially copyable and is passed to
//! kernels by value; the structures it points to live in device memory unless marked "mapped"
//! (pinned host memory mapped into the device address space).

#include <ringkernel/device/mailbox.cuh>

namespace rk::detail {

//! Lifecycle of an actor-table entry.
enum class actor_life : std::uint32_t {
  empty = 0, //!< no actor with this id
  live = 1,  //!< accepting messages
};

//! One entry per actor id (the table has `actor_capacity` entries). Written by the host before the
//! entry's `life` becomes live; read by every sender.
struct actor_slot {
  ring_view inbox;
  std::uint64_t tenant = 0;
  std::uint32_t kind = 0; //!< index of the actor's handler type
  std::uint32_t life = static_cast<std::uint32_t>(actor_life::empty);
};

//! Per-actor counters (device memory).
struct alignas(false_sharing_range) actor_counters {
  std::uint64_t sent[status_count] =
      {};                     //!< writers: the actor's worker threads; outcome of each send it made
  std::uint64_t received = 0; //!< writers: any sender; counted before the message is published
  std::uint64_t handled = 0;  //!< writer: the owning worker, after the handler returned
};

//! Counters of the gateway (device memory; single writer: the gateway).
struct alignas(false_sharing_range) gateway_counters {
  std::uint64_t verdicts[status_count] = {}; //!< outcome of delivering each host message
  std::uint64_t processed = 0;               //!< host messages taken from the ingress ring
};

//! Host <-> device control (mapped).
struct alignas(false_sharing_range) control_block {
  std::uint32_t terminate = 0; //!< writer: host; readers: workers and gateway. Non-zero: exit the loop
  std::uint32_t pause = 0;     //!< writer: host; readers: workers. Non-zero: take no new messages
  alignas(false_sharing_range) std::uint32_t trap_actor = 0; //!< writer: a trapping worker; actor id + 1
  std::uint32_t trap_code = 0;                               //!< writer: the same worker
};

//! One per worker (mapped). Writer: that worker's leader thread; reader: the host.
struct alignas(64) worker_status {
  std::uint64_t heartbeat = 0;  //!< advances while the worker loops (coarse)
  std::uint32_t checked_in = 0; //!< 1 once the worker runs: proves it is resident
  std::uint32_t busy_actor = 0; //!< actor id + 1 while the worker is in a burst of handler calls, else 0
  std::uint32_t paused = 0;     //!< 1 while the worker honours a pause request (acknowledgement for the host)
};

//! Verdict of the gateway for one host message (mapped; one per ingress slot). Writer: gateway;
//! reader: the host thread waiting in send_wait.
struct alignas(16) ingress_receipt {
  std::uint64_t position_plus_one = 0; //!< ingress position + 1 this verdict belongs to (0: none yet)
  std::uint32_t verdict = 0;           //!< rk::status
  std::uint32_t reserved_ = 0;
};

struct system_view {
  actor_slot* actors = nullptr;
  actor_counters* counters = nullptr;
  hlc_clock* clocks = nullptr; //!< one per actor; writer and only reader: the owning worker's leader thread
  std::uint32_t actor_capacity = 0;
  std::uint32_t device_idle_sleep_max_ns = 0; //!< backoff cap for device pollers (0: default)
  control_block* control = nullptr;           //!< mapped
  worker_status* workers = nullptr;           //!< mapped
  ring_view ingress;                          //!< mapped (host producers, gateway consumer)
  ingress_receipt* receipts = nullptr;        //!< mapped
  gateway_counters* gateway = nullptr;
  ring_view egress; //!< slots mapped; tail in device memory (device producers, host consumer)
};

// --- small accessors: every shared access says its scope and order here, once ---

RK_HOST_DEVICE inline bool terminate_requested(const system_view& s) noexcept {
  return cuda::atomic_ref<std::uint32_t, pcie_scope>(s.control->terminate)
             .load(cuda::std::memory_order_acquire) != 0;
}
RK_HOST_DEVICE inline bool pause_requested(const system_view& s) noexcept {
  return cuda::atomic_ref<std::uint32_t, pcie_scope>(s.control->pause)
             .load(cuda::std::memory_order_relaxed) != 0;
}
RK_HOST_DEVICE inline actor_life life_of(const actor_slot& a) noexcept {
  // Acquire: the host writes the slot's other fields before making it live.
  return static_cast<actor_life>(
      cuda::atomic_ref<std::uint32_t, peer_scope>(const_cast<std::uint32_t&>(a.life))
          .load(cuda::std::memory_order_acquire));
}
RK_HOST_DEVICE inline void bump(std::uint64_t& counter, std::uint64_t by = 1) noexcept {
  cuda::atomic_ref<std::uint64_t, peer_scope>(counter).fetch_add(by, cuda::std::memory_order_relaxed);
}
RK_HOST_DEVICE inline void store_pcie(std::uint32_t& word, std::uint32_t value) noexcept {
  cuda::atomic_ref<std::uint32_t, pcie_scope>(word).store(value, cuda::std::memory_order_relaxed);
}
RK_HOST_DEVICE inline void store_pcie(std::uint64_t& word, std::uint64_t value) noexcept {
  cuda::atomic_ref<std::uint64_t, pcie_scope>(word).store(value, cuda::std::memory_order_relaxed);
}

} // namespace rk::detail
