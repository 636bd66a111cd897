#pragma once
//! \file
//! The sampled message trace: device side.
//!
//! With runtime_options::trace.sample_every = N (0: off), the worker serving an actor records every N-th
//! handler call of that actor (a per-actor count, so N = 1 records every call and N = 10 exactly one in
//! ten) as a trace_record: who sent what to whom, when it was sent (the envelope's HLC time) and when the
//! handler ran, all on the device clock (`%globaltimer`, Unix nanoseconds; on the CPU backend the HLC's
//! host clock: steady_clock moved to the Unix epoch once per process). Records go into the *trace ring*, laid
//! out like the audit ring: slots in pinned, mapped host memory, the producers' claim counter in device
//! memory, one host consumer (the runtime's trace collector, host/src/trace_link.hpp). Writing never blocks:
//! when the ring is full the record is counted in the channel's `ring_full` counter and dropped.
//!
//! A record is the traced message's 64-byte envelope, copied as the handler saw it (its timestamp is the
//! send time; source, destination, type, correlation id, tenant, priority, hops, flags, route key), and a
//! 64-byte trace_call (below). It fills one 128-byte ring slot; the ring's own envelope convention is not
//! used, a marker word in the trace_call tells a written slot.

#include <ringkernel/device/mailbox.cuh>

#include <cstddef>

namespace rk {

//! What became of a traced handler call.
enum class trace_outcome : std::uint8_t {
  handled = 0,  //!< the handler returned and the message was consumed
  deferred = 1, //!< the handler called ctx.defer(): the message stays for a later turn
  faulted = 2,  //!< the handler trapped or threw (CPU backend; a device trap ends the kernel instead)
};

RK_HOST_DEVICE constexpr const char* to_string(trace_outcome o) noexcept {
  switch (o) {
  case trace_outcome::handled:
    return "handled";
  case trace_outcome::deferred:
    return "deferred";
  case trace_outcome::faulted:
    return "faulted";
  }
  return "unknown";
}

//! The handler call of a trace record. Trivially copyable, 64 bytes.
struct trace_call {
  std::uint64_t begin_ns = 0;     //!< the handler call began (device clock, Unix ns)
  std::uint64_t end_ns = 0;       //!< it returned
  actor_index actor = host_actor; //!< the actor whose handler ran (the envelope's destination may be a group)
  trace_outcome outcome = trace_outcome::handled;
  std::uint8_t reserved_[3] = {};
  std::uint32_t marker = 0; //!< trace_marker in a written record
  std::uint32_t reserved2_[9] = {};
};
static_assert(sizeof(trace_call) == 64);

//! One sampled handler call: the message's envelope and the call.
struct trace_record {
  envelope message{};
  trace_call call{};
};
inline constexpr std::uint32_t trace_record_bytes = 128;
static_assert(sizeof(trace_record) == trace_record_bytes, "the trace record must stay exactly 128 bytes");

//! trace_call::marker of a written record ("RKTR").
inline constexpr std::uint32_t trace_marker = 0x5254'4B52u;

//! Slot size of the trace ring: one record.
inline constexpr std::uint32_t trace_slot_bytes = trace_record_bytes;
static_assert(trace_slot_bytes % ring_geometry::slot_alignment == 0);

RK_HOST_DEVICE constexpr ring_geometry trace_ring_geometry(std::uint32_t capacity) noexcept {
  return ring_geometry{capacity, trace_slot_bytes};
}

//! Device producers claim (tail in device memory) and publish; the host collector consumes.
using trace_ring = mpsc_ring<pcie_scope, peer_scope>;

//! Where workers write trace records. Trivially copyable (part of the system view).
struct trace_channel {
  ring_view ring{};                   //!< seq and slots mapped; tail in device memory
  std::uint64_t* ring_full = nullptr; //!< device memory: records dropped because the ring was full
  std::uint32_t sample_every = 0;     //!< 0: tracing is off
};

//! Copies a 64-byte envelope between 16-byte aligned places. Not unrolled: one 16-byte word in flight at a
//! time, so the copy adds no registers to the worker loops it is inlined into (the PTX audit checks their
//! budgets).
RK_HOST_DEVICE inline void copy_envelope(const std::byte* from, std::byte* to) noexcept {
  const auto* source = reinterpret_cast<const detail::slot_chunk*>(from);
  auto* destination = reinterpret_cast<detail::slot_chunk*>(to);
#if defined(__CUDA_ARCH__)
#pragma unroll 1
#endif
  for (std::uint32_t k = 0; k < envelope_bytes / sizeof(detail::slot_chunk); ++k) destination[k] = source[k];
}

//! Room for an envelope copied by copy_envelope. Raw bytes: nothing to initialise (it is declared per
//! handler call, and __shared__ in the CUDA loops, where no initialiser is allowed).
struct alignas(16) envelope_copy {
  std::byte bytes[envelope_bytes];
};

//! Records a handler call of `actor` on the message whose 64-byte, 16-byte aligned header is at
//! `message_header` (a mailbox slot; the envelope is copied 16 bytes at a time, never held whole in
//! registers). Any thread, any number concurrently; never waits. Returns delivered, queue_full (dropped
//! and counted) or not_running (no ring).
RK_HOST_DEVICE inline status emit_trace(const trace_channel& channel, const std::byte* message_header,
                                        actor_index actor, std::uint64_t begin_ns, std::uint64_t end_ns,
                                        trace_outcome outcome) noexcept {
  if (channel.ring.slots == nullptr) return status::not_running;
  const trace_ring ring(channel.ring);
  const ring_claim claim = ring.try_claim(1);
  if (!claim.ok) {
    // Relaxed: a statistic the collector reads; it orders nothing else.
    if (channel.ring_full != nullptr)
      cuda::atomic_ref<std::uint64_t, peer_scope>(*channel.ring_full)
          .fetch_add(1, cuda::std::memory_order_relaxed);
    return status::queue_full;
  }
  std::byte* slot = ring.slot_at(claim.position);
  copy_envelope(message_header, slot);
  trace_call call;
  call.begin_ns = begin_ns;
  call.end_ns = end_ns;
  call.actor = actor;
  call.outcome = outcome;
  call.marker = trace_marker;
  detail::store_words(slot + envelope_bytes, call);
  ring.publish(claim.position);
  return status::delivered;
}

} // namespace rk
