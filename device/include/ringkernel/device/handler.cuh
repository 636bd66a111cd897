#pragma once
//! \file
//! What the runtime reads from a handler type H:
//!   - `H::state` (optional): per-actor state, trivially copyable; `rk::no_state` when absent.
//!   - `H::threads_per_worker` (optional): threads of the CUDA worker that run the handler (default 1).
//!   - `H::name` (optional, `static constexpr const char*`): the handler's name in logs and Nsight stream
//!     names; the demangled type name otherwise.
//!   - `template <class Ctx> RK_HOST_DEVICE void operator()(Ctx&, state&, const rk::message&)`.
//! H itself must be default-constructible and stateless: a fresh H{} handles each message.

#include <ringkernel/device/context.cuh>

namespace rk {

struct no_state {};

namespace detail {
template <class H, class = void>
struct state_of {
  using type = no_state;
};
template <class H>
struct state_of<H, cuda::std::void_t<typename H::state>> {
  using type = typename H::state;
};
template <class H, class = void>
struct threads_of {
  static constexpr std::uint32_t value = 1;
};
template <class H>
struct threads_of<H, cuda::std::void_t<decltype(H::threads_per_worker)>> {
  static constexpr std::uint32_t value = H::threads_per_worker;
};
template <class H, class = void>
struct has_name : cuda::std::false_type {};
template <class H>
struct has_name<H, cuda::std::void_t<decltype(H::name)>> : cuda::std::true_type {};
} // namespace detail

template <class H>
using handler_state_t = typename detail::state_of<H>::type;

template <class H>
inline constexpr std::uint32_t threads_per_worker_v = detail::threads_of<H>::value;

template <class H>
inline constexpr bool is_valid_handler_v = cuda::std::is_trivially_copyable_v<handler_state_t<H>>&&
                                               cuda::std::is_default_constructible_v<handler_state_t<H>>&&
                                                   cuda::std::is_default_constructible_v<H> &&
                                           (threads_per_worker_v<H> >= 1 && threads_per_worker_v<H> <= 1024);

} // namespace rk
