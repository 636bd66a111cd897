#pragma once
//! \file
//! The gateway: the device-side forwarder from the host ingress ring into actor mailboxes. One consumer
//! (lane 0 of a one-warp block on the device, whose warp copies each message out of mapped memory first;
//! a thread on the CPU backend) takes host messages in order and lets
//! deliver() decide. A message whose destination mailbox is full is parked (parking.cuh) and tried again
//! on later steps, unless its sender asked for envelope_flags::drop_if_full; so every host message is
//! *settled* exactly once, as delivered or refused with a reason, and nothing is lost to a full mailbox.
//! Settling counts the verdict, advances the settled counters the host's admission reads (in all, and
//! for the message's destination address), and writes a receipt when runtime::send_wait waits for one.
//!
//! Receipts: an ingress envelope's `source` field carries the receipt slot the sending host thread
//! holds (runtime::send_wait, with envelope_flags::wants_receipt), since a host message's source is
//! always the host. The gateway restores `source = host_actor` before anything else reads the envelope.
//! The host holds a receipt slot until it read the verdict (or saw it written after giving up), so a
//! verdict written after any time in the parking area never lands in another message's receipt.

#include <ringkernel/device/backoff.cuh>
#include <ringkernel/device/detail/deliver.cuh>

namespace rk::detail {

//! Records the final verdict of a host message: its receipt (send_wait), the verdict counters and the
//! settled counts the host admits new sends against, in all and for the message's parking queue
//! (release: the ingress slot or parking slot the message used is free before the host counts it).
RK_HOST_DEVICE inline void settle_host_message(const system_view& sys, std::uint32_t queue,
                                               std::uint32_t receipt_slot, std::uint64_t ingress_position,
                                               status verdict) noexcept {
  if (receipt_slot != parking_none) {
    ingress_receipt& receipt = sys.receipts[receipt_slot];
    store_pcie(receipt.verdict, static_cast<std::uint32_t>(verdict));
    // Release: the verdict is visible before the position that marks it as this message's.
    cuda::atomic_ref<std::uint64_t, pcie_scope>(receipt.position_plus_one)
        .store(ingress_position + 1, cuda::std::memory_order_release);
  }
  gateway_counters& counters = *sys.gateway;
  bump(counters.verdicts[static_cast<std::uint32_t>(verdict)]);
  const std::uint64_t settled = load_relaxed(counters.processed) + 1;
  cuda::atomic_ref<std::uint64_t, peer_scope>(counters.processed)
      .store(settled, cuda::std::memory_order_relaxed);
  if (queue != parking_none) { // the destination's credit comes back (counted in device memory)
    const std::uint64_t by_queue = sys.settled_by_queue[queue] + 1;
    sys.settled_by_queue[queue] = by_queue;
    cuda::atomic_ref<std::uint64_t, pcie_scope>(sys.host_settled_by_queue[queue])
        .store(by_queue, cuda::std::memory_order_release);
  }
  cuda::atomic_ref<std::uint64_t, pcie_scope>(*sys.host_settled)
      .store(settled, cuda::std::memory_order_release);
}

//! The receipt slot a host message carries (parking_none: nobody waits for its verdict; a relayed
//! message's source is its sender's remote entry, never a receipt).
RK_HOST_DEVICE inline std::uint32_t receipt_slot_of(const system_view& sys, const envelope& h) noexcept {
  const std::uint16_t wants = envelope_flags::wants_receipt | envelope_flags::relayed;
  return (h.flags & wants) == envelope_flags::wants_receipt && h.source < sys.receipt_capacity ? h.source
                                                                                               : parking_none;
}

//! Whether `a` is a remote entry of this runtime (system.cuh): what a relayed message may name as source.
RK_HOST_DEVICE inline bool is_remote_entry(const system_view& sys, address a) noexcept {
  std::uint32_t hw = 0;
  const route_entry* e = entry_of(sys, a, hw);
  return e != nullptr && e->mailbox == nullptr && next_hop_of(*e) == a;
}

//! The envelope of a host message as deliver() must see it: from the host, unless a cluster proxy relayed
//! it from another rank with the sender's remote entry as source (then it is decided as a K2K send).
RK_HOST_DEVICE inline envelope host_header(const system_view& sys, const std::byte* slot) noexcept {
  envelope h = load_words<envelope>(slot); // four 16-byte loads from the 64-byte aligned ingress slot
  if ((h.flags & envelope_flags::relayed) == 0 || !is_remote_entry(sys, h.source)) h.source = host_actor;
  h.flags = static_cast<std::uint16_t>(h.flags & ~envelope_flags::runtime_only);
  return h;
}

//! After deciding the host message at `message` (its ingress slot, the gateway warp's copy, or its parking
//! slot; read before that is freed): if it was a relay that may be noticed, counts it and, for a refusal,
//! records it for the proxy (relay_refusals.cuh). Reads the envelope again rather than keep it live
//! across deliver().
RK_HOST_DEVICE inline void note_relay_settled(const system_view& sys, const std::byte* message,
                                              status verdict) noexcept {
  const refusal_channel& c = sys.refusals;
  const auto* h = reinterpret_cast<const envelope*>(message);
  if (c.records == nullptr || (h->flags & envelope_flags::relayed) == 0 || !may_be_noticed(h->type_id))
    return;
  parking_state& st = *sys.parking.state;
  // A source that is no remote entry made it a host message: the proxy finds no sender for its record.
  if (verdict != status::delivered && verdict != status::dropped) write_refusal_record(c, st, *h, verdict);
  count_relay_settled(c, st);
}

RK_HOST_DEVICE inline void set_parked_gauge(const system_view& sys, std::int64_t change) noexcept {
  gateway_counters& counters = *sys.gateway;
  cuda::atomic_ref<std::uint64_t, peer_scope>(counters.parked)
      .store(load_relaxed(counters.parked) + static_cast<std::uint64_t>(change),
             cuda::std::memory_order_relaxed);
  if (change > 0) bump(counters.parked_total);
}

//! Whether host messages parked for `h`'s destination wait in a list per priority (parking.cuh): when it
//! is an actor with one mailbox lane per priority, addressed directly (each lane fills on its own); not
//! for an alias, a group, a remote entry or an actor with one lane (which ignores priority).
RK_HOST_DEVICE inline bool parks_by_priority(const system_view& sys, const envelope& h) noexcept {
  if (h.destination == host_actor || is_group_address(h.destination)) return false;
  std::uint32_t hw = 0;
  const route_entry* e = entry_of(sys, h.destination, hw);
  return e != nullptr && e->mailbox != nullptr && e->lanes > 1 && next_hop_of(*e) == h.destination;
}

//! Tries the parked messages of up to `queue_budget` destinations, round-robin over those with any;
//! delivers from the head of each of a queue's lanes (most urgent first) until that lane's mailbox is
//! still full. Returns whether any message was settled.
RK_HOST_DEVICE inline bool retry_parked(const system_view& sys, std::uint32_t queue_budget = 32) noexcept {
  const parking_view& p = sys.parking;
  parking_state& st = *p.state;
  bool progress = false;
  for (std::uint32_t visited = 0; visited < queue_budget && st.active_count != 0; ++visited) {
    if (st.cursor >= st.active_count) st.cursor = 0;
    bool emptied = false;
    // The queue and its head are read again after deliver() rather than kept live across it: 4 registers
    // fewer for the gateway (the PTX audit's budget).
    for (std::uint32_t lane = parking_lanes; lane-- != 0 && !emptied;) {
      while (p.queues[p.active[st.cursor]].head[lane] != parking_none) {
        const status verdict = [&] {
          const std::byte* message = parking_slot(p, p.queues[p.active[st.cursor]].head[lane]);
          return deliver(sys, host_header(sys, message), message + envelope_bytes);
        }();
        if (verdict == status::queue_full) break;
        const std::uint32_t queue = p.active[st.cursor];
        const std::uint32_t slot = p.queues[queue].head[lane];
        const std::byte* message = parking_slot(p, slot);
        const std::uint32_t receipt = receipt_slot_of(sys, *reinterpret_cast<const envelope*>(message));
        unpark_head(p, queue, lane);
        emptied = p.queues[queue].lanes_parked == 0;
        set_parked_gauge(sys, -1);
        settle_host_message(sys, queue, receipt, p.positions[slot], verdict);
        note_relay_settled(sys, message, verdict); // only the gateway reuses a freed parking slot
        progress = true;
        if (emptied) break; // the last active queue moved into this index: visit it next
      }
    }
    if (!emptied) ++st.cursor;
  }
  return progress;
}

//! Settles the host message at ingress `position`, whose bytes are at `message` (the ingress slot itself,
//! or the gateway warp's copy of it in device memory): delivers it, refuses it, or parks it behind earlier
//! messages to the same address; then frees its ingress slot.
RK_HOST_DEVICE inline void take_ingress_at(const system_view& sys, const std::byte* message,
                                           std::uint64_t position) noexcept {
  const ingress_ring ingress(sys.ingress);
  const parking_view& p = sys.parking;
  const envelope header = host_header(sys, message);
  const std::uint32_t receipt = receipt_slot_of(sys, *reinterpret_cast<const envelope*>(message));
  const bool may_park = (header.flags & envelope_flags::drop_if_full) == 0;
  const std::uint32_t queue =
      parking_queue_of(p, header.destination, sys.actor_slot_bits, sys.group_slot_bits);
  // Behind parked messages to the same address (and list): wait behind them (or, with drop_if_full,
  // count as full) if it would be delivered now; a message refused now for anything but room (another
  // tenant's, a removed destination, a quota) is settled at once: it neither waits in, nor holds back, the
  // address's parking share, and its sender's verdict does not depend on the receiver's backlog.
  const bool behind = has_parked(p, queue, header.priority);
  const void* payload = message + envelope_bytes;
  const prepared_delivery decided = prepare_delivery(sys, header, header.payload_length, payload);
  status verdict = decided.verdict;
  if (verdict == status::delivered) {
    if (behind) {
      refund_undelivered(sys, header, 1); // it pays when it is delivered from the parking area
      verdict = status::queue_full;
    } else {
      verdict = commit_delivery(sys, decided, header, payload, nullptr);
    }
  }
  p.state->ingress_head = position + 1;
  if (verdict == status::queue_full && may_park &&
      park(p, queue, parks_by_priority(sys, header), message, position)) {
    set_parked_gauge(sys, +1);
    ingress.pop_at(position);
    return;
  }
  note_relay_settled(sys, message, verdict); // before the pop: on the CPU backend it frees `message`
  ingress.pop_at(position); // before settling: the host counts a settled message's slot as free
  settle_host_message(sys, queue, receipt, position, verdict);
}

//! Takes at most one host message from the ingress ring, read where it lies. Returns whether one was taken.
RK_HOST_DEVICE inline bool take_ingress(const system_view& sys) noexcept {
  const std::uint64_t position = sys.parking.state->ingress_head; // the mapped head is never read back
  const std::byte* slot = ingress_ring(sys.ingress).try_peek_at(position);
  if (slot == nullptr) return false;
  take_ingress_at(sys, slot, position);
  return true;
}

//! Takes the host's wake requests (actors whose lifecycle word it changed: schedule.cuh), at most
//! `budget`. Returns whether it took any.
RK_HOST_DEVICE inline bool take_wakes(const system_view& sys, std::uint32_t budget = 64) noexcept {
  const ingress_ring wakes(sys.sched.wakes);
  std::uint64_t& head = sys.parking.state->wakes_head; // as for ingress: never read back across PCIe
  std::uint32_t taken = 0;
  for (; taken < budget; ++taken) {
    const std::byte* slot = wakes.try_peek_at(head);
    if (slot == nullptr) break;
    const actor_index id = load_words<envelope>(slot).destination;
    wakes.pop_at(head);
    ++head;
    wake_actor(sys, id);
  }
  return taken != 0;
}

//! One gateway step: wake requests, parked messages, then a new one. Returns whether anything moved.
RK_HOST_DEVICE inline bool gateway_step(const system_view& sys) noexcept {
  const bool woke = sys.sched.wakes.slots != nullptr && take_wakes(sys);
  const bool retried = retry_parked(sys);
  return take_ingress(sys) || retried || woke;
}

#if defined(__CUDACC__)
//! The gateway warp copies a host message from its mapped ingress slot into `staging` (device memory,
//! one slot): lane k moves 16-byte words k, k + 32, ..., so a 256-byte message is one round of PCIe reads
//! in flight together instead of sixteen one after another. The first round reads the envelope (and up
//! to 448 payload bytes) before the length is known; words past the message are read, never stored.
//! Every lane of the warp calls it; the caller orders the copy before its use with __syncwarp().
__device__ inline void stage_host_message(std::byte* staging, const std::byte* slot, std::uint32_t slot_bytes,
                                          unsigned lane) {
  constexpr std::uint32_t word_bytes = sizeof(slot_chunk);
  constexpr std::uint32_t round_bytes = 32 * word_bytes;
  const auto* from = reinterpret_cast<const slot_chunk*>(slot);
  auto* to = reinterpret_cast<slot_chunk*>(staging);
  const std::uint32_t slot_words = slot_bytes / word_bytes;
  const slot_chunk first = lane < slot_words ? from[lane] : slot_chunk{};
  // The lane that read the envelope's payload_length hands it to the others.
  constexpr std::uint32_t length_at = offsetof(envelope, payload_length);
  constexpr std::uint32_t length_lane = length_at / word_bytes;
  constexpr std::uint32_t length_shift = (length_at % 8) * 8;
  const std::uint64_t half = length_at % word_bytes >= 8 ? first.high : first.low;
  const auto payload =
      static_cast<std::uint32_t>(__shfl_sync(0xFFFF'FFFFu, half, length_lane) >> length_shift);
  const std::uint32_t capped = payload <= slot_bytes - envelope_bytes ? payload : slot_bytes - envelope_bytes;
  const std::uint32_t words = (envelope_bytes + capped + word_bytes - 1) / word_bytes;
  if (lane < words) to[lane] = first;
  for (std::uint32_t w = lane + 32; w < words; w += 32) to[w] = from[w];
  static_assert(round_bytes >= envelope_bytes, "the first round must hold the envelope");
}

//! Device gateway loop, run by the one warp of its block; exits when the host sets terminate. Lane 0
//! decides (wakes, parked messages, settling) exactly as the CPU backend's gateway thread does; the whole
//! warp copies each new host message out of mapped memory first (stage_host_message).
__device__ inline void device_gateway_loop(const system_view& sys, std::uint32_t worker_index) {
  constexpr unsigned all_lanes = 0xFFFF'FFFFu;
  const unsigned lane = threadIdx.x;
  worker_status& status_word = sys.workers[worker_index];
  std::uint32_t grace_seen = lane == 0 ? check_in(sys, status_word) : 0;
  const ingress_ring ingress(sys.ingress);
  backoff idle(sys.device_idle_sleep_max_ns);
  for (std::uint64_t polls = 0;; ++polls) {
    bool moved = false;
    std::uint64_t position = 0;
    unsigned long long slot_address = 0;
    if (lane == 0) {
      const bool woke = sys.sched.wakes.slots != nullptr && take_wakes(sys);
      moved = retry_parked(sys) || woke;
      position = sys.parking.state->ingress_head; // the mapped head is never read back
      slot_address = reinterpret_cast<unsigned long long>(ingress.try_peek_at(position));
    }
    // Lane 0's acquire of the slot's sequence, then the warp barrier, orders every lane's reads after it.
    slot_address = __shfl_sync(all_lanes, slot_address, 0);
    if (slot_address != 0) {
      __syncwarp();
      stage_host_message(sys.parking.staging, reinterpret_cast<const std::byte*>(slot_address),
                         sys.ingress.slot_bytes, lane);
      __syncwarp(); // the copy is complete before lane 0 reads it and frees the ingress slot
      if (lane == 0) take_ingress_at(sys, sys.parking.staging, position);
      moved = true;
    }
    moved = __shfl_sync(all_lanes, moved, 0) != 0;
    if (moved) {
      idle.reset();
      if ((polls % 64) != 0) continue;
    } else {
      idle.pause();
    }
    const bool stop = __shfl_sync(all_lanes, lane == 0 && terminate_requested(sys), 0) != 0;
    if (stop) break;
    if (lane == 0) {
      note_quiescent(sys, status_word, grace_seen);
      if ((polls % heartbeat_poll_interval) == 0) store_pcie(status_word.heartbeat, polls);
    }
  }
  if (lane == 0) check_out(status_word);
}
#endif

} // namespace rk::detail
