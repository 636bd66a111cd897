#pragma once
// Plumbing shared by the GPU benchmarks: the --backend flag, the "skipped" line when no CUDA device is
// usable, the GPU's name, checked CUDA calls and event timing.
//
// Every CUDA call goes through RK_CUDA_CHECK (throws rk::error naming the call, file and line) and every
// kernel launch is followed by RK_BENCH_CHECK_LAUNCH() (cudaPeekAtLastError).

#include <ringkernel/ringkernel.hpp>
#include <ringkernel/runtime/cuda/check.hpp>

#include "common/bench_util.hpp"

#include <cuda_runtime_api.h>

#include <cstring>
#include <string>

#define RK_BENCH_CHECK_LAUNCH() RK_CUDA_CHECK(cudaPeekAtLastError())

namespace rk::bench {

//! Which side of a GPU benchmark to run. `cuda`: ringkernel on the CUDA backend beside the CUDA baselines
//! (skips without a device). `cpu`: the ringkernel side only, on the CPU backend, labelled CPU.
enum class target { cuda, cpu };

inline const char* target_name(target t) {
  return t == target::cuda ? "cuda" : "cpu";
}

//! Adds --backend cuda|cpu, storing into `out`; its help names `out`'s value on entry as the default.
inline void add_target_flag(CLI::App& app, target& out) {
  const std::string help = std::string("cuda or cpu (default: ") + target_name(out) + ")";
  app.add_option_function<std::string>(
      "--backend",
      [&out](const std::string& v) {
        if (v == "cuda") {
          out = target::cuda;
        } else if (v == "cpu") {
          out = target::cpu;
        } else {
          throw CLI::ValidationError("--backend", "must be cuda or cpu (got '" + v + "')");
        }
      },
      help);
}

//! Prints the one-line skip notice (or its JSON form) for `benchmark`.
inline void print_skipped(const common_args& args, const char* benchmark, const std::string& reason) {
  if (args.json) {
    std::printf("%s\n", json_object()
                            .text("benchmark", benchmark)
                            .text("backend", "cuda")
                            .boolean("skipped", true)
                            .text("reason", "no usable CUDA device (" + reason + ")")
                            .str()
                            .c_str());
  } else {
    std::printf("skipped: no usable CUDA device (%s)\n", reason.c_str());
  }
}

//! "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 1980 MHz, driver 13.0)"
inline std::string gpu_description(int device = 0) {
  cudaDeviceProp p{};
  RK_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  int driver = 0;
  RK_CUDA_CHECK(cudaDriverGetVersion(&driver));
  int clock_khz = 0;
  RK_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device));
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs, " + std::to_string(clock_khz / 1000) +
         " MHz, driver " + std::to_string(driver / 1000) + "." + std::to_string(driver % 1000 / 10) + ")";
}

//! A pair of CUDA events on one stream; elapsed milliseconds between record_start and record_stop.
class event_timer {
public:
  event_timer() {
    RK_CUDA_CHECK(cudaEventCreate(&start_));
    RK_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~event_timer() {
    RK_CUDA_WARN(cudaEventDestroy(start_));
    RK_CUDA_WARN(cudaEventDestroy(stop_));
  }
  event_timer(const event_timer&) = delete;
  event_timer& operator=(const event_timer&) = delete;
  void record_start(cudaStream_t s) { RK_CUDA_CHECK(cudaEventRecord(start_, s)); }
  void record_stop(cudaStream_t s) { RK_CUDA_CHECK(cudaEventRecord(stop_, s)); }
  float elapsed_ms() {
    RK_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    RK_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms;
  }

private:
  cudaEvent_t start_ = nullptr;
  cudaEvent_t stop_ = nullptr;
};

//! Owning device buffer of T (cudaMalloc / cudaFree).
template <class T>
class device_buffer {
public:
  explicit device_buffer(std::size_t count) : count_(count) {
    RK_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), sizeof(T) * count));
  }
  ~device_buffer() { RK_CUDA_WARN(cudaFree(data_)); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  T* get() const noexcept { return data_; }
  std::size_t size() const noexcept { return count_; }

private:
  T* data_ = nullptr;
  std::size_t count_ = 0;
};

//! Owning pinned host buffer of T (cudaHostAlloc / cudaFreeHost).
template <class T>
class pinned_buffer {
public:
  explicit pinned_buffer(std::size_t count) : count_(count) {
    RK_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&data_), sizeof(T) * count, cudaHostAllocDefault));
    std::memset(static_cast<void*>(data_), 0, sizeof(T) * count);
  }
  ~pinned_buffer() { RK_CUDA_WARN(cudaFreeHost(data_)); }
  pinned_buffer(const pinned_buffer&) = delete;
  pinned_buffer& operator=(const pinned_buffer&) = delete;
  T* get() const noexcept { return data_; }
  std::size_t size() const noexcept { return count_; }

private:
  T* data_ = nullptr;
  std::size_t count_ = 0;
};

#if defined(__CUDACC__)
//! Smallest non-zero step of %globaltimer seen by one thread over `reads` back-to-back reads: the device
//! clock's resolution, which bounds how finely the device-clock latencies can be resolved.
__global__ void globaltimer_resolution_kernel(std::uint64_t* out, std::uint32_t reads) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  std::uint64_t best = ~std::uint64_t{0};
  std::uint64_t last = rk::physical_clock_ns();
  for (std::uint32_t i = 0; i < reads; ++i) {
    const std::uint64_t now = rk::physical_clock_ns();
    if (now != last) {
      if (now - last < best) best = now - last;
      last = now;
    }
  }
  *out = best;
}

inline std::uint64_t measure_globaltimer_resolution_ns() {
  device_buffer<std::uint64_t> d(1);
  globaltimer_resolution_kernel<<<1, 1>>>(d.get(), 1u << 20);
  RK_BENCH_CHECK_LAUNCH();
  std::uint64_t v = 0;
  RK_CUDA_CHECK(cudaMemcpy(&v, d.get(), sizeof v, cudaMemcpyDeviceToHost));
  return v;
}
#endif

} // namespace rk::bench
