// CUDA backend: device memory for mailboxes and tables, pinned+mapped memory for the host rings and the
// control block, one persistent kernel per handler type on its own non-blocking stream, and a gateway
// kernel. Every call is checked; faults are read from the kernels' streams. Every entry point makes the
// runtime's device current for its calls (and restores the caller's afterwards): the runtime may be called
// from any host thread, and a thread's current device is its own.

#include "device_ledger.hpp"
#include "pinned_arena.hpp"

#include <ringkernel/runtime/cuda/check.hpp>
#include <ringkernel/runtime/detail/backend.hpp>

#if defined(RK_ENABLE_NVTX) && RK_ENABLE_NVTX
#include <nvtx3/nvToolsExtCudaRt.h>
#endif

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>
#include <sstream>
#include <vector>

namespace rk::detail {

const void* gateway_kernel_address() noexcept;

namespace {

constexpr unsigned gateway_threads = 32;

struct launched_kernel {
  cudaStream_t stream = nullptr;
  std::string where;              //!< "actor kernel for handler 'echo' (actors: ...)"
  std::uint32_t first_worker = 0; //!< its blocks use worker_status entries [first_worker, + blocks)
  std::uint32_t blocks = 0;
  double demand = 0.0; //!< its share of the GPU's resident-block capacity
  //! The handler type of a scheduled pool's kernel; none for the gateway and dedicated actors' kernels.
  std::optional<std::uint32_t> scheduled_kind;
};

//! Makes `device` the calling thread's current device for one backend call, then restores the previous one.
class current_device {
public:
  explicit current_device(int device) noexcept {
    if (cudaGetDevice(&previous_) != cudaSuccess) {
      (void)cudaGetLastError();
      previous_ = -1;
    }
    if (previous_ != device) {
      status_ = cudaSetDevice(device);
      if (status_ != cudaSuccess) (void)cudaGetLastError();
      switched_ = status_ == cudaSuccess && previous_ >= 0;
    }
  }
  ~current_device() {
    if (switched_) RK_CUDA_WARN(cudaSetDevice(previous_));
  }
  current_device(const current_device&) = delete;
  current_device& operator=(const current_device&) = delete;
  //! Throws rk::error when the device could not be made current (for entry points that may throw).
  void check(int device) const {
    if (status_ != cudaSuccess)
      throw error("CUDA backend: cannot make device " + std::to_string(device) +
                  " current on this thread: " + cuda_error_text(status_));
  }

private:
  int previous_ = -1;
  cudaError_t status_ = cudaSuccess;
  bool switched_ = false;
};

std::string props_text(const cudaDeviceProp& p) {
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs)";
}

class cuda_backend final : public backend_impl {
public:
  cuda_backend(const runtime_options& options, std::string& description) : device_(options.cuda_device) {
    std::string why;
    if (!cuda_device_usable(device_, why))
      throw error("backend::cuda requested but CUDA device " + std::to_string(device_) + " is not usable: " +
                  why + ". Use backend::automatic (falls back to the CPU backend) or backend::cpu.");
    const current_device on(device_);
    on.check(device_);
    RK_CUDA_CHECK(cudaGetDeviceProperties(&props_, device_));
    copy_stream_ = create_stream(false);
    try {
      create_pool();
    } catch (...) { // no destructor runs for a constructor that throws: give back what was taken
      release_pool_and_copy_stream();
      throw;
    }
    description = props_text(props_);
    pinned_arena::backend_created();
  }

  ~cuda_backend() override {
    const current_device on(device_);
    pinned_arena::backend_destroyed(); // the last one out gives the arena's cached blocks back
    for (auto& k : launched_) destroy_stream(k.stream, true);
    release_pool_and_copy_stream();
  }

private:
  void create_pool() {
    // Device memory comes from a memory pool of this runtime's own, allocated and freed in stream order on
    // the copy stream: cudaMalloc and cudaFree synchronise with every stream of the device, so with another
    // runtime's persistent kernels running they would wait for ever. The pool keeps what it reserved
    // (release threshold: never) until it is destroyed, which does not wait either.
    int pools_supported = 0;
    RK_CUDA_CHECK(cudaDeviceGetAttribute(&pools_supported, cudaDevAttrMemoryPoolsSupported, device_));
    if (pools_supported != 0) {
      cudaMemPoolProps props{};
      props.allocType = cudaMemAllocationTypePinned;
      props.handleTypes = cudaMemHandleTypeNone;
      props.location.type = cudaMemLocationTypeDevice;
      props.location.id = device_;
      RK_CUDA_CHECK(cudaMemPoolCreate(&pool_, &props));
      std::uint64_t keep_everything = ~std::uint64_t{0};
      RK_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep_everything));
    }
  }
  void release_pool_and_copy_stream() noexcept {
    if (copy_stream_ != nullptr) RK_CUDA_WARN(cudaStreamSynchronize(copy_stream_)); // its frees are done
    if (pool_ != nullptr) RK_CUDA_WARN(cudaMemPoolDestroy(pool_));
    if (copy_stream_ != nullptr) destroy_stream(copy_stream_, false);
    pool_ = nullptr;
    copy_stream_ = nullptr;
  }

public:
  rk::backend kind() const noexcept override { return rk::backend::cuda; }

  //! One block per SM and handler type: every SM can serve every type, and the pool leaves room beside
  //! it for dedicated actors.
  std::uint32_t default_scheduled_workers() const override {
    return static_cast<std::uint32_t>(std::max(1, props_.multiProcessorCount));
  }

  std::size_t memory_bytes() const noexcept override { return props_.totalGlobalMem; }

  void* allocate_device(std::size_t bytes, bool /*populate*/) override {
    const current_device on(device_);
    on.check(device_);
    void* p = nullptr;
    cudaError_t e = cudaSuccess;
    if (pool_ != nullptr) {
      e = cudaMallocFromPoolAsync(&p, bytes, pool_, copy_stream_);
      if (e == cudaSuccess) e = cudaStreamSynchronize(copy_stream_);
    } else {
      e = cudaMalloc(&p, bytes); // no memory pools on this device: synchronises (docs/architecture.md)
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      if (p != nullptr) free_device(p); // allocated, but the wait for it failed
      throw error("CUDA backend: allocating " + std::to_string(bytes) + " bytes of device memory failed: " +
                  cuda_error_text(e) + "; reduce max_actors or mailbox sizes");
    }
    try {
      zero_device(p, bytes); // through the copy engine (see backend_impl::zero_device)
    } catch (...) {
      free_device(p);
      throw;
    }
    return p;
  }
  void free_device(void* pointer) noexcept override {
    const current_device on(device_);
    if (pool_ != nullptr) {
      RK_CUDA_WARN(cudaFreeAsync(pointer, copy_stream_)); // after the copies that used it, in stream order
    } else {
      RK_CUDA_WARN(cudaFree(pointer));
    }
  }

  mapped_allocation allocate_mapped(std::size_t bytes) override {
    const current_device on(device_);
    on.check(device_);
    void* host = pinned_arena::acquire(bytes); // zeroed
    void* device = nullptr;
    const cudaError_t e = cudaHostGetDevicePointer(&device, host, 0);
    if (e != cudaSuccess) {
      pinned_arena::release(host);
      RK_CUDA_CHECK(e);
    }
    return {host, device};
  }
  //! Back to the process-wide arena, not to the driver: cudaFreeHost would wait behind every running
  //! kernel of the device, another runtime's persistent ones included (pinned_arena.hpp).
  void free_mapped(const mapped_allocation& allocation) noexcept override {
    pinned_arena::release(allocation.host);
  }

  // A non-blocking stream: these copies run beside the persistent kernels instead of waiting for them.
  void copy_to_device(void* device_destination, const void* host_source, std::size_t bytes) override {
    const current_device on(device_);
    on.check(device_);
    RK_CUDA_CHECK(
        cudaMemcpyAsync(device_destination, host_source, bytes, cudaMemcpyHostToDevice, copy_stream_));
    RK_CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
  }
  //! One cudaMemcpy2D per chunk of rows; a source repeated for every row is staged first (a 2D copy needs
  //! a source pitch of at least the width).
  void copy_to_device_strided(void* device_destination, std::size_t destination_pitch,
                              const void* host_source, std::size_t source_pitch, std::size_t width,
                              std::size_t rows) override {
    const current_device on(device_);
    on.check(device_);
    if (rows == 0 || width == 0) return;
    constexpr std::size_t staged_bytes = std::size_t{16} << 20;
    const std::size_t chunk_rows = source_pitch != 0 ? rows : std::max<std::size_t>(1, staged_bytes / width);
    std::vector<std::byte> staged;
    if (source_pitch == 0) {
      staged.resize(std::min(rows, chunk_rows) * width);
      for (std::size_t r = 0; r * width < staged.size(); ++r)
        std::memcpy(staged.data() + r * width, host_source, width);
    }
    for (std::size_t first = 0; first < rows; first += chunk_rows) {
      const std::size_t n = std::min(chunk_rows, rows - first);
      const void* source = source_pitch != 0 ? host_source : staged.data();
      const std::size_t pitch = source_pitch != 0 ? source_pitch : width;
      RK_CUDA_CHECK(cudaMemcpy2DAsync(
          static_cast<std::byte*>(device_destination) + first * destination_pitch, destination_pitch,
          static_cast<const std::byte*>(source) + (source_pitch != 0 ? first * pitch : 0), pitch, width, n,
          cudaMemcpyHostToDevice, copy_stream_));
      RK_CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
    }
  }
  void copy_from_device(void* host_destination, const void* device_source, std::size_t bytes) override {
    const current_device on(device_);
    on.check(device_);
    RK_CUDA_CHECK(
        cudaMemcpyAsync(host_destination, device_source, bytes, cudaMemcpyDeviceToHost, copy_stream_));
    RK_CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
  }

  void preload(std::span<const actor_type_ops* const> kinds) override {
    const current_device on(device_);
    on.check(device_);
    for (const actor_type_ops* k : kinds) {
      load(k->cuda_kernel, "actor kernel for handler '" + k->name + "'");
      load(k->cuda_scheduled_kernel, "scheduled actor kernel for handler '" + k->name + "'");
    }
    load(gateway_kernel_address(), "gateway kernel rk::gateway_kernel");
  }

  std::uint32_t launch(const system_view& sys, const control_block* host_control,
                       const worker_status* host_workers, std::span<const worker_group> groups,
                       std::uint32_t gateway_worker) override {
    const current_device on(device_);
    on.check(device_);
    const std::lock_guard lock(kernels_mutex_);
    host_control_ = host_control;
    host_workers_ = host_workers;
    std::vector<planned> plan;
    plan.push_back({gateway_kernel_address(), 1, gateway_threads, "gateway kernel rk::gateway_kernel",
                    nullptr, gateway_worker});
    for (const auto& g : groups) plan.push_back(plan_for(g));
    used_capacity_ += check_co_residency(plan, used_capacity_);

    std::uint32_t workers = 0;
    for (const auto& p : plan) {
      if (p.group == nullptr) {
        system_view sys_arg = sys;
        std::uint32_t worker_arg = gateway_worker;
        void* args[] = {&sys_arg, &worker_arg};
        start_kernel(p, args, "rk gateway");
      } else {
        workers += launch_group(p);
      }
    }
    return workers;
  }

  std::vector<std::uint32_t> scheduled_workers_of(std::uint32_t kind) const override {
    const std::lock_guard lock(kernels_mutex_);
    std::vector<std::uint32_t> entries;
    for (const launched_kernel& k : launched_)
      if (k.scheduled_kind == kind)
        for (std::uint32_t w = k.first_worker; w < k.first_worker + k.blocks; ++w) entries.push_back(w);
    return entries;
  }

  std::uint32_t launch_more(const system_view&, std::span<const worker_group> groups) override {
    const current_device on(device_);
    on.check(device_);
    // All or nothing: a kernel that started cannot be taken back, so one group (one kernel) per call.
    if (groups.size() != 1)
      throw error("CUDA backend: launch_more() starts one group of workers per call, not " +
                  std::to_string(groups.size()));
    const std::lock_guard lock(kernels_mutex_);
    std::vector<planned> plan{plan_for(groups.front())};
    const double demand = check_co_residency(plan, used_capacity_);
    used_capacity_ += demand;
    try {
      return launch_group(plan.front());
    } catch (...) {
      used_capacity_ = std::max(0.0, used_capacity_ - demand);
      throw;
    }
  }

  void release_workers(std::uint32_t first_worker, std::uint32_t count) noexcept override {
    const current_device on(device_);
    const std::lock_guard lock(kernels_mutex_);
    for (auto it = launched_.begin(); it != launched_.end();) {
      if (it->first_worker >= first_worker && it->first_worker + it->blocks <= first_worker + count) {
        // Its blocks exited; destroying the stream lets the grid finish and frees the stream afterwards.
        destroy_stream(it->stream, true);
        used_capacity_ -= it->demand;
        it = launched_.erase(it);
      } else {
        ++it;
      }
    }
    if (used_capacity_ < 0) used_capacity_ = 0;
  }

  void abandon_workers(std::uint32_t first_worker, std::uint32_t count) noexcept override {
    const std::lock_guard lock(kernels_mutex_);
    for (auto& k : launched_) {
      if (k.first_worker >= first_worker && k.first_worker + k.blocks <= first_worker + count) {
        used_capacity_ -= k.demand;
        k.demand = 0.0;
      }
    }
    if (used_capacity_ < 0) used_capacity_ = 0;
  }

  std::optional<backend_fault> poll_fault() override {
    const current_device on(device_);
    on.check(device_);
    const std::lock_guard lock(kernels_mutex_);
    return poll_fault_locked();
  }

  //! Once every kernel has exited, their streams are given back (destroyed, and no longer counted in the
  //! device ledger), so that a runtime kept after shutdown() holds no hardware queue; a fault seen on the
  //! way is kept for poll_fault().
  bool join(std::chrono::milliseconds timeout) noexcept override {
    const current_device on(device_);
    const wait_result r = wait_until(
        [&] {
          const std::lock_guard lock(kernels_mutex_);
          for (const auto& k : launched_)
            if (cudaStreamQuery(k.stream) == cudaErrorNotReady) return false;
          return true;
        },
        [] { return false; }, timeout_ns(timeout));
    if (r != wait_result::ready) {
      (void)cudaGetLastError();
      return false;
    }
    const std::lock_guard lock(kernels_mutex_);
    (void)poll_fault_locked();
    (void)cudaGetLastError();
    for (auto& k : launched_) destroy_stream(k.stream, true);
    launched_.clear();
    used_capacity_ = 0.0;
    return true;
  }

private:
  std::optional<backend_fault> poll_fault_locked() {
    if (fault_) return fault_;
    for (const auto& k : launched_) {
      const cudaError_t e = cudaStreamQuery(k.stream);
      if (e == cudaErrorNotReady) continue;
      if (e == cudaSuccess) {
        // Finished on its own: fine once terminate was requested, or when every block let go of a
        // retired actor (the host calls release_workers for it soon).
        if (terminate_requested() || all_exited(k)) continue;
        fault_ = backend_fault{k.where, "exited before terminate was requested", std::nullopt};
        return fault_;
      }
      // A device fault is sticky for the whole context: every stream reports it, so the stream checked
      // first says nothing about the culprit. The host names it from the device's records (trap_actor,
      // each worker's busy_actor).
      (void)cudaGetLastError();
      fault_ = backend_fault{"the GPU " + props_text(props_),
                             "a device fault (" + cuda_error_text(e) + ") stopped every kernel on it",
                             std::nullopt};
      return fault_;
    }
    return std::nullopt;
  }

  struct planned {
    const void* kernel;
    unsigned blocks;
    unsigned threads;
    std::string where;
    const worker_group* group; // null for the gateway
    std::uint32_t first_worker;
    double demand = 0.0; // set by check_co_residency
  };

  //! A non-blocking stream of this device, counted in the process's ledger (`kernel`: for a persistent
  //! kernel) until destroy_stream.
  cudaStream_t create_stream(bool kernel) {
    cudaStream_t stream = nullptr;
    RK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    device_ledger::count_streams(device_, 1, kernel);
    return stream;
  }
  void destroy_stream(cudaStream_t stream, bool kernel) noexcept {
    RK_CUDA_WARN(cudaStreamDestroy(stream));
    device_ledger::count_streams(device_, -1, kernel);
  }

  static planned plan_for(const worker_group& g) {
    if (g.scheduled)
      return {g.ops->cuda_scheduled_kernel,
              g.workers,
              g.ops->threads_per_worker,
              "scheduled actor kernel for handler '" + g.ops->name + "' (" + std::to_string(g.workers) +
                  " workers)",
              &g,
              g.params.first_worker};
    return {g.ops->cuda_kernel,
            g.workers,
            g.ops->threads_per_worker,
            "actor kernel for handler '" + g.ops->name + "' (actors: " + g.actors_description + ")",
            &g,
            g.params.first_worker};
  }

  std::uint32_t launch_group(const planned& p) {
    actor_kernel_params params = p.group->params;
    void* args[] = {&params};
    start_kernel(p, args, "rk " + p.group->ops->name);
    return p.blocks;
  }

  //! Launches one kernel on a new non-blocking stream named `stream_name` (a persistent kernel on an
  //! existing stream would never start behind the one already there).
  void start_kernel(const planned& p, void** args, const std::string& stream_name) {
    const cudaStream_t stream = create_stream(true); // counted before the launch: see reserve_local_memory
    launched_.push_back({stream, p.where, p.first_worker, p.blocks, p.demand,
                         p.group != nullptr && p.group->scheduled
                             ? std::optional<std::uint32_t>(p.group->params.kind)
                             : std::nullopt});
#if defined(RK_ENABLE_NVTX) && RK_ENABLE_NVTX
    nvtxNameCudaStreamA(stream, stream_name.c_str());
#else
    (void)stream_name;
#endif
    cudaError_t e = cudaLaunchKernel(p.kernel, dim3(p.blocks), dim3(p.threads), args, 0, stream);
    if (e == cudaSuccess) e = cudaPeekAtLastError();
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      // Nothing runs on it: left in launched_, its idle stream read as a kernel that exited on its own (a
      // fault), and it held a hardware queue until the runtime was destroyed.
      launched_.pop_back();
      destroy_stream(stream, true);
      throw error("launching the " + p.where + " failed: " + cuda_error_text(e));
    }
  }

  //! Forces the module holding `kernel` to load now (defeats lazy loading) and checks it can run here.
  cudaFuncAttributes load(const void* kernel, const std::string& where) const {
    cudaFuncAttributes attributes{};
    if (kernel == nullptr)
      throw error("the " + where +
                  " has no CUDA code: the translation unit that spawned or prepared it was not "
                  "compiled by nvcc");
    const cudaError_t e = cudaFuncGetAttributes(&attributes, kernel);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      throw error("the " + where + " cannot run on " + props_text(props_) + ": " + cuda_error_text(e) +
                  ". Build with CMAKE_CUDA_ARCHITECTURES including " + std::to_string(props_.major) +
                  std::to_string(props_.minor) + ". Nothing was launched.");
    }
    return attributes;
  }

  bool all_exited(const launched_kernel& k) const noexcept {
    if (host_workers_ == nullptr) return false;
    for (std::uint32_t w = k.first_worker; w < k.first_worker + k.blocks; ++w)
      if (cuda::atomic_ref<std::uint32_t, pcie_scope>(const_cast<std::uint32_t&>(host_workers_[w].exited))
              .load(cuda::std::memory_order_acquire) == 0)
        return false;
    return true;
  }

  bool terminate_requested() const noexcept {
    return host_control_ != nullptr &&
           cuda::atomic_ref<std::uint32_t, pcie_scope>(const_cast<std::uint32_t&>(host_control_->terminate))
                   .load(cuda::std::memory_order_acquire) != 0;
  }

  //! Each kernel k can hold at most per_sm_k * SMs blocks; a mix fits when the fractions of that capacity
  //! add up to at most 1 (each kernel's binding resource is then shared proportionally). Returns the
  //! fraction `plan` needs; throws (nothing launched) if it does not fit beside `already_used`, if it needs
  //! more hardware queues than are free, or more local memory than can be reserved now (device_ledger.hpp).
  //! start() also waits for every block to check in, which catches what this estimate cannot (other work).
  double check_co_residency(std::vector<planned>& plan, double already_used) {
    // Streams, not blocks: each persistent kernel needs a hardware work queue of its own (device_ledger.hpp).
    // The queues (at most 32) bind long before the 128 resident grids a device can run.
    const int queues = device_ledger::hardware_queues();
    const int streams = device_ledger::streams_on(device_);
    if (streams + static_cast<int>(plan.size()) > queues)
      throw error(
          "the GPU " + props_text(props_) + " gives this process " + std::to_string(queues) +
          " hardware work queues (CUDA_DEVICE_MAX_CONNECTIONS) and ringkernel runtimes hold " +
          std::to_string(streams) +
          " streams on it (a copy stream per runtime, one per persistent kernel: the gateway, one per "
          "scheduled handler type, one per batch of dedicated actors spawned after start); this "
          "launch needs " +
          std::to_string(plan.size()) +
          " more, and a persistent kernel on a shared queue would never start. Spawn dedicated actors "
          "in batches (spawn_many), before start(), or as scheduled actors; set "
          "CUDA_DEVICE_MAX_CONNECTIONS=32 (the most) if the program set fewer. Nothing was launched.");
    double demand = 0.0;
    std::size_t local_bytes = 0; // the most local memory per thread any kernel of the plan needs
    const planned* largest_frame = nullptr;
    std::ostringstream breakdown;
    for (planned& p : plan) {
      const cudaFuncAttributes attributes = load(p.kernel, p.where);
      if (static_cast<int>(p.threads) > attributes.maxThreadsPerBlock)
        throw error("the " + p.where + " needs " + std::to_string(p.threads) +
                    " threads per worker but the kernel allows at most " +
                    std::to_string(attributes.maxThreadsPerBlock) +
                    "; lower threads_per_worker. Nothing was launched.");
      int per_sm = 0;
      RK_CUDA_CHECK(
          cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, p.kernel, static_cast<int>(p.threads), 0));
      const double capacity = static_cast<double>(per_sm) * props_.multiProcessorCount;
      if (capacity <= 0)
        throw error("the " + p.where + " cannot be resident at all with " + std::to_string(p.threads) +
                    " threads per worker. Nothing was launched.");
      p.demand = p.blocks / capacity;
      if (largest_frame == nullptr || attributes.localSizeBytes > local_bytes) {
        local_bytes = attributes.localSizeBytes;
        largest_frame = &p;
      }
      demand += p.demand;
      breakdown << "\n  " << p.where << ": " << p.blocks << " workers, at most " << per_sm << " per SM x "
                << props_.multiProcessorCount << " SMs";
    }
    if (already_used + demand > 1.0 + 1e-9) {
      std::ostringstream message;
      message.precision(1);
      message << std::fixed << "the actor kernels cannot all be co-resident on " << props_text(props_)
              << ": they need " << (already_used + demand) * 100.0
              << "% of the GPU's resident-block capacity (the limit on blocks per SM for their register, "
                 "shared-memory and thread use)";
      if (already_used > 0) message << " (" << already_used * 100.0 << "% is already running)";
      message << "." << breakdown.str()
              << "\nSpawn fewer actors or use fewer threads_per_worker. Nothing was launched.";
      throw error(message.str());
    }
    const std::string refusal = device_ledger::reserve_local_memory(device_, local_bytes);
    if (!refusal.empty())
      throw error("the " + largest_frame->where + " cannot start on " + props_text(props_) + ": " + refusal +
                  ". Nothing was launched.");
    return demand;
  }

  int device_;
  cudaDeviceProp props_{};
  cudaStream_t copy_stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr; //!< this runtime's device memory (null: the device has no memory pools)
  //! launched_, used_capacity_ and fault_: host threads launch late workers, release exited ones and poll
  //! for faults at once (a spawn, the grace-period collector, a receive() waiting).
  mutable std::mutex kernels_mutex_;
  std::vector<launched_kernel> launched_;
  double used_capacity_ = 0.0; //!< fraction of resident-block capacity taken by launched kernels
  const control_block* host_control_ = nullptr;
  const worker_status* host_workers_ = nullptr;
  std::optional<backend_fault> fault_;
};

} // namespace

bool cuda_device_usable(int device, std::string& why) noexcept {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    why = cuda_error_text(e);
    return false;
  }
  if (count == 0) {
    why = "no CUDA devices";
    return false;
  }
  if (device < 0 || device >= count) {
    why = "device " + std::to_string(device) + " does not exist (" + std::to_string(count) + " devices)";
    return false;
  }
  cudaDeviceProp p{};
  e = cudaGetDeviceProperties(&p, device);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    why = cuda_error_text(e);
    return false;
  }
  if (p.major < 7) {
    why = props_text(p) + " is older than compute capability 7.0, which ringkernel needs";
    return false;
  }
  if (!p.canMapHostMemory || !p.unifiedAddressing) {
    why = props_text(p) + " cannot map pinned host memory with unified addressing";
    return false;
  }
  why = props_text(p);
  return true;
}

std::unique_ptr<backend_impl> make_cuda_backend(const runtime_options& options, std::string& description) {
  return std::make_unique<cuda_backend>(options, description);
}

} // namespace rk::detail
