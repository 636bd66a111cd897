#pragma once
//! \file
//! Audit records and the device side of the audit ring.
//!
//! An audit record is a fixed 128-byte event (a rejected cross-tenant send, an exceeded quota, an actor
//! spawn, ...) that device code (or a CPU-backend worker) writes into the *audit ring* with
//! rk::emit_audit(), and that the host audit drain (<ringkernel/host/audit.hpp>) takes out, hash-chains
//! and hands to its sinks. Writing a record never blocks and never overwrites: when the ring is full the
//! record is counted as lost in the ring's overflow counter, and the drain turns that count into an
//! `audit_overflow` record, so nothing is lost silently.
//!
//! Record layout (little-endian, as written into the ring slot after the 64-byte envelope):
//!
//! | offset | size | field          | meaning                                                          |
//! |-------:|-----:|----------------|------------------------------------------------------------------|
//! |      0 |   16 | time           | HLC timestamp of the event (rk::hlc_timestamp)                   |
//! |     16 |    8 | tenant         | acting tenant: the tenant of `actor` (0: unspecified)            |
//! |     24 |    8 | other_tenant   | the other party's tenant, e.g. the destination's (0: none)      |
//! |     32 |    8 | tag.org_id     | audit tag of the acting actor: organisation                      |
//! |     40 |    8 | tag.engagement_id | audit tag of the acting actor: engagement                     |
//! |     48 |    8 | value          | event-specific quantity (e.g. records lost, bytes, nanoseconds)  |
//! |     56 |    4 | actor          | acting actor, or rk::host_actor for the host                     |
//! |     60 |    4 | other_actor    | the other party (e.g. the destination), or rk::host_actor        |
//! |     64 |    4 | detail         | event-specific code: an rk::status value, a trap code, ...       |
//! |     68 |    2 | event          | rk::audit_event                                                  |
//! |     70 |    1 | level          | rk::audit_level                                                  |
//! |     71 |    1 | origin         | rk::audit_origin; stamped by the path that wrote the record      |
//! |     72 |   56 | reserved_      | zero; room for later fields without changing the slot size      |
//!
//! The audit ring is an rk::mpsc_ring laid out like the host egress ring: slots and sequence numbers in
//! pinned, mapped host memory (device producers, one host consumer), the producers' claim counter in
//! device memory so that no atomic read-modify-write crosses PCIe. Each slot holds an envelope
//! (`type_id == audit_envelope_type`, `payload_length == sizeof(audit_record)`) followed by the record.

#include <ringkernel/device/mailbox.cuh>

#include <cstddef>

namespace rk {

//! What happened. Values are stable: they are stored in records and logs. Codes below
//! `audit_event_application_first` are reserved for ringkernel; applications may use the codes from it up.
enum class audit_event : std::uint16_t {
  cross_tenant_attempt = 1, //!< a send crossed tenants and was rejected (detail: the rk::status returned)
  quota_exceeded = 2,       //!< a tenant's rate or budget refused a send (detail: rk::status)
  descriptor_violation = 3, //!< a zero-copy descriptor failed validation (detail: rk::status)
  actor_fault = 4,          //!< an actor trapped or threw (detail: the trap code)
  actor_spawn = 5,          //!< an actor was created (host)
  actor_stop = 6,           //!< an actor stopped (host)
  audit_overflow = 7,       //!< written by the drain: `value` records were lost because the ring was full
  audit_malformed = 8,      //!< written by the drain: a ring slot did not hold an audit record
  audit_closed = 9,         //!< written by the drain when it stops: the last record of a complete log
  rank_unreachable = 10,    //!< rk::cluster: a rank died or stopped answering (host; detail: the rank,
                            //!< value: milliseconds since it was last heard from)
  remote_refusal = 11,      //!< rk::cluster: another rank refused a message sent from this one (host;
                            //!< actor: the sender, detail: the rk::status, value: rank << 32 | actor
                            //!< there, the destination as addressed)
};
inline constexpr std::uint16_t audit_event_application_first = 0x8000;

//! How bad it is. Values are stable.
enum class audit_level : std::uint8_t { info = 0, warning = 1, error = 2, critical = 3 };

//! Which path wrote the record into the chain. Stamped by that path; callers need not set it.
enum class audit_origin : std::uint8_t {
  device = 0, //!< rk::emit_audit through the audit ring (device code, or a CPU-backend worker)
  host = 1,   //!< rk::audit_drain::record_host (e.g. spawn and stop, emitted by the host runtime)
  drain = 2,  //!< synthesised by the drain itself (audit_overflow, audit_malformed, audit_closed)
};

//! Who is billed: the audit tag an actor carries.
struct audit_tag {
  std::uint64_t org_id = 0;
  std::uint64_t engagement_id = 0;
  RK_HOST_DEVICE friend constexpr bool operator==(const audit_tag& a, const audit_tag& b) noexcept {
    return a.org_id == b.org_id && a.engagement_id == b.engagement_id;
  }
};

//! One audit event. Trivially copyable, fixed size; see the layout table in the file comment.
struct audit_record {
  hlc_timestamp time{};
  std::uint64_t tenant = 0;
  std::uint64_t other_tenant = 0;
  audit_tag tag{};
  std::uint64_t value = 0;
  actor_index actor = host_actor;
  actor_index other_actor = host_actor;
  std::uint32_t detail = 0;
  audit_event event{}; //!< 0: not set by the writer (logged as "event_0")
  audit_level level = audit_level::info;
  audit_origin origin = audit_origin::device;
  std::uint64_t reserved_[7] = {};
};

inline constexpr std::uint32_t audit_record_bytes = 128;
static_assert(sizeof(audit_record) == audit_record_bytes, "the audit record must stay exactly 128 bytes");
static_assert(alignof(audit_record) == 8);
static_assert(offsetof(audit_record, tenant) == 16 && offsetof(audit_record, other_tenant) == 24);
static_assert(offsetof(audit_record, tag) == 32 && offsetof(audit_record, value) == 48);
static_assert(offsetof(audit_record, actor) == 56 && offsetof(audit_record, other_actor) == 60);
static_assert(offsetof(audit_record, detail) == 64 && offsetof(audit_record, event) == 68);
static_assert(offsetof(audit_record, level) == 70 && offsetof(audit_record, origin) == 71);
static_assert(offsetof(audit_record, reserved_) == 72);
static_assert(sizeof(audit_event) == 2 && sizeof(audit_level) == 1 && sizeof(audit_origin) == 1);

//! `envelope::type_id` of every audit-ring slot ("RKAU"); lets the drain reject a slot that does not hold
//! an audit record.
inline constexpr std::uint32_t audit_envelope_type = 0x5541'4B52u;

//! Slot size of the audit ring: the envelope plus one record, rounded up to the ring's slot alignment.
inline constexpr std::uint32_t audit_slot_bytes =
    (envelope_bytes + audit_record_bytes + ring_geometry::slot_alignment - 1) /
    ring_geometry::slot_alignment * ring_geometry::slot_alignment;
static_assert(audit_slot_bytes == 192);

//! Geometry of an audit ring with `capacity` slots (a power of two; check with validate()).
RK_HOST_DEVICE constexpr ring_geometry audit_ring_geometry(std::uint32_t capacity) noexcept {
  return ring_geometry{capacity, audit_slot_bytes};
}

//! The audit ring: device producers claim (tail in device memory) and publish, the host drain consumes.
//! Same scopes as rk::egress_ring.
using audit_ring = mpsc_ring<pcie_scope, peer_scope>;

//! Where device code writes audit records. Trivially copyable, so it can be a kernel parameter or a
//! member of the runtime's system view.
struct audit_channel {
  //! seq and slots: pinned, mapped (writers: emitters publish, the drain releases; reader: the drain).
  //! tail: device memory (writers: emitters, device-scope CAS; the host never touches it).
  ring_view ring{};
  //! Records lost because the ring was full, since creation. Device memory; writers: emitters that found
  //! the ring full (device-scope fetch_add); reader: the host drain, through a copy. Null: not counted.
  std::uint64_t* overflow = nullptr;
};

//! Stable lower-case name of an event ("cross_tenant_attempt"), or null for a code without a built-in
//! name (reserved or application-defined).
RK_HOST_DEVICE constexpr const char* audit_event_name(audit_event e) noexcept {
  switch (e) {
  case audit_event::cross_tenant_attempt:
    return "cross_tenant_attempt";
  case audit_event::quota_exceeded:
    return "quota_exceeded";
  case audit_event::descriptor_violation:
    return "descriptor_violation";
  case audit_event::actor_fault:
    return "actor_fault";
  case audit_event::actor_spawn:
    return "actor_spawn";
  case audit_event::actor_stop:
    return "actor_stop";
  case audit_event::audit_overflow:
    return "audit_overflow";
  case audit_event::audit_malformed:
    return "audit_malformed";
  case audit_event::audit_closed:
    return "audit_closed";
  case audit_event::rank_unreachable:
    return "rank_unreachable";
  case audit_event::remote_refusal:
    return "remote_refusal";
  }
  return nullptr;
}

//! Stable lower-case name; "unknown" for a code without a built-in name. Never returns null.
RK_HOST_DEVICE constexpr const char* to_string(audit_event e) noexcept {
  const char* name = audit_event_name(e);
  return name != nullptr ? name : "unknown";
}

RK_HOST_DEVICE constexpr const char* to_string(audit_level l) noexcept {
  switch (l) {
  case audit_level::info:
    return "info";
  case audit_level::warning:
    return "warning";
  case audit_level::error:
    return "error";
  case audit_level::critical:
    return "critical";
  }
  return "unknown";
}

RK_HOST_DEVICE constexpr const char* to_string(audit_origin o) noexcept {
  switch (o) {
  case audit_origin::device:
    return "device";
  case audit_origin::host:
    return "host";
  case audit_origin::drain:
    return "drain";
  }
  return "unknown";
}

//! Writes `record` into the audit ring, stamped `origin = device`.
//!
//! Called by any thread (a device thread, or a CPU-backend worker), any number concurrently; lock-free
//! and never waits for the drain. Returns:
//!  - `delivered`: the record is published; the drain will take it.
//!  - `queue_full`: the ring was full; nothing was written and the overflow counter (if any) was
//!    incremented, so the drain reports the loss as an `audit_overflow` record.
//!  - `not_running`: the channel has no ring (auditing not set up); nothing was written or counted.
//! The caller sets `record.time` (e.g. from its actor's HLC clock); the envelope carries the same time,
//! the acting actor and its tenant.
RK_HOST_DEVICE inline status emit_audit(const audit_channel& channel, const audit_record& record) noexcept {
  if (channel.ring.slots == nullptr) return status::not_running;
  audit_record stamped = record;
  stamped.origin = audit_origin::device; // the ring is the device path, whatever the caller wrote
  envelope header;
  header.tenant = record.tenant;
  header.timestamp = record.time;
  header.type_id = audit_envelope_type;
  header.source = record.actor;
  header.destination = host_actor;
  header.payload_length = audit_record_bytes;

  const audit_ring ring(channel.ring);
  const ring_claim claim = ring.try_claim(1);
  if (!claim.ok) {
    if (channel.overflow != nullptr) {
      // Relaxed: the count is a statistic read by the drain; it orders nothing else. Whatever makes the
      // producers' work visible to the host at shutdown (kernel completion, thread join) makes the final
      // count visible too.
      cuda::atomic_ref<std::uint64_t, peer_scope>(*channel.overflow)
          .fetch_add(1, cuda::std::memory_order_relaxed);
    }
    return status::queue_full;
  }
  std::byte* slot = ring.slot_at(claim.position);
  detail::store_words(slot, header); // whole 16-byte words; the record stays in registers
  detail::store_words(slot + envelope_bytes, stamped);
  ring.publish(claim.position);
  return status::delivered;
}

//! Writes `count` records like `record`, one for each event it stands for (each message of a refused
//! aggregated send): emit_audit for each, except that once the ring is full the records left are counted
//! lost at once, so a call costs at most the ring's free room. Returns `delivered` when all were written,
//! `queue_full` when any was lost, `not_running` without a ring (nothing written or counted).
RK_HOST_DEVICE inline status emit_audit_each(const audit_channel& channel, const audit_record& record,
                                             std::uint32_t count) noexcept {
  for (std::uint32_t i = 0; i < count; ++i) {
    const status st = emit_audit(channel, record);
    if (st == status::delivered) continue;
    if (st == status::queue_full && channel.overflow != nullptr && count - i > 1) {
      cuda::atomic_ref<std::uint64_t, peer_scope>(*channel.overflow)
          .fetch_add(count - i - 1, cuda::std::memory_order_relaxed); // relaxed: as in emit_audit
    }
    return st;
  }
  return status::delivered;
}

//! The number of records lost so far, read where the counter is addressable (device code, or the host on
//! the CPU backend). On CUDA the host reads it with a copy from device memory instead.
RK_HOST_DEVICE inline std::uint64_t audit_overflow_count(const std::uint64_t& counter) noexcept {
  return cuda::atomic_ref<std::uint64_t, peer_scope>(const_cast<std::uint64_t&>(counter))
      .load(cuda::std::memory_order_relaxed);
}

} // namespace rk
