#pragma once
// NVTX ranges on host entry points (start, send, receive, shutdown), in the "ringkernel" domain, so
// Nsight Systems shows what the host controller was doing next to the actor kernels.

#if defined(RK_ENABLE_NVTX) && RK_ENABLE_NVTX
#include <nvtx3/nvtx3.hpp>

namespace rk::detail {
struct nvtx_domain {
  static constexpr const char* name{"ringkernel"};
};
} // namespace rk::detail

#define RK_NVTX_CONCAT_INNER(a, b) a##b
#define RK_NVTX_CONCAT(a, b) RK_NVTX_CONCAT_INNER(a, b)
#define RK_NVTX_RANGE(label)                                                                                 \
  ::nvtx3::scoped_range_in<::rk::detail::nvtx_domain> RK_NVTX_CONCAT(rk_nvtx_range_, __LINE__) {             \
    label                                                                                                    \
  }
#else
#define RK_NVTX_RANGE(label) static_cast<void>(0)
#endif
