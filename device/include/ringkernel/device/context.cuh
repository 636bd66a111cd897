#pragma once
//! \file
//! rk::actor_context: what a handler receives as `ctx`. Identity, cooperative thread primitives and the
//! send family. The runtime stamps source, tenant and timestamp on every send; a handler cannot set them.
//!
//! Threads: on CUDA every thread of the worker (a thread block of `threads_per_worker` threads) runs the
//! handler; on the CPU backend one thread does, and thread_count() is 1. Write handlers against
//! thread_rank()/thread_count() and they are correct on both. Sends are per calling thread: a handler
//! that should send once does so from the leader (`if (ctx.is_leader())`). On the CPU backend `ctx` belongs
//! to the thread that called the handler: do not hand it to threads of your own (its counters are written
//! without locked instructions there, see bump_own).

#include <ringkernel/device/detail/deliver.cuh>
#include <ringkernel/device/message.cuh>
#include <ringkernel/device/region.cuh>

#if defined(__CUDACC__)
#include <cub/warp/warp_scan.cuh>
#endif

namespace rk {

//! Per-send choices a sender may make (the rest of the envelope is stamped by the runtime).
struct send_options {
  std::uint64_t correlation_id = 0;
  rk::priority priority = rk::priority::normal;
  std::uint16_t flags = envelope_flags::none; //!< envelope_flags::drop_if_unroutable, ...
  std::uint64_t key = 0;                      //!< route key; used when flags has envelope_flags::keyed
  //! Host sends only: the tenant the host acts for (actors always send as their own tenant).
  std::uint64_t tenant = 0;
};

//! actor_stats::fault_code of an actor whose CPU-backend handler threw an exception.
inline constexpr std::uint32_t fault_code_exception = 0xFFFF'FFFEu;

namespace detail {
struct trap_exception {
  actor_index actor;
  std::uint32_t code;
};
//! The CPU backend's record of a ctx.trap() in the handler call this thread runs (code + 1; 0: none), so
//! that a handler's own catch (...) that swallowed the trap_exception still ends as a fault. (A host
//! variable: device code never names it.)
inline thread_local std::uint64_t trapped_code = 0;

//! What a delivered message lets its handler calls read: its descriptor as delivered (region_bytes grants
//! no other). Taken by the worker's leader before the first call on a message, from the slot as the sender
//! wrote it, so that no thread of the handler can have rewritten it yet.
struct delivery_grant {
  region_descriptor descriptor{};
  //! The message was delivered as a descriptor (a word, not a bool: the leader writes it to shared memory
  //! on every message, and the PTX audit keeps byte stores out of the worker loops).
  std::uint32_t granted = 0;
};

RK_HOST_DEVICE inline delivery_grant grant_of(const std::byte* delivered) noexcept {
  delivery_grant g;
  const envelope& e = *reinterpret_cast<const envelope*>(delivered);
  if ((e.flags & envelope_flags::descriptor) == 0 || e.payload_length != sizeof g.descriptor) return g;
  cuda::std::memcpy(&g.descriptor, delivered + envelope_bytes, sizeof g.descriptor);
  g.granted = 1;
  return g;
}

//! Leader, after a call that deferred the message in `slot` (every thread done with it): writes back what
//! the message was delivered with (its descriptor flag, and a descriptor's length and bytes). The next call
//! takes its grant from the slot again: a handler that rewrote its (const) slot before deferring had that
//! rewrite granted (a larger range of the region, or another region of its tenant).
RK_HOST_DEVICE inline void restore_grant(const std::byte* slot, const delivery_grant& g) noexcept {
  auto* bytes = const_cast<std::byte*>(slot); // the runtime's own mailbox slot, held by this worker
  auto& e = *reinterpret_cast<envelope*>(bytes);
  if (g.granted == 0) {
    e.flags = static_cast<std::uint16_t>(e.flags & ~envelope_flags::descriptor);
    return;
  }
  e.flags = static_cast<std::uint16_t>(e.flags | envelope_flags::descriptor);
  e.payload_length = sizeof g.descriptor;
  // Typed stores, as message::as reads payloads (8-byte aligned after the 64-byte envelope): a memcpy
  // into std::byte compiled to byte stores.
  *reinterpret_cast<region_descriptor*>(bytes + envelope_bytes) = g.descriptor;
}
} // namespace detail

class actor_context {
public:
  //! Made by the worker for one delivered message, whose mailbox slot is `delivered` (the only message
  //! region_bytes accepts) and whose descriptor as delivered is `grant` (detail::grant_of; region_bytes
  //! grants no other, whatever the handler writes into its const slot). `run_next`: the worker's run-next
  //! slot (CUDA scheduled workers, see detail/schedule.cuh; null elsewhere).
  RK_HOST_DEVICE actor_context(const detail::system_view& sys, actor_index self, std::uint64_t tenant,
                               hlc_timestamp event_time, const std::byte* delivered = nullptr,
                               const detail::delivery_grant& grant = {},
                               detail::device_run_next* run_next = nullptr) noexcept
      : sys_(&sys), self_(self), slot_(detail::slot_of(sys, self)), tenant_(tenant), event_time_(event_time),
        delivered_(delivered), run_next_(run_next), granted_(grant.descriptor),
        granted_ok_(grant.granted != 0) {}

  RK_HOST_DEVICE actor_index self() const noexcept { return self_; }
  RK_HOST_DEVICE std::uint64_t tenant() const noexcept { return tenant_; }
  //! HLC time of the message being handled (after merging with the sender's timestamp).
  RK_HOST_DEVICE hlc_timestamp event_time() const noexcept { return event_time_; }

  RK_HOST_DEVICE std::uint32_t thread_rank() const noexcept {
    NV_IF_TARGET(NV_IS_DEVICE, (return threadIdx.x;), (return 0;))
  }
  RK_HOST_DEVICE std::uint32_t thread_count() const noexcept {
    NV_IF_TARGET(NV_IS_DEVICE, (return blockDim.x;), (return 1;))
  }
  RK_HOST_DEVICE bool is_leader() const noexcept { return thread_rank() == 0; }
  //! Barrier over the worker's threads. Every thread of the worker must reach it (no divergence).
  RK_HOST_DEVICE void sync() const noexcept { NV_IF_TARGET(NV_IS_DEVICE, (__syncthreads();), ()) }
  //! Calls f(i) for i in [0, n), spread over the worker's threads (a plain loop on the CPU backend).
  template <class F>
  RK_HOST_DEVICE void parallel_for(std::uint32_t n, F&& f) const {
    for (std::uint32_t i = thread_rank(); i < n; i += thread_count()) f(i);
  }

  //! Sends to an actor, a group (round-robin over live members) or an alias, decided on the device.
  //! Never blocks; returns the verdict (invalid_descriptor, with a descriptor_violation audit record, for a
  //! payload that names no bytes: a null pointer with a nonzero size).
  [[nodiscard]] RK_HOST_DEVICE status send(address destination, std::uint32_t type, byte_view payload,
                                           const send_options& options = {}) const noexcept {
    if (payload.data == nullptr && payload.size != 0)
      return refuse_as_descriptor(make_header(destination, type, 0, options, 0), 1);
    return send_one(make_header(destination, type, payload.size, options, 0), payload.data);
  }
  //! Sends to a group member chosen by hash of `key`: the same key reaches the same member while it is live.
  [[nodiscard]] RK_HOST_DEVICE status send_keyed(address group, std::uint64_t key, std::uint32_t type,
                                                 byte_view payload,
                                                 send_options options = {}) const noexcept {
    options.flags |= envelope_flags::keyed;
    options.key = key;
    return send(group, type, payload, options);
  }
  //! Sends to the host egress ring (collected by runtime::receive).
  [[nodiscard]] RK_HOST_DEVICE status send_host(std::uint32_t type, byte_view payload,
                                                const send_options& options = {}) const noexcept {
    return send(host_actor, type, payload, options);
  }
  //! Replies to the sender of `request` (an actor or the host) with the request's type and correlation id.
  [[nodiscard]] RK_HOST_DEVICE status reply(const message& request, byte_view payload) const noexcept {
    return reply(request, request.type(), payload);
  }
  [[nodiscard]] RK_HOST_DEVICE status reply(const message& request, std::uint32_t type,
                                            byte_view payload) const noexcept {
    send_options options;
    options.correlation_id = request.correlation_id();
    options.priority = request.priority();
    return send(request.source(), type, payload, options);
  }
  //! Passes `m` on to `destination` as one more hop, keeping its type, payload, correlation id, priority,
  //! flags and route key (a descriptor stays a descriptor and is validated again for this sender; a
  //! keyed message keeps its key). A message forwarded more than runtime_options::max_hops times is
  //! refused with max_hops_exceeded.
  [[nodiscard]] RK_HOST_DEVICE status forward(const message& m, address destination) const noexcept {
    send_options options;
    options.correlation_id = m.correlation_id();
    options.priority = m.priority();
    options.flags = m.header().flags;
    options.key = m.header().route_key;
    const std::uint32_t hops = m.hops() + 1;
    return send_one(make_header(destination, m.type(), m.size(), options, hops), m.payload().data);
  }

  //! Sends `count` messages of one type to one destination (an actor, group, alias or the host): all
  //! delivered, in order, or none (the status says why; too_large also when `count` exceeds the
  //! destination ring's capacity), and counted `count` times under that one status. Warp-aggregated on CUDA:
  //! when every lane of a full warp calls this together (a warp-collective; lanes with nothing to send pass
  //! count 0), the lanes that send to the same destination, type, priority, flags and route key reserve
  //! their slots with one atomic, offsets from cub::WarpScan. Otherwise (partial warps, the CPU backend)
  //! each call reserves its `count` slots with one atomic. A group destination sends the batch of such lanes
  //! to one member; each lane's outcome is what its own call would get.
  [[nodiscard]] RK_HOST_DEVICE status send_aggregated(address destination, std::uint32_t type,
                                                      const byte_view* payloads, std::uint32_t count,
                                                      const send_options& options = {}) const noexcept {
    // Descriptors go one by one (send_descriptor); a payload that names no bytes: see send().
    bool refused = (options.flags & envelope_flags::descriptor) != 0 || (count != 0 && payloads == nullptr);
    for (std::uint32_t i = 0; i < count && !refused; ++i)
      refused = payloads[i].data == nullptr && payloads[i].size != 0;
    if (refused) return refuse_as_descriptor(make_header(destination, type, 0, options, 0), count);
#if defined(__CUDA_ARCH__)
    // Warp-uniform: lanes that execute __activemask() together all get the same mask, so either all 32
    // lanes ran it together and every one of them takes the collective path, or none sees the full mask
    // (lanes that arrive apart each see only their own group) and each takes the per-call path. A lane
    // cannot see the full mask while another does not, so no lane waits in a _sync call for one that took
    // the other path. (Lanes that arrive apart lose the aggregation, not correctness.)
    if (__activemask() == 0xffff'ffffu && blockDim.x % 32 == 0)
      return send_warp_aggregated(destination, type, payloads, count, options);
#endif
    return send_batch(destination, type, payloads, count, options);
  }

  //! Sends a zero-copy descriptor instead of inline bytes. The device checks it before delivery (live
  //! region, current generation, not a slab, in bounds, below the append cursor, owned by or shared with
  //! this actor's tenant) and refuses anything else with invalid_descriptor.
  [[nodiscard]] RK_HOST_DEVICE status send_descriptor(address destination, std::uint32_t type,
                                                      const region_descriptor& descriptor,
                                                      send_options options = {}) const noexcept {
    options.flags |= envelope_flags::descriptor;
    return send(destination, type, as_bytes(descriptor), options);
  }
  //! The bytes a received descriptor names, read in place; valid during this handler call. Region access
  //! is a capability the runtime grants per delivery: `m` must be the message this call was given (a
  //! message a handler builds itself grants nothing), and its descriptor is checked again now exactly as on
  //! delivery (live region, same generation, policy, bounds, owned by or shared with this actor's tenant),
  //! and must be the one delivered: neither a rewritten slot (even naming another region of this tenant,
  //! or more of the same one) nor a region unregistered since delivery yields a byte. Empty when `m`
  //! carries no descriptor; a refusal is also reported to the audit log (descriptor_violation).
  RK_HOST_DEVICE byte_view region_bytes(const message& m) const noexcept {
    if ((m.header().flags & envelope_flags::descriptor) == 0) return {};
    const bool delivered =
        delivered_ != nullptr && reinterpret_cast<const std::byte*>(&m.header()) == delivered_;
    // One read of the slot: what is checked is what is used, whatever the slot holds meanwhile.
    region_descriptor d{};
    const bool sized = m.size() == sizeof d && m.payload().data != nullptr;
    if (sized) cuda::std::memcpy(&d, m.payload().data, sizeof d);
    const bool as_delivered = granted_ok_ && d.region == granted_.region &&
                              d.generation == granted_.generation && d.offset == granted_.offset &&
                              d.length == granted_.length;
    if (!delivered || !sized || !as_delivered || !detail::descriptor_valid(*sys_, tenant_, &d, sizeof d)) {
      if (is_leader()) refuse_region_access(d);
      return {};
    }
    return {detail::relaxed(sys_->regions[d.region].base) + d.offset, static_cast<std::uint32_t>(d.length)};
  }

  //! Keeps the message being handled: it is not released, and the actor's worker offers it to the
  //! handler again on the actor's next turn (after its other actors on the CPU backend, after a backoff on
  //! CUDA), so a handler whose send found the destination full (queue_full) can wait for room without
  //! spinning and without losing either message. The whole call repeats, so defer before any effect that
  //! must not happen twice (typically: `if (ctx.send(...) == rk::status::queue_full) { ctx.defer();
  //! return; }`). Messages behind it in the same lane wait; the mailbox fills and pushes back on its own
  //! senders, which can defer in turn (backpressure along a pipeline, down to the host's parking area).
  //! Along a cycle (actors that send to each other, each deferring on a full mailbox) every head message
  //! can end up waiting for another full mailbox: a deadlock the runtime does not break (shutdown()
  //! reports it as not drained); where traffic can go round, refuse or drop instead of deferring.
  //! Counted per actor in actor_stats::deferred. Any thread of the worker may call it.
  RK_HOST_DEVICE void defer() const noexcept {
    cuda::atomic_ref<std::uint32_t, peer_scope>(sys_->privates[slot_].defer_requested)
        .store(1u, cuda::std::memory_order_relaxed);
  }

  //! Marks this actor faulted with `code`: it takes no more messages (later arrivals are discarded and
  //! counted), groups skip it, and runtime::respawn can bring it back. The current handler call finishes.
  //! Called by several threads of the worker, or more than once, it is one fault with one audit record.
  RK_HOST_DEVICE void fault(std::uint32_t code) const noexcept {
    detail::fault_actor(*sys_, self_, code, event_time_);
  }

  //! Ends this handler call with a fault attributed to this actor and `code`. On CUDA this is `__trap()`:
  //! the context becomes unusable, as with any device fault, every kernel stops, and the host surfaces an
  //! rk::error naming the actor. On the CPU backend only this actor faults (as if the handler had thrown):
  //! it is marked faulted, listed in runtime::faults(), and everything else keeps running. There it throws
  //! an exception of the runtime's own type; a catch (...) in the handler that swallows it delays the end of
  //! the call to the handler's return, but the call still ends as this fault.
  RK_HOST_DEVICE void trap(std::uint32_t code) const {
    NV_IF_TARGET(NV_IS_DEVICE,
                 (detail::store_pcie(sys_->control->trap_code, code);
                  detail::store_pcie(sys_->control->trap_actor, self_ + 1); __threadfence_system();
                  __trap();),
                 (detail::trapped_code = std::uint64_t{code} + 1; throw detail::trap_exception{self_, code};))
  }

private:
  RK_HOST_DEVICE void refuse_region_access(const region_descriptor& d) const noexcept {
    audit_record r;
    r.time = event_time_;
    r.tenant = tenant_;
    r.other_tenant =
        d.region < sys_->region_capacity ? detail::relaxed(sys_->regions[d.region].owner_tenant) : 0;
    r.actor = self_;
    r.other_actor = self_;
    r.detail = static_cast<std::uint32_t>(status::invalid_descriptor);
    r.value = d.region;
    r.event = audit_event::descriptor_violation;
    r.level = audit_level::warning;
    r.tag = detail::audit_tag_of(*sys_, self_);
    (void)emit_audit(sys_->audit, r);
  }

  RK_HOST_DEVICE envelope make_header(address destination, std::uint32_t type, std::uint32_t length,
                                      const send_options& options, std::uint32_t hops) const noexcept {
    envelope header;
    header.tenant = tenant_;
    header.correlation_id = options.correlation_id;
    header.timestamp = event_time_;
    header.type_id = type;
    header.source = self_;
    header.destination = destination;
    header.payload_length = length;
    header.flags = static_cast<std::uint16_t>(options.flags & ~envelope_flags::runtime_only);
    header.priority = priority_byte(options.priority);
    header.hops = static_cast<std::uint8_t>(hops > 255 ? 255 : hops);
    header.route_key = options.key;
    header.tenant_slot = sys_->routes[slot_].tenant_slot;
    return header;
  }

  RK_HOST_DEVICE detail::actor_counters& counters() const noexcept {
    return sys_->counters[slot_];
  }

  RK_HOST_DEVICE status count_sent(status verdict, std::uint32_t messages = 1) const noexcept {
    detail::bump_own(detail::sent_counter(counters(), verdict), messages);
    return verdict;
  }

  //! Refuses `messages` sends of `header` whose payload the device cannot take (one that names no bytes,
  //! or descriptors in a batch) as invalid_descriptor: counted, and one audit record each, like any
  //! invalid descriptor, before anything is resolved (a foreign destination leaves no tenant record).
  RK_HOST_DEVICE status refuse_as_descriptor(const envelope& header, std::uint32_t messages) const noexcept {
    detail::audit_refusal(*sys_, header, audit_event::descriptor_violation, status::invalid_descriptor, 0,
                          header.destination, 0, messages);
    return count_sent(status::invalid_descriptor, messages);
  }

  RK_HOST_DEVICE status send_one(const envelope& header, const void* payload) const noexcept {
    const status verdict = detail::deliver(*sys_, header, payload, &counters(), run_next_);
    return verdict == status::delivered ? verdict : count_sent(verdict); // deliver() counted a delivery
  }

  //! Largest payload of a batch (all must fit the destination slot).
  RK_HOST_DEVICE static std::uint32_t largest(const byte_view* payloads, std::uint32_t count) noexcept {
    std::uint32_t m = 0;
    for (std::uint32_t i = 0; i < count; ++i) m = payloads[i].size > m ? payloads[i].size : m;
    return m;
  }

  //! Writes messages [0, count) into positions first.. of `ring` (claimed, not yet published).
  RK_HOST_DEVICE void write_batch(const mailbox& ring, std::uint64_t first, envelope header,
                                  const byte_view* payloads, std::uint32_t count) const noexcept {
    for (std::uint32_t i = 0; i < count; ++i) {
      header.payload_length = payloads[i].size;
      mailbox::write_slot(ring.slot_at(first + i), header, payloads[i].data);
    }
  }

  //! One call, one reservation: the non-warp path of send_aggregated.
  RK_HOST_DEVICE status send_batch(address destination, std::uint32_t type, const byte_view* payloads,
                                   std::uint32_t count, const send_options& options) const noexcept {
    if (count == 0) return status::delivered;
    envelope header = make_header(destination, type, 0, options, 0);
    const detail::prepared_delivery p =
        detail::prepare_delivery(*sys_, header, largest(payloads, count), payloads[0].data, count);
    if (p.verdict != status::delivered) return count_sent(p.verdict, count);
    header.hops = static_cast<std::uint8_t>(p.hops);
    if (p.remote()) header.destination = p.actor; // see commit_delivery
    const auto undelivered = [&](status why) {
      detail::refund_undelivered(*sys_, header, count);
      return count_sent(why, count);
    };
    if (p.host_bound()) { // a ring the host consumes: the same all-or-nothing claim, in its own scopes
      const egress_ring ring(detail::host_bound_ring(*sys_, p));
      if (count > ring.view().capacity) return undelivered(status::too_large);
      const ring_claim c = ring.try_claim(count);
      if (!c.ok) return undelivered(status::queue_full);
      for (std::uint32_t i = 0; i < count; ++i) {
        header.payload_length = payloads[i].size;
        egress_ring::write_slot(ring.slot_at(c.position + i), header, payloads[i].data);
      }
      detail::count_delivery(*sys_, header, count, &counters()); // before publish: see count_delivery
      for (std::uint32_t i = 0; i < count; ++i) ring.publish(c.position + i);
      detail::notify_host_receiver(*sys_); // for the outbound ring: a spurious wake-up
      return status::delivered;
    }
    const mailbox ring(detail::lane_view(sys_->routes[p.slot], p.lane));
    if (count > ring.view().capacity) return undelivered(status::too_large);     // can never fit
    const ring_claim c = ring.try_claim(count, cuda::std::memory_order_seq_cst); // the stop protocol
    if (!c.ok) return undelivered(status::queue_full);
    if (!detail::still_accepts(*sys_, p.slot)) { // stopping since prepare_delivery: see deliver.cuh
      detail::cancel_claim(ring, c.position, count);
      detail::wake_receiver(*sys_, p, run_next_);
      return undelivered(detail::cancelled_verdict(header));
    }
    write_batch(ring, c.position, header, payloads, count);
    detail::bump(sys_->counters[p.slot].received, count); // before publish: see commit_delivery
    detail::count_delivery(*sys_, header, count, &counters());
    for (std::uint32_t i = 0; i < count; ++i) ring.publish(c.position + i);
    detail::wake_receiver(*sys_, p, run_next_);
    return status::delivered;
  }

#if defined(__CUDACC__)
  __device__ status send_warp_aggregated(address destination, std::uint32_t type, const byte_view* payloads,
                                         std::uint32_t count, const send_options& options) const noexcept {
#if defined(__CUDA_ARCH__)
    using warp_scan = cub::WarpScan<std::uint32_t>;
    __shared__ typename warp_scan::TempStorage scan_storage[32];
    constexpr unsigned all_lanes = 0xffff'ffffu;
    const unsigned lane = threadIdx.x % 32;
    typename warp_scan::TempStorage& storage = scan_storage[threadIdx.x / 32];

    envelope header = make_header(destination, type, 0, options, 0);
    const std::uint32_t prio = header.priority;
    // Lanes share one decision only when everything it reads is the same: the route key and flags too
    // (keyed sends with different keys went to the leader's member, and its flags decided for all).
    const unsigned peers = __match_any_sync(all_lanes, destination) & __match_any_sync(all_lanes, type) &
                           __match_any_sync(all_lanes, prio | (std::uint32_t{header.flags} << 8)) &
                           __match_any_sync(all_lanes, static_cast<unsigned long long>(header.route_key));
    unsigned pending = __ballot_sync(all_lanes, count > 0);
    status mine = count > 0 ? status::queue_full : status::delivered;

    // One destination group per round; WarpScan is a full-warp collective, so every lane joins every round.
    while (pending != 0) {
      const int leader = __ffs(pending) - 1;
      const unsigned group = __shfl_sync(all_lanes, peers, leader) & pending;
      const bool in_group = ((group >> lane) & 1u) != 0;
      std::uint32_t offset = 0, total = 0;
      warp_scan(storage).ExclusiveSum(in_group ? count : 0u, offset, total);
      std::uint32_t group_largest = in_group ? largest(payloads, count) : 0u;
      for (int delta = 16; delta > 0; delta /= 2) {
        const std::uint32_t other = __shfl_xor_sync(all_lanes, group_largest, delta);
        group_largest = other > group_largest ? other : group_largest;
      }

      std::uint32_t verdict = 0, actor = 0, slot = 0, lane_index = 0, hops = 0;
      std::uint64_t first = 0;
      if (static_cast<int>(lane) == leader) {
        const detail::prepared_delivery p =
            detail::prepare_delivery(*sys_, header, group_largest, nullptr, total);
        verdict = static_cast<std::uint32_t>(p.verdict);
        actor = p.actor;
        slot = p.slot;
        lane_index = p.lane;
        hops = p.hops;
        if (p.verdict == status::delivered && p.remote()) actor = host_actor; // host-bound: per-lane batches
        if (p.verdict == status::delivered && !p.host_bound()) {
          const mailbox ring(detail::lane_view(sys_->routes[p.slot], p.lane));
          const ring_claim c = ring.try_claim(total, cuda::std::memory_order_seq_cst); // the stop protocol
          if (!c.ok) {
            verdict = static_cast<std::uint32_t>(status::queue_full);
          } else if (!detail::still_accepts(*sys_, p.slot)) { // stopping since prepare_delivery
            detail::cancel_claim(ring, c.position, total);
            detail::wake_receiver(*sys_, p, run_next_);
            verdict = static_cast<std::uint32_t>(detail::cancelled_verdict(header));
          } else {
            first = c.position;
          }
        }
        // Claimed: the group's messages are delivered once published below (and counted as passed before
        // that). Otherwise each lane sends (and pays for) its own batch: the group's charge goes back.
        if (p.verdict == status::delivered) {
          if (!p.host_bound() && static_cast<status>(verdict) == status::delivered) {
            detail::count_passed(*sys_, header, total);
          } else {
            detail::refund_undelivered(*sys_, header, total);
          }
        }
      }
      verdict = __shfl_sync(all_lanes, verdict, leader);
      actor = __shfl_sync(all_lanes, actor, leader);
      slot = __shfl_sync(all_lanes, slot, leader);
      lane_index = __shfl_sync(all_lanes, lane_index, leader);
      hops = __shfl_sync(all_lanes, hops, leader);
      first = __shfl_sync(all_lanes, first, leader);

      const bool claimed = static_cast<status>(verdict) == status::delivered && actor != host_actor;
      if (claimed) {
        const mailbox ring(detail::lane_view(sys_->routes[slot], lane_index));
        if (in_group) {
          envelope routed = header;
          routed.hops = static_cast<std::uint8_t>(hops);
          write_batch(ring, first + offset, routed, payloads, count);
          mine = count_sent(status::delivered, count);
        }
        __syncwarp(); // every lane's slot bytes are written (and ordered) before the leader publishes
        if (static_cast<int>(lane) == leader) {
          detail::bump(sys_->counters[slot].received, total); // before publish: see commit_delivery
          detail::bump_own(counters().reservations);
          for (std::uint32_t i = 0; i < total; ++i) ring.publish(first + i);
          detail::wake(*sys_, slot, run_next_);
        }
      } else if (in_group) {
        const status v = static_cast<status>(verdict);
        // The group's total did not fit, or the destination is the host ring: each lane sends its own batch
        // (which counts itself). So does a verdict on sizes or amounts (too_large: the group's largest
        // payload or total; quota_exceeded: the group's total), which a lane's own batch may pass. Any other
        // verdict is about the destination, and applies to the whole group.
        const bool alone = v == status::queue_full || v == status::delivered || v == status::too_large ||
                           v == status::quota_exceeded;
        mine = alone ? send_batch(destination, type, payloads, count, options) : count_sent(v, count);
      }
      pending &= ~group;
    }
    return mine;
#else
    return send_batch(destination, type, payloads, count, options);
#endif
  }
#endif

  const detail::system_view* sys_;
  actor_index self_;
  std::uint32_t slot_; //!< self_'s routing-table slot
  std::uint64_t tenant_;
  hlc_timestamp event_time_;
  const std::byte* delivered_; //!< the mailbox slot of the message this call was given
  detail::device_run_next* run_next_;
  region_descriptor granted_{}; //!< the descriptor delivered_ held when it was delivered (granted_ok_)
  bool granted_ok_ = false;
};

} // namespace rk
