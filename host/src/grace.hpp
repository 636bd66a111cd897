#pragma once
// Grace periods: when table entries or memory may be reused.
//
// A facility that unpublishes something workers may still hold (a routing-table slot, a mailbox, a region,
// a group's member list, a tenant slot) first makes it unreachable in the device tables, then defers its
// release here. A release runs once every worker that may still run has passed a quiescent point (the
// top of its loop, between messages) after the deferral: from then on no sender or handler can be inside
// a decision or a handler call that found the old entry. Before start() and after the workers are joined,
// releases run at once.
//
// Owns only the queue of pending releases. Called from setup paths, which the coordinator serialises.

#include "workers.hpp"

#include <deque>
#include <functional>

namespace rk::detail {

class grace_periods {
public:
  explicit grace_periods(worker_registry& workers) : workers_(workers) {}
  ~grace_periods() { run_all(); }
  grace_periods(const grace_periods&) = delete;
  grace_periods& operator=(const grace_periods&) = delete;

  //! Workers run from now on (start()): releases wait for grace periods.
  void workers_started() noexcept { running_ = true; }
  //! Workers were joined: every pending release runs now, and later ones at once.
  void workers_gone() noexcept {
    running_ = false;
    run_all();
  }
  bool workers_running() const noexcept { return running_; }

  //! Runs `release` (which must not throw) after a grace period.
  void defer(std::function<void()> release);
  //! Runs the releases whose grace period is over; gives back exited launches. Returns whether any ran.
  bool collect();
  std::size_t pending() const noexcept { return pending_.size(); }

private:
  void run_all() noexcept;

  struct pending_release {
    std::uint32_t epoch;
    std::function<void()> release;
  };
  worker_registry& workers_;
  bool running_ = false;
  std::deque<pending_release> pending_; //!< in epoch order
};

} // namespace rk::detail
