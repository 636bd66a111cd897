#pragma once
// Run control: the runtime's phase, starting workers (at start() and for actors spawned while running),
// the global pause, per-actor lifecycle requests (stop, respawn, pause), drain and shutdown, and stats.
//
// Owns the phase word, the final stats and the shutdown report. Drives the backend's launch, join and
// fault calls; launches go through the worker registry, lifecycle words through the actor table, host
// traffic counts come from host I/O. Setup-type calls (start, launch_late, begin_*, respawn, shutdown)
// run under the coordinator's setup lock; the await_* waits and stats() run without it, from any thread.

#include "actor_table.hpp"
#include "audit_link.hpp"
#include "faults.hpp"
#include "grace.hpp"
#include "host_io.hpp"
#include "scheduler.hpp"
#include "watchdog.hpp"
#include "workers.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <typeindex>

namespace rk::detail {

class run_control {
public:
  run_control(const runtime_options& options, std::atomic<phase>& phase, backend_impl& backend,
              memory_pool& memory, worker_registry& workers, scheduler& sched, grace_periods& grace,
              actor_table& actors, host_io& io, audit_link& audit, fault_monitor& faults)
      : options_(options), phase_(phase), backend_(backend), memory_(memory), workers_(workers),
        scheduler_(sched), grace_(grace), actors_(actors), io_(io), audit_(audit), faults_(faults),
        watchdog_(options.handler_timeout, backend, workers, actors, faults, audit) {}
  //! The complete device view, once every facility described its part.
  void set_system(const system_view& sys) noexcept { sys_ = sys; }
  phase current_phase() const noexcept { return phase_.load(); }

  void start();
  //! Publishes `ids` (spawned while running, one handler type). Scheduled actors need no launch: the
  //! running pool serves them. Dedicated ones get workers first, published once they run. Throws
  //! rk::error. If the backend refused, nothing ran and the ids are untouched (the caller undoes them); if
  //! the workers did not check in, the launch is abandoned and the ids stay marked launched (the caller
  //! retires them: an orphaned worker lets go of them when it runs).
  void launch_late(const std::vector<actor_index>& ids, const std::string& who);

  //! The application's global pause and resume (any thread). A snapshot_all() holding the workers paused
  //! keeps them so through a resume(); they resume when the last of the two lets go.
  bool pause(std::chrono::nanoseconds timeout);
  void resume();
  //! Whether the application paused the whole runtime (pause(), not yet resume()).
  bool application_paused();
  //! snapshot_all()'s hold on every worker: requests the pause and waits for it. True: held, until
  //! release_all_for_snapshot(); false (not within `timeout`) or rk::error: not held.
  //! rk::error naming `who` also when the watchdog reports a handler call stuck (its worker cannot pause).
  bool hold_all_for_snapshot(std::chrono::nanoseconds timeout, const std::string& who);
  void release_all_for_snapshot();

  //! Per-actor lifecycle: the begin_* calls check and write the request and return the host word the
  //! wait needs; await_device_state waits for the worker's answer without any lock.
  std::uint32_t begin_stop(actor_index a);
  std::uint32_t begin_pause(actor_index a);
  void resume_actor(actor_index a);
  //! snapshot()'s hold on one live or paused actor, independent of the application's pause_actor /
  //! resume_actor: the actor stays paused while either holds it. Returns the host word to await (the
  //! paused one), or nothing when the actor is neither live nor paused (it holds still as it is).
  std::optional<std::uint32_t> hold_for_snapshot(actor_index a);
  void release_snapshot_hold(actor_index a);
  //! False, respawning nothing, when the actor faulted (ctx.fault()) in a call that is still running:
  //! the caller waits for it (await_faulted_call) and tries again.
  [[nodiscard]] bool respawn(actor_index a, std::type_index type, const void* initial);
  //! stop()'s first step: waits (up to `timeout`) until the host sends to live actor `a` admitted before
  //! the call are settled: let into its mailbox, whose queue the stop still has handled (they were refused
  //! as sent after the stop). Ends early when `a` is not live, the runtime is paused or not running, or
  //! the watchdog reports `a` stuck. Returns what is left of `timeout`.
  std::chrono::nanoseconds await_sends_before_stop(actor_index a, std::chrono::nanoseconds timeout);
  //! `paused_runtime`: whether the application's pause() of the whole runtime also ends the wait (false):
  //! once asked for (snapshot(), which then copies under it; shutdown() beginning ends that wait too), or
  //! once every worker holds still (stop() and pause_actor(): paused workers acknowledge nothing until
  //! resume()).
  enum class paused_runtime { ignored, ends_wait_when_asked, ends_wait_when_held };
  bool await_device_state(actor_index a, std::uint32_t host_word, device_state wanted,
                          std::chrono::nanoseconds timeout, paused_runtime until = paused_runtime::ignored);
  //! An actor that faulted with ctx.fault() is faulted at once, but the call goes on to its end, writing
  //! the state: respawn() and snapshot() wait for it without the setup lock (await_faulted_call: bounded,
  //! rk::error naming `who` after 10 s or when the watchdog reports the call stuck, and at once from that
  //! very call, which cannot return while it waits, or from a call the awaited one waits for in turn),
  //! then look again under the lock (respawn() and faulted_call_running: another thread may have respawned
  //! it, and it faulted again).
  void await_faulted_call(actor_index a, const std::string& who);
  bool faulted_call_running(actor_index a) const;
  //! rk::error naming the stuck handler call when the watchdog reports `a` (or its worker) stuck.
  void throw_if_stuck(actor_index a, const std::string& who) const { watchdog_.throw_if_stuck(a, who); }
  //! The watchdog's look at each worker (state dumps); empty without a watchdog.
  std::map<std::uint32_t, watchdog::observation> worker_observations() const {
    return watchdog_.observations();
  }
  std::vector<std::string> stuck_names() const { return watchdog_.stuck_names(); }
  //! Called on the watchdog thread when it reports a stuck call. Set before start().
  void on_stuck(std::function<void()> call) { watchdog_.on_report(std::move(call)); }

  shutdown_report shutdown() noexcept;
  //! Said by shutdown() (and an abandon that ends waits) before it waits for the setup lock: waits for
  //! every worker to pause (pause(), snapshot_all(), which may hold that lock) end then, and say false.
  void note_shutdown_requested() noexcept { shutdown_requested_.store(true); }
  bool shutdown_requested() const noexcept { return shutdown_requested_.load(); }
  //! Throws rk::error naming `who` (e.g. "respawn()") once shutdown() began and until it ended (then the
  //! caller's own refusal of a stopped runtime applies): nothing is respawned or saved during a drain.
  void throw_if_shutting_down(const std::string& who) const;
  //! For a runtime destroyed on one of its own threads (see runtime_impl::abandon): asks the gateway and
  //! the workers to stop without waiting for them, and stops the watchdog and the audit drain unless the
  //! caller is that thread. Its memory is never freed (a worker may still use it). `end_waits`: the
  //! phase turns stopped and parked receivers are woken, so calls waiting in other threads (receive,
  //! send_wait, ...) return as after shutdown(); false while the process exits (std::exit), where a
  //! waiting main thread that returned would end the process with its own exit code first.
  void abandon(bool end_waits) noexcept;
  //! The lifecycle to report for an actor whose table says `recorded`: once shutdown() stopped every
  //! worker no actor runs any more, so one that was live, paused or stopping is stopped (any thread).
  actor_lifecycle as_reported(actor_lifecycle recorded) const noexcept;
  runtime_stats stats();
  void read_state(actor_index id, std::type_index type, void* out, std::size_t bytes) const;

private:
  bool ended_by_pause(paused_runtime until);
  //! Whether a worker runs a handler call of `a` now.
  bool in_call(actor_index a) const;
  //! `a` is a faulted actor of the running runtime.
  bool faulted(actor_index a) const;
  void start_steps();
  void check_lifecycle_call(actor_index a, const std::string& who);
  //! The application no longer holds `a` paused (resume_actor, stop, respawn); true when no snapshot()
  //! holds it either (needs the coordinator's lock).
  bool drop_application_hold(actor_index a);
  //! Writes `a`'s host word back to live if it says paused.
  void resume_if_paused(actor_index a);
  //! Waits until every worker confirmed the pause requested (false: not within `timeout`).
  //! Whether every worker confirmed the global pause within `timeout`; rk::error naming `who` when the
  //! watchdog reports a stuck handler call, whose worker cannot confirm.
  bool await_all_paused(std::chrono::nanoseconds timeout, const std::string& who);
  //! Why workers did not check in within start_timeout, for this backend (`beside_running`: a launch
  //! while the runtime runs).
  std::string late_workers_reason(bool beside_running) const;
  //! Stops the watchdog (unless this is its thread), the gateway's scheduling and the workers; waits for
  //! none of them. The first step of terminate_and_join and all of abandon's stopping.
  void request_stop() noexcept;
  void terminate_and_join();
  runtime_stats collect_stats() const;
  //! After a fault: the counters as they can still be read, or the last snapshot stats() took.
  runtime_stats last_snapshot() const;
  backoff host_backoff() const noexcept { return options_.host_busy_poll ? backoff::busy_poll() : backoff{}; }
  std::function<bool()> abort_on_fault() {
    return [this] { return faults_.detected(); };
  }

  const runtime_options& options_;
  std::atomic<phase>& phase_; //!< writer: run control; readers: host I/O and the coordinator
  backend_impl& backend_;
  memory_pool& memory_;
  worker_registry& workers_;
  scheduler& scheduler_;
  grace_periods& grace_;
  actor_table& actors_;
  host_io& io_;
  audit_link& audit_;
  fault_monitor& faults_;
  watchdog watchdog_;
  system_view sys_{};

  bool workers_stopped_ = true;
  std::atomic<bool> starting_{false}; //!< start() runs (as_reported: its phase says stopped meanwhile)
  std::atomic<bool> shutdown_requested_{false}; //!< see note_shutdown_requested
  //! shutdown() began and has not ended: the span throw_if_shutting_down refuses.
  bool draining_for_shutdown() const noexcept {
    return shutdown_requested_.load() && phase_.load() != phase::stopped;
  }
  std::optional<runtime_stats> final_stats_;
  mutable std::mutex snapshot_mutex_;
  std::optional<runtime_stats> last_snapshot_; //!< guarded by snapshot_mutex_
  shutdown_report last_report_;

  //! Who holds an actor paused (needs the coordinator's lock, which every caller holds): the
  //! application (pause_actor until resume_actor, stop or respawn) and running snapshot() calls.
  struct pause_holds {
    bool application = false;
    std::uint32_t snapshots = 0;
  };
  std::map<actor_index, pause_holds> holds_;
  std::mutex global_pause_mutex_; //!< guards the two below: pause() and resume() come from any thread
  bool application_paused_ = false;
  std::uint32_t snapshot_all_holds_ = 0;
};

} // namespace rk::detail
