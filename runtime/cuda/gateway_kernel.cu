// The device gateway kernel: one block, thread 0 forwards host messages into mailboxes.

#include <ringkernel/device/gateway.cuh>

namespace rk {
//! Named for Nsight: shows as `rk::gateway_kernel`.
__global__ void gateway_kernel(detail::system_view sys, std::uint32_t worker_index) {
  detail::device_gateway_loop(sys, worker_index);
}
} // namespace rk

namespace rk::detail {
const void* gateway_kernel_address() noexcept {
  return reinterpret_cast<const void*>(&rk::gateway_kernel);
}
} // namespace rk::detail
