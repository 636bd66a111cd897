#pragma once
//! \file
//! Type erasure for handler types: what the (non-template) runtime needs to know about a handler H.

#include <ringkernel/device/scheduled_loop.cuh>

#include <cstddef>
#include <string>
#include <type_traits>
#include <typeindex>
#include <typeinfo>

namespace rk::detail {

struct actor_type_ops {
  std::type_index type{typeid(void)};
  std::string name;
  std::size_t state_size = 0;
  std::size_t state_align = 1;
  std::uint32_t threads_per_worker = 1;
  //! CPU backend step (see cpu_serve_one).
  serve_result (*cpu_serve)(const system_view&, actor_index, void*, handler_fault&, worker_status&,
                            std::uint64_t&) = nullptr;
  //! Host stubs of rk::actor_kernel<H> (dedicated workers) and rk::scheduled_actor_kernel<H>; null when
  //! the spawning translation unit was not compiled by nvcc.
  const void* cuda_kernel = nullptr;
  const void* cuda_scheduled_kernel = nullptr;
};

std::string demangle(const char* mangled);

//! Defined in nvcc translation units only (below); names the CUDA kernel of H.
template <class H>
struct cuda_kernel_of;

#if defined(__CUDACC__)
template <class H>
struct cuda_kernel_of {
  static const void* get() noexcept { return reinterpret_cast<const void*>(&rk::actor_kernel<H>); }
  static const void* scheduled() noexcept {
    return reinterpret_cast<const void*>(&rk::scheduled_actor_kernel<H>);
  }
};
#endif

template <class H, bool WithCuda>
actor_type_ops make_actor_type_ops() {
  // States live in blocks aligned to 256 bytes (what cudaMalloc gives): a stricter type would be misplaced.
  static_assert(alignof(handler_state_t<H>) <= 256,
                "a handler's state type may be aligned to at most 256 bytes");
  actor_type_ops ops;
  ops.type = std::type_index(typeid(H));
  if constexpr (has_name<H>::value) {
    // A null name is refused like an empty one (rk::error from spawn/prepare), not dereferenced.
    if constexpr (std::is_pointer_v<std::remove_cv_t<decltype(H::name)>>)
      ops.name = H::name != nullptr ? H::name : "";
    else
      ops.name = H::name;
  } else {
    ops.name = demangle(typeid(H).name());
  }
  ops.state_size = sizeof(handler_state_t<H>);
  ops.state_align = alignof(handler_state_t<H>);
  ops.threads_per_worker = threads_per_worker_v<H>;
  ops.cpu_serve = &cpu_serve_one<H>;
  if constexpr (WithCuda) {
    ops.cuda_kernel = cuda_kernel_of<H>::get();
    ops.cuda_scheduled_kernel = cuda_kernel_of<H>::scheduled();
  }
  return ops;
}

} // namespace rk::detail
