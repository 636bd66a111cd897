// The CPU backend's stand-in for device memory (contract in cpu_memory.hpp).

#include "cpu_memory.hpp"

#include <ringkernel/host/error.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

namespace rk::detail {
namespace {

constexpr std::size_t allocation_alignment = 256;
//! Allocations of at least this many bytes come from mmap (see allocate).
constexpr std::size_t large_allocation = std::size_t{4} << 20;

template <class Word>
void copy_words(void* destination, const void* source, std::size_t bytes, bool destination_shared) noexcept {
  auto* d = static_cast<Word*>(destination);
  auto* s = static_cast<Word*>(const_cast<void*>(source));
  for (std::size_t i = 0; i < bytes / sizeof(Word); ++i) {
    if (destination_shared) {
      std::atomic_ref<Word>(d[i]).store(s[i], std::memory_order_release);
    } else {
      d[i] = std::atomic_ref<Word>(s[i]).load(std::memory_order_acquire);
    }
  }
}

void atomic_word_copy(void* destination, const void* source, std::size_t bytes,
                      bool destination_shared) noexcept {
  const auto aligned = [&](std::size_t a) {
    return reinterpret_cast<std::uintptr_t>(destination) % a == 0 &&
           reinterpret_cast<std::uintptr_t>(source) % a == 0 && bytes % a == 0;
  };
  if (aligned(8)) {
    copy_words<std::uint64_t>(destination, source, bytes, destination_shared);
  } else if (aligned(4)) {
    copy_words<std::uint32_t>(destination, source, bytes, destination_shared);
  } else {
    std::memcpy(destination, source, bytes);
  }
}

} // namespace

std::size_t cpu_memory::physical_bytes() noexcept {
  static const std::size_t physical =
      static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<std::size_t>(sysconf(_SC_PAGE_SIZE));
  return physical;
}

void* cpu_memory::allocate(std::size_t bytes, bool populate) {
  const std::size_t physical = physical_bytes();
  if (bytes > physical)
    throw error("CPU backend: " + std::to_string(bytes) + " bytes is more than this machine's memory (" +
                std::to_string(physical) + " bytes)");
  const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + allocation_alignment - 1) /
                              allocation_alignment * allocation_alignment;
  if (rounded >= large_allocation) {
    // Straight from the kernel, already zero, and populated in one call when it will be written soon:
    // tables written at once cost a fault per page otherwise. Mailbox slots are not populated: a million
    // actors' slots are gigabytes that an actor touches only as messages reach it, and zeroing them
    // dominated spawn_many. (Huge pages would be faster still, but made the wake-up latency's tail ten
    // times longer here.)
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0);
    void* p = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED)
      throw error("CPU backend: out of host memory allocating " + std::to_string(bytes) + " bytes");
    std::lock_guard lock(mapped_mutex_);
    try {
      mapped_sizes_.emplace(p, rounded);
    } catch (...) {
      munmap(p, rounded);
      throw;
    }
    return p;
  }
  void* p = std::aligned_alloc(allocation_alignment, rounded);
  if (p == nullptr)
    throw error("CPU backend: out of host memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, rounded);
  return p;
}

void cpu_memory::release(void* pointer) noexcept {
  {
    std::lock_guard lock(mapped_mutex_);
    if (const auto it = mapped_sizes_.find(pointer); it != mapped_sizes_.end()) {
      munmap(pointer, it->second);
      mapped_sizes_.erase(it);
      return;
    }
  }
  std::free(pointer);
}

void cpu_memory::copy_in(void* destination, const void* source, std::size_t bytes) noexcept {
  atomic_word_copy(destination, source, bytes, true);
}

void cpu_memory::copy_out(void* destination, const void* source, std::size_t bytes) noexcept {
  atomic_word_copy(destination, source, bytes, false);
}

} // namespace rk::detail
