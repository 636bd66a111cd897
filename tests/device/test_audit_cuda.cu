// The audit ring on a GPU: device threads emit into a ring in pinned, mapped memory (claim counter and
// overflow counter in device memory) while the host drain empties it. Label `gpu`; skips without a device.
#include <ringkernel/device/audit.cuh>
#include <ringkernel/host/audit.hpp>
#include <ringkernel/host/runtime.hpp>
#include <ringkernel/runtime/cuda/check.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cuda_runtime.h>
#include <filesystem>
#include <unistd.h>
#include <vector>

namespace {

__global__ void emit_records(rk::audit_channel channel, std::uint32_t per_thread, std::uint8_t* delivered) {
  const std::uint32_t thread = blockIdx.x * blockDim.x + threadIdx.x;
  for (std::uint32_t k = 0; k < per_thread; ++k) {
    const std::uint64_t id = std::uint64_t{thread} * per_thread + k;
    rk::audit_record r;
    r.event = rk::audit_event::cross_tenant_attempt;
    r.level = rk::audit_level::error;
    r.time = {rk::physical_clock_ns(), 0, 0};
    r.tenant = thread % 3;
    r.other_tenant = thread % 3 + 1;
    r.actor = thread;
    r.detail = static_cast<std::uint32_t>(rk::status::tenant_mismatch);
    r.value = id;
    delivered[id] = rk::emit_audit(channel, r) == rk::status::delivered ? 1 : 0;
  }
}

//! Host-side owner of one audit ring laid out as the runtime lays out the egress ring.
class cuda_audit_ring {
public:
  explicit cuda_audit_ring(std::uint32_t capacity) : geometry_(rk::audit_ring_geometry(capacity)) {
    RK_CUDA_CHECK(
        cudaHostAlloc(&h_ring_, geometry_.total_bytes(), cudaHostAllocMapped | cudaHostAllocPortable));
    rk::init_ring_image(h_ring_, geometry_);
    void* d_ring = nullptr;
    RK_CUDA_CHECK(cudaHostGetDevicePointer(&d_ring, h_ring_, 0));
    // One allocation for the two device-side words, each on its own line: [tail][overflow].
    RK_CUDA_CHECK(cudaMalloc(&d_counters_, 2 * rk::ring_geometry::cursor_bytes));
    RK_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
    // Zeroed on the stream the test copies on, and finished before any kernel (launched on a non-blocking
    // stream, which does not wait for the legacy stream) can read the words.
    RK_CUDA_CHECK(cudaMemsetAsync(d_counters_, 0, 2 * rk::ring_geometry::cursor_bytes, copy_stream_));
    RK_CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
    channel_.ring = rk::make_ring_view(d_ring, geometry_);
    channel_.ring.tail = d_tail();
    channel_.overflow = d_overflow();
    host_view_ = rk::make_ring_view(h_ring_, geometry_);
    host_view_.tail = nullptr; // the host consumer never touches the claim counter
  }
  ~cuda_audit_ring() {
    RK_CUDA_WARN(cudaStreamDestroy(copy_stream_));
    RK_CUDA_WARN(cudaFree(d_counters_));
    RK_CUDA_WARN(cudaFreeHost(h_ring_));
  }

  const rk::audit_channel& channel() const { return channel_; }
  const rk::ring_view& host_view() const { return host_view_; }
  //! What the runtime's CUDA backend does in copy_from_device: a copy on a non-blocking stream, so it
  //! does not wait for running kernels.
  std::uint64_t read(const std::uint64_t* d_word) const {
    std::uint64_t value = 0;
    RK_CUDA_CHECK(cudaMemcpyAsync(&value, d_word, sizeof(value), cudaMemcpyDeviceToHost, copy_stream_));
    RK_CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
    return value;
  }
  std::uint64_t* d_tail() const { return static_cast<std::uint64_t*>(d_counters_); }
  std::uint64_t* d_overflow() const {
    return reinterpret_cast<std::uint64_t*>(static_cast<std::byte*>(d_counters_) +
                                            rk::ring_geometry::cursor_bytes);
  }

private:
  rk::ring_geometry geometry_;
  void* h_ring_ = nullptr;
  void* d_counters_ = nullptr;
  cudaStream_t copy_stream_ = nullptr;
  rk::audit_channel channel_;
  rk::ring_view host_view_;
};

TEST(AuditCuda, DeviceRecordsArriveExactlyOnceAndLossesAreReported) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (!probe.usable) GTEST_SKIP() << "no usable CUDA device: " << probe.description;

  constexpr std::uint32_t blocks = 64, threads = 128, per_thread = 8;
  constexpr std::uint64_t total = std::uint64_t{blocks} * threads * per_thread;
  cuda_audit_ring ring(1024);
  const std::filesystem::path log =
      std::filesystem::temp_directory_path() / ("rk_audit_cuda_" + std::to_string(::getpid()) + ".jsonl");

  std::vector<std::uint64_t> device_values; // drain thread only until stop() joined it
  std::uint64_t lost_reported = 0;
  auto collect = std::make_shared<rk::audit_callback_sink>([&](const rk::audit_entry& e) {
    if (e.record.event == rk::audit_event::cross_tenant_attempt) device_values.push_back(e.record.value);
    if (e.record.event == rk::audit_event::audit_overflow) lost_reported += e.record.value;
  });
  auto file = std::make_shared<rk::audit_file_sink>(log);
  rk::audit_drain_options options;
  options.overflow_check_interval = std::chrono::milliseconds(1);
  options.read_claimed = [&] { return ring.read(ring.d_tail()); };
  rk::audit_drain drain(
      ring.host_view(), [&] { return ring.read(ring.d_overflow()); }, {collect, file}, options);

  std::uint8_t* d_delivered = nullptr;
  ASSERT_EQ(cudaMalloc(&d_delivered, total), cudaSuccess);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  emit_records<<<blocks, threads, 0, stream>>>(ring.channel(), per_thread, d_delivered);
  ASSERT_EQ(cudaPeekAtLastError(), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  std::vector<std::uint8_t> delivered(total);
  ASSERT_EQ(cudaMemcpy(delivered.data(), d_delivered, total, cudaMemcpyDeviceToHost), cudaSuccess);
  ASSERT_EQ(cudaFree(d_delivered), cudaSuccess);
  ASSERT_EQ(cudaStreamDestroy(stream), cudaSuccess);

  const rk::audit_drain_stats stats = drain.stop();
  std::vector<std::uint64_t> expected;
  for (std::uint64_t id = 0; id < total; ++id)
    if (delivered[id]) expected.push_back(id);
  const std::uint64_t refused = total - expected.size();
  std::sort(device_values.begin(), device_values.end());
  EXPECT_EQ(device_values, expected) << "every accepted record exactly once";
  EXPECT_EQ(ring.read(ring.d_overflow()), refused);
  EXPECT_EQ(lost_reported, refused);
  EXPECT_TRUE(stats.complete);
  EXPECT_EQ(stats.sink_failures + stats.reader_failures, 0u) << stats.last_failure;
  const rk::audit_verify_result v = rk::verify_audit_log(log);
  EXPECT_TRUE(v.intact()) << "line " << v.bad_line << ": " << v.reason;
  std::filesystem::remove(log);
  RecordProperty("records_lost", std::to_string(refused));
}

} // namespace
