// Process-wide counts of what ringkernel's CUDA backends hold on each device (see device_ledger.hpp).

#include "device_ledger.hpp"

#include <ringkernel/runtime/cuda/check.hpp>

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <map>
#include <mutex>

namespace rk::detail::device_ledger {

namespace {

constexpr int driver_default_queues = 8;
constexpr int most_queues = 32;

// Before main(), so before any CUDA context of the process exists: ask for every hardware queue unless the
// program chose a number itself (setenv's last argument 0 keeps an existing value).
[[maybe_unused]] const bool queues_requested = [] {
  (void)::setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0);
  return true;
}();

struct holdings {
  int streams = 0;        //!< copy streams and kernel streams
  int kernel_streams = 0; //!< streams with a persistent kernel (launched, not yet destroyed)
};

std::mutex ledger_mutex;
std::map<int, holdings>& ledger() {
  static std::map<int, holdings> by_device;
  return by_device;
}

} // namespace

int hardware_queues() noexcept {
  const char* text = std::getenv("CUDA_DEVICE_MAX_CONNECTIONS");
  if (text == nullptr || *text == '\0') return driver_default_queues;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < 1) return driver_default_queues;
  return value > most_queues ? most_queues : static_cast<int>(value);
}

int streams_on(int device) noexcept {
  const std::lock_guard lock(ledger_mutex);
  return ledger()[device].streams;
}

void count_streams(int device, int count, bool kernel) noexcept {
  const std::lock_guard lock(ledger_mutex);
  holdings& h = ledger()[device];
  h.streams += count;
  if (kernel) h.kernel_streams += count;
}

std::string reserve_local_memory(int device, std::size_t bytes) {
  const std::lock_guard lock(ledger_mutex); // no other backend launches on the device meanwhile
  std::size_t reserved = 0;
  RK_CUDA_CHECK(cudaDeviceGetLimit(&reserved, cudaLimitStackSize));
  if (bytes <= reserved) return {};
  if (ledger()[device].kernel_streams > 0)
    return "it needs " + std::to_string(bytes) +
           " bytes of local memory per thread (stack frame and local "
           "arrays) and the device reserves " +
           std::to_string(reserved) +
           "; the driver grows the reservation only when no kernel runs, and persistent kernels of a "
           "ringkernel runtime run now. Spawn an actor of this handler type before the first runtime on "
           "the device starts, raise cudaLimitStackSize (cudaDeviceSetLimit) before that, or make the "
           "handler's local arrays smaller";
  RK_CUDA_CHECK(cudaDeviceSetLimit(cudaLimitStackSize, bytes));
  return {};
}

} // namespace rk::detail::device_ledger
