#pragma once
// The watchdog: notices a handler call that does not return (runtime_options::handler_timeout).
//
// Owns one host thread, started by run control once workers run and stopped before they are joined. About
// four times per timeout it samples every running worker's status (worker registry): a worker that is
// busy with the same actor and whose heartbeat has not moved for longer than the timeout is stuck in one
// handler call. It reports that once per call: an actor_fault (fault monitor), an audit record, and a
// mark that lifecycle calls on the actor, or on actors sharing its worker (CPU backend), turn into an
// rk::error naming it. The mark goes when the heartbeat moves again (the call returned). After a look that
// reported something it calls on_report (the coordinator's state dump); its observations (since when each
// worker's busy actor and heartbeat stood still) give state dumps their ages.
// Reads the worker status words only; never writes anything a worker reads.

#include "actor_table.hpp"
#include "audit_link.hpp"
#include "faults.hpp"
#include "workers.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace rk::detail {

class watchdog {
public:
  watchdog(std::chrono::milliseconds timeout, backend_impl& backend, worker_registry& workers,
           const actor_table& actors, fault_monitor& faults, audit_link& audit)
      : timeout_(timeout), backend_(backend), workers_(workers), actors_(actors), faults_(faults),
        audit_(audit) {}
  ~watchdog() { stop(); }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  //! Starts the thread (no-op when the timeout is 0, or once stop() was called: a runtime abandoned from
  //! one of its threads while start() still runs must not gain a watchdog afterwards). Throws rk::error
  //! when no thread can be started.
  void start();
  //! Stops and joins the thread; idempotent, never throws. Safe to call from another thread while start()
  //! runs (the two are serialised), but not from the watchdog's own thread (see on_its_thread).
  void stop() noexcept;
  //! Whether the caller is the watchdog's thread (e.g. in on_state_dump): stop() would join itself.
  bool on_its_thread() const noexcept { return std::this_thread::get_id() == thread_id_.load(); }
  //! Throws rk::error for `who` when actor `a` is stuck, or waits on a worker stuck in another actor.
  void throw_if_stuck(actor_index a, const std::string& who) const;
  //! Whether throw_if_stuck(a, ...) would throw (for waits that must end on a report).
  bool reports_stuck(actor_index a) const;
  //! Whether any handler call is reported stuck, and throwing: rk::error for `who` naming one.
  bool reports_any_stuck() const;
  void throw_if_any_stuck(const std::string& who) const;
  //! Names of actors stuck in a handler call now, for shutdown's report.
  std::vector<std::string> stuck_names() const;
  //! Called on the watchdog thread after a look that reported a new stuck call (the state dump). Set
  //! before start().
  void on_report(std::function<void()> call) { on_report_ = std::move(call); }

  //! What the last look saw of one worker: since when its busy actor, and its heartbeat, stood still.
  struct observation {
    std::uint32_t busy_actor = 0;
    std::uint64_t heartbeat = 0;
    std::chrono::steady_clock::time_point busy_since{};
    std::chrono::steady_clock::time_point beat_since{};
  };
  //! By worker entry; empty without a watchdog.
  std::map<std::uint32_t, observation> observations() const;

private:
  struct watched {
    std::uint32_t busy_actor = 0;
    std::uint64_t heartbeat = 0;
    std::chrono::steady_clock::time_point since{};      //!< busy actor and heartbeat unchanged since
    std::chrono::steady_clock::time_point busy_since{}; //!< busy actor unchanged since
    bool reported = false;
  };
  struct stuck_call {
    actor_index actor = host_actor;
    std::string description; //!< "actor 'x' (handler 'h') has run one call of message type T for N ms"
    std::vector<actor_index> behind;
    std::uint32_t busy_actor = 0; //!< the worker's status words when it was reported: the call is over
    std::uint64_t heartbeat = 0;  //!< once they moved, even before the next look clears the mark
  };
  //! The stuck call that holds `a` up, or null: its own; one on its worker (CPU backend: a dedicated
  //! worker serving several actors); or, for a scheduled actor (`pool`: the workers of its handler type),
  //! one of the calls every worker of its pool is stuck in. Needs mutex_.
  const stuck_call* stuck_call_of(actor_index a, const std::vector<std::uint32_t>& pool) const;
  //! The workers that take turns serving `a`: empty for a dedicated actor, or one that is gone.
  std::vector<std::uint32_t> pool_of(actor_index a) const;
  //! Whether the call reported for worker `entry` still runs (its status words have not moved).
  bool still_running(std::uint32_t entry, const stuck_call& call) const;
  void run();
  void check(std::chrono::steady_clock::time_point now);

  std::chrono::milliseconds timeout_;
  backend_impl& backend_;
  worker_registry& workers_;
  const actor_table& actors_;
  fault_monitor& faults_;
  audit_link& audit_;
  std::mutex lifecycle_mutex_; //!< serialises start() and stop() around thread_
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{}; //!< set by the thread itself, for on_its_thread
  bool closed_ = false;                      //!< stop() was called: start() starts nothing (lifecycle_mutex_)
  std::function<void()> on_report_;
  mutable std::mutex mutex_; //!< guards stop_requested_, stuck_ and writes of watched_
  std::condition_variable wake_;
  bool stop_requested_ = false;
  std::map<std::uint32_t, watched> watched_;  //!< by worker entry; written by the watchdog thread
  std::map<std::uint32_t, stuck_call> stuck_; //!< by worker entry
};

} // namespace rk::detail
