#pragma once
// Pinned, mapped host memory for the CUDA backend, kept in one process-wide arena.
//
// Contract: cudaFreeHost synchronises with the whole device, so freeing a runtime's rings while another
// runtime's persistent kernels run (or a user's long kernel) would wait for as long as they run, for ever
// in the worst case. The arena never calls it while any CUDA backend lives: a block a runtime gives back
// is kept (by size class, powers of two from 4 KiB) and handed to the next request of that class,
// zeroed. When the last CUDA backend of the process is destroyed the cached blocks go back to the driver
// (no persistent kernel of ours runs then). Blocks are allocated with cudaHostAllocPortable |
// cudaHostAllocMapped, so any device of the process may map them.
//
// Thread-safe. Errors from cudaHostAlloc throw rk::error naming the size; release never throws.

#include <cstddef>

namespace rk::detail::pinned_arena {

//! A zeroed block of at least `bytes` bytes (its host address), mapped for every device of the process.
void* acquire(std::size_t bytes);
//! Gives a block from acquire() back to the arena (never to the driver while a backend lives). Null and
//! addresses the arena did not hand out are ignored.
void release(void* host) noexcept;

//! Called by each CUDA backend's constructor and destructor: the last one out empties the arena.
void backend_created() noexcept;
void backend_destroyed() noexcept;

//! Blocks cached and bytes they hold (for tests and the memory report).
struct usage {
  std::size_t cached_blocks = 0;
  std::size_t cached_bytes = 0;
  std::size_t in_use_blocks = 0;
  std::size_t live_backends = 0;
};
usage current_usage() noexcept;

} // namespace rk::detail::pinned_arena
