#pragma once
//! \file
//! rk::runtime: the host controller. Spawns actors, launches the actor kernels (or CPU workers), sends
//! and receives host messages, reads counters, and shuts everything down.
//!
//! Thread safety: send, send_wait, receive and stats may be called from any number of host threads
//! while the runtime runs. Setup calls (spawn, forget, aliases, groups, routes, tenants, regions, message
//! types), start and shutdown take one lock: they may come from any host thread and run one at a time
//! (restore() is one transaction under it). From a handler (a CPU-backend worker thread), calls that
//! would wait for that worker are refused (see shutdown()), and so is a call that needs that lock while
//! another call holds it (its holder may be waiting for this very worker): rk::error, never a wait.
//!
//! After shutdown(): calls that add or change something (spawn, add_alias, create_group, set_route,
//! tenants().add / set_quota / set_engagement_budget, register_region, create_region, append,
//! register_message_type, ...) throw rk::error; removals (remove_alias, remove_group, tenants().remove,
//! unregister_region) are still accepted, and stats(), receive() and state<H>() still answer.
//!
//! Out of host memory: construction and the backend's allocations (tables, mailboxes, rings, states: what
//! options and spawns size) throw rk::error naming what was being allocated; other allocations of any call
//! may let std::bad_alloc through.
//! Either way a setup call is undone as for any error, start() leaves no thread running, and shutdown()
//! stops the workers or reports `workers_stopped` false (the runtime then keeps their memory for good).
//!
//! After fork(), the child must not call a runtime its parent created (its threads are not in the child):
//! it may exit or exec. Destroying the runtime there (std::exit with a static one, a local going out of
//! scope) stops and frees nothing: the parent's runtime is the one that runs.

#include <ringkernel/device/backoff.cuh>
#include <ringkernel/host/audit.hpp>
#include <ringkernel/host/detail/actor_type.hpp>
#include <ringkernel/host/error.hpp>
#include <ringkernel/host/message_types.hpp>
#include <ringkernel/host/metrics.hpp>
#include <ringkernel/host/options.hpp>
#include <ringkernel/host/snapshot.hpp>
#include <ringkernel/host/state_dump.hpp>
#include <ringkernel/host/stats.hpp>
#include <ringkernel/host/tenancy.hpp>
#include <ringkernel/host/trace.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeindex>
#include <vector>

namespace rk {

namespace detail {
class runtime_impl;
struct runtime_access;

//! `timeout` as nanoseconds for the wait named `who`: rk::error when negative; a timeout longer than
//! nanoseconds can hold (e.g. milliseconds::max()) saturates, and means "as long as it takes".
template <class Rep, class Period>
std::chrono::nanoseconds checked_timeout(std::chrono::duration<Rep, Period> timeout, const char* who) {
  if constexpr (std::is_floating_point_v<Rep>) {
    if (!(timeout.count() == timeout.count())) // NaN compares false with everything, even itself
      throw error(std::string(who) + ": the timeout is not a number (NaN)");
  }
  if (timeout < timeout.zero()) {
    const auto seconds = std::chrono::duration<double>(timeout).count();
    char shown[32];
    std::snprintf(shown, sizeof shown, "%g s", seconds);
    throw error(std::string(who) + ": the timeout must not be negative (got " + shown + ")");
  }
  const std::uint64_t ns = timeout_ns(timeout);
  constexpr auto longest = static_cast<std::uint64_t>(std::chrono::nanoseconds::max().count());
  return ns >= longest ? std::chrono::nanoseconds::max()
                       : std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}
} // namespace detail

//! A message the host took from the egress ring (an owning copy).
struct received_message {
  envelope header{};
  std::vector<std::byte> payload;

  std::uint32_t type() const noexcept { return header.type_id; }
  actor_index source() const noexcept { return header.source; }
  std::uint64_t correlation_id() const noexcept { return header.correlation_id; }
  //! The payload as a T; throws rk::error if the payload is shorter than sizeof(T).
  template <class T>
  T as() const {
    static_assert(std::is_trivially_copyable_v<T>);
    if (payload.size() < sizeof(T))
      throw error("received_message::as<T>(): payload has " + std::to_string(payload.size()) +
                  " bytes, fewer than sizeof(T) = " + std::to_string(sizeof(T)));
    T value;
    std::memcpy(&value, payload.data(), sizeof(T));
    return value;
  }
};

//! Whether CUDA device `device` can run the CUDA backend, and what was found (the GPU's name, or why not).
struct device_probe {
  bool usable = false;
  std::string description;
};
device_probe probe_cuda_device(int device = 0) noexcept;

class runtime {
public:
  //! Chooses and initialises the backend (see runtime_options::backend). Throws rk::error when an
  //! explicitly requested backend is unusable or the options are invalid.
  explicit runtime(runtime_options options = {});
  //! Shuts down if still running; never throws. Calls waiting in other threads (receive, send_wait,
  //! send_blocking, pause, stop, snapshot, ...) end as for shutdown() and return before anything is freed;
  //! if one has not returned within runtime_options::stop_timeout the runtime's memory is kept for good.
  //! (A call that begins while the destructor runs is, as for any object, undefined behaviour.)
  //! On one of the runtime's own threads (a handler, an audit sink or on_state_dump that calls std::exit
  //! while the runtime is a static, or deletes it) it cannot wait for that thread: it asks the workers to
  //! stop, waits for nothing and keeps the runtime's memory for good. After a delete there, calls waiting
  //! in other threads return as after shutdown(); during std::exit they keep waiting (a main thread that
  //! returned would end the process with its own exit code before the handler's exit completes). A
  //! static runtime destroyed by std::exit on any other thread (a host thread, another runtime's
  //! handler) shuts down as above, so its waiting calls do return: a main thread waiting in one may then
  //! end the process first, with its own code. This
  //! holds while another thread is still inside start() too: start() then starts no watchdog, and may
  //! throw or return with the workers stopping. In a child of fork() it does nothing (see the note on
  //! fork() above).
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  rk::backend backend() const noexcept;
  //! Why this backend: the GPU's name, or the reason no GPU is used.
  const std::string& backend_description() const noexcept;

  //! Creates an actor running handler H under a unique name and returns its address (its actor id).
  //! With `options.instances > 1` it creates actors `name/0` .. `name/<n-1>` and a group `name` over them,
  //! and returns the group's address. Before start(), any handler type; while running, only handler
  //! types the runtime had at start() (spawned or prepare<H>()d), because loading a kernel while
  //! persistent kernels run can deadlock under CUDA lazy loading. Names (of actors, aliases, groups) are
  //! non-empty UTF-8 without NUL bytes, not beginning with "rk:" (the runtime's own entries). Actors and
  //! aliases share one namespace (find()), groups have their own (group()): an actor and a group may
  //! have the same name, except that spawn with instances > 1 needs both its group's name and its actors'
  //! names free. Throws
  //! rk::error for invalid options, a bad or duplicate name, a full table, or (CUDA backend) a handler
  //! whose spawning translation unit was not compiled by nvcc. `WithCuda` is an implementation detail: it
  //! keeps the nvcc and non-nvcc instantiations distinct.
  template <class H, bool WithCuda = RK_COMPILED_BY_NVCC>
  address spawn(std::string name, const actor_options& options, const handler_state_t<H>& initial) {
    static_assert(is_valid_handler_v<H>,
                  "handler types need a default-constructible, trivially copyable "
                  "state and 1..1024 threads_per_worker (see ringkernel/device/handler.cuh)");
    return spawn_erased(detail::make_actor_type_ops<H, WithCuda>(), std::move(name), options, &initial);
  }
  //! The same with a default-constructed state, made on the heap (a state of many megabytes would
  //! overflow the caller's stack).
  template <class H, bool WithCuda = RK_COMPILED_BY_NVCC>
  address spawn(std::string name, const actor_options& options = {}) {
    static_assert(is_valid_handler_v<H>,
                  "handler types need a default-constructible, trivially copyable "
                  "state and 1..1024 threads_per_worker (see ringkernel/device/handler.cuh)");
    const auto initial = std::make_unique<handler_state_t<H>>();
    return spawn_erased(detail::make_actor_type_ops<H, WithCuda>(), std::move(name), options, initial.get());
  }
  //! Creates `count` actors running handler H, named `prefix/0` .. `prefix/<count-1>`, in one transaction
  //! (all or none), and returns their ids in name order (not necessarily consecutive). Much faster than
  //! `count` spawns: one device block holds every mailbox and state (freed with the last of these actors
  //! to be forgotten), entries are written together, and the audit log gets one actor_spawn record per
  //! run of consecutive ids (actor: the run's first id; detail: its length, 0 for a run of one; see
  //! docs/audit.md), so the records name exactly the actors created. `initial_states`: empty (default
  //! states), one state for all, or one per actor. `options.instances` must be 1 (no group is created; see
  //! create_group). Same rules as spawn() otherwise.
  template <class H, bool WithCuda = RK_COMPILED_BY_NVCC>
  std::vector<actor_index> spawn_many(std::string prefix, std::uint32_t count,
                                      const actor_options& options = {},
                                      std::span<const handler_state_t<H>> initial_states = {}) {
    static_assert(is_valid_handler_v<H>,
                  "handler types need a default-constructible, trivially copyable "
                  "state and 1..1024 threads_per_worker (see ringkernel/device/handler.cuh)");
    const bool defaults = initial_states.empty();
    // On the heap: a state of many megabytes overflowed the caller's stack.
    const auto default_state = defaults ? std::make_unique<handler_state_t<H>>() : nullptr;
    return spawn_many_erased(detail::make_actor_type_ops<H, WithCuda>(), std::move(prefix), count, options,
                             defaults ? default_state.get() : initial_states.data(),
                             defaults ? 1 : initial_states.size());
  }
  //! Makes handler type H available for spawning after start() (its kernel is loaded at start).
  template <class H, bool WithCuda = RK_COMPILED_BY_NVCC>
  void prepare() {
    static_assert(is_valid_handler_v<H>);
    prepare_erased(detail::make_actor_type_ops<H, WithCuda>());
  }

  //! The id of the actor (or alias) named `name`; throws rk::error if there is none.
  actor_index find(std::string_view name) const;
  //! The name of a current actor or alias; throws rk::error for an unknown or forgotten id.
  std::string name_of(actor_index id) const;
  //! Current actors and aliases.
  std::uint32_t actor_count() const noexcept;
  //! How full each table is (see table_usage), after giving back what ended grace periods released.
  table_usage tables() const;

  // --- groups and routes (all may be called before or while running) ---------------------------------

  //! Creates a named group over existing actors (no duplicates) and returns its address. Sends to it go
  //! round-robin to live members; members that are paused, stopping, stopped or faulted are skipped, and
  //! so are members redirected with set_route (a group delivers only to members' own mailboxes, within
  //! its tenant: a redirected member is skipped until clear_route). No eligible member: not_found.
  address create_group(std::string name, std::span<const actor_index> members);
  //! The address of group `name`; throws rk::error if there is none.
  address group(std::string_view name) const;
  std::vector<actor_index> members(address group) const;
  //! Messages for `from` (an actor or alias) go to `next_hop` instead, one hop per redirection; chains
  //! longer than runtime_options::max_hops (or loops) end in max_hops_exceeded. An actor routed to itself
  //! is delivered to directly (as after clear_route); an alias routed to itself is refused (rk::error).
  //! Groups skip a redirected member (see create_group): only messages sent to `from` itself follow.
  //! A route holds whatever `from`'s lifecycle (paused, stopped, faulted): messages sent to it follow the
  //! route and never reach its mailbox, so a stopped actor can hand its traffic to a replacement; they
  //! are refused as for a stopped actor only where the route leads to one.
  void set_route(actor_index from, address next_hop);
  //! Restores direct delivery to actor `a`.
  void clear_route(actor_index a);
  //! A named address with no mailbox whose messages go to `target`; returns its id. Following it is one
  //! hop (runtime_options::max_hops).
  actor_index add_alias(std::string name, address target);
  //! Removes an alias no other alias or route leads to. Its id is refused from now on (not_found on the
  //! device, rk::error on the host); its slot is reused after a grace period.
  void remove_alias(actor_index alias);
  //! Removes a group no alias or route leads to. Its address is refused from now on; its slot and member
  //! list are reused after a grace period.
  void remove_group(address group);

  // --- actor lifecycle while running --------------------------------------------------------------------

  //! Stops actor `a`: new messages are refused (not_found), queued ones are handled, then its worker
  //! parks. Host messages sent to `a` itself before the call (send() said enqueued) count as queued: a
  //! live actor's are let into its mailbox first, within `timeout`, also those parked for room (sent to
  //! an alias or group, or to an actor paused with a full mailbox, they may still be refused).
  //! Returns whether the worker confirmed within `timeout` (false at once when shutdown() completes
  //! meanwhile: no worker answers after it, or while the runtime is paused: see pause()); a confirmed
  //! stop is in the audit log (actor_stop). A send racing the stop is either refused (not_found) or
  //! handled before the stop is confirmed: a sender told `delivered` has its message handled (the stop
  //! protocol, device/detail/deliver.cuh).
  //! An actor whose handler defers (ctx.defer) what is queued never finishes handling it: stop() returns
  //! false and the actor stays `stopping` (respawn and forget refuse it) until its handler stops deferring
  //! or the runtime shuts down (which reports the messages as undelivered). Throws rk::error naming the call
  //! when the watchdog reports `a`, or a handler call on its worker, stuck
  //! (runtime_options::handler_timeout); the same holds for pause_actor and respawn.
  template <class Rep = std::int64_t, class Period = std::nano>
  bool stop(actor_index a, std::chrono::duration<Rep, Period> timeout = std::chrono::seconds(5)) {
    return stop_for(a, detail::checked_timeout(timeout, "stop()"));
  }
  //! Brings a stopped or faulted actor back with a fresh state (its original initial state, or `initial`
  //! when given); it rejoins its groups. An actor that faulted with ctx.fault() in a call that has not
  //! returned is respawned once the call returns (its writes would land in the fresh state): respawn()
  //! waits up to 10 s for that. It throws rk::error at once from that very call, and from a faulted call
  //! the awaited one waits for in turn (two faulted calls respawning each other, in this runtime or across
  //! two: the second is refused), and once shutdown() began.
  template <class H>
  void respawn(actor_index a, const handler_state_t<H>& initial) {
    respawn_erased(a, std::type_index(typeid(H)), &initial);
  }
  void respawn(actor_index a) { respawn_erased(a, std::type_index(typeid(void)), nullptr); }
  //! Per-actor pause: messages queue up but are not handled, and groups skip the actor. Returns whether
  //! the worker confirmed within `timeout` (false too if the actor faulted meanwhile, or was resumed first:
  //! by resume_actor, or by shutdown(), which resumes paused actors to drain them; and at once while the
  //! runtime is paused, see pause()). Pausing a paused
  //! actor waits for the same confirmation; an actor that is stopping, stopped or faulted cannot be
  //! paused (rk::error). resume_actor has no effect on an actor that is not paused.
  template <class Rep = std::int64_t, class Period = std::nano>
  bool pause_actor(actor_index a, std::chrono::duration<Rep, Period> timeout = std::chrono::seconds(5)) {
    return pause_actor_for(a, detail::checked_timeout(timeout, "pause_actor()"));
  }
  void resume_actor(actor_index a);
  //! Where actor `a` is in its lifecycle. After a device fault (CUDA) every actor is `faulted`; once
  //! shutdown() stopped the workers, an actor that was live, paused or stopping is `stopped` (here and in
  //! stats()).
  actor_lifecycle lifecycle(actor_index a) const;
  //! Faults contained to one actor (CPU backend: a handler that threw or called ctx.trap) and the
  //! watchdog's reports (runtime_options::handler_timeout), oldest first; the newest 4096 are kept. Each
  //! names the actor, its handler type, the message type and the reason (an exception's what() cut to its
  //! first 1,024 bytes, saying how many more there were). A faulted actor takes no
  //! messages until respawn(): new sends to it are refused with not_found (like sends to a stopped one),
  //! and what was already queued is discarded and counted. Faults from ctx.fault() show in
  //! lifecycle(), actor_stats::fault_code and the audit log (the first fault of a call stands: one that
  //! called ctx.fault() and then threw is not listed here); a device fault (CUDA) is an rk::error from
  //! every call, see docs/architecture.md "Faults".
  std::vector<actor_fault> faults() const;
  //! Forgets actor `a`: before start() any actor, while running a stopped or faulted one (stop() it
  //! first). Refused while a group, alias or route leads to it. Its name is free at once; its id is
  //! refused from now on (the id carries a generation, so a reused slot gets a new id; a slot whose ids
  //! would repeat, after 2^(31 - ceil(log2 max_actors)) occupants, is retired instead and the table
  //! holds one actor fewer: 2^21 occupants at max_actors 1,024, 128 at 2^24); it no longer counts
  //! against its tenant's max_actors; its slot is reused once its worker let go of it and a grace period
  //! passed, and its mailbox and state memory then too, or with the last of the actors spawned with it
  //! (one spawn_many, or one spawn of a group's instances, share a block): until then its bytes stay
  //! charged to its tenant's max_device_bytes. Its counters move to runtime_stats::forgotten, what was still
  //! queued as discarded (interrupted calls stay interrupted, and shutdown_report::lost_to_fault counts
  //! them).
  void forget(actor_index a);

  // --- tenants and regions -------------------------------------------------------------------------------

  //! The tenant registry: quotas, engagement budgets, usage (see tenancy.hpp).
  tenant_registry& tenants() noexcept { return tenants_; }
  const tenant_registry& tenants() const noexcept { return tenants_; }

  //! Registers `bytes` of device memory at `device_pointer` (host memory on the CPU backend) as a region
  //! owned by options.owner_tenant; counts against that tenant's max_device_bytes. The memory must stay
  //! valid until the runtime is destroyed or the region is unregistered and no message naming it is left.
  //! A size that would run past the end of any address space (2^57) is refused (rk::error). An
  //! append-only region registered here starts with its append cursor at 0: its bytes are room to
  //! append() to, and no descriptor names any of them before they are appended.
  region_handle register_region(void* device_pointer, std::uint64_t bytes, const region_options& options);
  //! Allocates a `capacity`-byte region, copies `initial` to its start and registers it. For an
  //! append-only region the initial bytes are final (the append cursor starts after them).
  region_handle create_region(byte_view initial, std::uint64_t capacity, const region_options& options);
  //! Invalidates every descriptor of the region (live ones are refused from now on, and handlers that
  //! get a delivered one see no bytes). Handlers already reading it may go on until they return; see
  //! release_region for when the memory may be freed. Throws rk::error for a handle not registered now,
  //! also one already unregistered: where several threads may let go of one region, call release_region,
  //! which accepts that.
  void unregister_region(region_handle region);
  //! Unregisters the region (if it still is) and waits until no worker can read it any more: after
  //! `ready` its memory may be freed or reused. `timed_out`: a handler that may hold its bytes did not
  //! return within `timeout` (call again later). `aborted`: shutdown() ended the runtime leaving a worker
  //! it could not stop, which may still read the region: never free it. Throws rk::error for a handle
  //! this runtime never gave out (another runtime's among them); `ready` again for one it released.
  template <class Rep = std::int64_t, class Period = std::nano>
  wait_result release_region(region_handle region,
                             std::chrono::duration<Rep, Period> timeout = std::chrono::seconds(5)) {
    return release_region_for(region, detail::checked_timeout(timeout, "release_region()"));
  }
  //! Append-only regions: copies `bytes` to the append cursor, then advances it; returns their offset.
  std::uint64_t append(region_handle region, byte_view bytes);
  //! The region's memory as workers address it.
  void* region_pointer(region_handle region) const;
  // Every call above that takes a handle refuses (rk::error) one another runtime gave out: each handle
  // carries its runtime (region_handle::issuer).

  // --- audit ----------------------------------------------------------------------------------------------

  //! The newest audit entries (up to runtime_options::audit_memory_records), oldest first, hash-chained.
  std::vector<audit_entry> audit_records() const;
  //! Waits until every audit record emitted so far reached every sink.
  template <class Rep = std::int64_t, class Period = std::nano>
  wait_result flush_audit(std::chrono::duration<Rep, Period> timeout = std::chrono::seconds(5)) {
    return flush_audit_for(detail::checked_timeout(timeout, "flush_audit()"));
  }
  audit_drain_stats audit_stats() const;

  // --- metrics (metrics.hpp, docs/observability.md) --------------------------------------------------------

  //! Every counter in the Prometheus text exposition format (0.0.4): per runtime, handler type, tenant and
  //! (up to options.max_actor_series) actor. Any thread, any time; after a device fault it shows the last
  //! counters read, with ringkernel_faulted 1.
  std::string metrics_text(const metrics_options& options = {}) const;
  //! The same values as one JSON document (format "ringkernel-metrics/1").
  std::string metrics_json(const metrics_options& options = {}) const;
  //! Serves GET /metrics (text) and GET /metrics.json on a loopback address from one thread until the
  //! runtime is destroyed; returns the port. Off unless called. Throws rk::error for a non-loopback
  //! address, a port that cannot be bound, or a second call.
  std::uint16_t serve_metrics(const metrics_endpoint_options& options = {});

  //! The hang hunter (state_dump.hpp): every worker (actor being handled, message type, for how long,
  //! heartbeat age) and every actor with a non-empty mailbox (depth per lane, lifecycle words). Reads
  //! only status words, counters and cursors: works while handlers are stuck, and after a fault.
  state_dump dump_state() const;
  // --- the sampled message trace (trace.hpp, runtime_options::trace, docs/profiling.md) -------------------

  //! The kept records, oldest first, after taking what the device wrote so far (empty when tracing is
  //! off). stats().trace counts what was collected, dropped on the device and evicted on the host.
  std::vector<trace_record> trace_records() const;
  //! The kept records as Chrome trace JSON (open in https://ui.perfetto.dev or chrome://tracing), with
  //! actor and message-type names.
  std::string trace_json() const;
  //! trace_json() into `path`, replaced whole: written to a new file of its own beside it
  //! (`path`.partial.XXXXXX) and renamed over it, so a failure (a full disk, no permission) throws
  //! rk::error saying why and leaves `path` as it was, and calls writing one path at once each leave a
  //! whole file there (the last to finish wins). A symbolic link at `path` is followed: the file it leads
  //! to is replaced. A FIFO, socket or device at `path` is refused (rk::error), never replaced. A file it
  //! replaces keeps its permissions, and one this process may not write is refused.
  void write_trace(const std::filesystem::path& path) const;

  // --- snapshots (snapshot.hpp) ---------------------------------------------------------------------------

  //! Actor `a`'s state and spawn options. A live or paused actor of a running runtime is held paused for
  //! the copy (a paused one until its worker confirmed the pause: a handler call may still be writing);
  //! rk::error if it does not hold still within `timeout`, once the watchdog reports its worker stuck
  //! in a handler call, and from the moment shutdown() begins until it ended (draining workers still run
  //! handlers; afterwards the final state is copied): nothing was copied then. A pause() and resume() of
  //! the runtime meanwhile do not end the wait. The hold is the snapshot's own: a resume_actor()
  //! meanwhile takes effect after the copy, and an actor the application paused stays paused.
  template <class Rep = std::int64_t, class Period = std::nano>
  actor_snapshot snapshot(actor_index a,
                          std::chrono::duration<Rep, Period> timeout = std::chrono::seconds(5)) {
    return snapshot_for(a, detail::checked_timeout(timeout, "snapshot()"));
  }
  //! The same, as H's state type (rk::error if `a` runs another handler type). Returned by value, so on
  //! the caller's stack: for a state of megabytes use snapshot(), whose bytes are on the heap.
  template <class H, class Rep = std::int64_t, class Period = std::nano>
  handler_state_t<H> snapshot_state(actor_index a,
                                    std::chrono::duration<Rep, Period> timeout = std::chrono::seconds(5)) {
    handler_state_t<H> value{};
    snapshot_into(a, std::type_index(typeid(H)), &value, sizeof(value),
                  detail::checked_timeout(timeout, "snapshot_state()"));
    return value;
  }
  //! Every actor (workers held paused for the copies, as snapshot() holds one actor: a resume() meanwhile
  //! takes effect after them) to a versioned file at `path`; returns how many. The file is replaced whole,
  //! as write_trace() does: on failure `path` is left as it was and no partial file stays behind. Setup
  //! calls made meanwhile from other threads (spawn, forget, groups, routes, tenants, regions, tables())
  //! wait until it returns: up to `timeout` for the pause, then the time to write the file. rk::error,
  //! nothing written, when the file's header line (the actors' names and options) would pass the 1 GiB
  //! restore() reads.
  template <class Rep = std::int64_t, class Period = std::nano>
  std::uint64_t snapshot_all(const std::filesystem::path& path,
                             std::chrono::duration<Rep, Period> timeout = std::chrono::seconds(5)) {
    return snapshot_all_for(path, detail::checked_timeout(timeout, "snapshot_all()"));
  }
  //! Before start(): spawns every actor of a snapshot_all() file with its name, options and state, all or
  //! nothing; returns how many. Its handler types must be known here (spawned or prepare<H>()d) with the
  //! same state sizes. A FIFO, socket or device is refused unread (it could block or never end). The
  //! actors get this runtime's ids, in the file's order, not the ids they had (actor_snapshot::id): a
  //! state that holds actor ids (a peer to send to) still names the old ones, which may be other actors
  //! here, so look peers up by name (find) after restore() and send them their new ids.
  std::uint64_t restore(const std::filesystem::path& path);

  //! Where rk-top finds this runtime's snapshots (runtime_options::publish_stats): "/ringkernel.<pid>.<k>",
  //! or empty when it does not publish.
  std::string stats_shm_name() const;

  // --- message types --------------------------------------------------------------------------------------

  //! This runtime's registry (a copy of rk::global_message_types() taken at construction).
  const message_type_registry& message_types() const noexcept;
  //! Adds a type to this runtime; a non-routable one takes effect on the device at once.
  void register_message_type(const message_type_info& info);

  //! Launches one persistent kernel per handler type (CUDA) or the worker threads (CPU) and waits until
  //! every worker runs. Throws rk::error, with nothing left running, when the actor kernels cannot all be
  //! co-resident, a launch fails, or workers do not start within runtime_options::start_timeout.
  void start();
  bool running() const noexcept;

  //! Asks every actor worker to stop taking messages and waits (up to `timeout`) until all of them have
  //! acknowledged; returns false on timeout, and as soon as shutdown() in another thread begins (also
  //! when it leaves a worker it could not stop; stop() and pause_actor() return false when it ends the
  //! runtime, snapshot() and snapshot_all() throw rk::error saying shutdown began). Handlers already running
  //! finish first. Host messages keep flowing into mailboxes (the gateway is not paused), and K2K sends from
  //! finishing handlers land too. While paused, CPU worker threads sleep until resume() (a paused runtime
  //! costs no CPU); on CUDA the workers back off with __nanosleep. Paused workers acknowledge no request
  //! about one actor, so pause_actor() and stop() return false as soon as every worker holds still (the
  //! request stands and takes effect after resume(): call them again then to wait for the confirmation) and a
  //! forgotten actor's slot comes back only after resume(); snapshot() and snapshot_all() copy at once.
  //! Throws rk::error naming the call as soon as the watchdog reports a handler call stuck
  //! (runtime_options::handler_timeout): its worker cannot acknowledge. The pause stays requested then, as
  //! after a timeout; resume() lifts it. stop(), pause_actor(), snapshot() and snapshot_all() waiting in
  //! other threads end the same way.
  template <class Rep = std::int64_t, class Period = std::nano>
  bool pause(std::chrono::duration<Rep, Period> timeout = std::chrono::seconds(5)) {
    return pause_for(detail::checked_timeout(timeout, "pause()"));
  }
  //! Lets paused workers take messages again.
  void resume();

  //! Host -> actor, group or alias through the ingress ring. Never blocks. Returns `enqueued`,
  //! `queue_full` (runtime_options::host_parking_slots host messages are unsettled already, or the
  //! ingress ring is full: nothing was sent, try again), `too_large` (payload exceeds the host ring's
  //! slot), `invalid_destination` (host_actor: the host cannot send to itself) or `not_running`. Throws
  //! rk::error if the runtime faulted, and for a payload that names bytes without a pointer to them
  //! (size > 0, data null: a caller's mistake, as a negative timeout is; a handler's send answers the
  //! same with invalid_descriptor, as every device-side send answers with a status). The same holds for
  //! send_keyed, send_descriptor, send_blocking and send_wait.
  //!
  //! An enqueued message is never lost: the gateway on the device delivers it, waiting in its parking
  //! area while the destination mailbox is full (later messages to other destinations pass it; those to
  //! the same address queue behind it), or refuses it with a reason counted in
  //! stats().gateway_verdicts and, for tenancy and quota refusals, audited (send_wait returns it). A
  //! message still parked when shutdown() gives up draining is listed in
  //! shutdown_report::undelivered_host_messages. With `envelope_flags::drop_if_full` in the options the
  //! gateway refuses it (a counted queue_full verdict) instead of waiting for room.
  [[nodiscard]] status send(address destination, std::uint32_t type, byte_view payload,
                            const send_options& options = {});
  //! Like send, to the member of `group` chosen by hash of `key` (stable while that member is live).
  [[nodiscard]] status send_keyed(address group, std::uint64_t key, std::uint32_t type, byte_view payload,
                                  send_options options = {});
  //! Like send, carrying a zero-copy descriptor (validated on the device, see region.cuh).
  [[nodiscard]] status send_descriptor(address destination, std::uint32_t type,
                                       const region_descriptor& descriptor, send_options options = {});
  //! Like send, but while the answer would be queue_full it waits (up to `timeout`) for room instead:
  //! returns `enqueued`, `timed_out` (still no room; nothing was sent) or what send returns otherwise.
  //! Called from a handler (CPU backend) for a mailbox only its own thread empties, it does not wait (as
  //! send_wait): the room could only come from its own return, so the answer is queue_full at once.
  template <class Rep, class Period>
  [[nodiscard]] status send_blocking(address destination, std::uint32_t type, byte_view payload,
                                     std::chrono::duration<Rep, Period> timeout,
                                     const send_options& options = {}) {
    return send_blocking_for(destination, type, payload, detail::checked_timeout(timeout, "send_blocking()"),
                             options);
  }
  //! Like send, then waits up to `timeout` for the device's final verdict: `delivered` once the message
  //! is in the destination's mailbox (after any wait in the parking area), or the refusal (not_found,
  //! tenant_mismatch, quota_exceeded, too_large, queue_full with drop_if_full, ...). `timed_out` means
  //! the verdict did not arrive in time (the message may still be delivered later); `queue_full` before
  //! anything was sent as for send, and also when host_ring.capacity send_waits are unsettled at once (each
  //! holds a receipt until the gateway settles its message, even after it timed out: timed-out send_waits
  //! to a destination that stays full can use them all). `aborted`: shutdown() completed while it waited
  //! and the message was never settled (shutdown_report::undelivered_host_messages lists it). From a
  //! handler (CPU backend) to a mailbox that only the handler's own thread empties it is sent with
  //! envelope_flags::drop_if_full: a full mailbox, which only the handler's return can empty, is a prompt
  //! queue_full instead of a wait. That is its own actor, a dedicated actor the same thread serves
  //! (runtime_options::cpu_workers below the dedicated actors), or any scheduled actor when
  //! scheduled_workers is 1; addressed directly, through aliases or through set_route redirections. (Sent
  //! to a group, it still waits its timeout when the member chosen is one of those.) Two handlers on
  //! different threads that send_wait into each other's full mailboxes each wait their whole timeout:
  //! neither mailbox empties before a call returns. Give such sends a short timeout, or use send().
  template <class Rep, class Period>
  [[nodiscard]] status send_wait(address destination, std::uint32_t type, byte_view payload,
                                 std::chrono::duration<Rep, Period> timeout,
                                 const send_options& options = {}) {
    return send_wait_for(destination, type, payload, detail::checked_timeout(timeout, "send_wait()"),
                         options);
  }
  //! Takes the next message actors sent to the host, waiting up to `timeout`. Returns nullopt on timeout.
  //! Still works after shutdown() for messages left in the egress ring (without waiting: nothing more can
  //! arrive), and a receive() waiting in another thread when shutdown() completes returns then, with what
  //! the ring still holds or nullopt. Throws rk::error if the runtime faulted.
  template <class Rep, class Period>
  std::optional<received_message> receive(std::chrono::duration<Rep, Period> timeout) {
    return receive_for(detail::checked_timeout(timeout, "receive()"));
  }

  //! Stops accepting host sends, waits (up to drain_timeout) until every in-flight message was handled,
  //! terminates the workers and joins them. Idempotent. Never throws; problems are in the report. To
  //! drain, it resumes a paused runtime and actors paused with pause_actor (their queued messages are
  //! handled, and send_wait calls waiting on them see `delivered`).
  //! Called from a handler (a CPU-backend worker thread), an audit sink or on_state_dump it would wait
  //! for that very thread: it stops nothing and returns a report whose `fault` says so. stop,
  //! pause_actor, pause, snapshot, snapshot_all and release_region throw rk::error from a handler for the
  //! same reason.
  shutdown_report shutdown();

  //! Counter snapshot (while running) or final counters (after shutdown). After a device fault: the last
  //! counters read before it, with runtime_stats::stale set (never throws for a fault).
  runtime_stats stats() const;

  //! Final state of actor `id`, which must run handler H. Only after shutdown(). Returned by value (on the
  //! caller's stack; for a state of megabytes, snapshot() after shutdown gives the bytes on the heap).
  template <class H>
  handler_state_t<H> state(actor_index id) const {
    handler_state_t<H> value{};
    read_state(id, std::type_index(typeid(H)), &value, sizeof(value));
    return value;
  }

private:
  friend struct detail::runtime_access; // rk::cluster's proxy (ringkernel/host/detail/remote.hpp)
  address spawn_erased(detail::actor_type_ops ops, std::string name, const actor_options& options,
                       const void* initial_state);
  std::vector<actor_index> spawn_many_erased(detail::actor_type_ops ops, std::string prefix,
                                             std::uint32_t count, const actor_options& options,
                                             const void* initial_states, std::size_t initial_count);
  void prepare_erased(detail::actor_type_ops ops);
  actor_snapshot snapshot_for(actor_index a, std::chrono::nanoseconds timeout);
  void snapshot_into(actor_index a, std::type_index type, void* out, std::size_t bytes,
                     std::chrono::nanoseconds timeout);
  std::uint64_t snapshot_all_for(const std::filesystem::path& path, std::chrono::nanoseconds timeout);
  void respawn_erased(actor_index a, std::type_index type, const void* initial_state);
  void read_state(actor_index id, std::type_index type, void* out, std::size_t bytes) const;
  bool stop_for(actor_index a, std::chrono::nanoseconds timeout);
  wait_result release_region_for(region_handle region, std::chrono::nanoseconds timeout);
  bool pause_actor_for(actor_index a, std::chrono::nanoseconds timeout);
  bool pause_for(std::chrono::nanoseconds timeout);
  wait_result flush_audit_for(std::chrono::nanoseconds timeout);
  status send_wait_for(address destination, std::uint32_t type, byte_view payload,
                       std::chrono::nanoseconds timeout, const send_options& options);
  status send_blocking_for(address destination, std::uint32_t type, byte_view payload,
                           std::chrono::nanoseconds timeout, const send_options& options);
  std::optional<received_message> receive_for(std::chrono::nanoseconds timeout);

  //! Owned. A plain pointer: ~runtime on one of the runtime's own threads keeps the object, and the
  //! pointer intact for calls still running in other threads (a unique_ptr would null it).
  detail::runtime_impl* impl_;
  tenant_registry tenants_{impl_};
};

} // namespace rk
