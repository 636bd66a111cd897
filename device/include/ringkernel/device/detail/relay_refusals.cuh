#pragma once
//! \file
//! Where a cluster rank's gateway records the relayed messages it refuses, for the rank's proxy to send a
//! refusal notice back to their senders (refusal_notice.cuh, docs/cluster.md).
//!
//! One producer (the gateway), one consumer (the host's proxy), in mapped memory. The gateway never
//! reads the consumer's position: instead the host admits a relay that could end in a record only while
//!   records written - records taken + relays admitted - relays settled < capacity
//! (relay_refusals.cpp), so a record always finds its slot free. Both counts the gateway publishes are
//! release stores, the record count first: a reader that loads `relays_settled` and then `written` may
//! count a refusal twice (safe), never not at all.
//!
//! A relay *may* end in a record when its type is not refusal_notice_type (notices are never noticed).
//! The gateway writes a record for such a relay whose verdict is a refusal other than `dropped`, and its
//! source is one of this rank's remote entries.

#include <ringkernel/device/detail/parking.cuh>
#include <ringkernel/device/refusal_notice.cuh>

namespace rk::detail {

//! One refused relay (32 bytes, mapped).
struct refusal_record {
  std::uint64_t tenant = 0;
  std::uint64_t correlation_id = 0;
  actor_index source = 0;      //!< the sender's remote entry on this rank
  actor_index destination = 0; //!< as addressed
  std::uint32_t type_id = 0;
  std::uint16_t verdict = 0; //!< rk::status
  std::uint16_t flags = 0;   //!< the message's envelope_flags (without the runtime's)
};
static_assert(sizeof(refusal_record) == 32);

struct refusal_channel {
  refusal_record* records = nullptr;       //!< mapped; null: no cluster, nothing is recorded
  std::uint32_t capacity = 0;              //!< a power of two
  std::uint64_t* written = nullptr;        //!< mapped; writer: gateway (release)
  std::uint64_t* relays_settled = nullptr; //!< mapped; writer: gateway (release), relays that may notice
};

//! Whether a relay of `type_id` may end in a refusal record (the host's admission counts these).
RK_HOST_DEVICE constexpr bool may_be_noticed(std::uint32_t type_id) noexcept {
  return type_id != refusal_notice_type;
}

//! Records a refused relay (`header` as it came in; the runtime's flags are left out).
RK_HOST_DEVICE inline void write_refusal_record(const refusal_channel& c, parking_state& st,
                                                const envelope& header, status verdict) noexcept {
  refusal_record& r = c.records[st.notices_written & (c.capacity - 1)];
  r.tenant = header.tenant;
  r.correlation_id = header.correlation_id;
  r.source = header.source;
  r.destination = header.destination;
  r.type_id = header.type_id;
  r.verdict = static_cast<std::uint16_t>(verdict);
  r.flags = static_cast<std::uint16_t>(header.flags & ~envelope_flags::runtime_only);
  st.notices_written += 1;
  cuda::atomic_ref<std::uint64_t, pcie_scope>(*c.written)
      .store(st.notices_written, cuda::std::memory_order_release);
}

//! Counts a settled relay that may be noticed (after its record, if any).
RK_HOST_DEVICE inline void count_relay_settled(const refusal_channel& c, parking_state& st) noexcept {
  st.relays_settled += 1;
  cuda::atomic_ref<std::uint64_t, pcie_scope>(*c.relays_settled)
      .store(st.relays_settled, cuda::std::memory_order_release);
}

} // namespace rk::detail
