#pragma once
//! \file
//! rk::status: what every send returns. Hot-path operations never throw; they return one of these.

#include <ringkernel/device/config.cuh>

namespace rk {

//! Outcome of a send (or a wait). Values are stable: they index the per-actor counter arrays and
//! appear in audit records and JSON output.
enum class status : std::uint8_t {
  delivered = 0,       //!< written into the destination mailbox (or the host egress ring)
  enqueued,            //!< host send accepted by the ingress ring; the device decides later
  queue_full,          //!< destination ring full; nothing was written
  too_large,           //!< payload larger than the destination slot's inline capacity
  not_found,           //!< no live actor (or group) with that id / name
  max_hops_exceeded,   //!< an indirect route forwarded the message too many times
  not_routable,        //!< the message type may not travel kernel-to-kernel
  tenant_mismatch,     //!< sender and destination belong to different tenants
  quota_exceeded,      //!< the sending tenant is over its rate or budget
  invalid_descriptor,  //!< a zero-copy descriptor failed validation, or a payload named no bytes (null data)
  dropped,             //!< not deliverable and the sender asked for silent-drop semantics (counted)
  timed_out,           //!< a bounded wait expired
  aborted,             //!< a wait stopped because the runtime is terminating
  not_running,         //!< the runtime is not running (host send before start or after shutdown)
  invalid_destination, //!< the sender may not address that destination (the host sending to itself)
  unreachable,         //!< the destination lives on a cluster rank that died or stopped answering
};

inline constexpr std::uint32_t status_count = 16;

//! True for the two outcomes that mean "the message is on its way".
RK_HOST_DEVICE constexpr bool is_ok(status s) noexcept {
  return s == status::delivered || s == status::enqueued;
}

//! Stable lower-case name, e.g. "queue_full". Never returns null.
RK_HOST_DEVICE constexpr const char* to_string(status s) noexcept {
  switch (s) {
  case status::delivered:
    return "delivered";
  case status::enqueued:
    return "enqueued";
  case status::queue_full:
    return "queue_full";
  case status::too_large:
    return "too_large";
  case status::not_found:
    return "not_found";
  case status::max_hops_exceeded:
    return "max_hops_exceeded";
  case status::not_routable:
    return "not_routable";
  case status::tenant_mismatch:
    return "tenant_mismatch";
  case status::quota_exceeded:
    return "quota_exceeded";
  case status::invalid_descriptor:
    return "invalid_descriptor";
  case status::dropped:
    return "dropped";
  case status::timed_out:
    return "timed_out";
  case status::aborted:
    return "aborted";
  case status::not_running:
    return "not_running";
  case status::invalid_destination:
    return "invalid_destination";
  case status::unreachable:
    return "unreachable";
  }
  return "unknown";
}

} // namespace rk
