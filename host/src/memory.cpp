// Memory ownership (see memory.hpp).

#include "memory.hpp"

#include "support.hpp"

#include <ringkernel/host/error.hpp>

#include <algorithm>
#include <atomic>
#include <new>
#include <string>

namespace rk::detail {

namespace {
//! `allocate()`'s result; a refusal of the backend's (rk::error) also names the structure, and so the option,
//! `what` is for.
template <class Allocate>
auto naming(std::string_view what, Allocate&& allocate) {
  try {
    return allocate();
  } catch (const out_of_room&) {
    throw;
  } catch (const error& e) {
    throw error(std::string(e.what()) + ", for " + std::string(what));
  }
}
} // namespace

namespace {
std::atomic<std::uint64_t> allocations_until_failure{0};

void maybe_fail(std::string_view what, std::size_t bytes) {
  std::uint64_t n = allocations_until_failure.load(std::memory_order_relaxed);
  while (n != 0 && !allocations_until_failure.compare_exchange_weak(n, n - 1)) {
  }
  if (n == 1)
    throw error("allocating " + std::to_string(bytes) + " bytes for " + std::string(what) +
                " failed (injected by rk::detail::testing::fail_allocation_after)");
}
} // namespace

void testing::fail_allocation_after(std::uint64_t n) noexcept {
  allocations_until_failure.store(n, std::memory_order_relaxed);
}

// --- handles ----------------------------------------------------------------------------------------------

device_block& device_block::operator=(device_block&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = std::exchange(other.pool_, nullptr);
    pointer_ = std::exchange(other.pointer_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    arena_offset_ = std::exchange(other.arena_offset_, not_in_arena);
  }
  return *this;
}

void device_block::reset() noexcept {
  if (pool_ != nullptr && pointer_ != nullptr) pool_->release(*this);
  pool_ = nullptr;
  pointer_ = nullptr;
  bytes_ = 0;
  arena_offset_ = not_in_arena;
}

mapped_block& mapped_block::operator=(mapped_block&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = std::exchange(other.pool_, nullptr);
    memory_ = std::exchange(other.memory_, mapped_allocation{});
  }
  return *this;
}

void mapped_block::reset() noexcept {
  if (pool_ != nullptr && memory_.host != nullptr) pool_->release(*this);
  pool_ = nullptr;
  memory_ = {};
}

// --- the pool ---------------------------------------------------------------------------------------------

memory_pool::~memory_pool() {
  arena_.reset();
  if (!leaking_)
    for (void* p : deferred_frees_) backend_.free_device(p);
}

device_block memory_pool::allocate(std::size_t bytes, std::string_view what, bool populate) {
  std::lock_guard lock(mutex_);
  maybe_fail(what, bytes);
  device_block block;
  if (launched_) {
    if (!arena_)
      throw error("cannot allocate " + std::string(what) +
                  " after start(): runtime_options::running_arena_bytes is 0");
    // Whole 256-byte pieces: a tail shorter than one could serve no later slice (regions of one byte each
    // held 256 bytes while the arena counted one).
    const std::optional<std::uint64_t> offset =
        arena_ranges_.allocate(arena_footprint(bytes), arena_alignment);
    if (!offset)
      throw out_of_room(
          "out of running memory: " + std::to_string(bytes) + " bytes asked for " + std::string(what) + ", " +
          std::to_string(arena_ranges_.size() - arena_ranges_.used()) +
          " free (the largest piece usable, at a " + std::to_string(arena_alignment) +
          "-byte boundary: " + std::to_string(largest_piece_locked()) +
          " bytes) of runtime_options::running_arena_bytes (" + std::to_string(arena_ranges_.size()) +
          "); raise it to spawn more actors or create more regions after start()");
    block.pointer_ = arena_.as<std::byte>() + *offset;
    block.arena_offset_ = *offset;
    // Slices are reused: zero them like fresh memory (on CUDA through the copy engine, beside the kernels).
    try {
      backend_.zero_device(block.pointer_, bytes);
    } catch (...) {
      arena_ranges_.free(*offset, arena_footprint(bytes));
      throw;
    }
  } else {
    if (bytes > room_locked())
      throw out_of_room("cannot allocate " + std::string(what) + ": " + std::to_string(bytes) +
                        " bytes more, beside the " + std::to_string(held_bytes_) +
                        " bytes this runtime holds, are more than the " +
                        std::to_string(backend_.memory_bytes()) +
                        " bytes this backend has; use smaller mailboxes (actor_options::mailbox) or fewer "
                        "actors");
    block.pointer_ = naming(what, [&] { return backend_.allocate_device(bytes, populate); });
    held_bytes_ += bytes;
  }
  block.pool_ = this;
  block.bytes_ = bytes;
  return block;
}

mapped_block memory_pool::allocate_mapped(std::size_t bytes, std::string_view what) {
  std::lock_guard lock(mutex_);
  maybe_fail(what, bytes);
  mapped_block block;
  block.memory_ = naming(what, [&] { return backend_.allocate_mapped(bytes); });
  block.pool_ = this;
  return block;
}

void memory_pool::reserve_arena(std::size_t bytes) {
  {
    std::lock_guard lock(mutex_);
    if (const std::size_t room = room_locked(); bytes > room)
      throw out_of_room("runtime_options::running_arena_bytes (" + std::to_string(bytes) +
                        ") is more than the " + std::to_string(room) +
                        " bytes this backend has left beside the " + std::to_string(held_bytes_) +
                        " this runtime's actors hold; lower it");
  }
  if (bytes != 0) {
    device_block arena = allocate(bytes, "the running arena (runtime_options::running_arena_bytes)");
    std::lock_guard lock(mutex_);
    arena_ = std::move(arena);
    arena_ranges_ = range_allocator(bytes);
  }
  std::lock_guard lock(mutex_);
  launched_ = true;
}

void memory_pool::workers_stopped() noexcept {
  std::lock_guard lock(mutex_);
  if (leaking_) return;
  launched_ = false;
  for (void* p : deferred_frees_) backend_.free_device(p);
  deferred_frees_.clear();
}

void memory_pool::leak() noexcept {
  std::lock_guard lock(mutex_);
  leaking_ = true;
}

arena_usage memory_pool::arena() const {
  std::lock_guard lock(mutex_);
  return {static_cast<std::size_t>(arena_ranges_.size()), static_cast<std::size_t>(arena_ranges_.used()),
          static_cast<std::size_t>(largest_piece_locked())};
}

// Slices are whole pieces at piece boundaries: a free range's part past its last whole piece (the tail of an
// arena whose size is no multiple of arena_alignment) can serve nothing, so it is not counted.
std::uint64_t memory_pool::largest_piece_locked() const noexcept {
  return arena_ranges_.largest_free(arena_alignment) / arena_alignment * arena_alignment;
}

void memory_pool::release(device_block& block) noexcept {
  std::lock_guard lock(mutex_);
  if (leaking_) return;
  if (block.arena_offset_ == device_block::not_in_arena) held_bytes_ -= block.bytes_;
  if (block.arena_offset_ != device_block::not_in_arena) {
    arena_ranges_.free(block.arena_offset_, arena_footprint(block.bytes_));
  } else if (launched_) {
    try {
      deferred_frees_.push_back(block.pointer_); // a free now would serialise with the running kernels
    } catch (const std::bad_alloc&) {
      // No room to remember it: the block is leaked (freeing it now could wait for kernels that never end).
    }
  } else {
    backend_.free_device(block.pointer_);
  }
}

void memory_pool::release(mapped_block& block) noexcept {
  std::lock_guard lock(mutex_);
  if (!leaking_) backend_.free_mapped(block.memory_);
}

device_to_host_ring allocate_device_to_host_ring(memory_pool& memory, ring_geometry g,
                                                 const std::string& what) {
  device_to_host_ring r;
  r.slots = memory.allocate_mapped(g.total_bytes(), what);
  init_ring_image(r.slots.host(), g);
  r.counters = memory.allocate(2 * ring_geometry::cursor_bytes, what + " counters");
  r.device_view = make_ring_view(r.slots.device(), g);
  r.device_view.tail = r.counters.as<std::uint64_t>();
  r.refused = reinterpret_cast<std::uint64_t*>(r.counters.as<std::byte>() + ring_geometry::cursor_bytes);
  r.host_view = make_ring_view(r.slots.host(), g);
  r.host_view.tail = nullptr;
  return r;
}

} // namespace rk::detail
