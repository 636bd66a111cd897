#pragma once
//! \file
//! Counters the host reads back from the device: per actor, per gateway, per host.

#include <ringkernel/device/status.cuh>
#include <ringkernel/host/trace.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace rk {

inline std::ostream& operator<<(std::ostream& os, status s) {
  return os << to_string(s);
}

using status_counts = std::array<std::uint64_t, status_count>;

inline std::uint64_t total(const status_counts& c) noexcept {
  std::uint64_t sum = 0;
  for (auto v : c) sum += v;
  return sum;
}

//! Where an actor is in its lifecycle (see runtime::stop, respawn, pause_actor, ctx.fault).
enum class actor_lifecycle { live, paused, stopping, stopped, faulted, alias };

inline const char* to_string(actor_lifecycle l) noexcept {
  switch (l) {
  case actor_lifecycle::live:
    return "live";
  case actor_lifecycle::paused:
    return "paused";
  case actor_lifecycle::stopping:
    return "stopping";
  case actor_lifecycle::stopped:
    return "stopped";
  case actor_lifecycle::faulted:
    return "faulted";
  case actor_lifecycle::alias:
    return "alias";
  }
  return "unknown";
}

inline std::ostream& operator<<(std::ostream& os, actor_lifecycle l) {
  return os << to_string(l);
}

//! How an actor faulted (see runtime::faults()).
enum class fault_kind {
  exception, //!< CPU backend: the handler threw; only this actor faulted
  trap,      //!< CPU backend: the handler called ctx.trap; only this actor faulted
  watchdog,  //!< a handler call ran longer than runtime_options::handler_timeout (it may still be running)
};

inline const char* to_string(fault_kind k) noexcept {
  switch (k) {
  case fault_kind::exception:
    return "exception";
  case fault_kind::trap:
    return "trap";
  case fault_kind::watchdog:
    return "watchdog";
  }
  return "unknown";
}

//! One fault of one actor, as runtime::faults() lists it.
struct actor_fault {
  actor_index actor = host_actor;
  std::string name;               //!< the actor's name
  std::string handler{};          //!< its handler type
  std::uint32_t message_type = 0; //!< the message being handled (watchdog on CUDA: 0 when unknown)
  std::uint32_t code = 0;         //!< the ctx.trap code; rk::fault_code_exception for an exception
  fault_kind kind = fault_kind::exception;
  std::string reason;           //!< e.g. "handler threw: bad input", "ctx.trap(3)"
  std::uint64_t running_ns = 0; //!< watchdog: how long the call had run when it was reported
  //! watchdog, CPU backend, dedicated workers: actors waiting on the same worker. Empty with scheduled
  //! workers, where an actor is tied to no worker (the others serve it; with a single scheduled worker it
  //! waits in the run queue, unlisted).
  std::vector<std::string> stuck_behind;
};

struct actor_stats {
  actor_index id = 0;
  std::string name;
  actor_lifecycle lifecycle = actor_lifecycle::live;
  status_counts sent{};           //!< outcome of every send this actor made
  std::uint64_t received = 0;     //!< messages delivered into its mailbox
  std::uint64_t handled = 0;      //!< messages its handler finished
  std::uint64_t discarded = 0;    //!< messages that reached it after a stop or fault (counted, not handled)
  std::uint64_t interrupted = 0;  //!< messages whose handler call faulted (CPU backend), not handled
  std::uint64_t deferred = 0;     //!< handler calls that ended in ctx.defer() (the message was offered again)
  std::uint64_t reservations = 0; //!< slot-claim atomics its sends took (aggregated sends take fewer)
  std::uint32_t fault_code = 0;   //!< the code passed to ctx.fault if it faulted (0 again after respawn)
  std::string handler{};          //!< its handler type's name (empty for an alias)
  std::uint64_t tenant = 0;       //!< the tenant it belongs to
  //! Time spent in its handler calls (the device clock on CUDA; on the CPU backend a call that follows
  //! another in the same turn is timed from that call's end: docs/observability.md).
  std::uint64_t handler_ns = 0;
  //! Its handler calls by running time: bucket k counts the calls that took at most
  //! handler_time_bucket_bound_ns(k) and more than the bound of bucket k - 1.
  std::array<std::uint64_t, handler_time_bucket_count> handler_time{};
  //! runtime_stats::forgotten_by_handler_and_tenant only: counts of actors of tenant registrations removed
  //! since (the same ids perhaps added again), one entry per handler type for all of them, with `tenant`
  //! 0. They stay in their handler type's sums, not in a tenant's: a tenant added again starts from zero.
  bool tenant_removed = false;

  //! Messages in its mailbox or in its handler now (deferred ones included).
  std::uint64_t queued() const noexcept {
    const std::uint64_t finished = handled + discarded + interrupted;
    return received > finished ? received - finished : 0;
  }
};

struct runtime_stats {
  //! Every current actor and alias, in id-slot order. Until an actor is forgotten, ids are dense and
  //! `actors[id]` is actor `id`; use find() when actors may have been forgotten.
  std::vector<actor_stats> actors;
  //! The counters of every forgotten actor, summed (messages still queued when it was forgotten count
  //! as discarded; those whose handler call faulted stay interrupted), so that totals keep balancing
  //! across runtime::forget.
  actor_stats forgotten{host_actor, "(forgotten actors)", actor_lifecycle::stopped};
  //! `forgotten` split by handler type and tenant (actor_stats::handler and tenant say which), so that
  //! sums per handler type or tenant keep balancing across runtime::forget too.
  std::vector<actor_stats> forgotten_by_handler_and_tenant;
  //! What runtime::send / send_blocking / send_wait returned on the host, one count per call. A send_wait
  //! is counted under its final verdict (delivered, a refusal, timed_out, aborted), never as `enqueued`:
  //! the messages the gateway settles are host_sends[enqueued] plus the send_waits that were sent.
  status_counts host_sends{};
  status_counts gateway_verdicts{}; //!< what the device finally decided for each settled host message
  //! Host messages settled (delivered or refused). The parking room each one held is free again by the
  //! time it is counted here: a send made after reading this count finds that room.
  std::uint64_t gateway_processed = 0;
  std::uint64_t gateway_parked = 0; //!< host messages waiting for room in the gateway's parking area now
  std::uint64_t gateway_parked_total = 0; //!< host messages that waited there at some point
  std::uint64_t host_received = 0;        //!< messages runtime::receive returned
  //! The runtime faulted (a device fault on CUDA): these are the last counters read before it, and the
  //! actors' lifecycle says faulted. Also set after a shutdown() that could not read the final counters
  //! (out of host memory, see shutdown_report::fault) when reading them again failed too.
  bool stale = false;
  //! The sampled message trace's collector (runtime_options::trace; all zero when tracing is off).
  trace_stats trace{};

  //! The entry of actor (or alias) `id`, or null when it is not a current one.
  const actor_stats* find(actor_index id) const noexcept {
    for (const auto& a : actors)
      if (a.id == id) return &a;
    return nullptr;
  }
  //! Sum over actors (forgotten ones included) of sends with outcome `s`.
  std::uint64_t actor_sends(status s) const noexcept {
    std::uint64_t sum = forgotten.sent[static_cast<std::size_t>(s)];
    for (const auto& a : actors) sum += a.sent[static_cast<std::size_t>(s)];
    return sum;
  }
};

//! How full one table is.
struct table_fill {
  std::uint64_t used = 0;
  std::uint64_t capacity = 0;
};

//! How full the runtime's tables are (runtime::tables()). Slots given back by forget, remove_alias,
//! remove_group, tenants().remove and unregister_region count as used until their grace period ends.
struct table_usage {
  table_fill actors;        //!< actor and alias ids (runtime_options::max_actors)
  table_fill groups;        //!< max_groups
  table_fill group_members; //!< max_group_members
  table_fill tenants;       //!< max_tenants (tenant 0 included)
  table_fill engagements;   //!< max_engagements
  table_fill regions;       //!< max_regions
  table_fill running_arena; //!< bytes of runtime_options::running_arena_bytes (capacity 0 before start())
  std::uint64_t pending_releases = 0; //!< slots and memory waiting for workers to pass a grace period
};

//! A host message that was enqueued but neither delivered nor refused when shutdown() stopped the
//! gateway (its destination stayed full: e.g. an actor that deferred its queue, or one stuck in a
//! handler call; shutdown resumes paused actors to drain them).
struct undelivered_message {
  address destination = host_actor; //!< as sent (an actor, alias or group address)
  std::uint32_t type = 0;
  std::uint64_t correlation_id = 0;
  std::uint64_t tenant = 0;
  bool parked = false; //!< waiting for room in the gateway's parking area (else still in the ingress ring)
};

//! What shutdown() found.
struct shutdown_report {
  bool drained = true; //!< every in-flight message was handled before terminate
  //! Messages still queued or in flight when the drain gave up, counted once the workers stopped (each
  //! exactly once). When a worker did not stop (workers_stopped false) they are read mailbox by mailbox
  //! while workers still run: a message forwarded between two actors during the reading can count at both
  //! ends or at neither.
  std::uint64_t undelivered = 0;
  //! The host messages among them that never reached a mailbox, each by destination, type and
  //! correlation id (empty when the drain succeeded, when a device fault made them unreadable, and when
  //! a worker did not stop (workers_stopped false): the gateway may still be delivering them then, so
  //! no list would be exact; `undelivered` and stats().gateway_parked still count them).
  std::vector<undelivered_message> undelivered_host_messages;
  std::uint64_t discarded = 0; //!< messages that reached stopped or faulted actors (counted)
  //! Messages lost to faults: those whose handler call faulted (CPU backend) and, after a device fault,
  //! everything delivered but not handled by the last counters read.
  std::uint64_t lost_to_fault = 0;
  std::uint64_t pending_host_messages = 0; //!< replies still in the egress ring (receive() can take them)
  //! Set when the runtime had faulted, when shutdown() itself failed ("shutdown failed: ..."), and when,
  //! out of host memory, it could not read the actors' final states or the final counters back ("shutdown()
  //! could not read back ..."; the drain's verdict and `workers_stopped` still hold then).
  std::optional<std::string> fault;
  bool workers_stopped = true; //!< false: a worker did not exit in time (resources leaked)
  //! Actors the watchdog found stuck in one handler call (runtime_options::handler_timeout) that was still
  //! running when the drain ended (a call that returned before is in runtime::faults() only), and, when
  //! workers did not exit, the actors whose handler they were still running. Such workers, the runtime's
  //! memory and its backend are leaked rather than freed under them.
  std::vector<std::string> stuck_actors;
};

} // namespace rk
