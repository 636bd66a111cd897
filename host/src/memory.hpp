#pragma once
// Memory ownership for the host controller. Every device and mapped allocation of a runtime is held by
// exactly one owner: a device_block or mapped_block, move-only handles that give their memory back when
// destroyed, so a constructor or setup call that throws halfway frees exactly what it took.
//
// memory_pool (one per runtime) hands them out:
//  - before start(): each block is its own backend allocation;
//  - from start() on: device blocks are slices of the running arena (runtime_options::running_arena_bytes),
//    reserved before the first launch, because on CUDA a device allocation or free issued while
//    persistent kernels run serialises with them. A slice given back returns to the arena at once; a
//    block allocated before start() and given back while workers run is freed after they are joined.
//  - leak(): when workers could not be stopped, nothing is freed any more (they may still use it).
//
// Owners must only give memory back once no worker can touch it (see grace.hpp). Called by the setup
// paths (which the coordinator serialises) and by destructors; internally locked.

#include <ringkernel/runtime/detail/backend.hpp>

#include "allocators.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

namespace rk::detail {

class memory_pool;

namespace testing {
//! Makes the `n`-th device or mapped allocation from now on (1: the next) throw rk::error, in any
//! runtime of the process; 0 turns it off. For tests of failure paths.
void fail_allocation_after(std::uint64_t n) noexcept;
} // namespace testing

class device_block {
public:
  device_block() = default;
  device_block(device_block&& other) noexcept { *this = std::move(other); }
  device_block& operator=(device_block&& other) noexcept;
  ~device_block() { reset(); }

  void* get() const noexcept { return pointer_; }
  template <class T>
  T* as() const noexcept {
    return static_cast<T*>(pointer_);
  }
  std::size_t size() const noexcept { return bytes_; }
  explicit operator bool() const noexcept { return pointer_ != nullptr; }
  void reset() noexcept;

private:
  friend class memory_pool;
  static constexpr std::uint64_t not_in_arena = ~std::uint64_t{0};
  memory_pool* pool_ = nullptr;
  void* pointer_ = nullptr;
  std::size_t bytes_ = 0;
  std::uint64_t arena_offset_ = not_in_arena;
};

class mapped_block {
public:
  mapped_block() = default;
  mapped_block(mapped_block&& other) noexcept { *this = std::move(other); }
  mapped_block& operator=(mapped_block&& other) noexcept;
  ~mapped_block() { reset(); }

  void* host() const noexcept { return memory_.host; }
  void* device() const noexcept { return memory_.device; }
  void reset() noexcept;

private:
  friend class memory_pool;
  memory_pool* pool_ = nullptr;
  mapped_allocation memory_{};
};

struct arena_usage {
  std::size_t bytes = 0; //!< runtime_options::running_arena_bytes once reserved, else 0
  std::size_t used = 0;
  std::size_t largest_piece = 0; //!< the largest block one allocation can take now
};

//! What a block of `bytes` takes of the running arena: slices start and end at 256-byte boundaries.
inline constexpr std::uint64_t arena_alignment = 256;
inline constexpr std::uint64_t arena_footprint(std::uint64_t bytes) noexcept {
  return bytes == 0 ? arena_alignment : (bytes + arena_alignment - 1) / arena_alignment * arena_alignment;
}

class memory_pool {
public:
  explicit memory_pool(backend_impl& backend) : backend_(backend) {}
  ~memory_pool();
  memory_pool(const memory_pool&) = delete;
  memory_pool& operator=(const memory_pool&) = delete;

  //! Zero-filled device memory (host memory on the CPU backend). Throws rk::error naming `what`, the
  //! size, and (from start() on) what is left of the running arena; out_of_room when the runtime's device
  //! blocks would add up to more than the backend's memory (backend_impl::memory_bytes: on the CPU backend
  //! the reservation would succeed, and the pages would run out later, as mailboxes fill).
  //! Zero-filled device memory. `populate` false: little of it is written soon (mailbox slots), see
  //! backend_impl::allocate_device.
  device_block allocate(std::size_t bytes, std::string_view what, bool populate = true);
  //! Zero-filled pinned host memory mapped into the device's address space.
  mapped_block allocate_mapped(std::size_t bytes, std::string_view what);

  //! start(), before the first launch: reserves the running arena; later device blocks are its slices.
  void reserve_arena(std::size_t bytes);
  //! Workers were joined: frees what waited for that, and frees directly from now on.
  void workers_stopped() noexcept;
  //! Workers could not be stopped: never free anything again (they may still read it).
  void leak() noexcept;
  arena_usage arena() const;

private:
  friend class device_block;
  friend class mapped_block;
  void release(device_block& block) noexcept;
  void release(mapped_block& block) noexcept;
  //! The backend's memory this runtime does not hold yet (needs mutex_).
  std::size_t room_locked() const noexcept {
    const std::size_t limit = backend_.memory_bytes();
    return limit - std::min(limit, held_bytes_);
  }
  //! The largest block one allocation can take from the arena now (needs mutex_).
  std::uint64_t largest_piece_locked() const noexcept;

  backend_impl& backend_;
  mutable std::mutex mutex_;
  bool launched_ = false; //!< from reserve_arena() until workers_stopped(): device blocks are arena slices
  bool leaking_ = false;
  device_block arena_;
  range_allocator arena_ranges_;
  std::size_t held_bytes_ = 0;        //!< device blocks of their own (the arena included, not its slices)
  std::vector<void*> deferred_frees_; //!< pre-start blocks given back while workers run
};

//! A ring that device producers fill and one host thread drains (the audit and trace rings): slots and
//! sequence words in mapped memory, the producers' claim counter and a count of records the full ring
//! refused in device memory, so that no atomic read-modify-write crosses PCIe.
struct device_to_host_ring {
  mapped_block slots;
  device_block counters;            //!< the claim counter, then the refused count
  ring_view device_view{};          //!< for producers (tail in device memory)
  ring_view host_view{};            //!< for the consumer, which never touches the tail
  std::uint64_t* refused = nullptr; //!< device memory; producers that found the ring full add to it
};
//! Allocates an empty one of geometry `g` (valid); `what` names it in allocation errors ("the audit ring").
device_to_host_ring allocate_device_to_host_ring(memory_pool& memory, ring_geometry g,
                                                 const std::string& what);

} // namespace rk::detail
