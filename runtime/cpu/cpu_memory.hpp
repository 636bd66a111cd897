#pragma once
// "Device" memory of the CPU backend: host allocations that stand in for device and mapped memory.
//
// Contract: allocate() returns zeroed memory aligned to 256 bytes, or throws rk::error naming the size
// (more than the machine's memory, or the system refused it). Blocks of 4 MiB and more come straight from
// mmap, populated up front only when `populate` asks for it; smaller ones from aligned_alloc. release()
// takes either kind and never throws. Copies in and out move whole aligned words with atomic accesses, so
// a copy racing with workers' atomics neither tears a word nor is a data race for ThreadSanitizer;
// unaligned or odd-sized ranges fall back to memcpy (the runtime uses those only for memory no worker
// touches at the time). Thread-safe.

#include <cstddef>
#include <mutex>
#include <unordered_map>

namespace rk::detail {

class cpu_memory {
public:
  //! This machine's physical memory in bytes: the ceiling of one allocation.
  static std::size_t physical_bytes() noexcept;

  void* allocate(std::size_t bytes, bool populate);
  void release(void* pointer) noexcept;

  //! Host to "device" (release stores) and back (acquire loads); see the contract above.
  static void copy_in(void* destination, const void* source, std::size_t bytes) noexcept;
  static void copy_out(void* destination, const void* source, std::size_t bytes) noexcept;

private:
  std::mutex mapped_mutex_;
  std::unordered_map<void*, std::size_t> mapped_sizes_; //!< mmap'ed blocks and their sizes
};

} // namespace rk::detail
