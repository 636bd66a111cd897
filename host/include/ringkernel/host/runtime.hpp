#pragma once
//! \file
//! rk::runtime: the host controller. Spawns actors, launches the actor kernels (or CPU workers), sends
//! and receives host messages, reads counters, and shuts everything down.
//!
//! Thread safety: send, send_wait, receive and stats may be called from any number of host threads
//! while the runtime runs. spawn, start and shutdown are called from one thread.

#include <ringkernel/host/detail/actor_type.hpp>
#include <ringkernel/host/error.hpp>
#include <ringkernel/host/options.hpp>
#include <ringkernel/host/stats.hpp>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rk {

namespace detail {
class runtime_impl;
}

//! A message the host took from the egress ring (an owning copy).
struct received_message {
  envelope header{};
  std::vector<std::byte> payload;

  std::uint32_t type() const noexcept { return header.type_id; }
  actor_index source() const noexcept { return header.source; }
  std::uint64_t correlation_id() const noexcept { return header.correlation_id; }
  //! The payload as a T; throws rk::error if the payload is shorter than sizeof(T).
  template <class T>
  T as() const {
    static_assert(std::is_trivially_copyable_v<T>);
    if (payload.size() < sizeof(T))
      throw error("received_message::as<T>(): payload has " + std::to_string(payload.size()) +
                  " bytes, fewer than sizeof(T) = " + std::to_string(sizeof(T)));
    T value;
    std::memcpy(&value, payload.data(), sizeof(T));
    return value;
  }
};

//! Whether CUDA device `device` can run the CUDA backend, and what was found (the GPU's name, or why not).
struct device_probe {
  bool usable = false;
  std::string description;
};
device_probe probe_cuda_device(int device = 0) noexcept;

class runtime {
public:
  //! Chooses and initialises the backend (see runtime_options::backend). Throws rk::error when an
  //! explicitly requested backend is unusable or the options are invalid.
  explicit runtime(runtime_options options = {});
  //! Shuts down if still running; never throws.
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  rk::backend backend() const noexcept;
  //! Why this backend: the GPU's name, or the reason no GPU is used.
  const std::string& backend_description() const noexcept;

  //! Creates an actor running handler H with the given unique name and returns its id. Must be called
  //! before start(). Throws rk::error for invalid options, a duplicate name, a full actor table, or (CUDA
  //! backend) a handler whose spawning translation unit was not compiled by nvcc.
  //! `WithCuda` is an implementation detail: it keeps the nvcc and non-nvcc instantiations distinct.
  template <class H, bool WithCuda = RK_COMPILED_BY_NVCC>
  actor_index spawn(std::string name, const actor_options& options = {},
                    const handler_state_t<H>& initial = {}) {
    static_assert(is_valid_handler_v<H>,
                  "handler types need a default-constructible, trivially copyable "
                  "state and 1..1024 threads_per_worker (see ringkernel/device/handler.cuh)");
    return spawn_erased(detail::make_actor_type_ops<H, WithCuda>(), std::move(name), options, &initial);
  }

  //! The id of the actor named `name`; throws rk::error if there is none.
  actor_index find(std::string_view name) const;
  const std::string& name_of(actor_index id) const;
  std::uint32_t actor_count() const noexcept;

  //! Launches one persistent kernel per handler type (CUDA) or the worker threads (CPU) and waits until
  //! every worker runs. Throws rk::error, with nothing left running, when the actor kernels cannot all be
  //! co-resident, a launch fails, or workers do not start within runtime_options::start_timeout.
  void start();
  bool running() const noexcept;

  //! Asks every actor worker to stop taking messages and waits (up to `timeout`) until all of them have
  //! acknowledged; returns false on timeout. Handlers already running finish first. Host messages keep
  //! flowing into mailboxes (the gateway is not paused), and K2K sends from finishing handlers land too.
  bool pause(std::chrono::nanoseconds timeout = std::chrono::seconds(5));
  //! Lets paused workers take messages again.
  void resume();

  //! Host -> actor through the ingress ring. Never blocks. Returns `enqueued` (the device decides and
  //! counts the outcome, see stats().gateway_verdicts), `queue_full` (ingress ring full), `too_large`
  //! (payload exceeds the host ring's slot) or `not_running`. Throws rk::error if the runtime faulted.
  [[nodiscard]] status send(actor_index destination, std::uint32_t type, byte_view payload,
                            const send_options& options = {});
  //! Like send, then waits up to `timeout` for the device's verdict (delivered, queue_full, not_found,
  //! too_large, ...). `timed_out` means the verdict did not arrive in time (the message may still be
  //! delivered later).
  [[nodiscard]] status send_wait(actor_index destination, std::uint32_t type, byte_view payload,
                                 std::chrono::nanoseconds timeout, const send_options& options = {});
  //! Takes the next message actors sent to the host, waiting up to `timeout`. Returns nullopt on timeout.
  //! Still works after shutdown() for messages left in the egress ring. Throws rk::error if the runtime
  //! faulted.
  std::optional<received_message> receive(std::chrono::nanoseconds timeout);

  //! Stops accepting host sends, waits (up to drain_timeout) until every in-flight message was handled,
  //! terminates the workers and joins them. Idempotent. Never throws; problems are in the report.
  shutdown_report shutdown();

  //! Counter snapshot (while running) or final counters (after shutdown).
  runtime_stats stats() const;

  //! Final state of actor `id`, which must run handler H. Only after shutdown().
  template <class H>
  handler_state_t<H> state(actor_index id) const {
    handler_state_t<H> value{};
    read_state(id, std::type_index(typeid(H)), &value, sizeof(value));
    return value;
  }

private:
  actor_index spawn_erased(detail::actor_type_ops ops, std::string name, const actor_options& options,
                           const void* initial_state);
  void read_state(actor_index id, std::type_index type, void* out, std::size_t bytes) const;

  std::unique_ptr<detail::runtime_impl> impl_;
};

} // namespace rk
