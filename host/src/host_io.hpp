#pragma once
// Host I/O: messages between host threads and actors through the mapped rings.
//
// Owns (mapped memory): the ingress ring and its receipts (sys.ingress, sys.receipts), the egress ring's
// slots (sys.egress; its claim counter in device memory), the gateway's settled counter
// (sys.host_settled); (device memory) the gateway counters (sys.gateway) and the gateway's parking area
// (sys.parking). Host side: per-slot send_wait flags, the admission counter, host send/receive
// counters, the host HLC clock.
//
// Admission: a host send is admitted only while fewer than host_parking_slots host messages are
// unsettled (admitted minus the gateway's settled count, read from mapped memory: no round trip), so
// the gateway can always park a message whose mailbox is full; see parking.cuh.
//
// Hot paths: send, send_keyed, send_descriptor, send_wait and receive may be called from any number of
// threads while the runtime runs; they take no setup lock (tenant slots come from the tenant table's own
// small lock). Shutdown closes the door (phase draining), then waits for senders already inside.
// Never touches the routing, tenant or region tables: the gateway on the device decides every message.

#include "faults.hpp"
#include "memory.hpp"
#include "relay_refusals.hpp"
#include "tenant_table.hpp"

#include <ringkernel/host/runtime.hpp>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace rk::detail {

class host_io {
public:
  host_io(memory_pool& memory, backend_impl& backend, const runtime_options& options,
          const std::atomic<phase>& phase, fault_monitor& faults, const tenant_table& tenants);
  void describe(system_view& sys);

  [[nodiscard]] status send(address destination, std::uint32_t type, byte_view payload,
                            const send_options& options);
  [[nodiscard]] status send_wait(address destination, std::uint32_t type, byte_view payload,
                                 std::chrono::nanoseconds timeout, const send_options& options);
  //! send(), waiting up to `timeout` while the answer would be queue_full; timed_out when it stays full.
  [[nodiscard]] status send_blocking(address destination, std::uint32_t type, byte_view payload,
                                     std::chrono::nanoseconds timeout, const send_options& options);
  std::optional<received_message> receive(std::chrono::nanoseconds timeout);

  // --- cluster proxy (rk::cluster; see ringkernel/host/detail/remote.hpp) ----------------------------
  //! Puts a message from another rank into the ingress ring as the proxy received it: `header.source` is
  //! the sender's remote entry here (or host_actor), `header.tenant` the sender's tenant; the gateway
  //! decides it as a K2K send. enqueued, queue_full (try again: nothing was written), too_large,
  //! not_running.
  [[nodiscard]] status relay(const envelope& header, byte_view payload);
  //! Takes the oldest message bound for another rank, if any (one proxy thread calls it).
  bool take_outbound(received_message& out);
  bool has_outbound_ring() const noexcept { return outbound_.slots.host() != nullptr; }
  //! Messages in the outbound ring not taken yet.
  std::uint64_t pending_outbound();
  ring_geometry outbound_geometry() const noexcept;
  //! Messages handed in with relay() so far.
  std::uint64_t relayed() const noexcept { return relayed_.load(std::memory_order_relaxed); }
  //! The oldest relay the gateway refused and the proxy has not taken yet (relay_refusals.hpp); false
  //! when there is none (or no cluster).
  bool take_refusal(refusal_record& out) { return refusals_ && refusals_->take(out); }
  std::uint64_t pending_refusals() const noexcept { return refusals_ ? refusals_->pending() : 0; }

  //! Shutdown, after the phase left `running`: waits until no host send is between its phase check and
  //! its publish.
  void wait_for_senders() const;
  //! Shutdown, once the phase is `stopped`: wakes host threads waiting in receive(), which take what the
  //! egress ring still holds and otherwise return empty at once (nothing more can arrive).
  void wake_receivers() noexcept;
  //! Whether a host wait should end now: the runtime faulted, or shutdown() completed (nothing more will
  //! arrive or settle).
  bool waits_end();
  std::uint64_t enqueued() const noexcept { return enqueued_.load(std::memory_order_acquire); }
  gateway_counters read_gateway() const;
  //! Host sends to `destination` admitted so far (sent to its address itself, not through an alias or a
  //! group): what sends_settled() compares with.
  std::uint64_t sends_admitted(address destination) const noexcept;
  //! Whether the first `admitted` host sends to `destination` are settled (delivered or refused), of those
  //! that were published: a send that was admitted and then found the ingress ring full took itself back.
  bool sends_settled(address destination, std::uint64_t admitted) const noexcept;
  //! Host messages settled, as published for admission (after the parking and per-destination credits
  //! they return): a send made after reading n finds the room of all n messages given back.
  std::uint64_t settled() const noexcept;
  void fill_host_counters(runtime_stats& s) const;
  //! Replies still in the egress ring.
  std::uint64_t pending_egress();
  //! After the gateway exited: every host message not settled, oldest first per destination (parked
  //! ones, then those still in the ingress ring).
  std::vector<undelivered_message> unsettled_messages() const;

private:
  class send_scope;
  status count(status s);
  ring_claim claim_ingress();
  //! Takes a unit of the parking allowance, in all and for parking queue `queue` (parking_none: an
  //! address that can never be parked), or returns false when either is used up.
  bool admit(std::uint32_t queue);
  void unadmit(std::uint32_t queue) noexcept;
  status enqueue(address destination, std::uint32_t type, byte_view payload, const send_options& options,
                 std::uint32_t receipt_slot, std::uint64_t& position);
  //! Admits and publishes `header` (timestamped here) with `payload` in the ingress ring.
  status enqueue_header(envelope& header, byte_view payload, std::uint64_t& position);
  //! A receipt slot for send_wait, or no_slot when every one is held (by waiters, or by messages whose
  //! waiter gave up and whose verdict is not written yet).
  std::uint32_t acquire_receipt();
  //! Gives a slot back once its verdict was read; `abandoned_at`: the waiter gave up on the message at
  //! that ingress position, so the slot is free only once the gateway wrote that verdict.
  void release_receipt(std::uint32_t slot, std::optional<std::uint64_t> abandoned_at);
  backoff waiting_backoff() const noexcept { return busy_poll_ ? backoff::busy_poll() : backoff{}; }
  //! receive()'s wait on the CPU backend: spin briefly, then park on `lot` until `take()` succeeds.
  wait_result wait_parked(park_lot& lot, const std::function<bool()>& take, std::uint64_t timeout);
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
  device_to_host_ring outbound_; //!< to other ranks (runtime_options::cluster_outbound); empty without
  std::mutex outbound_mutex_;    //!< one consumer at a time
  std::atomic<std::uint64_t> relayed_{0};
  std::optional<relay_refusals> refusals_; //!< with the outbound ring only
  device_block d_gateway_;
  mapped_block settled_memory_;
  // The parking area (device memory; see parking.cuh).
  std::uint32_t parking_capacity_;
  std::uint32_t queue_count_;
  device_block parking_queues_;
  device_block parking_active_;
  device_block parking_next_;
  device_block parking_positions_;
  device_block parking_slots_;
  device_block parking_state_;
  device_block staging_slot_; //!< the device gateway's copy of the host message it is deciding
  std::uint32_t per_destination_;
  device_block settled_by_queue_;
  mapped_block host_settled_by_queue_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> admitted_by_queue_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> settled_seen_by_queue_; //!< see take_credit in host_io.cpp
  parking_view queue_geometry_{}; //!< route_capacity and queue_count for parking_queue_of
  std::uint32_t actor_slot_bits_ = 0;
  std::uint32_t group_slot_bits_ = 0;
  ring_view h_ingress_{};
  ring_view h_egress_{};
  ring_view d_ingress_{};
  ring_view d_egress_{};
  ingress_receipt* h_receipts_ = nullptr;
  std::mutex receipt_mutex_;
  std::vector<std::uint32_t> free_receipts_;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> abandoned_receipts_; //!< (slot, ingress position)

  std::atomic<int> senders_in_flight_{0};
  std::atomic<std::uint64_t> enqueued_{0};
  std::atomic<std::uint64_t> admitted_{0};     //!< sends admitted and not given back (see Admission above)
  std::atomic<std::uint64_t> settled_seen_{0}; //!< the gateway's settled count as last read
  std::array<std::atomic<std::uint64_t>, status_count> host_sends_{};
  std::atomic<std::uint64_t> host_received_{0};
  std::mutex egress_mutex_; //!< one consumer of the egress ring at a time
  std::mutex clock_mutex_;
  hlc_clock clock_;
};

} // namespace rk::detail
