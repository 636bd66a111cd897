// A cluster rank's refusal records, host end (see relay_refusals.hpp).

#include "relay_refusals.hpp"

#include "support.hpp"

#include <bit>

namespace rk::detail {

relay_refusals::relay_refusals(memory_pool& memory, std::uint32_t capacity)
    : capacity_(std::bit_ceil(std::max<std::uint32_t>(capacity, 64))) {
  records_ = memory.allocate_mapped(sizeof(refusal_record) * capacity_, "the cluster's refusal records");
  counts_ = memory.allocate_mapped(2 * ring_geometry::cursor_bytes, "the cluster's refusal record counts");
}

void relay_refusals::describe(system_view& sys) const {
  refusal_channel& c = sys.refusals;
  c.records = static_cast<refusal_record*>(records_.device());
  c.capacity = capacity_;
  auto* counts = static_cast<std::byte*>(counts_.device());
  c.written = reinterpret_cast<std::uint64_t*>(counts);
  c.relays_settled = reinterpret_cast<std::uint64_t*>(counts + ring_geometry::cursor_bytes);
}

bool relay_refusals::room() const noexcept {
  const auto* counts = static_cast<const std::byte*>(counts_.host());
  // relays_settled first, then written: see the header.
  const std::uint64_t settled =
      load_acquire(*reinterpret_cast<const std::uint64_t*>(counts + ring_geometry::cursor_bytes));
  const std::uint64_t written = load_acquire(*reinterpret_cast<const std::uint64_t*>(counts));
  const std::uint64_t occupied = written - taken_.load(std::memory_order_acquire) + (admitted_ - settled);
  return occupied < capacity_;
}

bool relay_refusals::take(refusal_record& out) {
  std::lock_guard lock(taking_);
  const std::uint64_t taken = taken_.load(std::memory_order_relaxed);
  const std::uint64_t written = load_acquire(*static_cast<const std::uint64_t*>(counts_.host()));
  if (written == taken) return false;
  out = static_cast<const refusal_record*>(records_.host())[taken & (capacity_ - 1)];
  // Release: the copy is complete before an admission can count the slot as free.
  taken_.store(taken + 1, std::memory_order_release);
  return true;
}

std::uint64_t relay_refusals::pending() const noexcept {
  return load_acquire(*static_cast<const std::uint64_t*>(counts_.host())) - taken_.load();
}

} // namespace rk::detail
