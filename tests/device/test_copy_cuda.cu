// Slot copies on a GPU (copy.cuh): every source alignment 0..15 and length 0..200 arrives byte for byte,
// the destination is written in whole words up to the next 4-byte boundary and not beyond, and headers
// and audit-sized records move as 16-byte words. Label `gpu`; skips without a device.
#include <ringkernel/device/detail/copy.cuh>
#include <ringkernel/device/envelope.cuh>
#include <ringkernel/host/runtime.hpp>
#include <ringkernel/runtime/cuda/check.hpp>

#include <gtest/gtest.h>

#include <cuda_runtime.h>
#include <vector>

namespace {

constexpr std::uint32_t max_offset = 16;
constexpr std::uint32_t max_length = 200;
constexpr std::uint32_t slot_room = 256; //!< bytes of destination per case
constexpr unsigned char sentinel = 0xA5;

//! One block per source offset, one thread per length: thread `length` copies `length` bytes from
//! source + offset into its own 256-byte, 16-byte aligned destination.
__global__ void copy_cases(const std::byte* source, std::byte* destinations) {
  const std::uint32_t offset = blockIdx.x;
  const std::uint32_t length = threadIdx.x;
  std::byte* to = destinations + (std::size_t{offset} * (max_length + 1) + length) * slot_room;
  rk::detail::copy_to_slot(to, source + offset, length);
}

__global__ void header_round_trip(const rk::envelope* in, std::byte* slot, rk::envelope* out) {
  rk::detail::store_words(slot, *in);
  *out = rk::detail::load_words<rk::envelope>(slot);
}

TEST(SlotCopyCuda, EveryAlignmentAndLengthArrivesAndNothingBeyondTheLastWordIsWritten) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (!probe.usable) GTEST_SKIP() << "no usable CUDA device: " << probe.description;
  std::vector<std::byte> source(max_offset + max_length + 16);
  for (std::size_t i = 0; i < source.size(); ++i) source[i] = static_cast<std::byte>(i * 7 + 3);
  const std::size_t cases = std::size_t{max_offset} * (max_length + 1);
  std::vector<std::byte> result(cases * slot_room, static_cast<std::byte>(sentinel));
  std::byte* d_source = nullptr;
  std::byte* d_result = nullptr;
  RK_CUDA_CHECK(cudaMalloc(&d_source, source.size()));
  RK_CUDA_CHECK(cudaMalloc(&d_result, result.size()));
  RK_CUDA_CHECK(cudaMemcpy(d_source, source.data(), source.size(), cudaMemcpyHostToDevice));
  RK_CUDA_CHECK(cudaMemcpy(d_result, result.data(), result.size(), cudaMemcpyHostToDevice));
  copy_cases<<<max_offset, max_length + 1>>>(d_source, d_result);
  RK_CUDA_CHECK(cudaGetLastError());
  RK_CUDA_CHECK(cudaMemcpy(result.data(), d_result, result.size(), cudaMemcpyDeviceToHost));
  for (std::uint32_t offset = 0; offset < max_offset; ++offset)
    for (std::uint32_t length = 0; length <= max_length; ++length) {
      const std::byte* got = result.data() + (std::size_t{offset} * (max_length + 1) + length) * slot_room;
      for (std::uint32_t i = 0; i < length; ++i)
        ASSERT_EQ(got[i], source[offset + i])
            << "offset " << offset << ", length " << length << ", byte " << i;
      const std::uint32_t written = (length + 3) / 4 * 4;
      for (std::uint32_t i = written; i < slot_room; ++i)
        ASSERT_EQ(got[i], static_cast<std::byte>(sentinel))
            << "offset " << offset << ", length " << length << ": byte " << i << " written";
    }
  rk::envelope in;
  in.tenant = 0x1122334455667788ull;
  in.correlation_id = 42;
  in.type_id = 7;
  in.source = 3;
  in.destination = 9;
  in.payload_length = 100;
  in.flags = 0x0102;
  in.priority = 3;
  in.hops = 5;
  in.tenant_slot = 11;
  in.route_key = 0xDEADBEEFull;
  rk::envelope* d_in = nullptr;
  rk::envelope* d_out = nullptr;
  std::byte* d_slot = nullptr;
  RK_CUDA_CHECK(cudaMalloc(&d_in, sizeof in));
  RK_CUDA_CHECK(cudaMalloc(&d_out, sizeof in));
  RK_CUDA_CHECK(cudaMalloc(&d_slot, 64));
  RK_CUDA_CHECK(cudaMemcpy(d_in, &in, sizeof in, cudaMemcpyHostToDevice));
  header_round_trip<<<1, 1>>>(d_in, d_slot, d_out);
  RK_CUDA_CHECK(cudaGetLastError());
  rk::envelope out;
  std::byte slot[64];
  RK_CUDA_CHECK(cudaMemcpy(&out, d_out, sizeof out, cudaMemcpyDeviceToHost));
  RK_CUDA_CHECK(cudaMemcpy(slot, d_slot, sizeof slot, cudaMemcpyDeviceToHost));
  EXPECT_EQ(std::memcmp(&out, &in, sizeof in), 0);
  EXPECT_EQ(std::memcmp(slot, &in, sizeof in), 0) << "the slot holds the envelope's exact bytes";
  for (void* p : {static_cast<void*>(d_source), static_cast<void*>(d_result), static_cast<void*>(d_in),
                  static_cast<void*>(d_out), static_cast<void*>(d_slot)})
    RK_CUDA_CHECK(cudaFree(p));
}

} // namespace
