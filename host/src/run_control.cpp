// Run control (see run_control.hpp).

#include "run_control.hpp"

#include "faulted_call_waits.hpp"
#include "service_thread.hpp"

#include "nvtx.hpp"
#include "support.hpp"

#include <ringkernel/host/error.hpp>

#include <algorithm>

namespace rk::detail {

namespace {
std::uint32_t live_word(std::uint32_t epoch) {
  return make_state_word(epoch, static_cast<std::uint8_t>(host_state::live));
}
std::uint32_t paused_word(std::uint32_t epoch) {
  return make_state_word(epoch, static_cast<std::uint8_t>(host_state::paused));
}
//! No worker runs after shutdown stopped them: an actor still live, paused or stopping is stopped.
actor_lifecycle as_reported_after_workers_stopped(actor_lifecycle recorded) {
  const bool was_running = recorded == actor_lifecycle::live || recorded == actor_lifecycle::paused ||
                           recorded == actor_lifecycle::stopping;
  return was_running ? actor_lifecycle::stopped : recorded;
}
//! Runs `read` (a read-back after the workers stopped); when it throws, says in the report's fault (the
//! first one stands) that `what` could not be read, and goes on.
template <class Read>
void read_back(shutdown_report& report, const char* what, Read&& read) noexcept {
  try {
    read();
  } catch (const std::exception& e) {
    try {
      if (!report.fault)
        report.fault = std::string("shutdown() could not read back ") + what + ": " + e.what();
    } catch (const std::bad_alloc&) { // no memory for the text either: the missing data says it
    }
  }
}

std::string draining_refusal(const std::string& who) {
  return who + ": shutdown() was called and the runtime is draining; nothing is respawned or saved any more";
}
} // namespace

// --- starting workers -------------------------------------------------------------------------------------

std::string run_control::late_workers_reason(bool beside_running) const {
  if (backend_.kind() != backend::cuda)
    return beside_running ? " (worker threads of a loaded machine start slowly); raise "
                            "runtime_options::start_timeout."
                          : " (worker threads of a loaded machine start slowly); raise "
                            "runtime_options::start_timeout or lower cpu_workers.";
  return beside_running
             ? ", so they are not co-resident with the running kernels. Spawn fewer actors or free "
               "the GPU."
             : ", so the actor kernels are not all co-resident (other work on the GPU, MPS limits, "
               "or more actors than fit). Spawn fewer actors or free the GPU.";
}

void run_control::start() {
  RK_NVTX_RANGE("rk::runtime::start");
  starting_.store(true); // the phase says stopped while start() runs: as_reported must not believe it
  try {
    start_steps();
  } catch (...) {
    starting_.store(false);
    throw;
  }
  starting_.store(false);
}

void run_control::start_steps() {
  if (phase_.load() != phase::created)
    throw error("start(): a runtime starts once; create a new rk::runtime to run again");
  const std::vector<std::vector<actor_index>> by_kind = actors_.unlaunched_by_kind(true);
  const std::vector<std::vector<actor_index>> scheduled = actors_.unlaunched_by_kind(false);
  const auto none = [](const auto& v) { return v.empty(); };
  if (std::all_of(by_kind.begin(), by_kind.end(), none) &&
      std::all_of(scheduled.begin(), scheduled.end(), none))
    throw error("start(): no actors; spawn at least one actor before start()");
  // From here on a failure leaves the runtime stopped, with nothing running.
  phase_.store(phase::stopped);
  try {
    backend_.preload(actors_.all_kinds());
  } catch (const error& e) {
    throw error(std::string("start(): ") + e.what());
  }
  actors_.mark_kinds_loaded();

  std::vector<launch_group> groups;
  std::vector<actor_index> all;
  // A pool for every handler type known now: later spawns of any of them need no launch.
  const std::uint32_t pool = scheduler_.workers_per_kind();
  for (std::uint32_t k = 0; k < scheduled.size(); ++k) {
    launch_group g;
    g.ops = &actors_.kind(k);
    g.scheduled = true;
    g.kind = k;
    g.pool_workers = pool;
    g.description = std::to_string(pool) + " scheduled workers";
    all.insert(all.end(), scheduled[k].begin(), scheduled[k].end());
    groups.push_back(std::move(g));
  }
  try {
    scheduler_.create_queues(static_cast<std::uint32_t>(scheduled.size()), options_.max_actors, sys_);
  } catch (const error& e) {
    throw error(std::string("start(): ") + e.what());
  }
  for (std::uint32_t k = 0; k < by_kind.size(); ++k) {
    if (by_kind[k].empty()) continue;
    launch_group g;
    g.ops = &actors_.kind(k);
    g.actors = by_kind[k];
    for (actor_index id : g.actors) g.states.push_back(actors_.state_of(id));
    g.description = actors_.describe_actors(g.actors);
    all.insert(all.end(), g.actors.begin(), g.actors.end());
    groups.push_back(std::move(g));
  }
  launch_record& launch = workers_.prepare(std::move(groups), "start()");
  memory_.reserve_arena(options_.running_arena_bytes); // before any launch: see memory.hpp
  grace_.workers_started();
  try {
    const std::uint32_t used = backend_.launch(sys_, workers_.host_control(), workers_.host_status(),
                                               launch.backend_groups(sys_), workers_.gateway_entry());
    workers_.started(launch, used);
    workers_.gateway_started();
    scheduler_.set_gateway_running(true);
    actors_.mark_launched(all, true);
    const wait_result r = workers_.await_check_in(&launch, true, timeout_ns(options_.start_timeout),
                                                  abort_on_fault(), host_backoff());
    if (r == wait_result::aborted) throw error("start(): " + faults_.text());
    if (r == wait_result::timed_out)
      throw error("start(): only " + std::to_string(workers_.checked_in(launch)) + " of " +
                  std::to_string(launch.used) + " actor workers started within " +
                  std::to_string(options_.start_timeout.count()) + " ms" + late_workers_reason(false));
    watchdog_.start();
  } catch (const error& e) {
    terminate_and_join(); // whatever did start sees terminate and exits
    const std::string what = e.what();
    throw error(what.rfind("start()", 0) == 0 ? what : "start(): " + what);
  } catch (...) {
    terminate_and_join();
    throw;
  }
  phase_.store(phase::running);
}

void run_control::launch_late(const std::vector<actor_index>& ids, const std::string& who) {
  if (!actors_.dedicated(ids.front())) {
    actors_.mark_launched(ids, true); // the pool may serve them from now on: forget waits for it
    actors_.make_live(ids);
    return;
  }
  launch_group g;
  g.ops = &actors_.kind(actors_.kind_of(ids.front()));
  g.actors = ids;
  for (actor_index id : ids) g.states.push_back(actors_.state_of(id));
  g.description = actors_.describe_actors(ids);
  std::vector<launch_group> groups;
  groups.push_back(std::move(g));
  launch_record& launch = workers_.prepare(std::move(groups), who);
  std::uint32_t used = 0;
  try {
    used = backend_.launch_more(sys_, launch.backend_groups(sys_)); // all or nothing
  } catch (const error& e) {
    workers_.discard(launch);
    throw error(who + ": " + e.what());
  } catch (...) {
    workers_.discard(launch);
    throw;
  }
  workers_.started(launch, used);
  actors_.mark_launched(ids, true);
  const wait_result r = workers_.await_check_in(&launch, false, timeout_ns(options_.start_timeout),
                                                abort_on_fault(), host_backoff());
  if (r != wait_result::ready) {
    const std::uint32_t running = workers_.checked_in(launch);
    workers_.abandon(launch);
    if (r == wait_result::aborted) throw error(who + ": " + faults_.text());
    throw error(who + ": only " + std::to_string(running) + " of " + std::to_string(launch.used) +
                " actor workers started within " + std::to_string(options_.start_timeout.count()) + " ms" +
                late_workers_reason(true));
  }
  actors_.make_live(ids);
}

// --- global pause
// -------------------------------------------------------------------------------------------

bool run_control::pause(std::chrono::nanoseconds timeout) {
  faults_.throw_if_faulted();
  {
    // The phase is read under the lock shutdown() changes it under: a pause that lands after shutdown's
    // resume() would hold the workers paused through the drain.
    std::lock_guard lock(global_pause_mutex_);
    if (phase_.load() != phase::running) throw error("pause(): the runtime is not running");
    application_paused_ = true;
    workers_.request_pause(true);
  }
  // Workers that shutdown() stopped meanwhile are "all paused" too: await_all_paused says no then.
  return await_all_paused(timeout, "pause()");
}

bool run_control::application_paused() {
  std::lock_guard lock(global_pause_mutex_);
  return application_paused_;
}

bool run_control::await_all_paused(std::chrono::nanoseconds timeout, const std::string& who) {
  // A worker in a handler call the watchdog reports stuck cannot confirm: end the wait and say so. So
  // does a shutdown: it may wait for the setup lock this caller holds (snapshot_all), and a worker it
  // could not stop never confirms.
  const auto overtaken = [&] { return shutdown_requested_.load() || phase_.load() != phase::running; };
  const wait_result r = wait_until(
      [&] {
        return workers_.all_paused() || watchdog_.reports_any_stuck() || overtaken() ||
               callback_outlived(phase_);
      },
      abort_on_fault(), timeout_ns(timeout), host_backoff());
  if (r == wait_result::aborted) faults_.throw_if_faulted();
  if (r == wait_result::ready && workers_.all_paused() && !overtaken()) return true;
  watchdog_.throw_if_any_stuck(who);
  return false;
}

void run_control::resume() {
  std::lock_guard lock(global_pause_mutex_);
  application_paused_ = false;
  if (snapshot_all_holds_ == 0) workers_.request_pause(false);
}

bool run_control::hold_all_for_snapshot(std::chrono::nanoseconds timeout, const std::string& who) {
  {
    std::lock_guard lock(global_pause_mutex_);
    ++snapshot_all_holds_;
    workers_.request_pause(true);
  }
  try {
    if (await_all_paused(timeout, who)) return true;
  } catch (...) { // a fault while waiting
    release_all_for_snapshot();
    throw;
  }
  release_all_for_snapshot();
  return false;
}

void run_control::release_all_for_snapshot() {
  std::lock_guard lock(global_pause_mutex_);
  if (snapshot_all_holds_ > 0 && --snapshot_all_holds_ == 0 && !application_paused_)
    workers_.request_pause(false);
}

// --- per-actor lifecycle
// --------------------------------------------------------------------------------------

void run_control::check_lifecycle_call(actor_index a, const std::string& who) {
  actors_.check(a, who, actor_table::want::actor);
  if (phase_.load() != phase::running) throw error(who + ": the runtime is not running");
  faults_.throw_if_faulted();
  watchdog_.throw_if_stuck(a, who);
}

std::uint32_t run_control::begin_stop(actor_index a) {
  check_lifecycle_call(a, "stop()");
  const std::uint32_t hw = actors_.host_word(a);
  const auto hs = static_cast<host_state>(state_in(hw));
  if (hs == host_state::live || hs == host_state::paused)
    actors_.write_host_word(a,
                            make_state_word(epoch_of(hw), static_cast<std::uint8_t>(host_state::stopping)));
  drop_application_hold(a); // stopping now
  return hw;
}

std::uint32_t run_control::begin_pause(actor_index a) {
  check_lifecycle_call(a, "pause_actor()");
  const std::uint32_t hw = actors_.host_word(a);
  const auto hs = static_cast<host_state>(state_in(hw));
  if (hs == host_state::paused) { // asked again, or held by a snapshot(): wait for the same confirmation
    holds_[a].application = true;
    return hw;
  }
  if (hs != host_state::live)
    throw error("pause_actor(): actor '" + actors_.name_of(a) + "' is " + to_string(actors_.lifecycle(a)) +
                ", not live");
  if (current_device_state(hw, actors_.device_word(a)) == device_state::faulted)
    throw error("pause_actor(): actor '" + actors_.name_of(a) + "' is faulted; respawn() it first");
  const std::uint32_t paused = paused_word(epoch_of(hw));
  actors_.write_host_word(a, paused);
  holds_[a].application = true;
  return paused;
}

void run_control::resume_actor(actor_index a) {
  actors_.check(a, "resume_actor()", actor_table::want::actor);
  if (drop_application_hold(a)) resume_if_paused(a); // else a snapshot() still copies it: after the copy
}

bool run_control::drop_application_hold(actor_index a) {
  const auto it = holds_.find(a);
  if (it == holds_.end()) return true;
  it->second.application = false;
  if (it->second.snapshots != 0) return false;
  holds_.erase(it);
  return true;
}

void run_control::resume_if_paused(actor_index a) {
  const std::uint32_t hw = actors_.host_word(a);
  if (static_cast<host_state>(state_in(hw)) == host_state::paused)
    actors_.write_host_word(a, live_word(epoch_of(hw)));
}

std::optional<std::uint32_t> run_control::hold_for_snapshot(actor_index a) {
  std::uint32_t hw = actors_.host_word(a);
  const auto hs = static_cast<host_state>(state_in(hw));
  if (current_device_state(hw, actors_.device_word(a)) == device_state::faulted) return std::nullopt;
  if (hs != host_state::live && hs != host_state::paused) return std::nullopt;
  if (hs == host_state::live) {
    hw = paused_word(epoch_of(hw));
    actors_.write_host_word(a, hw);
  } // else paused by the application, perhaps not confirmed yet: the copy waits for it
  ++holds_[a].snapshots;
  return hw;
}

void run_control::release_snapshot_hold(actor_index a) {
  const auto it = holds_.find(a);
  if (it == holds_.end() || it->second.snapshots == 0) return;
  if (--it->second.snapshots != 0 || it->second.application) return;
  holds_.erase(it);
  resume_if_paused(a);
}

bool run_control::respawn(actor_index a, std::type_index type, const void* initial) {
  check_lifecycle_call(a, "respawn()");
  const actor_type_ops& k = actors_.kind(actors_.kind_of(a));
  if (initial != nullptr && type != k.type)
    throw error("respawn<H>(" + std::to_string(a) + "): actor '" + actors_.name_of(a) + "' runs handler '" +
                k.name + "', not the requested type");
  const std::uint32_t hw = actors_.host_word(a);
  const device_state ds = current_device_state(hw, actors_.device_word(a));
  if (ds != device_state::stopped && ds != device_state::faulted)
    throw error("respawn(): actor '" + actors_.name_of(a) + "' is not stopped or faulted; stop() it first");
  // ctx.fault() marks the actor faulted while its call goes on: a fault read here, after the caller last
  // looked (faulted_call_running), may belong to a call still running, whose end (its writes, an
  // exception it throws) would then land in the fresh actor. The worker shows the call busy until both.
  if (ds == device_state::faulted && in_call(a)) return false;
  actors_.rewrite_state(a, initial); // the parked worker does not touch it until the new epoch
  actors_.write_host_word(a, live_word(epoch_of(hw) + 1));
  drop_application_hold(a); // live again
  audit_.record(audit_event::actor_spawn, audit_level::info, a, actors_.tenant_of(a), 1, actors_.kind_of(a));
  return true;
}

bool run_control::in_call(actor_index a) const {
  for (const std::uint32_t busy : workers_.busy_actors())
    if (busy == a + 1) return true;
  return false;
}

bool run_control::faulted(actor_index a) const {
  return phase_.load() == phase::running && actors_.contains(a, actor_table::want::actor) &&
         actors_.lifecycle(a) == actor_lifecycle::faulted;
}

bool run_control::faulted_call_running(actor_index a) const {
  return faulted(a) && in_call(a);
}

void run_control::await_faulted_call(actor_index a, const std::string& who) {
  if (!faulted(a)) return; // stopped, live (refused by the caller) or no workers: no call writes the state
  const faulted_call_wait registered({&backend_, a}, actors_.name_of(a), who);
  // A CPU worker also marks an actor busy for a moment while it only looks at its mailbox: one look that
  // finds it idle is enough (a call that faulted keeps it marked until it returns).
  bool ended = false;
  bool shutting_down = false;
  const wait_result r = wait_until(
      [&] {
        ended = !in_call(a);
        shutting_down = draining_for_shutdown();
        return ended || shutting_down || watchdog_.reports_stuck(a) || callback_outlived(phase_);
      },
      abort_on_fault(), timeout_ns(std::chrono::seconds(10)), host_backoff());
  if (r == wait_result::aborted) faults_.throw_if_faulted();
  if (ended) return;
  if (shutting_down)
    throw error(draining_refusal(who + " (waiting for the faulted call of '" + actors_.name_of(a) + "')"));
  watchdog_.throw_if_stuck(a, who);
  throw error(
      who + ": actor '" + actors_.name_of(a) +
      "' faulted (ctx.fault()) in a handler call that has not returned within 10 s, and the call still "
      "writes its state; call it again once the call returned");
}

void run_control::throw_if_shutting_down(const std::string& who) const {
  if (draining_for_shutdown()) throw error(draining_refusal(who));
}

bool run_control::ended_by_pause(paused_runtime until) {
  if (until == paused_runtime::ignored || !application_paused()) return false;
  // A handler call the watchdog reports stuck keeps the pause from completing: no worker will serve.
  return until == paused_runtime::ends_wait_when_asked || workers_.all_paused() ||
         watchdog_.reports_any_stuck();
}

std::chrono::nanoseconds run_control::await_sends_before_stop(actor_index a,
                                                              std::chrono::nanoseconds timeout) {
  const auto live = [&] {
    return phase_.load() == phase::running && !application_paused() &&
           static_cast<host_state>(state_in(actors_.host_word(a))) == host_state::live &&
           !watchdog_.reports_stuck(a);
  };
  if (!actors_.contains(a, actor_table::want::actor) || !live()) return timeout;
  const std::uint64_t admitted = io_.sends_admitted(a);
  const call_timeout budget(timeout);
  const wait_result r = wait_until([&] { return io_.sends_settled(a, admitted) || !live(); },
                                   abort_on_fault(), timeout_ns(timeout), host_backoff());
  if (r == wait_result::aborted) faults_.throw_if_faulted();
  return budget.left();
}

bool run_control::await_device_state(actor_index a, std::uint32_t host_word, device_state wanted,
                                     std::chrono::nanoseconds timeout, paused_runtime until) {
  // The wait also ends (false) when the request is overtaken: the host rewrote the actor's word (a
  // resume_actor, or shutdown resuming paused actors to drain them), or shutdown completed (no worker
  // answers any more); and when the watchdog reports the actor's worker stuck in a handler call (the
  // caller throws naming it). Without that a wait with milliseconds::max() never returned.
  bool overtaken = false;
  const wait_result r = wait_until(
      [&] {
        // The worker's acknowledgement of an earlier pause of this epoch is the same word as this one's.
        // A caller that did not write the host word itself (the actor was paused already: by the
        // application, or by a snapshot) takes part in acknowledge_resume's store-load handshake with this
        // fence: if it reads such an old `paused`, a worker that is resuming the actor reads the paused
        // host word and does not serve it.
        store_load_fence();
        const device_state ds = current_device_state(host_word, actors_.device_word(a));
        if (ds == wanted || ds == device_state::faulted) return true;
        const std::uint32_t now = actors_.host_word(a);
        const bool resumed =
            wanted == device_state::paused && static_cast<host_state>(state_in(now)) != host_state::paused;
        overtaken = epoch_of(now) != epoch_of(host_word) || resumed || phase_.load() == phase::stopped ||
                    watchdog_.reports_stuck(a) || ended_by_pause(until) || callback_outlived(phase_) ||
                    (until == paused_runtime::ends_wait_when_asked && shutdown_requested_.load());
        return overtaken;
      },
      abort_on_fault(), timeout_ns(timeout), host_backoff());
  if (r == wait_result::aborted) faults_.throw_if_faulted();
  return r == wait_result::ready && !overtaken;
}

// --- shutdown
// ---------------------------------------------------------------------------------------------------

void run_control::abandon(bool end_waits) noexcept {
  // The threads that are not the caller's stop here: the process may be exiting (std::exit from a
  // handler or sink), and a drain still hashing while OpenSSL's exit handlers ran crashed it.
  request_stop();
  memory_.leak();
  audit_.note_workers_running(); // the caller's worker, at least, never confirms
  audit_.stop();                 // on the drain thread itself it only asks
  if (!end_waits) return;
  // Every wait of a host call ends on the stopped phase (host_io::waits_end and run control's own);
  // receivers parked on the receive lot need the wake.
  shutdown_requested_.store(true);
  phase_.store(phase::stopped);
  io_.wake_receivers();
}

void run_control::request_stop() noexcept {
  if (!watchdog_.on_its_thread()) watchdog_.stop(); // it cannot join itself (on_state_dump runs there)
  scheduler_.set_gateway_running(false);
  workers_.request_terminate();
}

void run_control::terminate_and_join() {
  request_stop();
  workers_stopped_ = backend_.join(options_.stop_timeout);
  if (!workers_stopped_) {
    memory_.leak(); // a worker may still run: leaking is the only safe choice
    return;
  }
  workers_.forget_launches();
  grace_.workers_gone();
  actors_.collect(grace_); // retiring actors need no acknowledgement any more
  memory_.workers_stopped();
}

shutdown_report run_control::shutdown() noexcept {
  RK_NVTX_RANGE("rk::runtime::shutdown");
  if (phase_.load() == phase::stopped) return last_report_;
  shutdown_report report;
  if (phase_.load() == phase::created) {
    audit_.stop();
    phase_.store(phase::stopped);
    last_report_ = report;
    return report;
  }
  bool join_began = false, join_ended = false; // terminate_and_join: workers_stopped_ is its answer
  try {
    {
      std::lock_guard lock(global_pause_mutex_); // see pause()
      phase_.store(phase::draining);
    }
    io_.wait_for_senders();
    resume(); // paused workers would never drain
    actors_.resume_paused();
    if (!faults_.detected()) {
      const std::uint64_t enqueued = io_.enqueued();
      std::uint64_t processed = 0, finished = 0, received = 0;
      // The deadline is checked after every poll, not every 16th as wait_until does: one poll reads every
      // actor's counters (half a second at 10^6 actors), and 16 of them overran a 1 s drain_timeout by 9 s.
      const std::uint64_t drain_ns = timeout_ns(options_.drain_timeout);
      const std::uint64_t drain_begin = physical_clock_ns();
      bool drained = false;
      const wait_result r = wait_until(
          [&] {
            processed = io_.read_gateway().processed;
            actors_.drain_sums(finished, received);
            drained = processed == enqueued && finished == received;
            return drained || (drain_ns != wait_forever && physical_clock_ns() - drain_begin >= drain_ns);
          },
          abort_on_fault(), drain_ns, host_backoff());
      if (r != wait_result::ready || !drained) {
        report.drained = false;
        report.undelivered = (enqueued - std::min(enqueued, processed)) + actors_.backlog();
      }
    }
    for (std::string& name : watchdog_.stuck_names()) report.stuck_actors.push_back(std::move(name));
    join_began = true;
    terminate_and_join();
    join_ended = true;
    report.workers_stopped = workers_stopped_;
    // Counted again with every worker stopped: the counters stand still, so each message left is counted
    // once (read while the workers ran, a message forwarded meanwhile was counted at both ends or at
    // neither).
    if (workers_stopped_ && !report.drained && !faults_.detected()) {
      const std::uint64_t enqueued = io_.enqueued(), processed = io_.read_gateway().processed;
      report.undelivered = (enqueued - std::min(enqueued, processed)) + actors_.backlog();
    }
    if (workers_stopped_ && !report.drained && !faults_.faulted())
      report.undelivered_host_messages = io_.unsettled_messages();
    if (!workers_stopped_)
      for (std::uint32_t a : workers_.busy_actors()) {
        std::string name = actors_.name_for_report(a - 1);
        if (std::find(report.stuck_actors.begin(), report.stuck_actors.end(), name) ==
            report.stuck_actors.end())
          report.stuck_actors.push_back(std::move(name));
      }
    if (faults_.detected()) {
      report.fault = faults_.text();
      report.drained = false;
    }
    if (workers_stopped_) {
      // The final states (the application's results) first, then the counters, each on its own: out of
      // host memory for one keeps the other, the stopped workers and the drain's verdict.
      if (!faults_.faulted())
        read_back(report, "the actors' final states (state<H>() says which are lost)",
                  [&] { actors_.read_final_states(); });
      read_back(report, "the final counters (stats() reads them again when asked)", [&] {
        final_stats_ = faults_.faulted() ? last_snapshot() : collect_stats();
        for (actor_stats& a : final_stats_->actors)
          a.lifecycle = as_reported_after_workers_stopped(a.lifecycle);
        for (const auto& a : final_stats_->actors) {
          report.discarded += a.discarded;
          report.lost_to_fault += a.interrupted;
          if (final_stats_->stale)
            report.lost_to_fault +=
                a.received - std::min(a.received, a.handled + a.discarded + a.interrupted);
        }
        report.discarded += final_stats_->forgotten.discarded;
        report.lost_to_fault += final_stats_->forgotten.interrupted;
      });
    }
    report.pending_host_messages = io_.pending_egress();
    if (!workers_stopped_) audit_.note_workers_running(); // what they refuse later is in no log
    audit_.stop();                                        // every record emitted so far reaches the sinks
  } catch (const std::exception& e) {
    // The workers must be stopped before anything frees what they use (~runtime trusts workers_stopped).
    // If the failure came before or inside terminate_and_join they may still run: stop them now, and
    // when that cannot be confirmed, report them running and leak their memory.
    if (!join_began) {
      report.drained = false; // the drain wait did not finish
      try {
        terminate_and_join();
      } catch (...) {
        workers_stopped_ = false;
      }
    } else if (!join_ended) {
      workers_stopped_ = false; // it threw part way: its bookkeeping is unfinished
    }
    if (!workers_stopped_) memory_.leak();
    report.workers_stopped = workers_stopped_;
    if (!workers_stopped_) audit_.note_workers_running();
    audit_.stop();
    try {
      report.fault = std::string("shutdown failed: ") + e.what();
    } catch (const std::bad_alloc&) {
      report.fault.reset(); // out of memory: the report's flags say what happened
    }
  }
  phase_.store(phase::stopped);
  io_.wake_receivers();
  last_report_ = report;
  return report;
}

actor_lifecycle run_control::as_reported(actor_lifecycle recorded) const noexcept {
  // start() says stopped from its beginning (a failed start leaves it so) and writes workers_stopped_
  // before starting_ turns false; shutdown() writes it before the phase turns stopped, and not after.
  if (phase_.load() != phase::stopped || starting_.load() || !workers_stopped_) return recorded;
  return as_reported_after_workers_stopped(recorded);
}

// --- stats
// --------------------------------------------------------------------------------------------------------

runtime_stats run_control::collect_stats() const {
  runtime_stats s;
  actors_.collect_stats(s);
  // The settled count the host admits against, read first: the gateway counts a message in its own
  // `processed` before it gives the message's credit back, so that count could name a message whose
  // room a send made after reading it would not find yet. Every verdict it counts is recorded by now.
  s.gateway_processed = io_.settled();
  const gateway_counters g = io_.read_gateway();
  std::copy(std::begin(g.verdicts), std::end(g.verdicts), s.gateway_verdicts.begin());
  s.gateway_parked = g.parked;
  s.gateway_parked_total = g.parked_total;
  io_.fill_host_counters(s);
  return s;
}

runtime_stats run_control::stats() {
  if (phase_.load() == phase::stopped) {
    runtime_stats s = final_stats_.value_or(last_snapshot());
    io_.fill_host_counters(s); // receive() keeps working after shutdown
    for (actor_stats& a : s.actors) a.lifecycle = as_reported(a.lifecycle); // as lifecycle() says
    return s;
  }
  if (faults_.faulted()) return last_snapshot();
  runtime_stats s = collect_stats();
  std::lock_guard lock(snapshot_mutex_);
  last_snapshot_ = s;
  return s;
}

runtime_stats run_control::last_snapshot() const {
  // On the CPU backend memory stays readable after a fault: read it. On CUDA a device fault makes every
  // copy fail: keep what was read last.
  try {
    if (backend_.kind() == rk::backend::cpu) return collect_stats();
  } catch (const std::exception&) { // fall through to the snapshot
  }
  std::lock_guard lock(snapshot_mutex_);
  runtime_stats s = last_snapshot_.value_or(runtime_stats{});
  s.stale = true;
  for (auto& a : s.actors) a.lifecycle = faults_.as_reported(a.lifecycle);
  io_.fill_host_counters(s);
  return s;
}

void run_control::read_state(actor_index id, std::type_index type, void* out, std::size_t bytes) const {
  actors_.read_final_state(id, type, out, bytes);
}

} // namespace rk::detail
