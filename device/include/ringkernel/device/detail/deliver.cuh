#pragma once
//! \file
//! The one place where the device decides what happens to a message. Every path (K2K sends from
//! handlers, host messages forwarded by the gateway, replies to the host, aggregated warp sends) calls
//! prepare_delivery() and nothing reaches a destination ring except through it. In order:
//!   0. a host send addressed to the host -> invalid_destination (runtime::send refuses it first)
//!   1. a K2K send of a type marked not routable -> not_routable
//!   2. route resolution: indirect routes (one hop each; a chain longer than max_hops, or a message that
//!      already took more, -> max_hops_exceeded); a group picks a live member (round-robin, or by hash of
//!      the route key); an unknown or non-accepting destination -> not_found (or a counted `dropped` with
//!      drop_if_unroutable)
//!   3. tenancy: the sender's tenant must be the receiving actor's -> tenant_mismatch; then the message's
//!      hops plus the chain's must be at most max_hops -> max_hops_exceeded
//!   4. the destination lane by priority; the payload must fit its slot -> too_large
//!   5. a zero-copy descriptor must name live, final bytes the sender may share -> invalid_descriptor
//!   6. quotas: the sender's engagement budget, then its tenant's message rate -> quota_exceeded (a host
//!      send stamped with the table slot of a tenant removed since is refused -> tenant_mismatch)
//! Only then are slots claimed and bytes written; count_delivery() counts a delivery before it is published
//! (so whoever sees a message sees it counted), and refund_undelivered() gives the rate tokens of what found
//! no room back (refusals cost nothing).

#include <ringkernel/device/detail/keyed_pick.cuh>
#include <ringkernel/device/detail/schedule.cuh>

#include <cuda/std/cstring>

namespace rk::detail {

//! Whether the actor at `e`, whose host word read `hw`, takes direct messages now (live or paused, not
//! stopping, stopped, faulted or retired).
RK_HOST_DEVICE inline bool accepts_messages(const route_entry& e, std::uint32_t hw) noexcept {
  const auto hs = static_cast<host_state>(state_in(hw));
  if (hs != host_state::live && hs != host_state::paused) return false;
  const device_state ds = current_device_state(hw, device_word_of(e));
  return ds != device_state::stopped && ds != device_state::faulted;
}

//! Whether `member` may be picked by a group send: live (not paused, stopping, stopped or faulted) and
//! reachable directly.
RK_HOST_DEVICE inline bool eligible_member(const system_view& s, address member) noexcept {
  std::uint32_t hw = 0;
  const route_entry* e = entry_of(s, member, hw);
  if (e == nullptr) return false;
  if (static_cast<host_state>(state_in(hw)) != host_state::live || next_hop_of(*e) != member) return false;
  const device_state ds = current_device_state(hw, device_word_of(*e));
  return ds != device_state::stopped && ds != device_state::faulted;
}

//! The word of the blocked-types bit set that holds `type`'s bit (0 for a type beyond the set).
RK_HOST_DEVICE inline std::uint32_t blocked_types_word(const system_view& s, std::uint32_t type) noexcept {
  if (type >= s.blocked_type_limit) return 0;
  return cuda::atomic_ref<std::uint32_t, peer_scope>(s.blocked_types[type / 32])
      .load(cuda::std::memory_order_relaxed);
}
RK_HOST_DEVICE constexpr bool type_blocked_in(std::uint32_t word, std::uint32_t type) noexcept {
  return ((word >> (type % 32)) & 1u) != 0;
}
RK_HOST_DEVICE inline bool type_blocked(const system_view& s, std::uint32_t type) noexcept {
  return type_blocked_in(blocked_types_word(s, type), type);
}

//! A member of the group at address `group` for `header`, or host_actor when none is eligible (or the
//! address names no group, or a removed one).
//! Round-robin: every candidate tried takes the next value of the group's shared cursor, so skipping a
//! member that is not live consumes its turn and the live members keep an even share. Keyed: a consistent
//! hash over the members (keyed_pick.cuh), so a key keeps its member while that member stays live and the
//! keys of a stopped member spread evenly over the others. Only sends of the group's own tenant move the
//! cursor (see group_entry::tenant_slot).
RK_HOST_DEVICE inline address pick_member(const system_view& s, address group,
                                          const envelope& header) noexcept {
  const std::uint32_t g = id_slot(group, s.group_slot_bits);
  if (g >= s.group_capacity) return host_actor;
  const group_entry& entry = s.groups[g];
  // Acquire: the host writes `first` and `count` before it publishes the generation.
  const std::uint32_t generation =
      cuda::atomic_ref<std::uint32_t, peer_scope>(const_cast<std::uint32_t&>(entry.generation))
          .load(cuda::std::memory_order_acquire);
  if (generation != id_generation(group, s.group_slot_bits)) return host_actor;
  const std::uint32_t first = load_relaxed(entry.first);
  const std::uint32_t count = load_relaxed(entry.count);
  if (count == 0) return host_actor;
  if ((header.flags & envelope_flags::keyed) != 0) {
    const std::uint32_t i = keyed_pick(header.route_key, count, [&](std::uint32_t index) {
      return eligible_member(s, s.group_members[first + index]);
    });
    return i < count ? s.group_members[first + i] : host_actor;
  }
  cuda::atomic_ref<std::uint32_t, peer_scope> cursor(s.group_cursors[g]);
  // Another tenant's send is refused at the member it reaches (tenant_mismatch, audited), so it only looks
  // at the cursor: moving it would let a refused foreign sender choose the group's next member.
  const bool own_tenant = header.tenant_slot == load_relaxed(entry.tenant_slot);
  const std::uint32_t at = own_tenant ? 0 : cursor.load(cuda::std::memory_order_relaxed);
  for (std::uint32_t k = 0; k < count; ++k) {
    const std::uint32_t turn = own_tenant ? cursor.fetch_add(1, cuda::std::memory_order_relaxed) : at + k;
    const address candidate = s.group_members[first + turn % count];
    if (eligible_member(s, candidate)) return candidate;
  }
  return host_actor;
}

struct resolution {
  status verdict = status::not_found;
  address actor = host_actor; //!< the actor that receives (host_actor: the host egress ring)
  std::uint32_t hops = 0;     //!< hops taken including the indirect routes followed here
};

//! Passes of resolve() at most: see there.
inline constexpr std::uint32_t resolve_passes = 4;

//! Resolves the destination of `header` to one receiving actor (or the host).
//! A pass that followed a route and found nothing at its end starts again from the destination: the
//! route may have changed under it. The host clears or moves a route before it removes what the old one
//! led to (an alias, a group, an actor): a pass that read the old hop, then found its target removed
//! (acquire loads of the host word and the group generation), reads the new hop on the next pass. So a
//! send to an actor that stays reachable throughout is never refused not_found for that race, unless the
//! route changes and its old target is removed again between every pass (resolve_passes of them).
//!
//! The chain of routes is followed for at most max_hops hops whatever the message's own count (longer, or a
//! loop: max_hops_exceeded); `hops` of a delivered resolution is the message's count plus the chain's, which
//! the caller compares with max_hops only after the tenancy check. (Refused here as it grew, a sender of
//! another tenant could read how long the receiver's chain of aliases is by choosing the count it sends
//! with: tenant_mismatch below the length, max_hops_exceeded from it on.)
RK_HOST_DEVICE inline resolution resolve(const system_view& s, const envelope& header) noexcept {
  if (header.hops > s.max_hops) return {status::max_hops_exceeded, host_actor, header.hops};
  address d = header.destination;
  std::uint32_t chain = 0; // routes followed in this pass
  std::uint32_t passes_left = resolve_passes - 1;
  for (;;) {
    if (d == host_actor) return {status::delivered, host_actor, header.hops + chain};
    if (is_group_address(d)) {
      const address member = pick_member(s, d, header);
      if (member != host_actor) return {status::delivered, member, header.hops + chain};
    } else {
      std::uint32_t hw = 0;
      const route_entry* e = entry_of(s, d, hw);
      if (e != nullptr) {
        const address next = next_hop_of(*e);
        if (next != d) {
          if (chain >= s.max_hops) return {status::max_hops_exceeded, host_actor, header.hops + chain};
          ++chain;
          d = next;
          continue;
        }
        if (accepts_messages(*e, hw)) return {status::delivered, d, header.hops + chain};
        if (static_cast<host_state>(state_in(hw)) == host_state::unreachable)
          return {status::unreachable, host_actor, header.hops + chain};
      }
    }
    // Not found: again from the destination if this pass followed a route, while passes last.
    if (chain == 0 || passes_left == 0) return {status::not_found, host_actor, header.hops + chain};
    --passes_left;
    chain = 0;
    d = header.destination;
  }
}

//! Relaxed atomic read of a host-written field that the host may rewrite while the device reads it
//! (rate quotas, region slots being re-registered): never a torn or racy read.
template <class T>
RK_HOST_DEVICE inline T relaxed(const T& field) noexcept {
  return cuda::atomic_ref<T, peer_scope>(const_cast<T&>(field)).load(cuda::std::memory_order_relaxed);
}

//! The audit tag of actor `a` (untagged for the host and actors without one).
RK_HOST_DEVICE inline audit_tag audit_tag_of(const system_view& s, actor_index a) noexcept {
  if (a == host_actor || slot_of(s, a) >= s.route_capacity) return {};
  const std::uint32_t slot = s.routes[slot_of(s, a)].engagement_slot;
  if (slot >= s.engagement_capacity) return {};
  return audit_tag{s.engagements[slot].org_id, s.engagements[slot].engagement_id};
}

//! Reports a refused send of `messages` messages to the audit ring, one record each (best effort: a full
//! ring counts the loss, which the host drain reports), so records plus losses match the refusals counted.
//! The record carries the sender, its tenant and audit tag, the other party, and the status returned.
RK_HOST_DEVICE inline void audit_refusal(const system_view& s, const envelope& h, audit_event event,
                                         status verdict, std::uint64_t other_tenant, address other_actor,
                                         std::uint64_t value, std::uint32_t messages) noexcept {
  audit_record r;
  r.time = h.timestamp;
  r.tenant = h.tenant;
  r.other_tenant = other_tenant;
  r.actor = h.source;
  r.other_actor = other_actor;
  r.detail = static_cast<std::uint32_t>(verdict);
  r.value = value;
  r.event = event;
  r.level = audit_level::warning;
  r.tag = audit_tag_of(s, h.source);
  (void)emit_audit_each(s.audit, r, messages);
}

//! The device word of the actor at `e` faulted in its current epoch.
RK_HOST_DEVICE inline std::uint32_t faulted_word(const route_entry& e) noexcept {
  return make_state_word(epoch_of(host_word_of(e)), static_cast<std::uint8_t>(device_state::faulted));
}

//! Whether actor `self` is faulted in its current epoch (its device word says so).
RK_HOST_DEVICE inline bool faulted_in_epoch(const system_view& s, actor_index self) noexcept {
  const route_entry& e = s.routes[slot_of(s, self)];
  return device_word_of(e) == faulted_word(e);
}

//! Marks actor `self` faulted with `code` in its current epoch and writes one actor_fault audit record
//! (repeated calls, e.g. from every thread of a worker, find it set and write none). Its worker then
//! discards what reaches it until runtime::respawn.
RK_HOST_DEVICE inline void fault_actor(const system_view& s, actor_index self, std::uint32_t code,
                                       hlc_timestamp time) noexcept {
  const std::uint32_t slot = slot_of(s, self);
  route_entry& e = s.routes[slot];
  const std::uint32_t faulted = faulted_word(e);
  // The first fault of the epoch claims the fault; only its caller writes the code, the state word and
  // the audit record, so fault_code and the record agree when several threads fault at once with
  // different codes. The code is stored before the state word: whoever sees the actor faulted sees it.
  if (device_word_of(e) == faulted) return;
  actor_counters& c = s.counters[slot];
  std::uint32_t unclaimed = 0;
  if (!cuda::atomic_ref<std::uint32_t, peer_scope>(c.fault_claimed)
           .compare_exchange_strong(unclaimed, 1u, cuda::std::memory_order_relaxed))
    return;
  cuda::atomic_ref<std::uint32_t, peer_scope>(c.fault_code).store(code, cuda::std::memory_order_relaxed);
  cuda::atomic_ref<std::uint32_t, peer_scope>(e.device_word).store(faulted, cuda::std::memory_order_release);
  audit_record r;
  r.time = time;
  r.tenant = e.tenant;
  r.actor = self;
  r.detail = code;
  r.event = audit_event::actor_fault;
  r.level = audit_level::error;
  r.tag = audit_tag_of(s, self);
  (void)emit_audit(s.audit, r);
}

//! Whether `d` names bytes the sender (tenant `sender_tenant`) may hand out: a live region of the right
//! generation, not a slab, in bounds without overflow, at most max_descriptor_length long, below the
//! append cursor for append-only regions, owned by or shared with the sender's tenant.
RK_HOST_DEVICE inline bool descriptor_valid(const system_view& s, std::uint64_t sender_tenant,
                                            const void* payload, std::uint32_t length) noexcept {
  if (length != sizeof(region_descriptor) || payload == nullptr) return false;
  region_descriptor d;
  cuda::std::memcpy(&d, payload, sizeof d);
  if (d.region >= s.region_capacity) return false;
  const region_entry& r = s.regions[d.region];
  // Acquire: the host fills the slot before it sets `live`.
  if (cuda::atomic_ref<std::uint32_t, peer_scope>(const_cast<std::uint32_t&>(r.live))
          .load(cuda::std::memory_order_acquire) == 0)
    return false;
  if (relaxed(r.generation) != d.generation || d.length > max_descriptor_length) return false;
  const auto policy = static_cast<region_policy>(relaxed(r.policy));
  if (policy != region_policy::immutable && policy != region_policy::append_only) return false;
  const std::uint64_t end = d.offset + d.length;
  if (end < d.offset || end > relaxed(r.size)) return false;
  if (policy == region_policy::append_only &&
      end > cuda::atomic_ref<std::uint64_t, peer_scope>(const_cast<std::uint64_t&>(r.append_cursor))
                .load(cuda::std::memory_order_acquire))
    return false;
  if (relaxed(r.owner_tenant) == sender_tenant) return true;
  const std::uint32_t shared = relaxed(r.shared_count);
  for (std::uint32_t i = 0; i < shared && i < max_region_sharing; ++i)
    if (relaxed(r.shared_with[i]) == sender_tenant) return true;
  return false;
}

//! The rate limiter is GCRA, the token bucket kept as one word: the bucket word holds the time at which
//! the bucket would be full again ("theoretical arrival time"), in sixteenths of a nanosecond of
//! physical_clock_ns, modulo 2^64 (compared by signed difference: exact while the word is within 2^63
//! units, 18 years, of the clock). 0: never used (full). A send of n messages at time `now` passes when
//! max(word, now) + n * interval lies at most `burst` intervals after now, and then stores that; an idle
//! bucket is simply one whose time has passed, so it holds `burst` tokens and never more, whatever the
//! clock reads or how long it idled. A send's cost (n / rate, in sixteenths of a nanosecond) is rounded
//! up: over any stretch of time the limiter passes at most burst + rate x time messages (one more at
//! most, from rounding; tokens given back by return_tokens count as never taken), and falls short of the
//! rate by at most rate / 1.6e10 of it per send (under 1% below 1.6e8 messages per second; 1.6e10 per
//! second at most). So a full bucket passes `burst` messages sent as one batch, and up to
//! burst x rate / 1.6e10 fewer sent one by one at the same instant. After set_quota() lowered the
//! tolerance (a higher rate or a smaller burst), a bucket that owed more is capped at empty as of the
//! change (tenant_entry::quota_changed_ns) and has refilled at the new rate since.
inline constexpr std::uint64_t rate_units_per_second = 16'000'000'000ull;

//! Sixteenths of a nanosecond that `messages` tokens take to refill at `rate` (> 0), rounded up;
//! no_rate_units when more than a batch can hold (2^30 messages: 2^30 x 1.6e10 still fits 64 bits).
inline constexpr std::uint64_t no_rate_units = ~std::uint64_t{0};
RK_HOST_DEVICE inline std::uint64_t rate_units(std::uint64_t messages, std::uint64_t rate) noexcept {
  if (messages > (std::uint64_t{1} << 30)) return no_rate_units;
  return (messages * rate_units_per_second + rate - 1) / rate;
}

//! How far the bucket's time may run ahead of now: `burst` tokens' worth (rounded up like a send of
//! `burst`, so that a full bucket passes it), or one second's at `rate`.
RK_HOST_DEVICE inline std::uint64_t bucket_tolerance(const tenant_entry& t, std::uint64_t rate) noexcept {
  const std::uint64_t burst = relaxed(t.burst);
  return burst != 0 ? rate_units(burst, rate) : rate_units_per_second; // burst <= 2^20 (tenant_table)
}

//! A bucket word for time `t`: 0 means "never used", so a time that wraps to 0 is stored as 1.
RK_HOST_DEVICE constexpr std::uint64_t bucket_time(std::uint64_t t) noexcept {
  return t == 0 ? 1 : t;
}

//! Takes `count` tokens from tenant `t`'s bucket, refilled at `rate` (its rate_per_second read by the
//! caller; 0: no limit), lock-free (one CAS loop). `clock()` returns the time in nanoseconds
//! (physical_clock_ns): read once, and again before the bucket is moved back (the cap below).
//!
//! Only the cap moves the bucket back, so it must not act on a stale reading: a sender that read its
//! clock, was held up, and then found a bucket that others (with later readings) had moved on, saw it
//! owing more than the tolerance and rewound it to its own stale time, handing back tokens they had spent
//! (four runs of two senders at 1,000/s with a burst of 10 passed 1,025..1,080 in one second). Every take
//! leaves the bucket at most `tolerance` ahead of its taker's time, so with a reading taken after the
//! bucket was loaded (acquire) it owes more only after set_quota() lowered the tolerance.
template <class Clock>
RK_HOST_DEVICE inline bool take_token_with_clock(tenant_entry& t, std::uint32_t count, std::uint64_t rate,
                                                 Clock clock) noexcept {
  if (rate == 0) return true;
  const std::uint64_t need = rate_units(count, rate);
  const std::uint64_t tolerance = bucket_tolerance(t, rate);
  if (need > tolerance) return false; // more than a full bucket holds
  std::uint64_t now = clock() * 16;   // modulo 2^64, like the word
  cuda::atomic_ref<std::uint64_t, peer_scope> bucket(t.bucket);
  std::uint64_t old = bucket.load(cuda::std::memory_order_relaxed);
  bool fresh = false; //!< `now` was read after `old` was loaded
  for (;;) {
    const std::int64_t owed = old != 0 ? static_cast<std::int64_t>(old - now) : 0;
    if (owed > static_cast<std::int64_t>(tolerance)) {
      if (!fresh) {
        old = bucket.load(cuda::std::memory_order_acquire);
        now = clock() * 16;
        fresh = true;
        continue;
      }
      // A set_quota() since the caller read the rate: the host writes the rate before the bucket it
      // rescaled for it (tenant_table::write_rate), so this bucket is the new quota's, and capping it with
      // the old rate would hand back the tokens the rescale took (a lowered rate's). Refused instead: a
      // send racing set_quota() may be refused as over the quota. (Starting over with the new rate cost
      // the scheduled worker kernel 8 registers: the PTX audit.)
      if (relaxed(t.rate_per_second) != rate) return false;
      // Only after set_quota() raised the rate or lowered the burst (its rescale raced with a take): what
      // the bucket owes in the old rate's time is capped at an empty bucket of the new quota as of the
      // change, refilled at the new rate since (raising the rate locked the tenant out for the old rate's
      // refill time; capping at the first send after the change, however long after, lost the refill in
      // between). A change time after `now` (the host's clock ahead of %globaltimer) counts as now.
      const std::uint64_t changed = relaxed(t.quota_changed_ns) * 16;
      const bool changed_before = changed != 0 && static_cast<std::int64_t>(now - changed) > 0;
      const std::uint64_t empty = bucket_time((changed_before ? changed : now) + tolerance);
      if (bucket.compare_exchange_weak(old, empty, cuda::std::memory_order_relaxed,
                                       cuda::std::memory_order_relaxed))
        old = empty;
      else
        fresh = false; // another take moved it: its reading may be later than ours
      continue;
    }
    const std::uint64_t next = (owed > 0 ? old : now) + need;
    if (static_cast<std::int64_t>(next - now) > static_cast<std::int64_t>(tolerance)) return false;
    if (bucket.compare_exchange_weak(old, bucket_time(next), cuda::std::memory_order_relaxed,
                                     cuda::std::memory_order_relaxed))
      return true;
  }
}

//! take_token_with_clock() at the fixed time `now_ns` (tests, and callers that read the clock already).
RK_HOST_DEVICE inline bool take_token_at_time(tenant_entry& t, std::uint32_t count, std::uint64_t rate,
                                              std::uint64_t now_ns) noexcept {
  return take_token_with_clock(t, count, rate, [now_ns] { return now_ns; });
}

//! take_token_with_clock() with the physical clock.
RK_HOST_DEVICE inline bool take_token_at(tenant_entry& t, std::uint32_t count, std::uint64_t rate) noexcept {
  return take_token_with_clock(t, count, rate, [] { return physical_clock_ns(); });
}

//! take_token_at() with the tenant's rate as it is now.
RK_HOST_DEVICE inline bool take_token(tenant_entry& t, std::uint32_t count) noexcept {
  return take_token_at(t, count, relaxed(t.rate_per_second));
}

//! `value` of a quota_exceeded audit record: which quota refused the send.
inline constexpr std::uint64_t quota_reason_rate = 1;
inline constexpr std::uint64_t quota_reason_budget = 2;

//! A decided delivery: where the bytes go. `verdict != delivered` means nothing may be written.
struct prepared_delivery {
  status verdict = status::not_found;
  address actor = host_actor; //!< host_actor: the egress ring
  std::uint32_t slot = 0;     //!< the receiving actor's routing-table slot
  std::uint32_t lane = 0;     //!< the mailbox lane; outbound_lane when `actor` is a remote entry (system.cuh)
  std::uint32_t hops = 0;
  //! The receiving actor has a worker of its own (route_entry::dedicated): nobody needs to wake it. Read
  //! with the rest of the entry, before the slot is claimed (the occupant cannot change meanwhile: the
  //! host reuses a slot only after every worker reported a grace epoch, and a sender is in its handler).
  bool dedicated = false;
  static constexpr std::uint32_t outbound_lane = 0xFFFF'FFFFu;
  RK_HOST_DEVICE bool remote() const noexcept { return lane == outbound_lane; }
  //! Whether the bytes go to a ring the host consumes (egress, or outbound) rather than a mailbox.
  RK_HOST_DEVICE bool host_bound() const noexcept { return actor == host_actor || remote(); }
};

//! The host-consumed ring a host_bound() delivery is written to.
RK_HOST_DEVICE inline const ring_view& host_bound_ring(const system_view& s,
                                                       const prepared_delivery& p) noexcept {
  return p.remote() ? s.outbound : s.egress;
}

//! Steps 1-6 of the file comment for `messages` messages of at most `payload_length` bytes (more than
//! one for an aggregated batch, which shares one decision). `payload` is the (first) payload, read only
//! for descriptor checks.
RK_HOST_DEVICE inline prepared_delivery prepare_delivery(const system_view& s, const envelope& header,
                                                         std::uint32_t payload_length,
                                                         const void* payload = nullptr,
                                                         std::uint32_t messages = 1) noexcept {
  const bool drop = (header.flags & envelope_flags::drop_if_unroutable) != 0;
  const bool from_actor = header.source != host_actor;
  const bool k2k = from_actor && header.destination != host_actor;
  if (!from_actor && header.destination == host_actor) return {status::invalid_destination};
  // The words that do not depend on the destination are read first, back to back: on the device each is
  // a round trip to L2, and issued together they overlap one another (and the wait for the first) instead
  // of following the destination's lookups one by one. The checks still apply in the order listed above.
  const std::uint32_t blocked_word = k2k ? blocked_types_word(s, header.type_id) : 0;
  tenant_entry* tenant = header.tenant_slot < s.tenant_capacity ? &s.tenants[header.tenant_slot] : nullptr;
  const std::uint64_t tenant_id = tenant != nullptr ? relaxed(tenant->id) : 0;
  const std::uint64_t tenant_rate = tenant != nullptr ? relaxed(tenant->rate_per_second) : 0;
  const std::uint32_t source_slot = from_actor ? slot_of(s, header.source) : no_slot;
  const std::uint32_t engagement_slot =
      source_slot < s.route_capacity ? s.routes[source_slot].engagement_slot : no_slot;
  if (k2k && type_blocked_in(blocked_word, header.type_id)) return {status::not_routable};
  const resolution r = resolve(s, header);
  if (r.verdict != status::delivered) {
    return {r.verdict == status::not_found && drop ? status::dropped : r.verdict};
  }
  prepared_delivery p{status::delivered, r.actor, 0, 0, r.hops};
  if (r.actor == host_actor) {
    if (r.hops > s.max_hops) return {status::max_hops_exceeded};
    if (payload_length > s.egress.slot_bytes - envelope_bytes) return {status::too_large};
  } else {
    p.slot = slot_of(s, r.actor);
    const route_entry& e = s.routes[p.slot];
    if (e.tenant != header.tenant) {
      audit_refusal(s, header, audit_event::cross_tenant_attempt, status::tenant_mismatch, e.tenant, r.actor,
                    header.type_id, messages);
      return {status::tenant_mismatch};
    }
    if (r.hops > s.max_hops) return {status::max_hops_exceeded}; // after tenancy: see resolve()
    p.lane = e.lanes == 1 ? 0 : (header.priority < priority_levels ? header.priority : priority_levels - 1);
    p.dedicated = load_relaxed(e.dedicated) != 0;
    // resolve() returns only direct entries: an actor's, or a remote one (no mailbox)
    if (e.mailbox == nullptr) {
      if (s.outbound.slots == nullptr) return {status::not_found}; // no cluster: no remote entry either
      p.lane = prepared_delivery::outbound_lane;
    }
    if (payload_length > e.geometry.payload_capacity()) return {status::too_large};
  }
  if ((header.flags & envelope_flags::descriptor) != 0 &&
      !descriptor_valid(s, header.tenant, payload, payload_length)) {
    region_descriptor d{};
    if (payload != nullptr && payload_length >= sizeof d) cuda::std::memcpy(&d, payload, sizeof d);
    audit_refusal(s, header, audit_event::descriptor_violation, status::invalid_descriptor,
                  d.region < s.region_capacity ? relaxed(s.regions[d.region].owner_tenant) : 0, r.actor,
                  d.region, messages);
    return {status::invalid_descriptor};
  }

  if (tenant != nullptr && tenant_id != header.tenant) {
    // A host send stamped with the slot of a tenant that was removed (and the slot reused) meanwhile.
    audit_refusal(s, header, audit_event::cross_tenant_attempt, status::tenant_mismatch, tenant_id, r.actor,
                  header.type_id, messages);
    return {status::tenant_mismatch};
  }
  if (source_slot < s.route_capacity) {
    if (engagement_slot < s.engagement_capacity) {
      engagement_entry& g = s.engagements[engagement_slot];
      const std::uint64_t budget = relaxed(g.budget_ns);
      if (budget != 0 && relaxed(g.used_ns) >= budget) {
        bump(g.rejections, messages);
        if (tenant) bump(tenant->budget_rejections, messages);
        audit_refusal(s, header, audit_event::quota_exceeded, status::quota_exceeded, header.tenant, r.actor,
                      quota_reason_budget, messages);
        return {status::quota_exceeded};
      }
    }
  }
  if (tenant != nullptr) {
    if (!take_token_at(*tenant, messages, tenant_rate)) {
      bump(tenant->rate_rejections, messages);
      audit_refusal(s, header, audit_event::quota_exceeded, status::quota_exceeded, header.tenant, r.actor,
                    quota_reason_rate, messages);
      return {status::quota_exceeded};
    }
  }
  return p;
}

//! Gives back `count` tokens take_token() took: the bucket's time moves back by what they cost (a bucket
//! whose time has passed is full already and stays so).
RK_HOST_DEVICE inline void return_tokens(tenant_entry& t, std::uint32_t count) noexcept {
  const std::uint64_t rate = relaxed(t.rate_per_second);
  if (rate == 0) return;
  const std::uint64_t back = rate_units(count, rate);
  if (back == no_rate_units) return; // never taken: take_token_at_time refuses such batches
  cuda::atomic_ref<std::uint64_t, peer_scope> word(t.bucket); // the scope take_token uses
  std::uint64_t old = word.load(cuda::std::memory_order_relaxed);
  while (old != 0) {
    const std::uint64_t earlier = old - back;
    if (word.compare_exchange_weak(old, bucket_time(earlier), cuda::std::memory_order_relaxed,
                                   cuda::std::memory_order_relaxed))
      return;
  }
}

//! Gives back the rate tokens prepare_delivery() took for `messages` that were not delivered (a full ring, a
//! batch larger than the ring): only deliveries pay.
RK_HOST_DEVICE inline void refund_undelivered(const system_view& s, const envelope& header,
                                              std::uint32_t messages) noexcept {
  if (header.tenant_slot < s.tenant_capacity) return_tokens(s.tenants[header.tenant_slot], messages);
}

//! Counts `messages` whose slots are claimed and written as passed for their source (summed per tenant on
//! the host: a device-wide counter per tenant would put every send of the tenant on one atomic; host sends
//! have one writer, the gateway). Called before the messages are published, so whoever sees one (a handler,
//! the host's receive()) also sees it counted: stats() read after a receive() include that delivery.
RK_HOST_DEVICE inline void count_passed(const system_view& s, const envelope& header,
                                        std::uint32_t messages) noexcept {
  const std::uint32_t source_slot = header.source != host_actor ? slot_of(s, header.source) : no_slot;
  if (source_slot < s.route_capacity) {
    bump_own(s.counters[source_slot].passed, messages);
  } else if (header.tenant_slot < s.tenant_capacity) {
    bump(s.tenants[header.tenant_slot].host_sent, messages);
  }
}

//! Everything a claimed, written delivery of `messages` counts, before it is published: passed for the
//! source, and for the sending actor (`sender`, null for the host) one reservation and `messages` sends
//! delivered.
RK_HOST_DEVICE inline void count_delivery(const system_view& s, const envelope& header,
                                          std::uint32_t messages, actor_counters* sender) noexcept {
  count_passed(s, header, messages);
  if (sender == nullptr) return;
  bump_own(sender->reservations);
  bump_own(sender->delivered_sends, messages);
}

//! After publishing a delivery `p` to an actor's mailbox: makes sure a worker will serve it (`keep`: the
//! sending worker's run-next slot, see schedule.cuh).
RK_HOST_DEVICE inline void wake_receiver(const system_view& s, const prepared_delivery& p,
                                         device_run_next* keep = nullptr) noexcept {
  if (!p.dedicated) wake_scheduled(s, p.slot, keep);
}

// The stop protocol. A sender decides a delivery (prepare_delivery) while its actor takes messages, but
// claims the slot later; a stop() may begin in between. The worker of a stopping actor reports `stopped`
// only when it handled everything, after which a message that reached the mailbox would be discarded
// though its sender was told `delivered`. So:
//  - the sender claims its slots sequentially consistently (S1), then reads the actor's host word again,
//    sequentially consistently (S2): if the actor no longer takes messages, the claim is cancelled
//    (cancel_claim: the slots are published as tombstones the worker drops unseen and uncounted) and the
//    sender is told not_found (dropped with drop_if_unroutable), as if it had come after the stop;
//  - the host writes `stopping` to the host word and then fences (H1: actor_table::write_host_word, a
//    sequentially consistent store);
//  - the worker reads the host word (W0: `stopping`), fences sequentially consistently (F), then reads
//    every lane's claim counter (W1: claims_pending); it reports `stopped` only when no slot is claimed
//    and unconsumed (actor_loop.cuh's next_step), otherwise it waits for the claims to be published and
//    handles them.
// Why no message is stranded: suppose S2 read the host word from before H1 and W1 missed S1. In the single
// total order of sequentially consistent operations, S1 precedes S2 (program order); S2 precedes H1 (it
// read an earlier value); H1 precedes F (W0 read H1 and is sequenced before F); F precedes S1 (W1, after F,
// read a claim counter from before S1). A cycle: so S2 sees the stop, or W1 sees the claim (or both: the
// claim is then a tombstone the worker drops). A message whose send saw `delivered` is handled.

//! S2 of the stop protocol: whether the actor in `slot` still takes messages after its slots were claimed.
RK_HOST_DEVICE inline bool still_accepts(const system_view& s, std::uint32_t slot) noexcept {
  const route_entry& e = s.routes[slot];
  const std::uint32_t hw =
      cuda::atomic_ref<std::uint32_t, peer_scope>(const_cast<std::uint32_t&>(e.host_word))
          .load(cuda::std::memory_order_seq_cst);
  return accepts_messages(e, hw);
}

//! Publishes `count` claimed slots from `first` as tombstones (envelope_flags::cancelled).
RK_HOST_DEVICE inline void cancel_claim(const mailbox& ring, std::uint64_t first,
                                        std::uint32_t count) noexcept {
  for (std::uint32_t i = 0; i < count; ++i) {
    auto* header = reinterpret_cast<envelope*>(ring.slot_at(first + i));
    header->flags = envelope_flags::cancelled;
    header->payload_length = 0;
    ring.publish(first + i);
  }
}

//! What a send whose claim was cancelled is told.
RK_HOST_DEVICE constexpr status cancelled_verdict(const envelope& header) noexcept {
  return (header.flags & envelope_flags::drop_if_unroutable) != 0 ? status::dropped : status::not_found;
}

//! Delivers a single message after prepare_delivery() allowed it, counting it (count_delivery) before it is
//! published; on any other verdict it refunds the rate token. `sender` is null for the host; `keep` is the
//! sending worker's run-next slot (CUDA scheduled workers, see schedule.cuh; null elsewhere).
RK_HOST_DEVICE inline status commit_delivery(const system_view& s, const prepared_delivery& p,
                                             const envelope& header, const void* payload,
                                             actor_counters* sender,
                                             device_run_next* keep = nullptr) noexcept {
  envelope routed = header;
  routed.hops = static_cast<std::uint8_t>(p.hops);
  // An alias or group that led to a remote entry: the proxy reads the entry from the destination.
  if (p.remote()) routed.destination = p.actor;
  status st;
  if (p.host_bound()) {
    st = egress_ring(host_bound_ring(s, p)).try_send(routed, payload, [&] {
      count_delivery(s, header, 1, sender);
    });
    if (st == status::delivered) notify_host_receiver(s); // for the outbound ring: a spurious wake-up
  } else {
    const mailbox ring(lane_view(s.routes[p.slot], p.lane));
    const bool fits = routed.payload_length <= ring.payload_capacity();
    const ring_claim c = fits ? ring.try_claim(1, cuda::std::memory_order_seq_cst) : ring_claim{};
    if (!fits) {
      st = status::too_large;
    } else if (!c.ok) {
      st = status::queue_full;
    } else if (!still_accepts(s, p.slot)) {
      cancel_claim(ring, c.position, 1);
      wake_receiver(s, p, keep); // for the tombstone's slot
      st = cancelled_verdict(header);
    } else {
      mailbox::write_slot(ring.slot_at(c.position), routed, payload);
      // Counting before publish keeps `received >= handled + discarded` at every instant, which shutdown's
      // drain detection relies on.
      bump(s.counters[p.slot].received);
      count_delivery(s, header, 1, sender);
      ring.publish(c.position);
      wake_receiver(s, p, keep);
      st = status::delivered;
    }
  }
  if (st != status::delivered) refund_undelivered(s, header, 1);
  return st;
}

//! Decides and, if allowed, delivers `header` + inline `payload`. Returns the verdict; on any verdict
//! other than `delivered` nothing was written anywhere. A delivery is counted for `sender` (see
//! count_delivery); the caller counts the other verdicts.
RK_HOST_DEVICE inline status deliver(const system_view& s, const envelope& header, const void* payload,
                                     actor_counters* sender = nullptr,
                                     device_run_next* keep = nullptr) noexcept {
  const prepared_delivery p = prepare_delivery(s, header, header.payload_length, payload);
  if (p.verdict != status::delivered) return p.verdict;
  return commit_delivery(s, p, header, payload, sender, keep);
}

} // namespace rk::detail
