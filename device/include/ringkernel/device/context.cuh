#pragma once
//! \file
//! rk::actor_context: what a handler receives as `ctx`. Identity, cooperative thread primitives and the
//! send family. The runtime stamps source, tenant and timestamp on every send; a handler cannot set them.
//!
//! Threads: on CUDA every thread of the worker (a thread block of `threads_per_worker` threads) runs the
//! handler; on the CPU backend one thread does, and thread_count() is 1. Write handlers against
//! thread_rank()/thread_count() and they are correct on both. Sends are per calling thread: a handler
//! that should send once does so from the leader (`if (ctx.is_leader())`).

#include <ringkernel/device/detail/deliver.cuh>
#include <ringkernel/device/message.cuh>

namespace rk {

//! Per-send choices a sender may make (the rest of the envelope is stamped by the runtime).
struct send_options {
  std::uint64_t correlation_id = 0;
  rk::priority priority = rk::priority::normal;
  std::uint16_t flags = envelope_flags::none; //!< envelope_flags::drop_if_unroutable, ...
};

namespace detail {
struct trap_exception {
  actor_index actor;
  std::uint32_t code;
};
} // namespace detail

class actor_context {
public:
  RK_HOST_DEVICE actor_context(const detail::system_view& sys, actor_index self, std::uint64_t tenant,
                               hlc_timestamp event_time) noexcept
      : sys_(&sys), self_(self), tenant_(tenant), event_time_(event_time) {}

  RK_HOST_DEVICE actor_index self() const noexcept { return self_; }
  RK_HOST_DEVICE std::uint64_t tenant() const noexcept { return tenant_; }
  //! HLC time of the message being handled (after merging with the sender's timestamp).
  RK_HOST_DEVICE hlc_timestamp event_time() const noexcept { return event_time_; }

  RK_HOST_DEVICE std::uint32_t thread_rank() const noexcept {
    NV_IF_TARGET(NV_IS_DEVICE, (return threadIdx.x;), (return 0;))
  }
  RK_HOST_DEVICE std::uint32_t thread_count() const noexcept {
    NV_IF_TARGET(NV_IS_DEVICE, (return blockDim.x;), (return 1;))
  }
  RK_HOST_DEVICE bool is_leader() const noexcept { return thread_rank() == 0; }
  //! Barrier over the worker's threads. Every thread of the worker must reach it (no divergence).
  RK_HOST_DEVICE void sync() const noexcept { NV_IF_TARGET(NV_IS_DEVICE, (__syncthreads();), ()) }
  //! Calls f(i) for i in [0, n), spread over the worker's threads (a plain loop on the CPU backend).
  template <class F>
  RK_HOST_DEVICE void parallel_for(std::uint32_t n, F&& f) const {
    for (std::uint32_t i = thread_rank(); i < n; i += thread_count()) f(i);
  }

  //! Sends to another actor on the device (K2K). Never blocks; returns the device's verdict.
  [[nodiscard]] RK_HOST_DEVICE status send(actor_index destination, std::uint32_t type, byte_view payload,
                                           const send_options& options = {}) const noexcept {
    return send_stamped(destination, type, payload, options);
  }
  //! Sends to the host egress ring (collected by runtime::receive).
  [[nodiscard]] RK_HOST_DEVICE status send_host(std::uint32_t type, byte_view payload,
                                                const send_options& options = {}) const noexcept {
    return send_stamped(host_actor, type, payload, options);
  }
  //! Replies to the sender of `request` (an actor or the host) with the request's type and correlation id.
  [[nodiscard]] RK_HOST_DEVICE status reply(const message& request, byte_view payload) const noexcept {
    return reply(request, request.type(), payload);
  }
  [[nodiscard]] RK_HOST_DEVICE status reply(const message& request, std::uint32_t type,
                                            byte_view payload) const noexcept {
    send_options options;
    options.correlation_id = request.correlation_id();
    options.priority = request.priority();
    return send_stamped(request.source(), type, payload, options);
  }

  //! Stops the runtime with a fault attributed to this actor and `code`. On CUDA this is `__trap()`
  //! (the context becomes unusable, as with any device fault); on the CPU backend the worker stops
  //! running this actor. In both cases the host surfaces an rk::error naming the actor.
  RK_HOST_DEVICE void trap(std::uint32_t code) const {
    detail::store_pcie(sys_->control->trap_code, code);
    detail::store_pcie(sys_->control->trap_actor, self_ + 1);
    NV_IF_TARGET(NV_IS_DEVICE, (__threadfence_system(); __trap();),
                 (throw detail::trap_exception{self_, code};))
  }

private:
  RK_HOST_DEVICE status send_stamped(actor_index destination, std::uint32_t type, byte_view payload,
                                     const send_options& options) const noexcept {
    envelope header;
    header.tenant = tenant_;
    header.correlation_id = options.correlation_id;
    header.timestamp = event_time_;
    header.type_id = type;
    header.source = self_;
    header.destination = destination;
    header.payload_length = payload.size;
    header.flags = options.flags;
    header.priority = static_cast<std::uint8_t>(options.priority);
    const status verdict = detail::deliver(*sys_, header, payload.data);
    detail::bump(sys_->counters[self_].sent[static_cast<std::uint32_t>(verdict)]);
    return verdict;
  }

  const detail::system_view* sys_;
  actor_index self_;
  std::uint64_t tenant_;
  hlc_timestamp event_time_;
};

} // namespace rk
