// The coordinator's calls that read the runtime as a whole (see runtime_impl.hpp): snapshots of actor
// states and restoring them, state dumps, and table usage.

#include "runtime_impl.hpp"
#include "support.hpp"

#include <ringkernel/host/detail/printable.hpp>

#include <cstdio>
#include <new>

namespace rk::detail {

// --- snapshots --------------------------------------------------------------------------------------------

actor_snapshot runtime_impl::snapshot(actor_index a, std::chrono::nanoseconds timeout,
                                      const std::string& who) {
  refuse_from_worker(who); // it pauses the actor, waiting for its worker
  actors_.check(a, who, actor_table::want::actor);
  const auto timeout_text = [&] {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) + " ms";
  };
  const call_timeout budget(timeout); // one timeout for the whole call: each wait gets what is left of it
  const auto throw_if_shutdown_began = [&] {
    // Draining workers still run handlers: nothing holds still for a copy until shutdown() ended.
    if (run_.shutdown_requested() && run_.current_phase() != phase::stopped)
      throw error(who + ": shutdown() began while it waited for actor '" + actors_.name_of(a) +
                  "' to hold still; nothing was copied (after shutdown() the final state can be copied)");
  };
  // A live actor of a running runtime is held paused for the copy, and so is one the application paused
  // (until its worker confirmed, a handler call may still write the state); a stopping one still handles
  // what was queued; anything else holds still already. The hold is the snapshot's own: a resume_actor()
  // meanwhile does not end it, and letting go of it does not resume an actor the application paused.
  for (;;) {
    throw_if_shutdown_began();
    if (run_.current_phase() == phase::running && run_.application_paused()) {
      // The whole runtime is paused (pause()): its workers acknowledge no request of one actor until
      // resume(), and none is in a handler once all of them confirmed. Hold that pause for the copy, as
      // snapshot_all() does (a resume() meanwhile takes effect after it).
      std::lock_guard lock(setup_);
      if (!run_.hold_all_for_snapshot(budget.left(), who))
        throw error(
            run_.shutdown_requested()
                ? who + ": shutdown() began while the paused runtime's workers were confirming; nothing "
                        "was copied"
                : who + ": the runtime is paused but its workers did not all confirm within " +
                      timeout_text() + " (a handler call is still running); nothing was copied");
      try {
        actor_snapshot s = actors_.image(a);
        run_.release_all_for_snapshot();
        return s;
      } catch (...) {
        run_.release_all_for_snapshot();
        throw;
      }
    }
    std::optional<std::uint32_t> held;
    // Faulted by ctx.fault() in a call that goes on to its end, writing the state: copied after it.
    run_.await_faulted_call(a, who);
    {
      std::lock_guard lock(setup_);
      throw_if_shutdown_began();
      if (run_.current_phase() == phase::running) {
        if (actors_.lifecycle(a) == actor_lifecycle::stopping)
          throw error(who + ": actor '" + actors_.name_of(a) +
                      "' is stopping (its worker still handles what was queued); snapshot it once stop() "
                      "confirmed, or before stopping it");
        held = run_.hold_for_snapshot(a);
      }
      // Stopped, faulted, or no workers: it holds still while this lock keeps respawn() out (once a call
      // that faulted since the look above returned: wait for it again, without the lock).
      if (!held) {
        if (run_.faulted_call_running(a)) continue;
        return actors_.image(a);
      }
    }
    const auto let_go = [&] {
      // shutdown() holds the lock for its whole drain and resumes every paused actor itself: once it began,
      // the hold is left to it rather than waited for (this call would return only when shutdown() ended).
      if (run_.shutdown_requested()) {
        if (!setup_.try_lock_if_free()) return;
        std::lock_guard lock(setup_, std::adopt_lock);
        run_.release_snapshot_hold(a);
        return;
      }
      std::lock_guard lock(setup_);
      run_.release_snapshot_hold(a);
    };
    try {
      // A pause() from another thread meanwhile ends the wait: the worker would not acknowledge this hold
      // until resume(), and the paused runtime is copied as above. So does shutdown() beginning.
      // Confirmed unless it faulted (as in pause_actor: not `== paused`, which a worker that was resuming
      // the actor contradicts for a moment; that worker does not serve it).
      if (!(run_.await_device_state(a, *held, device_state::paused, budget.left(),
                                    run_control::paused_runtime::ends_wait_when_asked) &&
            current_device_state(*held, actors_.device_word(a)) != device_state::faulted)) {
        run_.throw_if_stuck(a, who);
        throw_if_shutdown_began();
        // Paused by the application meanwhile, or paused and resumed again before this look (the wait
        // ended, and this call once failed with most of its timeout left): try again in what is left.
        const bool still_ours = actors_.host_word(a) == *held &&
                                current_device_state(*held, actors_.device_word(a)) != device_state::faulted;
        if (run_.current_phase() == phase::running &&
            (run_.application_paused() || (still_ours && budget.left().count() > 0))) {
          let_go();
          continue;
        }
        // A stop() overrides the hold and ends the wait at once: say so, not that the time ran out.
        if (run_.current_phase() == phase::running && actors_.host_word(a) != *held)
          throw error(
              who + ": actor '" + actors_.name_of(a) +
              "' was stopped while the snapshot waited for it to pause (its worker now handles what "
              "was queued); nothing was copied. Snapshot it once stop() confirmed, or before stopping "
              "it");
        throw error(who + ": actor '" + actors_.name_of(a) + "' did not pause within " + timeout_text() +
                    (timeout.count() == 0
                         ? " (a timeout of 0 gives its worker no time to confirm; give it some)"
                         : " (a handler call is still running, or the actor was stopped or the runtime shut "
                           "down meanwhile)") +
                    "; nothing was copied");
      }
      // Copied under the lock stop() takes to override the hold: once the hold is confirmed here, no
      // stop() can set the worker draining the mailbox (writing the state) until the copy is done.
      std::lock_guard lock(setup_);
      if (actors_.host_word(a) != *held)
        throw error(
            who + ": actor '" + actors_.name_of(a) +
            "' was stopped, or the runtime shut down, while the snapshot waited for it to pause (its "
            "worker now handles what was queued); nothing was copied. Snapshot it once stop() confirmed, "
            "or before stopping it");
      actor_snapshot s = actors_.image(a);
      run_.release_snapshot_hold(a);
      return s;
    } catch (...) {
      let_go();
      throw;
    }
  }
}

void runtime_impl::snapshot_into(actor_index a, std::type_index type, void* out, std::size_t bytes,
                                 std::chrono::nanoseconds timeout) {
  actors_.check(a, "snapshot_state()", actor_table::want::actor);
  const actor_type_ops& k = actors_.kind(actors_.kind_of(a));
  if (k.type != type || k.state_size != bytes)
    throw error("snapshot_state<H>(" + std::to_string(a) + "): actor '" + actors_.name_of(a) +
                "' runs handler '" + k.name + "', not the requested type");
  const actor_snapshot s = snapshot(a, timeout, "snapshot_state()");
  if (bytes != 0) std::memcpy(out, s.state.data(), bytes);
}

std::uint64_t runtime_impl::snapshot_all(const std::filesystem::path& path,
                                         std::chrono::nanoseconds timeout) {
  refuse_from_worker("snapshot_all()"); // it pauses every worker, this one too
  std::vector<actor_snapshot> all;
  {
    std::lock_guard lock(setup_); // no spawn or forget between the pause and the copies
    // Held paused for the copies, also when the application paused them (until every worker confirmed,
    // handler calls may still write states); a resume() meanwhile does not end the hold.
    const bool pause = run_.current_phase() == phase::running;
    if (pause && !run_.hold_all_for_snapshot(timeout, "snapshot_all()")) {
      if (run_.shutdown_requested())
        throw error("snapshot_all(): shutdown() began while the workers were pausing; nothing was written");
      throw error("snapshot_all(): the workers did not all pause within " +
                  std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                  (timeout.count() == 0 ? " ms (a timeout of 0 gives them no time to confirm; give it some)"
                                        : " ms (a handler call is still running)") +
                  "; nothing was written");
    }
    try {
      all = actors_.images();
    } catch (const std::bad_alloc&) {
      if (pause) run_.release_all_for_snapshot();
      throw error("snapshot_all(): out of host memory copying " + std::to_string(actors_.fill().used) +
                  " actors' states; nothing was written to '" + path.string() + "'");
    } catch (...) {
      if (pause) run_.release_all_for_snapshot();
      throw;
    }
    if (pause) run_.release_all_for_snapshot();
  }
  write_snapshot_file(path, all,
                      std::string(to_string(kind())).append(" (").append(description_).append(")"));
  return all.size();
}

std::uint64_t runtime_impl::restore(const std::filesystem::path& path) {
  const auto before_start = [this] {
    if (run_.current_phase() != phase::created)
      throw error("restore(): only before start() (restore into a new runtime, then start it)");
  };
  before_start();
  const std::vector<actor_snapshot> saved = read_snapshot_file(path); // without the lock: it may be large
  // Everything is checked before the first spawn, under the lock start() takes, so that no start()
  // in another thread comes between the check and the spawns (they went into the running runtime).
  std::lock_guard lock(setup_);
  before_start();
  for (const actor_snapshot& a : saved) {
    const actor_type_ops* ops = actors_.kind_named(a.handler);
    if (ops == nullptr)
      throw error("restore(): the snapshot has actors of handler type '" + printable(a.handler) +
                  "', which this runtime does not know: spawn one or call prepare<H>() before restore()");
    if (ops->state_size != a.state.size())
      throw error("restore(): handler type '" + printable(a.handler) + "' has a " +
                  std::to_string(ops->state_size) + "-byte state here but " + std::to_string(a.state.size()) +
                  " bytes in the snapshot: the handler's state type changed since it was taken");
    if (actors_.name_taken(a.name))
      throw error("restore(): an actor named '" + printable(a.name) + "' exists already in this runtime");
  }
  // One transaction: a failure on any actor unwinds every step of those before it, so the runtime is
  // as it was (tables, tenant charges, the ids the next spawn hands out), and nothing is audited.
  return with_room([&]() -> std::uint64_t {
    undo_log undo;
    std::vector<audit_link::restored_actor> restored;
    restored.reserve(saved.size());
    for (const actor_snapshot& a : saved) {
      actor_options o;
      o.tenant = a.tenant;
      o.mailbox = a.mailbox;
      o.priority_lanes = a.priority_lanes;
      o.dedicated_worker = a.dedicated_worker;
      const std::string who = "spawn('" + printable(a.name) + "')";
      try {
        check_user_name(a.name, who, "actor name");
        const spawned one =
            spawn_steps(*actors_.kind_named(a.handler), who, {a.name}, o, a.state.data(), 0, nullptr, undo);
        restored.push_back({one.ids.front(), a.tenant, one.kind});
      } catch (const out_of_room& e) { // with_room may make room and try the whole restore again
        throw out_of_room("restore(): actor '" + printable(a.name) + "': " + e.what() +
                          " (nothing was restored)");
      } catch (const error& e) {
        throw error("restore(): actor '" + printable(a.name) + "': " + e.what() + " (nothing was restored)");
      }
    }
    audit_.record_restored(restored); // may throw bad_alloc, before it records anything: still undone
    undo.commit();
    return restored.size();
  });
}

std::string runtime_impl::stats_shm_name() const {
  return publisher_ ? publisher_->name() : std::string();
}

// A CPU launch lays its threads out its own way (each dedicated thread serves several actors, one pool
// thread serves every handler type's run queue), not one worker entry per group member as a CUDA launch
// does: what an entry serves comes from the backend.
void runtime_impl::describe_cpu_worker(std::uint32_t entry, worker_state& w) const {
  const std::vector<actor_index> served = backend_->actors_of_worker(entry);
  if (served.empty()) {
    w.serves = "every handler type's run queue (scheduled)";
    w.scheduled = true;
    return;
  }
  w.serves = actors_.describe_actors(served) + " (dedicated)";
  w.scheduled = false;
}

state_dump runtime_impl::dump_state() const {
  state_dump d;
  d.taken = std::chrono::system_clock::now();
  d.backend = std::string(to_string(kind())).append(" (").append(description_).append(")");
  constexpr const char* phases[] = {"created", "running", "draining", "stopped"};
  const phase now_phase = run_.current_phase();
  d.phase = phases[static_cast<int>(now_phase)];
  d.paused = workers_.pause_requested();
  if (faults_.faulted()) d.fault = faults_.text();
  d.ages_known =
      options_.handler_timeout.count() > 0 && (now_phase == phase::running || now_phase == phase::draining);
  const auto observed = run_.worker_observations();
  const auto now = std::chrono::steady_clock::now();
  for (const worker_registry::worker_sample& s : workers_.sample()) {
    worker_state w;
    w.worker = s.entry;
    if (kind() == rk::backend::cpu) {
      describe_cpu_worker(s.entry, w);
    } else {
      worker_registry::worker_role role = workers_.role_of(s.entry);
      w.serves = std::move(role.serves);
      w.scheduled = role.scheduled;
    }
    w.heartbeat = s.heartbeat;
    if (s.busy_actor != 0) {
      w.actor = s.busy_actor - 1;
      w.actor_name = actors_.name_for_report(*w.actor);
      w.message_type = s.busy_type;
    }
    if (const auto it = observed.find(s.entry);
        it != observed.end() && it->second.busy_actor == s.busy_actor) {
      // A heartbeat that moved since the watchdog's last look has stood still for less than its period: 0.
      w.heartbeat_age =
          it->second.heartbeat == s.heartbeat ? now - it->second.beat_since : std::chrono::nanoseconds(0);
      if (s.busy_actor != 0) w.busy_for = now - it->second.busy_since;
    }
    d.workers.push_back(std::move(w));
  }
  try {
    for (auto& [m, recorded] : actors_.nonempty_mailboxes()) {
      m.lifecycle = to_string(faults_.as_reported(recorded));
      d.mailboxes.push_back(std::move(m));
    }
    d.actors = actors_.actor_count();
  } catch (const error& e) { // after a device fault the counters and cursors may be unreadable
    d.fault =
        d.fault.value_or("").append(d.fault ? "; " : "").append("mailboxes unreadable: ").append(e.what());
  }
  return d;
}

void runtime_impl::deliver_dump() const noexcept {
  try {
    const state_dump d = dump_state();
    if (options_.on_state_dump) {
      const callback_scope scope(&phase_); // see service_thread.hpp
      options_.on_state_dump(d);
    } else {
      const std::string text = d.text();
      std::fwrite(text.data(), 1, text.size(), stderr);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringkernel: state dump failed: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "ringkernel: state dump failed\n");
  }
}

table_usage runtime_impl::tables() {
  std::lock_guard lock(setup_);
  collect();
  table_usage t;
  t.actors = actors_.fill();
  t.groups = routing_.group_fill();
  t.group_members = routing_.member_fill();
  t.tenants = {tenants_.in_use(), std::max(1u, options_.max_tenants)};
  t.engagements = {tenants_.engagements_in_use(), options_.max_engagements};
  t.regions = {regions_.in_use(), options_.max_regions};
  const arena_usage a = memory_.arena();
  t.running_arena = {a.used, a.bytes};
  t.pending_releases = grace_.pending() + actors_.retiring();
  return t;
}

} // namespace rk::detail
