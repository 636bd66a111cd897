// Runtime behaviour on the CUDA backend: the same cases as the CPU backend (label `gpu`; each test skips
// with the reason when no usable device is present).
#include "tenancy_cases.hpp"

namespace rk_cases {

INSTANTIATE_TEST_SUITE_P(cuda, RuntimeCases, ::testing::Values(rk::backend::cuda), backend_name);
INSTANTIATE_TEST_SUITE_P(cuda, RoutingCases, ::testing::Values(rk::backend::cuda), backend_name);
INSTANTIATE_TEST_SUITE_P(cuda, TenancyCases, ::testing::Values(rk::backend::cuda), backend_name);

//! A worker as wide as a block can be: few fit per SM, so many of them cannot be co-resident.
struct wide_worker {
  static constexpr std::uint32_t threads_per_worker = 1024;
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx&, rk::no_state&, const rk::message&) {}
};

TEST(CudaBackend, RefusesToStartKernelsThatCannotBeCoResident) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (!probe.usable) GTEST_SKIP() << "no usable CUDA device: " << probe.description;
  rk::runtime_options o;
  o.backend = rk::backend::cuda;
  o.announce_backend = false;
  o.max_actors = 4096;
  {
    rk::runtime rt(o);
    // An SM holds at most 2048 threads, so at most 2 of these per SM; 3 per SM cannot all be resident.
    int sms = 0;
    ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
    for (int i = 0; i < 3 * sms; ++i)
      rt.spawn<wide_worker>(std::string("w").append(std::to_string(i)), small_mailbox(2, 128));
    try {
      rt.start();
      ADD_FAILURE() << "start() must refuse";
    } catch (const rk::error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot all be co-resident"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("Nothing was launched"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(rt.running());
  }
  // Nothing was left running: a fresh runtime works normally.
  rk::runtime rt(o);
  const auto a = rt.spawn<echo>("echo");
  rt.start();
  EXPECT_EQ(rt.send_wait(a, msg_ping, {}, 5s), rk::status::delivered);
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST(CudaBackend, ReleasesDeviceMemoryAcrossRuntimes) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (!probe.usable) GTEST_SKIP() << "no usable CUDA device: " << probe.description;
  rk::runtime_options o;
  o.backend = rk::backend::cuda;
  o.announce_backend = false;
  auto cycle = [&] {
    rk::runtime rt(o);
    for (int i = 0; i < 8; ++i)
      rt.spawn<echo>(std::string("e").append(std::to_string(i)), small_mailbox(1024, 1024));
    rt.start();
    EXPECT_TRUE(rt.shutdown().drained);
  };
  cycle(); // first runtime initialises the context
  std::size_t free_before = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_before, &total), cudaSuccess);
  for (int i = 0; i < 20; ++i) cycle();
  std::size_t free_after = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_after, &total), cudaSuccess);
  // 20 cycles x 8 MiB of mailboxes would be 160 MiB if leaked; allow allocator slack of 16 MiB.
  EXPECT_LE(free_before - std::min(free_before, free_after), std::size_t{16} << 20);
}

} // namespace rk_cases
