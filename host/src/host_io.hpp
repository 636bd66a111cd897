#pragma once
// Host I/O: messages between host threads and actors through the mapped rings.
//
// Owns (mapped memory): the ingress ring and its receipts (sys.ingress, sys.receipts), the egress ring's
// slots (sys.egress; its claim counter in device memory); (device memory) the gateway counters
// (sys.gateway). Host side: per-slot send_wait flags, host send/receive counters, the host HLC clock.
//
// Hot paths: send, send_keyed, send_descriptor, send_wait and receive may be called from any number of
// threads while the runtime runs; they take no setup lock (tenant slots come from the tenant table's own
// small lock). Shutdown closes the door (phase draining), then waits for senders already inside.
// Never touches the routing, tenant or region tables: the gateway on the device decides every message.

#include "faults.hpp"
#include "memory.hpp"
#include "tenant_table.hpp"

#include <ringkernel/host/runtime.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>

namespace rk::detail {

class host_io {
public:
  host_io(memory_pool& memory, backend_impl& backend, const runtime_options& options,
          const std::atomic<phase>& phase, fault_monitor& faults, const tenant_table& tenants);
  void describe(system_view& sys) const;

  [[nodiscard]] status send(address destination, std::uint32_t type, byte_view payload,
                            const send_options& options);
  [[nodiscard]] status send_wait(address destination, std::uint32_t type, byte_view payload,
                                 std::chrono::nanoseconds timeout, const send_options& options);
  std::optional<received_message> receive(std::chrono::nanoseconds timeout);

  //! Shutdown, after the phase left `running`: waits until no host send is between its phase check and
  //! its publish.
  void wait_for_senders() const;
  std::uint64_t enqueued() const noexcept { return enqueued_.load(std::memory_order_acquire); }
  gateway_counters read_gateway() const;
  void fill_host_counters(runtime_stats& s) const;
  //! Replies still in the egress ring.
  std::uint64_t pending_egress();

private:
  class send_scope;
  status count(status s);
  ring_claim claim_ingress();
  status enqueue(address destination, std::uint32_t type, byte_view payload, const send_options& options,
                 bool hold_receipt, std::uint64_t& position);
  backoff waiting_backoff() const noexcept { return busy_poll_ ? backoff::busy_poll() : backoff{}; }
  hlc_timestamp tick();

  backend_impl& backend_;
  const std::atomic<phase>& phase_;
  fault_monitor& faults_;
  const tenant_table& tenants_;
  bool busy_poll_;
  mapped_block ingress_memory_;
  mapped_block receipt_memory_;
  mapped_block egress_memory_;
  device_block egress_tail_;
  device_block d_gateway_;
  ring_view h_ingress_{};
  ring_view h_egress_{};
  ring_view d_ingress_{};
  ring_view d_egress_{};
  ingress_receipt* h_receipts_ = nullptr;
  std::unique_ptr<std::atomic<std::uint32_t>[]> waiting_; //!< per ingress slot: a send_wait holds its receipt

  std::atomic<int> senders_in_flight_{0};
  std::atomic<std::uint64_t> enqueued_{0};
  std::array<std::atomic<std::uint64_t>, status_count> host_sends_{};
  std::atomic<std::uint64_t> host_received_{0};
  std::mutex egress_mutex_; //!< one consumer of the egress ring at a time
  std::mutex clock_mutex_;
  hlc_clock clock_;
};

} // namespace rk::detail
