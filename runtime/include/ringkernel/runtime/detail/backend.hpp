#pragma once
//! \file
//! The interface the host controller uses to run on a backend: memory in the right places, copies that
//! are safe while workers run, launching workers, noticing faults, and joining.

#include <ringkernel/host/detail/actor_type.hpp>
#include <ringkernel/host/options.hpp>

#include <algorithm>
#include <chrono>
#include <compare>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace rk::detail {

struct mapped_allocation {
  void* host = nullptr;   //!< host address
  void* device = nullptr; //!< the same memory as seen by workers
};

//! One actor kernel (CUDA) or one group of actors of a handler type (CPU). A scheduled group has no
//! actor list: its workers serve the run queue of handler type params.kind (see schedule.cuh). On CUDA
//! that is `workers` blocks of rk::scheduled_actor_kernel; the CPU backend serves every scheduled group
//! with one pool of threads (as many as the largest group asks for), each serving every handler type.
struct worker_group {
  const actor_type_ops* ops = nullptr;
  bool scheduled = false;
  std::uint32_t workers = 0;                       //!< actors of this type (dedicated), or pool workers
  const actor_index* host_worker_actors = nullptr; //!< host copy of params.worker_actors
  void* const* host_states = nullptr;              //!< host copy of params.states (one state per actor)
  actor_kernel_params params;                      //!< device-side parameters (CUDA backend)
  std::string actors_description;                  //!< e.g. "pong, ping" for error messages and stream names
};

//! A fault noticed by the backend.
struct backend_fault {
  std::string where;                //!< which kernel or worker
  std::string what;                 //!< the error
  std::optional<actor_index> actor; //!< the actor, when the backend knows it exactly
};

//! A handler fault the backend contained to its actor (CPU backend: an exception or ctx.trap). The actor
//! is already marked faulted on the "device" side; the host lists it in runtime::faults().
struct contained_fault {
  actor_index actor = host_actor;
  std::uint32_t message_type = 0;
  std::uint32_t code = 0;
  std::string reason;
};

class backend_impl;

//! A handler call, named across the runtimes of a process: the backend that runs it and its actor.
struct handler_call {
  const backend_impl* backend = nullptr;
  actor_index actor = host_actor;
  friend auto operator<=>(const handler_call&, const handler_call&) = default;
};
//! The handler call the calling thread runs (a CPU-backend worker thread in a call), whichever runtime's it
//! is; {} on any other thread. Defined by the CPU backend, the only one whose handlers run on host threads.
handler_call handler_call_on_this_thread() noexcept;

class backend_impl {
public:
  virtual ~backend_impl() = default;
  virtual rk::backend kind() const noexcept = 0;

  //! Zero-filled memory that workers access (device memory on CUDA). Throws rk::error. `populate` false:
  //! the caller writes little of it soon (mailbox slots), so the CPU backend leaves its pages to be
  //! mapped on first use instead of populating them now; CUDA ignores it.
  virtual void* allocate_device(std::size_t bytes, bool populate) = 0;
  virtual void free_device(void* pointer) noexcept = 0;
  //! All the memory allocate_device could ever give (the device's on CUDA, the machine's on the CPU
  //! backend): callers refuse requests beyond it before they allocate and fill any part of them.
  virtual std::size_t memory_bytes() const noexcept = 0;
  //! Zero-filled pinned host memory that workers access through `device`. Throws rk::error.
  virtual mapped_allocation allocate_mapped(std::size_t bytes) = 0;
  virtual void free_mapped(const mapped_allocation& allocation) noexcept = 0;
  //! Copies that may run while workers run. Word-sized fields read back by copy_from_device are each
  //! read atomically (no torn counters); multi-word snapshots are not consistent with each other.
  virtual void copy_to_device(void* device_destination, const void* host_source, std::size_t bytes) = 0;
  virtual void copy_from_device(void* host_destination, const void* device_source, std::size_t bytes) = 0;
  //! Zeroes device memory that no worker reads yet, through copies of a small zero buffer (on CUDA a
  //! memset may run as a kernel and queue behind persistent blocks).
  virtual void zero_device(void* device_destination, std::size_t bytes) {
    static const std::vector<std::byte> zeros(std::size_t{1} << 20);
    for (std::size_t done = 0; done < bytes; done += zeros.size())
      copy_to_device(static_cast<std::byte*>(device_destination) + done, zeros.data(),
                     std::min(zeros.size(), bytes - done));
  }
  //! The host changed a control word (terminate, pause, grace epoch): workers and the gateway that sleep
  //! while idle (CPU backend) wake up and read it.
  virtual void wake_idle_workers() noexcept {}
  //! The host published to the ingress or wake ring: a gateway that sleeps while idle (CPU backend) wakes.
  virtual void notify_gateway() noexcept {}
  //! Whether the calling thread is one of this backend's worker threads (a CPU-backend handler calling the
  //! host API): calls that wait for workers refuse it, since they would wait for that very worker.
  virtual bool on_worker_thread() const noexcept { return false; }
  //! The actor of this backend whose handler the calling thread is running (a CPU-backend worker thread in
  //! a call), else host_actor.
  actor_index actor_on_this_thread() const noexcept {
    const handler_call call = handler_call_on_this_thread();
    return call.backend == this ? call.actor : host_actor;
  }
  //! Whether actor `a`'s mailbox can be emptied only by the calling thread, which is inside a handler: it
  //! is that handler's own actor, or (CPU backend) one its thread alone serves. A send_wait there would
  //! wait for itself.
  virtual bool only_this_thread_serves(actor_index a) const noexcept {
    return a != host_actor && a == actor_on_this_thread();
  }
  //! Where a host thread waiting in receive() may park until the egress ring gets a message (CPU
  //! backend: woken by every egress publish, fault and control-word change); null: poll with a backoff.
  virtual park_lot* receive_lot() noexcept { return nullptr; }
  //! `rows` copies of `width` bytes: row i from host_source + i * source_pitch (0: the same bytes for
  //! every row) to device_destination + i * destination_pitch. This one copies row by row.
  virtual void copy_to_device_strided(void* device_destination, std::size_t destination_pitch,
                                      const void* host_source, std::size_t source_pitch, std::size_t width,
                                      std::size_t rows) {
    for (std::size_t i = 0; i < rows; ++i)
      copy_to_device(static_cast<std::byte*>(device_destination) + i * destination_pitch,
                     static_cast<const std::byte*>(host_source) + i * source_pitch, width);
  }

  //! Loads the code of every handler type the runtime may run, before anything is launched (after
  //! launch, loading a kernel can deadlock against the running persistent kernels). Throws rk::error.
  virtual void preload(std::span<const actor_type_ops* const> kinds) = 0;
  //! Starts every group and the gateway. Group i's workers use worker_status entries starting at
  //! groups[i].params.first_worker; returns how many entries all groups used (CPU workers may serve
  //! several actors). The gateway uses entry `gateway_worker`. Throws rk::error if it cannot start all of
  //! them; it launches nothing when the refusal can be decided up front (co-residency), and otherwise the
  //! caller terminates and joins what did start. `host_control` and `host_workers` are the host addresses
  //! of sys.control and sys.workers.
  virtual std::uint32_t launch(const system_view& sys, const control_block* host_control,
                               const worker_status* host_workers, std::span<const worker_group> groups,
                               std::uint32_t gateway_worker) = 0;
  //! While running: starts workers for actors spawned after launch (no gateway). All or nothing: when it
  //! throws, nothing it started runs (it refuses up front when they would not fit beside what runs). The
  //! CUDA backend takes one group per call (a kernel that started cannot be taken back).
  virtual std::uint32_t launch_more(const system_view& sys, std::span<const worker_group> groups) = 0;
  //! The host saw every worker in [first_worker, first_worker + count) exit for good (worker_status::
  //! exited) before terminate: their actors were all retired. The backend forgets them (joins CPU threads;
  //! on CUDA lets their kernel finish without calling it a fault, and gives back its co-residency share).
  //! A range covers whole launches.
  virtual void release_workers(std::uint32_t first_worker, std::uint32_t count) noexcept = 0;
  //! The launch of workers [first_worker, + count) was given up before all of them checked in: their
  //! actors' ids are retired, so a block that becomes resident later exits on its first look. What the
  //! launch holds of the co-residency estimate is given back now; its stream goes with release_workers.
  virtual void abandon_workers(std::uint32_t /*first_worker*/, std::uint32_t /*count*/) noexcept {}
  //! A fault if one happened (cheap enough to call every millisecond). Once a fault is reported, it
  //! keeps being reported.
  virtual std::optional<backend_fault> poll_fault() = 0;
  //! The actors worker entry `worker` serves (CPU: several; CUDA: empty, one actor per worker).
  virtual std::vector<actor_index> actors_of_worker(std::uint32_t) const { return {}; }
  //! The worker entries that take turns serving the scheduled actors of handler type `kind` (empty: none
  //! started, or the backend does not say). A scheduled actor waits on all of them at once.
  virtual std::vector<std::uint32_t> scheduled_workers_of(std::uint32_t /*kind*/) const { return {}; }
  //! Contained faults since the last call, oldest first (none on backends that cannot contain one).
  virtual std::vector<contained_fault> take_contained_faults() { return {}; }
  //! Scheduled workers per handler type when runtime_options::scheduled_workers is 0.
  virtual std::uint32_t default_scheduled_workers() const = 0;
  //! After terminate was requested: waits up to `timeout` for all workers to exit. False if some did not
  //! (their memory must then be leaked rather than freed).
  virtual bool join(std::chrono::milliseconds timeout) noexcept = 0;
};

std::unique_ptr<backend_impl> make_cpu_backend(const runtime_options& options);
//! Throws rk::error when the device is unusable. `description` receives e.g. "NVIDIA H100 ... (sm_90)".
std::unique_ptr<backend_impl> make_cuda_backend(const runtime_options& options, std::string& description);
//! Whether CUDA device `device` can run ringkernel; `why` says what was found either way.
bool cuda_device_usable(int device, std::string& why) noexcept;

} // namespace rk::detail
