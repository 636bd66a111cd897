#pragma once
// The CPU pool's run-next slots seen together (detail/schedule.cuh, "Run-next"): every pool thread's slot,
// where an idle thread finds an actor that has waited there since its last look while the slot's owner
// stays busy (take_stranded), and how many threads the pool has.
//
// Slots are added as pool threads start and live as long as the board: other threads look at them.

#include <ringkernel/device/detail/schedule.cuh>

#include <atomic>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace rk::detail {

class run_next_board {
public:
  //! A new pool thread's slot (of runtime `sys`).
  run_next_slot& add(const system_view* sys) {
    std::lock_guard lock(mutex_);
    run_next_slot& slot = *slots_.emplace_back(std::make_unique<run_next_slot>());
    slot.sys = sys;
    threads_.store(static_cast<std::uint32_t>(slots_.size()), std::memory_order_relaxed);
    return slot;
  }

  //! Pool threads so far (read without the lock).
  std::uint32_t threads() const noexcept { return threads_.load(std::memory_order_relaxed); }

  bool any_held() const {
    std::lock_guard lock(mutex_);
    for (const auto& slot : slots_)
      if (slot->held.load(std::memory_order_seq_cst) != 0) return true;
    return false;
  }

  //! Looks at the slots but `own`: takes each actor that waited in one since this thread's last look
  //! (`looked_at`: each slot's fill count then) and gives its run_next_word to `took`, which owns the
  //! actor from then on (as if it had popped it from the run queue) and returns true to end the look.
  //! Returns whether `took` ended it. `in_use`: some slot is held or was filled since.
  template <class Took>
  bool take_stranded(const run_next_slot& own, std::vector<std::uint64_t>& looked_at, bool& in_use,
                     Took&& took) {
    in_use = false;
    std::lock_guard lock(mutex_);
    try {
      looked_at.resize(slots_.size(), 0);
    } catch (const std::bad_alloc&) {
      return false; // out of memory: no look this time (the look is best effort; the runtime goes on)
    }
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      run_next_slot& slot = *slots_[i];
      if (&slot == &own) continue;
      std::uint64_t word = slot.held.load(std::memory_order_acquire);
      const std::uint64_t fills = slot.fills.load(std::memory_order_relaxed);
      const bool same_wait = fills == looked_at[i];
      looked_at[i] = fills;
      if (word == 0) {
        in_use = in_use || !same_wait;
        continue;
      }
      if (!same_wait || !slot.held.compare_exchange_strong(word, 0)) {
        in_use = true;
        continue;
      }
      if (took(word)) return true;
    }
    return false;
  }

private:
  mutable std::mutex mutex_; //!< guards the list (not the slots: their words are atomic)
  std::vector<std::unique_ptr<run_next_slot>> slots_;
  std::atomic<std::uint32_t> threads_{0}; //!< slots_.size()
};

} // namespace rk::detail
