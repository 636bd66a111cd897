#pragma once
//! \file
//! The one place where the device decides what happens to a message. Every path (K2K sends from
//! handlers, host messages forwarded by the gateway, replies to the host) calls deliver(), and nothing
//! reaches a destination ring except through it.

#include <ringkernel/device/detail/system.cuh>

namespace rk::detail {

//! Decides and, if allowed, delivers `header` + inline `payload`. Returns the verdict; on any verdict
//! other than `delivered` nothing was written anywhere.
RK_HOST_DEVICE inline status deliver(const system_view& sys, const envelope& header,
                                     const void* payload) noexcept {
  if (header.destination == host_actor) return egress_ring(sys.egress).try_send(header, payload);

  const bool drop = (header.flags & envelope_flags::drop_if_unroutable) != 0;
  if (header.destination >= sys.actor_capacity) return drop ? status::dropped : status::not_found;
  const actor_slot& destination = sys.actors[header.destination];
  if (life_of(destination) != actor_life::live) return drop ? status::dropped : status::not_found;

  std::uint64_t& received = sys.counters[header.destination].received;
  // Counting before publish keeps `received >= handled` at every instant, which shutdown's drain
  // detection relies on.
  return mailbox(destination.inbox).try_send(header, payload, [&received] { bump(received); });
}

} // namespace rk::detail
