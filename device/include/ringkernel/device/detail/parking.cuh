#pragma once
//! \file
//! The gateway's parking area: host messages whose destination mailbox was full wait here, one FIFO
//! queue per destination address, until there is room. The gateway is the only reader and writer (one
//! thread), so nothing here is atomic; the host reads it only after the gateway exited (shutdown's list
//! of undelivered messages). The gauge of parked messages is in gateway_counters.
//!
//! Why it cannot overflow: the host admits a send only while fewer than `capacity` host messages are
//! unsettled (enqueued but neither delivered nor refused; see host_io::admit), and every unsettled
//! message occupies either an ingress slot or one parking slot, never both. So a free parking slot
//! exists whenever the gateway needs one.
//!
//! Order: a message for an address with parked messages in its lane is parked behind them without being
//! tried, so host messages to one address and lane are delivered in the order they left the ingress ring
//! (per-producer FIFO survives parking). Queues are keyed by the address as sent (an actor or alias slot,
//! or a group slot): a full destination holds back only messages sent to the same address. Within a
//! queue, a message sent straight to an actor with priority lanes waits in the list of its priority, so an
//! urgent one waits only behind urgent messages, not behind the normal ones that filled the normal lane;
//! every other address has one FIFO list. Which of the two a queue is (`by_priority`) is decided when its
//! first message parks and kept while any is parked: a route changed meanwhile (set_route, clear_route)
//! cannot send a newer message to another list than the older ones of its priority.
//!
//! Layout (device memory, one allocation each, built by host_io):
//!   queues[queue_count]   per lane: head / tail slot index (no_slot: empty); the queue's place in `active`
//!   active[capacity]      dense list of non-empty queues, visited round-robin by retry_parked()
//!   next[capacity]        per parking slot: the next slot of its queue, or of the free list
//!   positions[capacity]   per parking slot: the ingress position the message came from (its receipt)
//!   slots[capacity]       a copy of the ingress slot (envelope + payload), `slot_bytes` each

#include <ringkernel/device/envelope.cuh>

namespace rk::detail {

//! Lists per parking queue: one per mailbox lane (priority level).
inline constexpr std::uint32_t parking_lanes = priority_levels;

struct parking_queue {
  //! Per lane: the first parked slot (no_slot: the lane's list is empty) and the last.
  std::uint32_t head[parking_lanes] = {0xFFFF'FFFFu, 0xFFFF'FFFFu, 0xFFFF'FFFFu, 0xFFFF'FFFFu};
  std::uint32_t tail[parking_lanes] = {0xFFFF'FFFFu, 0xFFFF'FFFFu, 0xFFFF'FFFFu, 0xFFFF'FFFFu};
  std::uint32_t active_index = 0; //!< where this queue sits in parking_view::active while non-empty
  std::uint32_t lanes_parked = 0; //!< bit per lane whose list is non-empty (0: the queue is empty)
  std::uint32_t by_priority = 0;  //!< 1: a list per priority; 0: list 0 only (set by the first park)
};
static_assert(parking_lanes == 4, "parking_queue's initialisers list one word per lane");

//! Gateway-private bookkeeping (device memory).
struct parking_state {
  std::uint32_t free_head = 0;    //!< first free parking slot (the host chains all slots at creation)
  std::uint32_t active_count = 0; //!< non-empty queues
  std::uint32_t cursor = 0;       //!< next index of `active` retry_parked() visits
  std::uint32_t reserved_ = 0;
  //! The gateway's copies of the heads of the ingress and wake rings, whose only consumer it is: the heads
  //! live in mapped memory for the host producers to read, and the gateway writes them without reading
  //! them back across PCIe.
  std::uint64_t ingress_head = 0;
  std::uint64_t wakes_head = 0;
  //! The gateway's counts behind refusal_channel::written and ::relays_settled (relay_refusals.cuh).
  std::uint64_t notices_written = 0;
  std::uint64_t relays_settled = 0;
};

struct parking_view {
  parking_queue* queues = nullptr;
  std::uint32_t* active = nullptr;
  std::uint32_t* next = nullptr;
  std::byte* slots = nullptr;
  std::uint64_t* positions = nullptr; //!< per parking slot: the message's ingress position (its receipt)
  parking_state* state = nullptr;
  std::byte* staging = nullptr;  //!< one ingress slot: where the device gateway's warp copies a host message
  std::uint32_t capacity = 0;    //!< parking slots (runtime_options::host_parking_slots)
  std::uint32_t slot_bytes = 0;  //!< the ingress ring's slot size
  std::uint32_t queue_count = 0; //!< route_capacity + group_capacity + 1 (the host's, the last)
  std::uint32_t route_capacity = 0;
};

inline constexpr std::uint32_t parking_none = 0xFFFF'FFFFu;

//! The queue of destination `a`: actor and alias slots first, then group slots, then the host (messages
//! relayed from another rank to this rank's host wait while the host egress ring is full, as messages to
//! a full mailbox do); parking_none for an address out of range (refused, never full).
RK_HOST_DEVICE inline std::uint32_t parking_queue_of(const parking_view& p, address a,
                                                     std::uint32_t actor_slot_bits,
                                                     std::uint32_t group_slot_bits) noexcept {
  if (p.queue_count == 0) return parking_none;
  if (a == host_actor) return p.queue_count - 1;
  std::uint32_t q;
  if (is_group_address(a)) {
    q = p.route_capacity + (group_of(a) & ((std::uint32_t{1} << group_slot_bits) - 1u));
  } else {
    q = a & ((std::uint32_t{1} << actor_slot_bits) - 1u);
    if (q >= p.route_capacity) return parking_none;
  }
  return q < p.queue_count - 1 ? q : parking_none;
}

//! The list of `q` a message of `priority` waits in.
RK_HOST_DEVICE inline std::uint32_t parking_lane(const parking_queue& q, std::uint8_t priority) noexcept {
  if (q.by_priority == 0) return 0;
  return priority < parking_lanes ? priority : parking_lanes - 1;
}

//! Whether a message of `priority` to `queue`'s address must wait behind parked ones.
RK_HOST_DEVICE inline bool has_parked(const parking_view& p, std::uint32_t queue,
                                      std::uint8_t priority) noexcept {
  if (queue == parking_none || p.queues[queue].lanes_parked == 0) return false;
  const parking_queue& q = p.queues[queue];
  return q.head[parking_lane(q, priority)] != parking_none;
}

RK_HOST_DEVICE inline std::byte* parking_slot(const parking_view& p, std::uint32_t slot) noexcept {
  return p.slots + std::size_t{slot} * p.slot_bytes;
}

//! Copies `message` (an envelope and its payload) to the tail of its list in `queue` (`by_priority`
//! applies when the queue is empty: see the file comment). Returns false only if no parking slot is free,
//! which the host's admission rule prevents (see the file comment).
RK_HOST_DEVICE inline bool park(const parking_view& p, std::uint32_t queue, bool by_priority,
                                const std::byte* message, std::uint64_t ingress_position) noexcept {
  parking_state& st = *p.state;
  const std::uint32_t slot = st.free_head;
  if (slot == parking_none || slot >= p.capacity || queue == parking_none) return false;
  st.free_head = p.next[slot];
  const auto& header = *reinterpret_cast<const envelope*>(message);
  parking_queue& q = p.queues[queue];
  if (q.lanes_parked == 0) q.by_priority = by_priority ? 1u : 0u;
  const std::uint32_t lane = parking_lane(q, header.priority);
  const std::uint32_t payload =
      header.payload_length <= p.slot_bytes - envelope_bytes ? header.payload_length : 0;
  // Slots are 64-byte aligned and sized: copy whole 8-byte words.
  const std::uint32_t words = (envelope_bytes + payload + 7) / 8;
  const auto* from = reinterpret_cast<const std::uint64_t*>(message);
  auto* to = reinterpret_cast<std::uint64_t*>(parking_slot(p, slot));
  for (std::uint32_t i = 0; i < words; ++i) to[i] = from[i];
  p.next[slot] = parking_none;
  p.positions[slot] = ingress_position;
  if (q.lanes_parked == 0) {
    q.active_index = st.active_count;
    p.active[st.active_count++] = queue;
  }
  if (q.head[lane] == parking_none) {
    q.head[lane] = slot;
    q.lanes_parked |= 1u << lane;
  } else {
    p.next[q.tail[lane]] = slot;
  }
  q.tail[lane] = slot;
  return true;
}

//! Removes the head of `lane` in `queue` (after it was delivered or refused) and gives its slot back; a
//! queue that empties leaves the active list (the last active queue takes its place).
RK_HOST_DEVICE inline void unpark_head(const parking_view& p, std::uint32_t queue,
                                       std::uint32_t lane) noexcept {
  parking_state& st = *p.state;
  parking_queue& q = p.queues[queue];
  const std::uint32_t slot = q.head[lane];
  q.head[lane] = p.next[slot];
  p.next[slot] = st.free_head;
  st.free_head = slot;
  if (q.head[lane] != parking_none) return;
  q.tail[lane] = parking_none;
  q.lanes_parked &= ~(1u << lane);
  if (q.lanes_parked != 0) return;
  const std::uint32_t last = p.active[--st.active_count];
  p.active[q.active_index] = last;
  p.queues[last].active_index = q.active_index;
}

} // namespace rk::detail
