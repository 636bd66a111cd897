#pragma once
//! \file
//! Refusal notices: how the sender of a message to an actor on another cluster rank learns that the
//! *receiving* rank refused it (the actor had stopped, for instance).
//!
//! A send to a remote actor returns `delivered` once the sending device decided it and wrote it to the
//! rank's outbound ring (rk::cluster, docs/cluster.md). The receiving rank's gateway decides it again;
//! when it refuses (any verdict but `dropped`, which the sender asked for with drop_if_unroutable), the
//! rank's proxy sends a notice back to the sending rank. There it is always counted
//! (cluster_stats::refused_remotely) and audited (audit_event::remote_refusal, on the sender's rank),
//! and, when the send carried `envelope_flags::notify_refusal`, the sender also gets a message of type
//! `refusal_notice_type` whose payload is a `refusal_notice`: a handler receives it like any message,
//! the host through rk::cluster::receive(). Its source is the refused destination (the sender's id for
//! it), its correlation id the refused message's, its priority `urgent` (a sender with priority lanes takes
//! it ahead of a message it deferred). While the sender's mailbox has no room, its notices wait on its
//! rank, up to cluster_options::notice_backlog for the rank; one more is dropped and counted
//! (cluster_stats::notices_dropped), its refusal still counted and audited.
//!
//! Nothing announces a refused refusal notice (the sender stopped meanwhile): it is dropped and counted,
//! as a send with drop_if_unroutable. Any actor may send a message of type refusal_notice_type, but its
//! source is then its own id: check `m.source()` against the actor you sent to before acting on it.

#include <ringkernel/device/status.cuh>

namespace rk {

//! The message type of refusal notices; reserved (registered as "rk.refusal_notice", routable).
inline constexpr std::uint32_t refusal_notice_type = 0xFFFF'FF01u;

//! The payload of a refusal notice (24 bytes, the same on every target).
struct refusal_notice {
  std::uint32_t rank = 0;    //!< where the message was refused
  actor_index actor = 0;     //!< the destination as the sender addressed it, an id on that rank
  std::uint32_t type_id = 0; //!< the refused message's type
  std::uint32_t verdict = 0; //!< an rk::status: see why()
  std::uint64_t correlation_id = 0;

  RK_HOST_DEVICE constexpr status why() const noexcept { return static_cast<status>(verdict); }
};
static_assert(sizeof(refusal_notice) == 24);

} // namespace rk
