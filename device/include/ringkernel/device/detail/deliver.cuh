#pragma once
//! \file
//! The one place where the device decides what happens to a message. Every path (K2K sends from
//! handlers, host messages forwarded by the gateway, replies to the host, aggregated warp sends) calls
//! prepare_delivery() and nothing reaches a destination ring except through it:
//!   1. a K2K send of a type marked not routable -> not_routable
//!   2. route resolution: indirect routes (one hop each, at most max_hops) -> max_hops_exceeded;
//!      a group picks a live member (round-robin, or by hash of the route key); an unknown or
//!      non-accepting destination -> not_found (or a counted `dropped` with drop_if_unroutable)
//!   3. the destination lane by priority; the payload must fit its slot -> too_large
//! Only then are slots claimed and bytes written.

#include <ringkernel/device/detail/system.cuh>

namespace rk::detail {

//! splitmix64 finaliser: spreads keys before `% members`.
RK_HOST_DEVICE constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

//! Whether the actor at `e` takes direct messages now (live or paused, not stopped or faulted).
RK_HOST_DEVICE inline bool accepts_messages(const route_entry& e) noexcept {
  const std::uint32_t hw = host_word_of(e);
  const auto hs = static_cast<host_state>(state_in(hw));
  if (hs != host_state::live && hs != host_state::paused) return false;
  const device_state ds = current_device_state(hw, device_word_of(e));
  return ds != device_state::stopped && ds != device_state::faulted;
}

//! Whether `member` may be picked by a group send: live (not paused, stopping, stopped or faulted) and
//! reachable directly.
RK_HOST_DEVICE inline bool eligible_member(const system_view& s, address member) noexcept {
  if (member >= s.route_capacity) return false;
  const route_entry& e = s.routes[member];
  const std::uint32_t hw = host_word_of(e);
  if (static_cast<host_state>(state_in(hw)) != host_state::live || next_hop_of(e) != member) return false;
  const device_state ds = current_device_state(hw, device_word_of(e));
  return ds != device_state::stopped && ds != device_state::faulted;
}

RK_HOST_DEVICE inline bool type_blocked(const system_view& s, std::uint32_t type) noexcept {
  if (type >= s.blocked_type_limit) return false;
  const std::uint32_t word = cuda::atomic_ref<std::uint32_t, peer_scope>(s.blocked_types[type / 32])
                                 .load(cuda::std::memory_order_relaxed);
  return ((word >> (type % 32)) & 1u) != 0;
}

//! A member of group `g` for `header`, or host_actor when none is eligible.
//! Round-robin: every candidate tried takes the next value of the group's shared cursor, so skipping a
//! member that is not live consumes its turn and the live members keep an even share. Keyed: starts at
//! hash(key) and takes the first eligible member from there, so a key keeps its member while that member
//! stays live.
RK_HOST_DEVICE inline address pick_member(const system_view& s, std::uint32_t g,
                                          const envelope& header) noexcept {
  if (g >= s.group_capacity) return host_actor;
  const group_entry entry = s.groups[g];
  if (entry.count == 0) return host_actor;
  const bool keyed = (header.flags & envelope_flags::keyed) != 0;
  const std::uint32_t start = keyed ? static_cast<std::uint32_t>(mix64(header.route_key) % entry.count) : 0;
  for (std::uint32_t k = 0; k < entry.count; ++k) {
    const std::uint32_t turn = keyed ? start + k
                                     : cuda::atomic_ref<std::uint32_t, peer_scope>(s.group_cursors[g])
                                           .fetch_add(1, cuda::std::memory_order_relaxed);
    const address candidate = s.group_members[entry.first + turn % entry.count];
    if (eligible_member(s, candidate)) return candidate;
  }
  return host_actor;
}

struct resolution {
  status verdict = status::not_found;
  address actor = host_actor; //!< the actor that receives (host_actor: the host egress ring)
  std::uint32_t hops = 0;     //!< hops taken including the indirect routes followed here
};

//! Resolves the destination of `header` to one receiving actor (or the host).
RK_HOST_DEVICE inline resolution resolve(const system_view& s, const envelope& header) noexcept {
  std::uint32_t hops = header.hops;
  if (hops > s.max_hops) return {status::max_hops_exceeded, host_actor, hops};
  address d = header.destination;
  for (;;) {
    if (d == host_actor) return {status::delivered, host_actor, hops};
    if (is_group_address(d)) {
      const address member = pick_member(s, group_of(d), header);
      if (member == host_actor) return {status::not_found, host_actor, hops};
      return {status::delivered, member, hops};
    }
    if (d >= s.route_capacity) return {status::not_found, host_actor, hops};
    const route_entry& e = s.routes[d];
    const auto hs = static_cast<host_state>(state_in(host_word_of(e)));
    if (hs == host_state::empty) return {status::not_found, host_actor, hops};
    const address next = next_hop_of(e);
    if (next != d) {
      if (hops >= s.max_hops) return {status::max_hops_exceeded, host_actor, hops};
      ++hops;
      d = next;
      continue;
    }
    if (!accepts_messages(e)) return {status::not_found, host_actor, hops};
    return {status::delivered, d, hops};
  }
}

//! A decided delivery: where the bytes go. `verdict != delivered` means nothing may be written.
struct prepared_delivery {
  status verdict = status::not_found;
  address actor = host_actor; //!< host_actor: the egress ring
  std::uint32_t lane = 0;
  std::uint32_t hops = 0;
};

//! Steps 1-3 of the file comment for a message of `payload_length` bytes.
RK_HOST_DEVICE inline prepared_delivery prepare_delivery(const system_view& s, const envelope& header,
                                                         std::uint32_t payload_length) noexcept {
  const bool drop = (header.flags & envelope_flags::drop_if_unroutable) != 0;
  const bool k2k = header.source != host_actor && header.destination != host_actor;
  if (k2k && type_blocked(s, header.type_id)) return {status::not_routable};
  const resolution r = resolve(s, header);
  if (r.verdict != status::delivered) {
    return {r.verdict == status::not_found && drop ? status::dropped : r.verdict};
  }
  if (r.actor == host_actor) {
    if (payload_length > s.egress.slot_bytes - envelope_bytes) return {status::too_large};
    return {status::delivered, host_actor, 0, r.hops};
  }
  const route_entry& e = s.routes[r.actor];
  const std::uint32_t lane =
      e.lanes == 1 ? 0 : (header.priority < priority_levels ? header.priority : priority_levels - 1);
  if (payload_length > e.geometry.payload_capacity()) return {status::too_large};
  return {status::delivered, r.actor, lane, r.hops};
}

//! Delivers a single message after prepare_delivery() allowed it. `sender` (may be null for the host)
//! counts the slot reservation.
RK_HOST_DEVICE inline status commit_delivery(const system_view& s, const prepared_delivery& p,
                                             const envelope& header, const void* payload,
                                             actor_counters* sender) noexcept {
  envelope routed = header;
  routed.hops = static_cast<std::uint8_t>(p.hops);
  status st;
  if (p.actor == host_actor) {
    st = egress_ring(s.egress).try_send(routed, payload);
  } else {
    std::uint64_t& received = s.counters[p.actor].received;
    // Counting before publish keeps `received >= handled + discarded` at every instant, which shutdown's
    // drain detection relies on.
    st = mailbox(lane_view(s.routes[p.actor], p.lane)).try_send(routed, payload, [&received] {
      bump(received);
    });
  }
  if (st == status::delivered && sender != nullptr) bump(sender->reservations);
  return st;
}

//! Decides and, if allowed, delivers `header` + inline `payload`. Returns the verdict; on any verdict
//! other than `delivered` nothing was written anywhere.
RK_HOST_DEVICE inline status deliver(const system_view& s, const envelope& header, const void* payload,
                                     actor_counters* sender = nullptr) noexcept {
  const prepared_delivery p = prepare_delivery(s, header, header.payload_length);
  if (p.verdict != status::delivered) return p.verdict;
  return commit_delivery(s, p, header, payload, sender);
}

} // namespace rk::detail
