#pragma once
// Where a CPU pool thread takes its next actor: round-robin over the handler types it serves, taking from
// each as many actors as its run queue held when the thread came to it (at least one). So every actor ready
// then gets its turn within one round whatever its type: a busy actor of a type with few actors gets one
// turn per round, not one per actor of the other types (one each in turn made the last of 1,000 ready
// actors of another type wait 1,000 of its turns).

#include <ringkernel/device/detail/schedule.cuh>
#include <ringkernel/host/detail/actor_type.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rk::detail {

//! An actor a CPU thread serves: its handler type's operations, its index, its state (null until looked up).
struct served_actor {
  const actor_type_ops* ops;
  actor_index actor;
  void* state;
};

//! The handler types a pool thread serves, by type id (null: a type it does not serve).
using served_kinds = std::vector<const actor_type_ops*>;

inline bool serves(const served_kinds& by_kind, std::uint32_t kind) noexcept {
  return kind < by_kind.size() && by_kind[kind] != nullptr;
}

struct kind_rotation {
  //! The type it takes from; at first "the one before type 0" (the modular step from it is type 0).
  std::size_t kind = static_cast<std::size_t>(-1);
  std::uint32_t left = 0; //!< actors still to take from `kind` before moving on

  //! One ready actor of any type in `by_kind` (ops null: none): from the current type while it has actors
  //! left to take there, else from the next type round-robin that has one.
  served_actor take(const system_view& sys, const served_kinds& by_kind) noexcept {
    served_actor a{nullptr, 0, nullptr};
    if (left > 0 && serves(by_kind, static_cast<std::uint32_t>(kind)) &&
        take_ready(sys, static_cast<std::uint32_t>(kind), a.actor)) {
      a.ops = by_kind[kind];
      --left;
      return a;
    }
    for (std::size_t i = 1; i <= by_kind.size(); ++i) {
      const std::size_t k = (kind + i) % by_kind.size(); // wraps to type 0 from the first value
      if (by_kind[k] != nullptr && take_ready(sys, static_cast<std::uint32_t>(k), a.actor)) {
        a.ops = by_kind[k];
        kind = k;
        // Those that were behind it (with one type there is nothing to share: no read of the tail's line).
        left = by_kind.size() > 1 ? run_queue_depth(sys.sched.queues[k]) : 0;
        return a;
      }
    }
    return a;
  }

  //! The rest of the current type's share of the round goes to the next type.
  void end_share() noexcept { left = 0; }
};

//! How many actors wait in the run queues of the types `by_kind` serves (a snapshot).
inline std::uint64_t ready_actors(const system_view& sys, const served_kinds& by_kind) noexcept {
  std::uint64_t n = 0;
  for (std::size_t k = 0; k < by_kind.size(); ++k)
    if (by_kind[k] != nullptr) n += run_queue_depth(sys.sched.queues[k]);
  return n;
}

} // namespace rk::detail
