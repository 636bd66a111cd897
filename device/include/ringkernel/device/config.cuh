#pragma once
//! \file
//! Compiler glue shared by every device header: the host/device annotation, scope aliases and the
//! library-wide limits. Everything here compiles with nvcc (both passes) and with a plain C++20 compiler.

#include <cuda/atomic>
#include <cuda/std/cstddef>
#include <cuda/std/cstdint>
#include <nv/target>

#if defined(__CUDACC__)
#define RK_HOST_DEVICE __host__ __device__
#define RK_DEVICE __device__
#define RK_FORCEINLINE __forceinline__
#else
#define RK_HOST_DEVICE
#define RK_DEVICE
#define RK_FORCEINLINE inline __attribute__((always_inline))
#endif

//! True in a translation unit compiled by nvcc (either pass). Used to select the CUDA launcher of a
//! handler type; see rk::runtime::spawn.
#if defined(__CUDACC__)
#define RK_COMPILED_BY_NVCC 1
#else
#define RK_COMPILED_BY_NVCC 0
#endif

namespace rk {

//! Dense actor identifier. The value `host_actor` names the host controller as a message endpoint.
using actor_index = std::uint32_t;
inline constexpr actor_index host_actor = 0xFFFF'FFFFu;

//! Where a message goes: an actor id (also an alias with an indirect route), a group, or the host.
//! Group addresses have the top bit set; `host_actor` is reserved.
using address = std::uint32_t;
inline constexpr address group_address_bit = 0x8000'0000u;
RK_HOST_DEVICE constexpr bool is_group_address(address a) noexcept {
  return a != host_actor && (a & group_address_bit) != 0;
}
RK_HOST_DEVICE constexpr address group_address(std::uint32_t group) noexcept {
  return group_address_bit | group;
}
RK_HOST_DEVICE constexpr std::uint32_t group_of(address a) noexcept {
  return a & ~group_address_bit;
}

//! Message priorities, one mailbox lane each; a receiver serves higher levels first (see actor_loop.cuh
//! for the anti-starvation rule).
inline constexpr std::uint32_t priority_levels = 4;

//! Scopes used across the project, named for the reason they are chosen.
//!  - peer_scope: all parties live in the same memory space as the ring (device memory on CUDA,
//!    host memory on the CPU backend).
//!  - pcie_scope: one party is the host and the other the device (pinned, mapped memory).
inline constexpr cuda::thread_scope peer_scope = cuda::thread_scope_device;
inline constexpr cuda::thread_scope pcie_scope = cuda::thread_scope_system;

//! Buckets of the handler-time histogram each actor keeps (actor_stats::handler_time, the metrics'
//! handler-time histograms). Seven, so that an actor's counters stay two 128-byte lines (system.cuh).
inline constexpr std::size_t handler_time_bucket_count = 7;

//! Upper bound, inclusive, of handler-time bucket `k` in nanoseconds: 1,024 · 4^k ns (about 1 µs, 4 µs,
//! 16 µs, 66 µs, 262 µs and 1 ms); the last bucket has no bound (UINT64_MAX).
RK_HOST_DEVICE constexpr std::uint64_t handler_time_bucket_bound_ns(std::size_t k) noexcept {
  return k + 1 >= handler_time_bucket_count ? ~std::uint64_t{0} : std::uint64_t{1024} << (2 * k);
}

namespace detail {
//! Smallest alignment that keeps producer- and consumer-owned words on separate cache lines on both
//! targets (GPU L2 lines are 128 bytes, x86 pairs 64-byte lines in its adjacent-line prefetcher).
inline constexpr std::size_t false_sharing_range = 128;

//! Memory orders of the scheduler's wake-up handshake (detail/schedule.cuh): on the host, where a sender
//! that finds its receiver owned skips the wake-up, the mailbox's publish, the owner's release of the
//! actor and its look at the mailbox must be sequentially consistent; on the device every sender takes
//! the scheduled word with an exchange, and release / acq_rel / acquire suffice.
#if defined(__CUDA_ARCH__)
inline constexpr cuda::std::memory_order wake_publish_order = cuda::std::memory_order_release;
inline constexpr cuda::std::memory_order wake_release_order = cuda::std::memory_order_acq_rel;
inline constexpr cuda::std::memory_order wake_check_order = cuda::std::memory_order_acquire;
#else
inline constexpr cuda::std::memory_order wake_publish_order = cuda::std::memory_order_seq_cst;
inline constexpr cuda::std::memory_order wake_release_order = cuda::std::memory_order_seq_cst;
inline constexpr cuda::std::memory_order wake_check_order = cuda::std::memory_order_seq_cst;
#endif
} // namespace detail

} // namespace rk
