#pragma once
// The coordinator behind rk::runtime. It owns one instance of every facility, in the order they depend on
// each other, and does only what spans several of them:
//  - options and backend choice (construction);
//  - setup calls as transactions: each takes the setup lock, checks everything it can up front, then
//    performs its steps with an undo log, so a call that throws leaves the runtime exactly as before
//    (spawn charges the tenant, adds actors, launches workers and creates the group in one transaction);
//  - giving slots back (forget, remove_alias, remove_group, tenants().remove, unregister_region) and
//    collecting what grace periods released, retrying a call once when a table or the arena was full
//    only because releases were still pending.
//
// Facilities (one folder-level unit each, contracts at the top of their headers):
//   options.hpp      option checks and backend choice
//   memory.hpp       RAII device/mapped blocks, the running arena
//   workers.hpp      control block, worker_status entries, launches, quiescence
//   scheduler.hpp    run queues of scheduled actors, wake requests to the gateway
//   grace.hpp        when unpublished entries and memory may be reused
//   audit_link.hpp   device audit ring and host drain
//   actor_table.hpp  ids, names, handler types, routing entries, mailboxes, states, counters
//   routing.hpp      groups, routes, aliases, message types
//   tenant_table.hpp tenants, quotas, engagements
//   region_table.hpp zero-copy regions
//   faults.hpp       fault detection and reports
//   host_io.hpp      host sends and receives through the mapped rings
//   run_control.hpp  start, pause, lifecycle requests, drain, shutdown, stats
//   metrics.hpp      metrics rendering; metrics_endpoint.hpp its HTTP endpoint
//
// Locking: setup_ serialises setup calls and shutdown (lock order: setup_, then at most one facility lock
// at a time). Hot paths (send, receive) and lookups (find, stats, usage) take only facility locks (usage
// also collects when setup_ is free: collect_if_free). A
// handler (CPU worker thread) never waits for setup_: its holder may be waiting for that very worker
// (shutdown's drain, snapshot_all's pause), so a handler's call that finds it taken is refused.

#include "actor_table.hpp"
#include "audit_link.hpp"
#include "dump_signal.hpp"
#include "faults.hpp"
#include "grace.hpp"
#include "host_io.hpp"
#include "memory.hpp"
#include "metrics.hpp"
#include "metrics_endpoint.hpp"
#include "options.hpp"
#include "region_table.hpp"
#include "routing.hpp"
#include "run_control.hpp"
#include "scheduler.hpp"
#include "service_thread.hpp"
#include "snapshot_file.hpp"
#include "stats_publisher.hpp"
#include "support.hpp"
#include "tenant_table.hpp"
#include "trace_link.hpp"
#include "undo_log.hpp"
#include "workers.hpp"

#include <ringkernel/host/runtime.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <unordered_map>

namespace rk::detail {

class runtime_impl {
public:
  explicit runtime_impl(runtime_options options);
  ~runtime_impl();
  runtime_impl(const runtime_impl&) = delete;
  runtime_impl& operator=(const runtime_impl&) = delete;

  rk::backend kind() const noexcept { return backend_->kind(); }
  const std::string& description() const noexcept { return description_; }

  void prepare(actor_type_ops ops);
  address spawn(actor_type_ops ops, std::string name, const actor_options& options, const void* initial);
  //! `initial_count` states at `initials`: 1 (the same for all) or `count`.
  std::vector<actor_index> spawn_many(actor_type_ops ops, std::string prefix, std::uint32_t count,
                                      const actor_options& options, const void* initials,
                                      std::size_t initial_count);
  void forget(actor_index a);
  address create_group(std::string name, std::span<const actor_index> members);
  void remove_group(address group);
  actor_index add_alias(std::string name, address target);
  //! A remote entry for rk::cluster (ringkernel/host/detail/remote.hpp).
  actor_index add_remote(std::string name, std::uint64_t tenant);
  //! Makes the remote entry `remote` refuse every later send with status::unreachable (its rank is gone).
  void mark_remote_unreachable(actor_index remote);
  void remove_alias(actor_index alias);
  void set_route(actor_index from, address next_hop);
  void clear_route(actor_index a);

  bool stop(actor_index a, std::chrono::nanoseconds timeout);
  bool pause_actor(actor_index a, std::chrono::nanoseconds timeout);
  //! Throws (`who: ...`) when called on one of the backend's worker threads (from a handler): for calls
  //! that wait for workers (runtime::pause checks it too).
  void refuse_from_worker(const std::string& who) const;
  void resume_actor(actor_index a);
  void respawn(actor_index a, std::type_index type, const void* initial);

  void add_tenant(std::uint64_t tenant, const tenant_quota& quota);
  void set_quota(std::uint64_t tenant, const tenant_quota& quota);
  void remove_tenant(std::uint64_t tenant);
  void set_engagement_budget(std::uint64_t tenant, const audit_tag& tag, std::chrono::nanoseconds budget);
  tenant_usage usage(std::uint64_t tenant) const;
  std::vector<tenant_usage> all_usage() const;
  //! What grace periods released is let go of (collect), if a host thread of the user's finds setup_ free
  //! (a setup call under way collects itself): usage then shows given-up bytes refunded once freed, not
  //! at the next setup call (a monitor reading only usage saw them charged for ever).
  void collect_if_free() const noexcept;
  tenant_usage usage_collected(std::uint64_t tenant) const; //!< usage() without collect_if_free

  region_handle register_region(void* pointer, std::uint64_t bytes, const region_options& options);
  region_handle create_region(byte_view initial, std::uint64_t capacity, const region_options& options);
  void unregister_region(region_handle region);
  wait_result release_region(region_handle region, std::chrono::nanoseconds timeout);
  std::uint64_t append(region_handle region, byte_view bytes);

  void register_message_type(const message_type_info& info);
  void start();
  shutdown_report shutdown() noexcept;
  //! Whether the calling thread is one that shutting this runtime down waits for or destroys: one of its
  //! workers (a CPU-backend handler) or its callback threads (an audit sink, on_state_dump).
  bool on_own_thread() const noexcept { return backend_->on_worker_thread() || callback_of == &phase_; }
  //! For ~runtime on such a thread (a handler or sink calling std::exit while the runtime is a static, or
  //! deleting it): see run_control::abandon; the caller keeps this object for good.
  void abandon(bool end_waits) noexcept { run_.abandon(end_waits); }
  //! Marks a public call that may wait (receive, send_wait, pause, snapshot, ...) as in flight for its
  //! lifetime: ~runtime on another thread shuts down (which ends the wait), then lets such calls return
  //! before it frees anything (waiting_calls_ended).
  class waiting_call {
  public:
    explicit waiting_call(runtime_impl& rt) noexcept : calls_(rt.waiting_calls_) {
      calls_.fetch_add(1, std::memory_order_acq_rel);
    }
    ~waiting_call() { calls_.fetch_sub(1, std::memory_order_acq_rel); }
    waiting_call(const waiting_call&) = delete;
    waiting_call& operator=(const waiting_call&) = delete;

  private:
    std::atomic<std::uint32_t>& calls_;
  };
  //! Whether every waiting_call has returned, waiting up to `timeout` (after shutdown() they return
  //! promptly). False: one is still inside, and this object must be kept.
  bool waiting_calls_ended(std::chrono::milliseconds timeout) const;
  std::chrono::milliseconds stop_timeout() const noexcept { return options_.stop_timeout; }
  //! Whether a send to `destination` from the calling thread (a handler) reaches a mailbox that only
  //! this thread empties: its own actor's, or one its thread alone serves (CPU backend), through aliases
  //! and set_route redirections too. A send_wait there would wait for itself.
  bool sends_to_own_thread(address destination) const {
    if (backend_->actor_on_this_thread() == host_actor) return false; // a host thread: the common case
    const address receiver = actors_.final_hop(destination, options_.max_hops);
    return receiver != host_actor && backend_->only_this_thread_serves(receiver);
  }
  //! Whether this is a child of fork() after this runtime was created (its threads are the parent's).
  bool forked() const noexcept { return ::getpid() != creator_pid_; }
  //! After giving back what ended grace periods released.
  table_usage tables();

  //! One reading of every counter the metrics show (metrics.hpp).
  metrics_reading read_metrics();
  //! Starts the metrics endpoint (once per runtime); returns its port.
  std::uint16_t serve_metrics(const metrics_endpoint_options& options);
  //! Workers, busy actors and non-empty mailboxes from status words, counters and cursors only.
  state_dump dump_state() const;
  //! Snapshots (snapshot.hpp): one actor (paused for the copy when live), every actor to a file, and
  //! restoring a file's actors before start().
  //! `who` names the call in errors (snapshot_state() calls it too).
  actor_snapshot snapshot(actor_index a, std::chrono::nanoseconds timeout,
                          const std::string& who = "snapshot()");
  void snapshot_into(actor_index a, std::type_index type, void* out, std::size_t bytes,
                     std::chrono::nanoseconds timeout);
  std::uint64_t snapshot_all(const std::filesystem::path& path, std::chrono::nanoseconds timeout);
  std::uint64_t restore(const std::filesystem::path& path);
  //! Counters of every facility (run_control::stats) plus the trace collector's.
  runtime_stats stats();
  //! The sampled message trace (trace_link.hpp): the kept records, and them as Chrome trace JSON.
  std::vector<trace_record> trace_records() { return trace_.records(); }
  std::string trace_json();
  //! The rk-top shared-memory name, empty unless publishing (runtime_options::publish_stats).
  std::string stats_shm_name() const;

  // Facilities the thin forwarders in runtime.cpp reach directly (their calls need no coordination).
  const actor_table& actors() const noexcept { return actors_; }
  const routing& routes() const noexcept { return routing_; }
  const tenant_table& tenants() const noexcept { return tenants_; }
  const region_table& regions() const noexcept { return regions_; }
  audit_link& audit() noexcept { return audit_; }
  host_io& io() noexcept { return io_; }
  const host_io& io() const noexcept { return io_; }
  run_control& run() noexcept { return run_; }
  actor_lifecycle lifecycle_as_reported(actor_lifecycle l) const noexcept {
    return run_.as_reported(faults_.as_reported(l));
  }
  std::vector<actor_fault> fault_list() const { return faults_.actor_faults(); }

private:
  //! Gives back what ended grace periods released; true if anything was.
  bool collect();
  //! Runs `call`; if it failed only for lack of room while releases were pending, waits for them (up to
  //! a few seconds) and runs it once more.
  template <class Call>
  auto with_room(Call&& call);
  struct spawned {
    std::vector<actor_index> ids;
    address group = 0;      //!< when spawned as a group
    std::uint32_t kind = 0; //!< the handler type's index
  };
  //! The steps of a spawn: names checked, tenant charged, actors added (and launched while running), the
  //! group created when `group` names one; each step's undo pushed to `undo` (the caller commits, or
  //! lets it unwind everything). Needs setup_.
  spawned spawn_steps(const actor_type_ops& ops, const std::string& who,
                      const std::vector<std::string>& names, const actor_options& opts,
                      const std::byte* initials, std::size_t initial_stride, const std::string* group,
                      undo_log& undo);
  //! The actor_spawn audit records of a committed spawn (one per actor, or for spawn_many one per run of
  //! consecutive ids), and the tenant and tag its actors' later host records carry (audit_link).
  void audit_spawn(const spawned& out, std::uint64_t tenant, const audit_tag& tag, bool one_record_each);
  //! One spawn transaction (spawn_steps, committed), audited.
  spawned spawn_transaction(const actor_type_ops& ops, const std::string& who,
                            const std::vector<std::string>& names, const actor_options& opts,
                            const std::byte* initials, std::size_t initial_stride, const std::string* group);
  void check_cuda_code(const actor_type_ops& ops, const std::string& who) const;
  //! A dump for SIGUSR1 or the watchdog, handed to runtime_options::on_state_dump; never throws.
  void deliver_dump() const noexcept;
  void check_batch_fits(std::uint64_t count, const std::string& who) const;
  void require_setup_phase(const std::string& who) const;
  //! What worker entry `entry` of the CPU backend serves (dump_state).
  void describe_cpu_worker(std::uint32_t entry, worker_state& w) const;

  runtime_options options_;
  ::pid_t creator_pid_ = ::getpid();
  std::string description_;
  std::unique_ptr<backend_impl> backend_;
  memory_pool memory_;
  worker_registry workers_;
  scheduler scheduler_;
  audit_link audit_;
  trace_link trace_;
  actor_table actors_;
  routing routing_;
  tenant_table tenants_;
  region_table regions_;
  grace_periods grace_; //!< after the facilities its pending releases touch: destroyed before them
  fault_monitor faults_;
  std::atomic<phase> phase_{phase::created};    //!< written by run control, read by host I/O
  std::atomic<std::uint32_t> waiting_calls_{0}; //!< waiting_call scopes alive
  host_io io_;
  run_control run_;
  //! The setup lock: a host thread waits for it; a handler's call (CPU worker thread) that finds it taken
  //! throws rk::error instead of waiting for a holder that may be waiting for that very worker.
  class setup_mutex {
  public:
    setup_mutex(const backend_impl& backend, const void* runtime_id) : backend_(backend), id_(runtime_id) {}
    void lock() {
      if (!backend_.on_worker_thread() && callback_of != id_) return take();
      if (try_lock_if_free()) return;
      // A brief holder waits for no worker: worth a short wait, while new brief holders step aside (a
      // usage() poller made handlers' setup calls fail at random). Anything else may be waiting for this
      // very thread.
      const auto brief_held = [&] { return brief_holders_.load(std::memory_order_acquire) != 0; };
      if (brief_held()) {
        waiting_handlers_.fetch_add(1, std::memory_order_acq_rel);
        // Tried once more after the brief holders let go, still counted as waiting: a poller's next call
        // would otherwise take the lock first.
        const bool taken = wait_until([&] { return try_lock_if_free(); }, [&] { return !brief_held(); },
                                      brief_wait_ns) == wait_result::ready ||
                           try_lock_if_free();
        waiting_handlers_.fetch_sub(1, std::memory_order_acq_rel);
        if (taken) return;
      }
      if (!try_lock_if_free())
        throw error("a runtime call from a handler or a runtime callback (an audit sink, on_state_dump) "
                    "found the runtime's setup lock taken (by a spawn, a snapshot_all(), a shutdown(), ...), "
                    "which may be waiting for this very thread: refused rather than waited for; call it from "
                    "a host thread of your own, or again later");
    }
    void unlock() {
      owner_.store(std::thread::id{}, std::memory_order_relaxed);
      mutex_.unlock();
    }
    //! try_lock_if_free for a holder that waits for no worker and lets go within microseconds
    //! (collect_if_free): a handler's call that finds the lock taken waits for it. unlock_brief() lets go.
    bool try_lock_brief() {
      if (waiting_handlers_.load(std::memory_order_acquire) != 0) return false;
      brief_holders_.fetch_add(1, std::memory_order_acq_rel);
      if (try_lock_if_free()) return true;
      brief_holders_.fetch_sub(1, std::memory_order_release);
      return false;
    }
    void unlock_brief() {
      unlock();
      brief_holders_.fetch_sub(1, std::memory_order_release);
    }
    //! Takes the lock only if nobody holds it, this thread included (std::mutex::try_lock by its owner is
    //! undefined). lock() records the owner for it.
    bool try_lock_if_free() {
      if (owner_.load(std::memory_order_relaxed) == std::this_thread::get_id() || !mutex_.try_lock())
        return false;
      owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
      return true;
    }

  private:
    void take() {
      mutex_.lock();
      owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    }
    const backend_impl& backend_;
    const void* id_; //!< see service_thread.hpp
    std::mutex mutex_;
    std::atomic<std::thread::id> owner_{};           //!< of mutex_; compared with this thread's id only
    std::atomic<std::uint32_t> brief_holders_{0};    //!< holding or about to (try_lock_brief)
    std::atomic<std::uint32_t> waiting_handlers_{0}; //!< handlers' calls waiting for a brief holder
    static constexpr std::uint64_t brief_wait_ns = 20'000'000;
  };
  mutable setup_mutex setup_{*backend_, &phase_};
  //! Actor -> the epoch whose stop is in the audit log (one record per stop however often stop() confirms
  //! it). Guarded by setup_.
  std::unordered_map<actor_index, std::uint32_t> stops_audited_;
  //! When `a` (a current actor of a running runtime) is confirmed stopped: its stop's record, unless it
  //! is in the log already. Needs setup_.
  void record_confirmed_stop(actor_index a);
  //! The actor_stop record of `a`'s stop in `epoch`, unless it is in the log already. Needs setup_.
  void record_stop_once(actor_index a, std::uint32_t epoch, std::uint64_t tenant);
  std::atomic<std::int64_t> started_at_ns_{0};        //!< steady clock at start(); 0 before
  std::unique_ptr<dump_signal_registration> sigusr1_; //!< while running with dump_state_on_sigusr1
  std::unique_ptr<stats_publisher> publisher_;        //!< from start() with publish_stats
  std::mutex endpoint_mutex_;                         //!< guards endpoint_
  //! Last: destroyed first, so no scrape reads a facility being torn down (the destructor stops it too).
  std::unique_ptr<metrics_endpoint> endpoint_;
};

// In the header: restore() (runtime_inspect.cpp) calls it too.
template <class Call>
auto runtime_impl::with_room(Call&& call) {
  // Forgotten actors give their slots back once their workers acknowledge; paused workers acknowledge
  // nothing until resume(): then waiting would only delay the refusal.
  const auto paused_hint = [&](const out_of_room& e) {
    return out_of_room(std::string(e.what()) + " (forgotten actors give their slots back once their workers "
                                               "acknowledge, and the runtime is paused: resume() it first)");
  };
  collect();
  wait_result waited = wait_result::ready;
  try {
    return call();
  } catch (const out_of_room& e) {
    if (!grace_.workers_running() || (grace_.pending() == 0 && actors_.retiring() == 0)) throw;
    if (grace_.pending() == 0 && run_.application_paused()) throw paused_hint(e);
    // From a handler: the grace periods wait for this very worker (it waited 2 s, then said "full").
    if (backend_->on_worker_thread())
      throw out_of_room(
          std::string(e.what()) +
          " (forgotten actors give their slots back once every worker passed a grace period, this "
          "handler's worker too: call it from a host thread, or after this handler returned)");
    // Releases are pending: wait for workers to pass their grace periods, then try once more.
    waited = wait_until([&] { return collect() && grace_.pending() == 0 && actors_.retiring() == 0; },
                        [&] { return faults_.detected(); }, 2'000'000'000ull);
    if (waited == wait_result::aborted) faults_.throw_if_faulted();
  }
  try {
    return call();
  } catch (const out_of_room& e) {
    if (actors_.retiring() != 0 && run_.application_paused()) throw paused_hint(e);
    if (waited != wait_result::timed_out) throw;
    throw out_of_room(std::string(e.what()) +
                      " (after waiting 2 s for what was given up to be freed: a handler call running since "
                      "then, or a worker that has not acknowledged a forget, holds it; other setup calls "
                      "waited too)");
  }
}

} // namespace rk::detail
