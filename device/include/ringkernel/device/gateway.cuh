#pragma once
//! \file
//! The gateway: the device-side forwarder from the host ingress ring into actor mailboxes. One consumer
//! (a single thread on the device, a thread on the CPU backend) takes host messages in order, lets
//! deliver() decide, writes the verdict as a receipt for runtime::send_wait, and releases the slot.

#include <ringkernel/device/backoff.cuh>
#include <ringkernel/device/detail/deliver.cuh>

namespace rk::detail {

//! Forwards at most one host message. Returns whether one was taken.
RK_HOST_DEVICE inline bool gateway_step(const system_view& sys) noexcept {
  const ingress_ring ingress(sys.ingress);
  const std::byte* slot = ingress.try_peek();
  if (slot == nullptr) return false;
  const auto& header = *reinterpret_cast<const envelope*>(slot);
  const status verdict = deliver(sys, header, slot + envelope_bytes);

  const std::uint64_t position =
      cuda::atomic_ref<std::uint64_t, pcie_scope>(*sys.ingress.head).load(cuda::std::memory_order_relaxed);
  ingress_receipt& receipt = sys.receipts[position & (sys.ingress.capacity - 1)];
  store_pcie(receipt.verdict, static_cast<std::uint32_t>(verdict));
  // Release: the verdict is visible before the position that marks it as this message's.
  cuda::atomic_ref<std::uint64_t, pcie_scope>(receipt.position_plus_one)
      .store(position + 1, cuda::std::memory_order_release);

  gateway_counters& counters = *sys.gateway;
  bump(counters.verdicts[static_cast<std::uint32_t>(verdict)]);
  bump(counters.processed);
  ingress.pop();
  return true;
}

#if defined(__CUDACC__)
//! Device gateway loop (thread 0 of a one-warp block); exits when the host sets terminate.
__device__ inline void device_gateway_loop(const system_view& sys, std::uint32_t worker_index) {
  if (threadIdx.x != 0) return;
  worker_status& status_word = sys.workers[worker_index];
  std::uint32_t grace_seen = check_in(sys, status_word);
  backoff idle(sys.device_idle_sleep_max_ns);
  for (std::uint64_t polls = 0;; ++polls) {
    if (gateway_step(sys)) {
      idle.reset();
      if ((polls % 64) != 0) continue;
    } else {
      idle.pause();
    }
    if (terminate_requested(sys)) break;
    note_quiescent(sys, status_word, grace_seen);
    store_pcie(status_word.heartbeat, polls);
  }
  check_out(status_word);
}
#endif

} // namespace rk::detail
