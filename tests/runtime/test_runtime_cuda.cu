// Runtime behaviour on the CUDA backend: the same cases as the CPU backend (label `gpu`; each test skips
// with the reason when no usable device is present).
#include "quota_change_cases.hpp"

#include <cstdio>
#include <cstdlib>
#include <future>

namespace rk_cases {

INSTANTIATE_TEST_SUITE_P(cuda, RuntimeCases, both_modes(rk::backend::cuda), backend_name);
INSTANTIATE_TEST_SUITE_P(cuda, RoutingCases, both_modes(rk::backend::cuda), backend_name);
INSTANTIATE_TEST_SUITE_P(cuda, TenancyCases, both_modes(rk::backend::cuda), backend_name);

//! Tests of the CUDA backend itself (device 0): skipped with the reason when it is not usable.
class CudaBackend : public ::testing::Test {
protected:
  void SetUp() override {
    const rk::device_probe probe = rk::probe_cuda_device();
    if (!probe.usable) GTEST_SKIP() << "no usable CUDA device: " << probe.description;
  }
  static rk::runtime_options cuda_options() {
    rk::runtime_options o;
    o.backend = rk::backend::cuda;
    o.announce_backend = false;
    return o;
  }
};

//! A worker as wide as a block can be: few fit per SM, so many of them cannot be co-resident.
struct wide_worker {
  static constexpr std::uint32_t threads_per_worker = 1024;
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx&, rk::no_state&, const rk::message&) {}
};

TEST_F(CudaBackend, RefusesToStartKernelsThatCannotBeCoResident) {
  rk::runtime_options o = cuda_options();
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

// Each persistent kernel needs a hardware work queue of its own (runtime/cuda/device_ledger.hpp): on an H200
// a dedicated actor's grid launched on a stream that shared a queue with a running kernel never started,
// and the copies behind it hung the spawn for good. So a late spawn beyond the queues is refused up front,
// naming them, and the runtime goes on working.
TEST_F(CudaBackend, RefusesAKernelBeyondTheHardwareQueues) {
  rk::runtime_options o = cuda_options();
  o.max_actors = 1024;
  rk::runtime rt(o);
  rk::actor_options dedicated = small_mailbox(2, 128);
  dedicated.dedicated_worker = true;
  const auto first = rt.spawn<echo>("first", dedicated);
  rt.start(); // the copy stream, the gateway and one dedicated grid
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
  const char* set = std::getenv("CUDA_DEVICE_MAX_CONNECTIONS");
  const int queues = set != nullptr ? std::atoi(set) : 8;
  EXPECT_GE(spawned, queues - 4) << refusal; // a scheduled pool for echo would take one more
  EXPECT_LE(spawned, queues - 3) << refusal;
  EXPECT_NE(refusal.find("hardware work queues"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("Nothing was launched"), std::string::npos) << refusal;
  EXPECT_EQ(rt.send_wait(first, msg_ping, {}, 5s), rk::status::delivered) << "copies and kernels still run";
  EXPECT_TRUE(rt.shutdown().drained);
}

//! 6 KiB of local memory per thread: more than a device reserves by default (1 KiB).
struct big_frame {
  static constexpr const char* name = "big_frame";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    volatile std::uint64_t scratch[768]; // volatile: stays in local memory, not folded away
    for (std::uint32_t i = 0; i < 768; ++i) scratch[i] = i;
    std::uint64_t sum = 0;
    for (std::uint32_t i = 0; i < 768; ++i) sum += scratch[i];
    (void)ctx.reply(m, rk::as_bytes(sum));
  }
};

// A kernel that needs more local memory than the device reserves makes the driver grow the reservation,
// which waits for every running kernel: on an H200 start() blocked for good inside cuLaunchKernel beside
// its own gateway. The runtime raises the reservation before it launches anything; while another runtime's
// kernels run it cannot, and refuses instead of hanging (on a thread under a deadline, so a hang fails).
TEST_F(CudaBackend, AHandlerWithLargeLocalArraysStartsOrIsRefusedNeverHangs) {
  rk::runtime_options o = cuda_options();
  std::size_t reserved = 0;
  ASSERT_EQ(cudaDeviceGetLimit(&reserved, cudaLimitStackSize), cudaSuccess);
  const auto big_life = [&o] {
    return std::async(std::launch::async, [&o]() -> std::string {
      try {
        rk::runtime rt(o);
        const auto b = rt.spawn<big_frame>("big");
        rt.start();
        const rk::status st = rt.send_wait(b, msg_ping, {}, 5s);
        (void)rt.shutdown();
        return st == rk::status::delivered ? "delivered" : "not delivered";
      } catch (const rk::error& e) {
        return e.what();
      }
    });
  };
  const auto outcome = [](std::future<std::string>& f) {
    if (f.wait_for(60s) != std::future_status::ready) {
      std::fprintf(stderr, "a runtime with a 6 KiB handler frame neither started nor was refused in 60 s\n");
      std::_Exit(1); // the blocked thread cannot be joined
    }
    return f.get();
  };
  {
    rk::runtime first(o);
    const auto a = first.spawn<echo>("a");
    first.start();
    auto beside = big_life();
    const std::string r = outcome(beside);
    if (reserved >= 6 * 1024) {
      EXPECT_EQ(r, "delivered"); // an earlier test raised the reservation already
    } else {
      EXPECT_NE(r.find("bytes of local memory per thread"), std::string::npos) << r;
      EXPECT_NE(r.find("Nothing was launched"), std::string::npos) << r;
    }
    EXPECT_EQ(first.send_wait(a, msg_ping, {}, 5s), rk::status::delivered) << "the first runtime still runs";
    EXPECT_TRUE(first.shutdown().drained);
  }
  auto alone = big_life(); // nothing of ours runs now: the reservation grows before the launch
  EXPECT_EQ(outcome(alone), "delivered");
  std::size_t after = 0;
  ASSERT_EQ(cudaDeviceGetLimit(&after, cudaLimitStackSize), cudaSuccess);
  EXPECT_GE(after, 6u * 1024);
}

// A second runtime built, used and destroyed while another one's persistent kernels run: nothing in its
// life may wait for the whole device (cudaMalloc, cudaFree and cudaDeviceSynchronize would, for ever). It
// lives on another thread under a 60 s deadline, so a regression fails here instead of hanging.
TEST_F(CudaBackend, ASecondRuntimeComesAndGoesWhileTheFirstRuns) {
  rk::runtime_options o = cuda_options();
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

TEST_F(CudaBackend, ReleasesDeviceMemoryAcrossRuntimes) {
  rk::runtime_options o = cuda_options();
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
TEST_F(CudaBackend, EachRuntimeUsesItsOwnDeviceFromAnyThread) {
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
    rk::runtime_options o = cuda_options();
    o.cuda_device = d;
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
