#pragma once
//! \file
//! RK_CUDA_CHECK(call): throws rk::error naming the failing call, file and line when `call` does not
//! return cudaSuccess, after clearing the (non-sticky) error so later calls start clean. Use
//! RK_CUDA_WARN in destructors and cleanup paths, where throwing is not allowed: it reports on stderr.

#include <ringkernel/host/error.hpp>

#include <cuda_runtime_api.h>

#include <cstdio>
#include <string>

namespace rk::detail {

inline std::string cuda_error_text(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
}

inline void cuda_check(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError(); // clear a non-sticky error; sticky ones persist and are reported again
  throw error(std::string("CUDA call `") + call + "` failed at " + file + ":" + std::to_string(line) + ": " +
              cuda_error_text(e));
}

inline cudaError_t cuda_warn(cudaError_t e, const char* call, const char* file, int line) noexcept {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    std::fprintf(stderr, "ringkernel: CUDA call `%s` failed at %s:%d: %s (%s)\n", call, file, line,
                 cudaGetErrorName(e), cudaGetErrorString(e));
  }
  return e;
}

} // namespace rk::detail

#define RK_CUDA_CHECK(call) ::rk::detail::cuda_check((call), #call, __FILE__, __LINE__)
#define RK_CUDA_WARN(call) ::rk::detail::cuda_warn((call), #call, __FILE__, __LINE__)
