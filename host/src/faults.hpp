#pragma once
// Fault detection: turns a backend fault (a device trap, an illegal address, a CPU handler that threw)
// into one message naming the culprit, once, and keeps reporting it.
//
// Owns the fault text and the poll throttle. Reads the control block's trap record and the workers' busy
// words (worker registry), names actors through the actor table, and writes one audit record. Called from
// any thread, including host waits inside setup calls: it takes no lock of another facility while holding
// its own, and the ones it calls (actor table, registry) never call back into it.

#include "actor_table.hpp"
#include "audit_link.hpp"
#include "workers.hpp"

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace rk::detail {

//! Where a runtime is in its life. Written by run control (start, shutdown); read everywhere.
enum class phase : int { created, running, draining, stopped };

//! Per-actor faults reported so far (see fault_monitor::counts).
struct fault_counts {
  static constexpr std::size_t kinds = 3; //!< fault_kind values
  std::map<std::string, std::array<std::uint64_t, kinds>> by_handler;
  std::map<actor_index, std::uint64_t> by_actor;
};

class fault_monitor {
public:
  fault_monitor(backend_impl& backend, worker_registry& workers, actor_table& actors, audit_link& audit)
      : backend_(backend), workers_(workers), actors_(actors), audit_(audit) {}

  //! Polls the backend at most once per millisecond; true once the runtime has faulted.
  bool detected();
  bool faulted() const noexcept { return faulted_.load(std::memory_order_acquire); }
  std::string text() const;
  //! Throws rk::error with the fault's text if the runtime faulted.
  void throw_if_faulted();
  //! The lifecycle to report for an actor whose table says `recorded`: after a device fault every kernel
  //! stopped, so every actor (not an alias, which has no worker) is faulted whatever its table says.
  actor_lifecycle as_reported(actor_lifecycle recorded) const noexcept {
    return faulted() && recorded != actor_lifecycle::alias ? actor_lifecycle::faulted : recorded;
  }

  //! Per-actor faults: those the backend contained, and the watchdog's reports, oldest first (the newest
  //! max_actor_faults are kept).
  std::vector<actor_fault> actor_faults() const;
  void add_actor_fault(actor_fault f);
  //! How many per-actor faults were reported, by handler type and kind and by actor (never decreasing,
  //! unlike the bounded list).
  fault_counts counts() const;
  static constexpr std::size_t max_actor_faults = 4096;

private:
  void record(const backend_fault& f);
  void collect_contained() const; //!< with list_mutex_ held
  void keep(actor_fault f) const; //!< with list_mutex_ held: counts `f` and appends it to the list

  backend_impl& backend_;
  worker_registry& workers_;
  actor_table& actors_;
  audit_link& audit_;
  mutable std::mutex mutex_; //!< guards text_ and serialises backend polls
  std::atomic<bool> faulted_{false};
  std::optional<std::string> text_;
  std::atomic<std::int64_t> last_poll_{0};
  mutable std::mutex list_mutex_; //!< guards actor_faults_ and backend_.take_contained_faults()
  mutable std::vector<actor_fault> actor_faults_;
  mutable fault_counts counts_;
};

} // namespace rk::detail
