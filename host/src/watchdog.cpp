// The watchdog (see watchdog.hpp).

#include "watchdog.hpp"

#include <ringkernel/host/detail/thread_start.hpp>
#include <ringkernel/host/error.hpp>

#include <algorithm>
#include <new>

namespace rk::detail {

void watchdog::start() {
  std::lock_guard lifecycle(lifecycle_mutex_);
  if (timeout_.count() == 0 || closed_ || thread_.joinable()) return;
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    throw thread_start_error("start(): the watchdog thread", e);
  }
}

void watchdog::stop() noexcept {
  std::lock_guard lifecycle(lifecycle_mutex_);
  closed_ = true;
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  thread_id_.store({}); // a later thread may get the same id
}

void watchdog::run() {
  // A quarter of the timeout between looks (1 ms .. 250 ms): a stuck call is reported within 1.25 x the
  // timeout (plus the 250 ms cap for long timeouts).
  const auto period = std::clamp<std::chrono::milliseconds>(timeout_ / 4, std::chrono::milliseconds(1),
                                                            std::chrono::milliseconds(250));
  thread_id_.store(std::this_thread::get_id()); // before anything it runs may ask on_its_thread
  std::unique_lock lock(mutex_);
  while (!stop_requested_) {
    // A timed wait on the stop request: the period is the watchdog's sampling rate, not synchronisation.
    wake_.wait_for(lock, period, [this] { return stop_requested_; });
    if (stop_requested_) break;
    lock.unlock();
    try {
      check(std::chrono::steady_clock::now());
    } catch (const std::bad_alloc&) {
      // Out of memory for this look's bookkeeping (the application's doing, perhaps briefly): skip it.
      // The next look samples the same workers, so a stuck call is reported one period later.
    }
    lock.lock();
  }
}

void watchdog::check(std::chrono::steady_clock::time_point now) {
  std::map<std::uint32_t, watched> next;
  bool reported = false;
  for (const worker_registry::worker_sample& s : workers_.sample()) {
    watched w{s.busy_actor, s.heartbeat, now, now, false};
    if (const auto it = watched_.find(s.entry);
        it != watched_.end() && it->second.busy_actor == s.busy_actor) {
      if (it->second.heartbeat == s.heartbeat) w = it->second;
      w.busy_since = it->second.busy_since;
    }
    if (w.busy_actor == 0 || w.heartbeat != s.heartbeat || w.since == now) {
      std::lock_guard lock(mutex_);
      stuck_.erase(s.entry); // idle, or it moved on: any earlier call returned
    }
    // Compared in milliseconds: timeout_ in nanoseconds would overflow near milliseconds::max() ("wait as
    // long as it takes") and report every call at once.
    const auto running = now - w.since;
    if (w.busy_actor != 0 && !w.reported &&
        std::chrono::duration_cast<std::chrono::milliseconds>(running) > timeout_) {
      w.reported = true;
      reported = true;
      const actor_index a = w.busy_actor - 1;
      actor_fault f;
      f.actor = a;
      f.name = actors_.name_for_report(a);
      f.handler = actors_.handler_for_report(a);
      f.message_type = s.busy_type;
      f.kind = fault_kind::watchdog;
      f.running_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(running).count());
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(running).count();
      f.reason = "one handler call has run for " + std::to_string(ms) +
                 " ms (runtime_options::handler_timeout = " + std::to_string(timeout_.count()) + " ms)";
      stuck_call call{a,
                      "actor '" + f.name + "' (handler '" + f.handler + "', message type " +
                          std::to_string(s.busy_type) + ") " + f.reason,
                      {},
                      s.busy_actor,
                      s.heartbeat};
      for (actor_index other : backend_.actors_of_worker(s.entry))
        if (other != a) {
          call.behind.push_back(other);
          f.stuck_behind.push_back(actors_.name_for_report(other));
        }
      if (!f.stuck_behind.empty()) {
        std::string names;
        for (const std::string& n : f.stuck_behind) names += (names.empty() ? "" : ", ") + n;
        call.description += "; waiting on the same worker: " + names;
      }
      std::uint64_t tenant = 0;
      try {
        tenant = actors_.tenant_of(a);
      } catch (const error&) { // forgotten meanwhile: report it untagged
      }
      // detail: the message type; value: how long the call had run, in milliseconds.
      audit_.record(audit_event::actor_fault, audit_level::error, a, tenant, s.busy_type,
                    static_cast<std::uint64_t>(ms));
      {
        // Marked and listed at once: a call that ended because the watchdog reports this one finds it in
        // faults(), and whoever sees it in faults() sees the mark (lock order: this, then the fault list).
        std::lock_guard lock(mutex_);
        stuck_[s.entry] = std::move(call);
        faults_.add_actor_fault(std::move(f));
      }
    }
    next[s.entry] = w;
  }
  {
    std::lock_guard lock(mutex_);
    watched_ = std::move(next);
    std::erase_if(stuck_, [&](const auto& e) { return !watched_.contains(e.first); }); // exited workers
  }
  if (reported && on_report_) on_report_(); // the coordinator's dump catches what it throws
}

std::map<std::uint32_t, watchdog::observation> watchdog::observations() const {
  std::lock_guard lock(mutex_);
  std::map<std::uint32_t, observation> out;
  for (const auto& [entry, w] : watched_) out[entry] = {w.busy_actor, w.heartbeat, w.busy_since, w.since};
  return out;
}

bool watchdog::still_running(std::uint32_t entry, const stuck_call& call) const {
  return workers_.in_call(entry, call.busy_actor, call.heartbeat);
}

std::vector<std::uint32_t> watchdog::pool_of(actor_index a) const {
  try {
    if (actors_.dedicated(a)) return {};
    return backend_.scheduled_workers_of(actors_.kind_of(a));
  } catch (const error&) { // not an actor (any more): nothing serves it
    return {};
  }
}

const watchdog::stuck_call* watchdog::stuck_call_of(actor_index a,
                                                    const std::vector<std::uint32_t>& pool) const {
  for (const auto& [entry, call] : stuck_)
    if ((call.actor == a || std::find(call.behind.begin(), call.behind.end(), a) != call.behind.end()) &&
        still_running(entry, call))
      return &call;
  // A scheduled actor is served by whichever worker of its pool is free: held up only when none is.
  const stuck_call* blocking = nullptr;
  for (std::uint32_t entry : pool) {
    const auto it = stuck_.find(entry);
    if (it == stuck_.end() || !still_running(entry, it->second)) return nullptr;
    blocking = &it->second;
  }
  return blocking;
}

void watchdog::throw_if_stuck(actor_index a, const std::string& who) const {
  const std::vector<std::uint32_t> pool = pool_of(a);
  std::lock_guard lock(mutex_);
  const stuck_call* call = stuck_call_of(a, pool);
  if (call == nullptr) return;
  if (call->actor == a) throw error(who + ": the watchdog reports " + call->description);
  if (std::find(call->behind.begin(), call->behind.end(), a) != call->behind.end())
    throw error(who + ": actor " + std::to_string(a) +
                " shares a worker with a stuck handler call: " + call->description);
  throw error(who + ": actor " + std::to_string(a) + " is scheduled, and every worker of its handler type (" +
              std::to_string(pool.size()) + ") is stuck in a handler call, one of them: " +
              call->description + " (runtime_options::scheduled_workers sets how many there are)");
}

bool watchdog::reports_stuck(actor_index a) const {
  {
    std::lock_guard lock(mutex_);
    if (stuck_.empty()) return false; // the common case, without the lookups below
  }
  const std::vector<std::uint32_t> pool = pool_of(a);
  std::lock_guard lock(mutex_);
  return stuck_call_of(a, pool) != nullptr;
}

bool watchdog::reports_any_stuck() const {
  std::lock_guard lock(mutex_);
  for (const auto& [entry, call] : stuck_)
    if (still_running(entry, call)) return true;
  return false;
}

void watchdog::throw_if_any_stuck(const std::string& who) const {
  std::lock_guard lock(mutex_);
  for (const auto& [entry, call] : stuck_)
    if (still_running(entry, call))
      throw error(who + ": a worker cannot confirm while the watchdog reports " + call.description);
}

std::vector<std::string> watchdog::stuck_names() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> names;
  for (const auto& [entry, call] : stuck_)
    if (still_running(entry, call)) names.push_back(actors_.name_for_report(call.actor));
  return names;
}

} // namespace rk::detail
