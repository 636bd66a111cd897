#pragma once
// The host end of a cluster rank's refusal records (device/.../detail/relay_refusals.cuh): the mapped
// records and counts the gateway writes, the admission that keeps the gateway from ever overwriting a
// record not taken yet, and take() for the rank's proxy.
//
// Admission: a relay that may end in a record (may_be_noticed) is admitted only while
//   written - taken + (admitted - relays_settled) < capacity,
// reading relays_settled before written (so a refusal published between the two reads is counted at most
// twice, never missed). Every term but `admitted` only ever lowers the sum, so the bound holds until the
// next admission, and the gateway's next record always lands on a slot already taken.
// Thread safety: admit_then() serialises admissions (one lock); take() and pending() may run on any
// thread, take() on one thread at a time.

#include "memory.hpp"

#include <ringkernel/device/detail/system.cuh>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace rk::detail {

class relay_refusals {
public:
  //! Records for `capacity` refusals (rounded up to a power of two, at least 64).
  relay_refusals(memory_pool& memory, std::uint32_t capacity);

  void describe(system_view& sys) const;

  //! Runs `enqueue` (which returns whether it admitted the relay) for a relay of `type_id`; for one that
  //! may end in a record, only when a record slot is sure to be free, else it answers false without
  //! calling it. Returns what `enqueue` returned (false also when there was no room here).
  template <class Enqueue>
  bool admit_then(std::uint32_t type_id, Enqueue&& enqueue) {
    if (!may_be_noticed(type_id)) return enqueue();
    std::lock_guard lock(admission_);
    if (!room()) return false;
    if (!enqueue()) return false;
    admitted_ += 1;
    return true;
  }

  //! The oldest record not taken yet; false when there is none.
  bool take(refusal_record& out);
  //! Records written and not taken.
  std::uint64_t pending() const noexcept;

private:
  bool room() const noexcept;

  mapped_block records_;
  mapped_block counts_; //!< [0] written, [1] relays settled (writer: gateway)
  std::uint32_t capacity_;
  std::mutex admission_;
  std::uint64_t admitted_ = 0; //!< relays that may end in a record (guarded by admission_)
  std::atomic<std::uint64_t> taken_{0};
  std::mutex taking_;
};

} // namespace rk::detail
