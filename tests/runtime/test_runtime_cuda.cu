// Runtime behaviour on the CUDA backend: the same cases as the CPU backend (label `gpu`; each test skips
// with the reason when no usable device is present).
#include "tenancy_cases.hpp"

#include <cstdio>
#include <cstdlib>
#include <future>

namespace rk_cases {

INSTANTIATE_TEST_SUITE_P(cuda, RuntimeCases, both_modes(rk::backend::cuda), backend_name);
INSTANTIATE_TEST_SUITE_P(cuda, RoutingCases, both_modes(rk::backend::cuda), backend_name);
INSTANTIATE_TEST_SUITE_P(cuda, TenancyCases, both_modes(rk::backend::cuda), backend_name);

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

// A device runs at most 128 grids at once; each dedicated actor spawned after start() is one more grid, so
// the 129th kernel is refused up front, naming that limit, instead of queueing forever.
TEST(CudaBackend, RefusesTheKernelBeyondTheResidentGridLimit) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (!probe.usable) GTEST_SKIP() << "no usable CUDA device: " << probe.description;
  rk::runtime_options o;
  o.backend = rk::backend::cuda;
  o.announce_backend = false;
  o.max_actors = 1024;
  rk::runtime rt(o);
  rk::actor_options dedicated = small_mailbox(2, 128);
  dedicated.dedicated_worker = true;
  rt.spawn<echo>("first", dedicated);
  rt.start(); // the gateway and one dedicated grid
  int spawned = 0;
  std::string refusal;
  for (int i = 0; i < 200 && refusal.empty(); ++i) {
    try {
      rt.spawn<echo>(std::string("late").append(std::to_string(i)), dedicated);
      ++spawned;
    } catch (const rk::error& e) {
      refusal = e.what();
    }
  }
  // 128 minus the gateway, the first actor's grid and a scheduled pool if one was started for echo.
  EXPECT_GE(spawned, 125) << refusal;
  EXPECT_LE(spawned, 126) << refusal;
  EXPECT_NE(refusal.find("at most 128 kernels at once"), std::string::npos) << refusal;
  EXPECT_TRUE(rt.shutdown().drained);
}

// A second runtime built, used and destroyed while another one's persistent kernels run: nothing in its
// life may wait for the whole device (cudaMalloc, cudaFree and cudaDeviceSynchronize would, for ever). It
// lives on another thread under a 60 s deadline, so a regression fails here instead of hanging.
TEST(CudaBackend, ASecondRuntimeComesAndGoesWhileTheFirstRuns) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (!probe.usable) GTEST_SKIP() << "no usable CUDA device: " << probe.description;
  rk::runtime_options o;
  o.backend = rk::backend::cuda;
  o.announce_backend = false;
  rk::runtime first(o);
  const auto a = first.spawn<echo>("a");
  first.start();
  auto second_life = std::async(std::launch::async, [&o] {
    rk::runtime second(o);
    const auto b = second.spawn<echo>("b");
    second.start();
    const rk::status st = second.send_wait(b, msg_ping, {}, 5s);
    (void)second.shutdown();
    return st;
  });
  if (second_life.wait_for(60s) != std::future_status::ready) {
    std::fprintf(stderr, "a second runtime did not come and go within 60 s beside a running one: an "
                         "allocation or free waited for the first runtime's kernels\n");
    std::_Exit(1); // the blocked thread cannot be joined
  }
  EXPECT_EQ(second_life.get(), rk::status::delivered);
  EXPECT_EQ(first.send_wait(a, msg_ping, {}, 5s), rk::status::delivered) << "the first runtime still runs";
  EXPECT_TRUE(first.shutdown().drained);
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

//! Each runtime keeps its own device whatever device the calling thread has made current, and leaves the
//! caller's current device as it was.
TEST(CudaBackend, EachRuntimeUsesItsOwnDeviceFromAnyThread) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 2) {
    (void)cudaGetLastError();
    GTEST_SKIP() << "needs two CUDA devices (found " << devices << ")";
  }
  for (int d = 0; d < 2; ++d) {
    const rk::device_probe probe = rk::probe_cuda_device(d);
    if (!probe.usable) GTEST_SKIP() << "device " << d << " is not usable: " << probe.description;
  }
  std::vector<std::unique_ptr<rk::runtime>> runtimes;
  std::vector<actor_index> echoes;
  for (int d = 0; d < 2; ++d) {
    rk::runtime_options o;
    o.backend = rk::backend::cuda;
    o.cuda_device = d;
    o.announce_backend = false;
    ASSERT_EQ(cudaSetDevice(1 - d), cudaSuccess); // the other device is current while this one is built
    runtimes.push_back(std::make_unique<rk::runtime>(o));
    int current = -1;
    ASSERT_EQ(cudaGetDevice(&current), cudaSuccess);
    EXPECT_EQ(current, 1 - d) << "the runtime restored the caller's current device";
    echoes.push_back(runtimes.back()->spawn<echo>("echo"));
    runtimes.back()->start();
  }
  // Another thread (current device 0 by default) spawns, sends and receives on both runtimes.
  std::thread other([&] {
    for (int d = 0; d < 2; ++d) {
      rk::runtime& rt = *runtimes[static_cast<std::size_t>(d)];
      const actor_index late = rt.spawn<echo>("late");
      const ping_payload p{static_cast<std::uint64_t>(d), 1};
      EXPECT_EQ(rt.send_wait(late, msg_ping, rk::as_bytes(p), 10s), status::delivered);
      EXPECT_EQ(rt.send_wait(echoes[static_cast<std::size_t>(d)], msg_ping, rk::as_bytes(p), 10s),
                status::delivered);
    }
  });
  other.join();
  for (auto& rt : runtimes) EXPECT_TRUE(rt->shutdown().drained);
}

} // namespace rk_cases
