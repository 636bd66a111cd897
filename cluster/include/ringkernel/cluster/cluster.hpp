#pragma once
//! \file
//! rk::cluster: one rk::runtime per process (rank), launched with mpirun or srun, whose actors reach the
//! actors of every other rank. Link `ringkernel::cluster` (built when CMake finds MPI).
//!
//! Addressing. Every rank spawns its own actors; a name given to cluster::spawn is known cluster-wide
//! once start() has run (find()). An actor of any rank is a global_address {rank, actor}. address_of()
//! turns one into an actor id this rank's handlers and host use like any other: the actor itself when
//! it lives here, otherwise a *remote entry* in this rank's routing table that stands for it. A handler
//! that received a message from another rank sees that rank's sender as such a remote entry, so
//! ctx.reply() and sends to m.source() work unchanged.
//!
//! Delivery. A send to a remote entry is decided on the sending device like any K2K send (message type,
//! the sender's tenant against the remote actor's tenant from the directory, size against the outbound
//! slot, the sender's quotas) and written to the rank's outbound ring; the sender sees `delivered` once
//! it is there, or the refusal. The rank's proxy thread carries outbound messages in batches (over MPI)
//! to their ranks, where the gateway decides each again (type, tenant, the destination still live) as a
//! K2K send from the sender's remote entry; the receiving rank's refusals are counted in its
//! runtime_stats::gateway_verdicts and audited like local ones. Buffers are bounded end to end: a proxy
//! whose peer has `max_batches_in_flight` unfinished sends stops draining its outbound ring, which then
//! fills, and senders see queue_full (handlers) or wait in the gateway's parking area (host sends); a
//! receiving proxy whose gateway is full stops receiving, which holds the sender's batches back.
//! A refusal by the receiving rank comes back to the sender's rank as a *refusal notice*: counted
//! (cluster_stats::refused_remotely), audited there (remote_refusal), and, for a send that carried
//! envelope_flags::notify_refusal, handed to the sender as a message (ringkernel/device/refusal_notice.cuh).
//!
//! Collective calls (every rank, in the same order): the constructor, start(), shutdown() (and the
//! destructor, which shuts down a running cluster). MPI: the constructor initialises MPI with
//! MPI_THREAD_MULTIPLE when the application has not (and finalises it at exit); an application that
//! initialised MPI itself must have asked for MPI_THREAD_MULTIPLE. The cluster works on a duplicate of
//! MPI_COMM_WORLD, so the application's own MPI traffic never mixes with it.
//!
//! Failure (fail-stop). Each rank's proxy hears from every other rank at least every heartbeat_interval;
//! a rank silent for failure_timeout is *gone* for good: sends to its actors end as status::unreachable
//! (decided on the sending device, from the remote entries, which are marked), gone_ranks() names it, the
//! audit log gets a rank_unreachable record, and shutdown() completes among the ranks left. Messages that
//! were already on their way to it are counted (cluster_stats::unreachable, ::abandoned), not confirmed.
//! Launch with a launcher that lets the other ranks live on: `mpirun --enable-recovery` (Open MPI 4),
//! `srun --no-kill` (Slurm). Failures before start() returns are not detected (MPI collectives there).
//! After a failure MPI cannot be finalised (MPI_Finalize waits for every rank, the dead one too): the
//! cluster then skips the MPI_Finalize it would call at exit, and an application that finalises MPI
//! itself should skip it when cluster_report::gone_ranks is not empty.
//!
//! Collectives among actors (reduce, allreduce, broadcast): ringkernel/cluster/collectives.hpp.
//!
//! Not yet: NCCL as a transport, device-to-device sends inside a node (docs/cluster.md says what each
//! needs).

#include <ringkernel/ringkernel.hpp>

#include <chrono>
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rk {

//! An actor of some rank (or that rank's host, with actor == host_actor).
struct global_address {
  std::uint32_t rank = 0;
  actor_index actor = host_actor;
  friend constexpr auto operator<=>(const global_address&, const global_address&) = default;
  // Declared, not only implied by <=>: nvcc (13.0) emits no definition of the implied operator==, and a
  // .cu file comparing two addresses would not link.
  friend constexpr bool operator==(const global_address&, const global_address&) = default;
};

//! outbound.slot_bytes, heartbeat_interval, failure_timeout and drain_timeout must be the same on every
//! rank (the constructor compares them across ranks and throws rk::error on every rank naming one that
//! differs, with the smallest and largest value); the
//! others may differ.
struct cluster_options {
  runtime_options runtime{}; //!< this rank's runtime (each rank may choose its own backend)
  //! The ring handlers' sends to other ranks go through: its slot size bounds such a message
  //! (runtime_options::cluster_outbound). A power of two of at least 2 slots; slots as for a mailbox.
  ring_geometry outbound{4096, 256};
  //! The most bytes one MPI message (a batch) carries; a batch also goes out as soon as the outbound
  //! ring has nothing more for it. At least one outbound message (its slot's payload plus the wire's
  //! framing: the constructor's error gives the number); at most 64 MiB.
  std::uint32_t batch_bytes = 64 * 1024;
  //! Batches to one rank that its proxy has not taken yet (synchronous-mode MPI sends not finished),
  //! beyond which this rank's proxy stops draining the outbound ring (backpressure). 1 .. 1024.
  std::uint32_t max_batches_in_flight = 8;
  //! Refusal notices (docs/cluster.md) this rank holds for its senders while their mailboxes have no room
  //! (a sender that deferred holds its mailbox): notices are always taken from MPI, so no rank's relays
  //! wait on them. One more is dropped and counted (cluster_stats::notices_dropped); its refusal stays
  //! counted in refused_remotely and audited. About 160 bytes each. 1 .. 2^24.
  std::uint32_t notice_backlog = 65'536;
  //! How long shutdown() waits for the cluster to fall quiet (no message anywhere: in a mailbox, a
  //! handler, an outbound ring, a proxy or MPI) before it stops every rank anyway and reports it; counted
  //! from when the last live rank called shutdown().
  std::chrono::milliseconds drain_timeout{10'000};
  //! How often a rank's proxy tells each other rank it is alive (an empty MPI message). 1 ms .. 60 s.
  std::chrono::milliseconds heartbeat_interval{100};
  //! How long a rank may stay silent (no heartbeat, no batch) before the others declare it gone. At least
  //! twice heartbeat_interval; at most 24 hours. Too short a timeout declares a busy rank gone.
  std::chrono::milliseconds failure_timeout{10'000};
  bool announce = true; //!< rank 0 prints one line at start(): ranks, transport, backends
};

//! What this rank's proxy carried. Sums over ranks balance once shutdown() drained: every message one
//! rank sent another was relayed there (sent == relayed cluster-wide). After a shutdown that gave up
//! waiting (drain_timeout) among live ranks, every message handed to MPI ended in one of relayed,
//! dropped or refused at its destination (sent == relayed + dropped + refused cluster-wide, when no
//! refusal notices were dropped), and those taken from the outbound ring that never went are `unsent`.
struct cluster_stats {
  std::uint64_t sent = 0;         //!< messages taken from the outbound ring and handed to MPI (in a batch)
  std::uint64_t sent_batches = 0; //!< MPI messages they went in
  std::uint64_t received = 0;     //!< messages that arrived from other ranks
  std::uint64_t received_batches = 0;
  std::uint64_t relayed = 0;     //!< of those, handed to this rank's gateway
  std::uint64_t relay_waits = 0; //!< times the gateway was full and the proxy held messages back
  std::uint64_t refused = 0;     //!< arrivals this rank could not take (unknown tenant, table full)
  //! Arrivals (messages and refusal notices) not relayed: after shutdown gave up on them, or from a gone
  //! rank; and refusal notices this rank had not sent when shutdown gave up.
  std::uint64_t dropped = 0;
  std::uint64_t unreachable = 0; //!< outbound messages for a gone rank, never handed to MPI
  std::uint64_t abandoned = 0;   //!< in MPI sends to a rank when it was declared gone (cancelled)
  //! Messages handlers sent to other ranks that were never handed to MPI because shutdown() gave up
  //! (drain_timeout) and stopped carrying: waiting for room in a batch or for the destination's sends to
  //! finish, or still in the outbound ring (also those sent after the proxy stopped). So on each rank,
  //! what handlers were told `delivered` for sends to other ranks is sent + unsent + unreachable.
  std::uint64_t unsent = 0;
  std::uint64_t remote_entries = 0; //!< remote entries in this rank's routing table
  //! Refusal notices (refusal_notice.cuh): messages from other ranks this rank refused (its gateway, or
  //! its proxy when the sender could not get a stand-in here) and reported back to their senders' ranks;
  //! reports that came back about this rank's sends (each also audited as remote_refusal); and of those, the
  //! ones handed to the gateway as a message to a sender that asked for it (envelope_flags::notify_refusal).
  std::uint64_t refusals_noticed = 0;
  std::uint64_t refused_remotely = 0;
  std::uint64_t notices_relayed = 0;
  //! Notices for senders here dropped because notice_backlog were held (not in notices_relayed).
  std::uint64_t notices_dropped = 0;
  //! Refusal notices for a rank declared gone: never queued for it (not in refusals_noticed), or queued
  //! (counted in refusals_noticed when queued) and still in this proxy or in MPI sends cancelled then.
  //! Never in unreachable or abandoned, which account for handlers' sends.
  std::uint64_t notices_unreachable = 0;
  //! Partial results of reductions (collectives.hpp) that reached this rank's host after their round had
  //! ended without them (it timed out), dropped.
  std::uint64_t stale_partials = 0;
};

//! What shutdown() found: whether the cluster fell quiet within drain_timeout, and this rank's report.
struct cluster_report {
  bool drained = false; //!< no message was anywhere in the cluster when the ranks stopped
  //! When shutdown() gave up (not drained): messages and refusal notices one live rank had put in batches
  //! for another (handed to MPI or still being filled) that had not arrived there yet. They end in the
  //! other counts (cluster_stats: unsent if never handed to MPI, else dropped at arrival). 0 when drained.
  std::uint64_t in_flight = 0;
  std::vector<std::uint32_t> gone_ranks; //!< ranks declared gone (by this rank or one it heard from)
  shutdown_report local;                 //!< this rank's runtime
};

namespace detail {
class cluster_impl;
}

class cluster {
public:
  //! Joins the job (collective). Throws rk::error for invalid options, or when MPI was initialised by the
  //! application without MPI_THREAD_MULTIPLE.
  explicit cluster(cluster_options options = {});
  ~cluster();
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  std::uint32_t rank() const noexcept;
  std::uint32_t size() const noexcept;
  //! This rank's runtime: register tenants and message types on it (the same on every rank), read its
  //! stats, spawn actors that need no cluster-wide name.
  runtime& local() noexcept;

  //! Spawns a handler-H actor on this rank whose name becomes cluster-wide at start(). Names must be
  //! unique in the whole cluster (start() throws on every rank otherwise). Before start() only.
  template <class H>
  global_address spawn(std::string name, const actor_options& options = {},
                       const handler_state_t<H>& initial = {}) {
    require_before_start("spawn('" + name + "')");
    const actor_index id = local().spawn<H>(name, options, initial);
    publish(name, id, options.tenant);
    return {rank(), id};
  }

  //! Starts this rank's runtime, exchanges the directory of names and starts the proxy (collective). If it
  //! fails (on any rank every rank throws), a later start() is refused: shut the cluster down and create a
  //! new one. Every rank must call it: MPI collectives run here, without a timeout, so a rank that calls
  //! shutdown() (or exits) instead leaves the others waiting in start().
  void start();
  bool running() const noexcept;

  //! The actor named `name` on any rank (after start()); throws rk::error naming it when there is none.
  global_address find(std::string_view name) const;
  //! The id this rank uses for `a`: a.actor when a.rank is this rank, else a remote entry (created on
  //! first use). A remote actor must be in the directory (spawned through cluster::spawn) or have sent
  //! to this rank; throws rk::error otherwise, and for a rank out of range. Another rank's host
  //! ({rank, host_actor}) is always known: its entry takes messages of tenant 0 (see host_address).
  actor_index address_of(global_address a);
  //! The id this rank's handlers send to for rank `rank`'s host, as senders of tenant `tenant` (a remote
  //! entry checks the sender's tenant like any destination; host_actor itself for this rank). Throws
  //! rk::error for a rank out of range or a tenant not registered here.
  actor_index host_address(std::uint32_t rank, std::uint64_t tenant = 0);
  //! Who a message this rank's host received comes from, as a global address.
  global_address origin_of(const received_message& m) const;

  //! Ranks this rank declared gone (failure_timeout), in increasing order.
  std::vector<std::uint32_t> gone_ranks() const;

  //! runtime::send to any rank's actor (a remote one through this rank's device, outbound ring and proxy);
  //! `unreachable` at once when its rank is gone. Throws rk::error as address_of() does for a destination
  //! this rank cannot address (a rank out of range, an actor not in the directory).
  [[nodiscard]] status send(global_address to, std::uint32_t type, byte_view payload,
                            const send_options& options = {});
  //! runtime::send_blocking, the same way.
  [[nodiscard]] status send_blocking(global_address to, std::uint32_t type, byte_view payload,
                                     std::chrono::milliseconds timeout, const send_options& options = {});
  //! runtime::receive on this rank, less the partial results reductions keep (collectives.hpp). Threads may
  //! call it while another runs a collective: a partial one of them takes reaches the collective at once.
  std::optional<received_message> receive(std::chrono::milliseconds timeout);

  //! Collective: sends `payload` (taken from rank `root`; ignored on the others) with message type `type`
  //! to every member of group `group` on every rank (the group of that name on each rank; none there:
  //! nobody). Returns how many members of this rank's group it was enqueued for (send_blocking with
  //! `timeout` each; a member whose send is refused, e.g. too_large for its mailbox, is not counted).
  //! Throws rk::error for a root out of range or gone.
  std::uint64_t broadcast(std::uint32_t root, std::string_view group, std::uint32_t type, byte_view payload,
                          std::chrono::milliseconds timeout);

  // --- building blocks of collectives.hpp (not for applications) ---------------------------------------
  //! Host messages of type `type` from `reducer` (this rank's reducer of one reduction; host_actor: none
  //! here) are kept for take_kept() and never returned by receive(); messages of that type from anyone
  //! else are the application's. Throws rk::error when `type` is kept for another reduction already.
  void keep_for_collectives(std::uint32_t type, actor_index reducer);
  bool keeps_for_collectives(std::uint32_t type) const;
  //! The kept message of type `type` whose payload starts with `round` (a u64), waiting up to `timeout`
  //! (0: only what this rank's host has already). Kept messages of earlier rounds are dropped from then on
  //! (cluster_stats::stale_partials).
  std::optional<received_message> take_kept(std::uint32_t type, std::uint64_t round,
                                            std::chrono::milliseconds timeout);
  //! Keeps a message take_kept() returned again, for a round that is to be asked for again.
  void put_back_kept(received_message&& m);
  //! Which collective a rank is in: exchanged first, so that ranks in different collectives all find out
  //! in the same exchange.
  enum class collective_call : std::uint64_t { allreduce = 1, reduce = 2, broadcast = 3 };
  //! The first exchange of collective `call` (collective): every live rank's `row` (at most
  //! first_row_words), a gone rank's empty. Throws rk::error on every rank when the live ranks are not all
  //! in `call` (`who` names this rank's call), and unless the cluster is running.
  static constexpr std::size_t first_row_words = 7;
  std::vector<std::vector<std::uint64_t>>
  begin_collective(collective_call call, std::span<const std::uint64_t> row, const std::string& who);
  //! A later exchange of the collective begin_collective() began: every live rank's `row` (the same length
  //! everywhere, as the first exchange agreed); a gone rank's row is empty.
  std::vector<std::vector<std::uint64_t>> exchange_for_collective(std::span<const std::uint64_t> row);

  //! Waits until no message is anywhere in the cluster (or drain_timeout passed), then stops every rank's
  //! proxy and runtime (collective among the ranks not gone; a rank declared gone meanwhile is no longer
  //! waited for). Idempotent.
  cluster_report shutdown();
  cluster_stats stats() const;

private:
  void require_before_start(const std::string& who) const;
  void publish(const std::string& name, actor_index id, std::uint64_t tenant);
  std::unique_ptr<detail::cluster_impl> impl_;
};

} // namespace rk
