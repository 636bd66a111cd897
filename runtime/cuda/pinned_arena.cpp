// The process-wide pinned-memory arena (see pinned_arena.hpp).

#include "pinned_arena.hpp"

#include <ringkernel/runtime/cuda/check.hpp>

#include <cuda_runtime_api.h>

#include <bit>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace rk::detail::pinned_arena {
namespace {

constexpr std::size_t smallest_class = 4096;

struct arena_state {
  std::mutex mutex;
  std::map<std::size_t, std::vector<void*>> free_by_class; // size class -> blocks not in use
  std::map<void*, std::size_t> in_use;                     // block -> its size class
  std::size_t live_backends = 0;
};

// Never destroyed: a runtime destroyed during static destruction may still give blocks back.
arena_state& state() noexcept {
  static auto* s = new arena_state;
  return *s;
}

std::size_t size_class(std::size_t bytes) noexcept {
  return bytes <= smallest_class ? smallest_class : std::bit_ceil(bytes);
}

} // namespace

void* acquire(std::size_t bytes) {
  const std::size_t cls = size_class(bytes);
  void* host = nullptr;
  {
    arena_state& s = state();
    const std::lock_guard lock(s.mutex);
    auto it = s.free_by_class.find(cls);
    if (it != s.free_by_class.end() && !it->second.empty()) {
      host = it->second.back();
      it->second.pop_back();
    }
  }
  if (host == nullptr) {
    const cudaError_t e = cudaHostAlloc(&host, cls, cudaHostAllocMapped | cudaHostAllocPortable);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      throw error("CUDA backend: allocating " + std::to_string(cls) +
                  " bytes of pinned mapped host memory failed: " + cuda_error_text(e) +
                  "; reduce the host rings (runtime_options::host_ring) or free host memory");
    }
  }
  std::memset(host, 0, cls);
  arena_state& s = state();
  const std::lock_guard lock(s.mutex);
  s.in_use.emplace(host, cls);
  return host;
}

void release(void* host) noexcept {
  arena_state& s = state();
  const std::lock_guard lock(s.mutex);
  const auto it = s.in_use.find(host);
  if (it == s.in_use.end()) return;
  const std::size_t cls = it->second;
  s.in_use.erase(it);
  if (s.live_backends == 0) { // no runtime of ours runs kernels: nothing of ours to wait behind
    RK_CUDA_WARN(cudaFreeHost(host));
    return;
  }
  s.free_by_class[cls].push_back(host);
}

void backend_created() noexcept {
  arena_state& s = state();
  const std::lock_guard lock(s.mutex);
  ++s.live_backends;
}

void backend_destroyed() noexcept {
  arena_state& s = state();
  const std::lock_guard lock(s.mutex);
  if (s.live_backends > 0) --s.live_backends;
  if (s.live_backends != 0) return;
  for (auto& [cls, blocks] : s.free_by_class)
    for (void* host : blocks) RK_CUDA_WARN(cudaFreeHost(host));
  s.free_by_class.clear();
}

usage current_usage() noexcept {
  arena_state& s = state();
  const std::lock_guard lock(s.mutex);
  usage u;
  u.live_backends = s.live_backends;
  u.in_use_blocks = s.in_use.size();
  for (const auto& [cls, blocks] : s.free_by_class) {
    u.cached_blocks += blocks.size();
    u.cached_bytes += cls * blocks.size();
  }
  return u;
}

} // namespace rk::detail::pinned_arena
