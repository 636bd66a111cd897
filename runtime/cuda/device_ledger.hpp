#pragma once
// What the CUDA backends of this process hold on each device, for two limits a persistent kernel turns
// from a slowdown into a hang (found on an H200, bench/RESULTS.md "First GPU run"):
//
// 1. Hardware work queues. The driver maps streams onto CUDA_DEVICE_MAX_CONNECTIONS hardware queues
//    (8 unless set; at most 32), round robin as streams are created. Work on a stream that shares a queue
//    with a persistent kernel queues behind that kernel for as long as it runs: a second persistent kernel
//    never starts, and a copy on the runtime's copy stream never finishes. So the streams of all ringkernel
//    backends on a device (one copy stream each, one per launched kernel) must not outnumber the queues.
//    This library asks for 32 queues before main() by setting CUDA_DEVICE_MAX_CONNECTIONS=32 when the
//    variable is unset (a context reads it when it is created); a user's own value is kept and obeyed.
//    Streams a program creates itself also take queues: they are not counted here (docs/architecture.md).
// 2. Local memory. A launch whose kernel needs more local memory per thread (stack frame, local arrays)
//    than the device has reserved makes the driver grow the reservation, and that waits until every kernel
//    on the device has finished: the launch blocks for ever beside a running persistent kernel. So the
//    reservation (cudaLimitStackSize) is raised before a launch while no ringkernel kernel runs on the
//    device, and a launch that would need more while some run is refused (the caller throws rk::error).
//
// Thread-safe; never calls CUDA while holding its lock except cudaDeviceSetLimit in reserve_local_memory
// (which must not race a concurrent launch on the same device).

#include <cstddef>
#include <string>

namespace rk::detail::device_ledger {

//! Hardware work queues the device's context uses: CUDA_DEVICE_MAX_CONNECTIONS (1..32), else 8.
int hardware_queues() noexcept;

//! Streams held by ringkernel backends on `device` (copy streams and kernel streams together).
int streams_on(int device) noexcept;
//! Records `count` streams created (positive) or destroyed (negative) on `device`; `kernel` says whether
//! they carry persistent kernels.
void count_streams(int device, int count, bool kernel) noexcept;

//! Makes sure the device reserves at least `bytes` of local memory per thread before a launch. Returns an
//! empty string when it does (raising cudaLimitStackSize if no ringkernel kernel runs on the device), or
//! the reason it cannot (some do: growing the reservation would wait for them for ever).
std::string reserve_local_memory(int device, std::size_t bytes);

} // namespace rk::detail::device_ledger
