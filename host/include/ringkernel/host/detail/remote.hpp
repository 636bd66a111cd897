#pragma once
//! \file
//! What rk::cluster needs from a rank's runtime, and nothing a handler or an application should call.
//!
//! A *remote entry* is a routing-table entry that stands for an actor on another rank (system.cuh): a
//! delivery to it is decided on this device like any other (message type, the sender's tenant against
//! the remote actor's tenant, payload size against the outbound slot, quotas) and then written to the
//! runtime's outbound ring instead of a mailbox. The rank's proxy drains that ring (take_outbound),
//! carries the messages to their ranks, and there hands each to relay(): the receiving gateway decides it
//! again as a K2K send from the sender's remote entry on that rank. So a handler addresses an actor on
//! another rank with an ordinary actor id, and replies to a message from one the same way.
//!
//! Requires runtime_options::cluster_outbound (a ring geometry); without it add_remote throws.
//! Thread safety: add_remote as the runtime's setup calls (any thread, serialised inside); take_outbound
//! from one thread at a time; relay from any thread while the runtime runs.

#include <ringkernel/device/detail/relay_refusals.cuh>
#include <ringkernel/host/runtime.hpp>

namespace rk::detail::remote {

//! A new remote entry named `name` for an actor of tenant `tenant` (registered on this runtime) on another
//! rank. Works before and after start(). Throws rk::error (no outbound ring, name taken, unknown tenant,
//! table full). Remove it with runtime::remove_alias.
actor_index add_entry(runtime& rt, std::string name, std::uint64_t tenant);

//! Makes the remote entry `entry` refuse every later send with status::unreachable, on the device and in
//! the gateway (its rank died or stopped answering). Messages already in the outbound ring stay there for
//! the proxy. Throws rk::error when `entry` is no remote entry of this runtime.
void mark_unreachable(runtime& rt, actor_index entry);

//! Writes a host record to this runtime's audit log (like the runtime's own spawn and stop records), about
//! `actor` (host_actor: the host) of `tenant`.
void audit(runtime& rt, audit_event event, audit_level level, std::uint32_t detail, std::uint64_t value,
           actor_index actor = host_actor, std::uint64_t tenant = 0);

//! Takes the oldest message written to the outbound ring; its `header.destination` is the remote entry
//! it was sent to, `header.source` the sending actor here (or host_actor). False when the ring is empty.
bool take_outbound(runtime& rt, received_message& out);

//! Hands a message from another rank to this rank's gateway. `header.source` must be a remote entry of
//! this runtime (the sender's stand-in) and `header.tenant` the sender's tenant; any other source makes
//! the message a host message. Returns enqueued, queue_full (nothing written: try again later),
//! too_large or not_running; the gateway's verdict is counted in runtime_stats::gateway_verdicts.
[[nodiscard]] status relay(runtime& rt, const envelope& header, byte_view payload);

//! Takes the oldest record of a relayed message the gateway refused (device/.../relay_refusals.cuh): its
//! `source` is the sender's remote entry here. False when there is none. Until the proxy takes them,
//! records hold back relays that could add more (relay answers queue_full), never the gateway.
bool take_refusal(runtime& rt, refusal_record& out);
//! Refusal records not taken yet.
std::uint64_t refusals_pending(runtime& rt);

//! Messages relay() accepted so far.
std::uint64_t relayed(const runtime& rt);
//! Messages put in the ingress ring so far (host sends and relays): with runtime_stats::gateway_processed
//! it tells whether the gateway has settled everything it was given.
std::uint64_t enqueued(const runtime& rt);
//! Messages in the outbound ring not taken yet.
std::uint64_t outbound_pending(runtime& rt);

} // namespace rk::detail::remote
