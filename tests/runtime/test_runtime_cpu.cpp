// Runtime behaviour on the CPU backend (compiled by the host compiler; also run under ThreadSanitizer).
#include "tenancy_cases.hpp"

#include <set>
#include <stdexcept>

namespace rk_cases {

INSTANTIATE_TEST_SUITE_P(cpu, RuntimeCases, ::testing::Values(rk::backend::cpu), backend_name);
INSTANTIATE_TEST_SUITE_P(cpu, RoutingCases, ::testing::Values(rk::backend::cpu), backend_name);
INSTANTIATE_TEST_SUITE_P(cpu, TenancyCases, ::testing::Values(rk::backend::cpu), backend_name);

//! Host-only handler: exceptions cannot exist in device code, but on the CPU backend one that escapes a
//! handler is a fault like a device trap.
struct thrower {
  template <class Ctx>
  void operator()(Ctx&, rk::no_state&, const rk::message&) {
    throw std::runtime_error("bad input 7");
  }
};

TEST(CpuBackend, ExceptionEscapingAHandlerIsAFaultNamingTheActor) {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  rk::runtime rt(o);
  const auto a = rt.spawn<thrower>("thrower");
  rt.start();
  ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
  try {
    (void)rt.receive(30s);
    ADD_FAILURE() << "the fault did not interrupt receive()";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("thrower"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad input 7"), std::string::npos) << e.what();
  }
  const rk::shutdown_report r = rt.shutdown();
  EXPECT_TRUE(r.fault.has_value());
  EXPECT_TRUE(r.workers_stopped);
}

TEST(CpuBackend, HandlersSpawnedFromAHostCompiledFileCannotUseCuda) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (!probe.usable) GTEST_SKIP() << "needs a CUDA device to reach the check: " << probe.description;
  rk::runtime_options o;
  o.backend = rk::backend::cuda;
  o.announce_backend = false;
  rk::runtime rt(o);
  try {
    rt.spawn<echo>("echo");
    ADD_FAILURE() << "spawn<echo> from a .cpp file must be refused on the CUDA backend";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("compiled without nvcc"), std::string::npos) << e.what();
  }
}

TEST(CpuBackend, AutomaticFallsBackToCpuAndSaysWhy) {
  const rk::device_probe probe = rk::probe_cuda_device();
  rk::runtime_options o;
  o.announce_backend = false;
  rk::runtime rt(o);
  if (probe.usable) {
    EXPECT_EQ(rt.backend(), rk::backend::cuda);
  } else {
    EXPECT_EQ(rt.backend(), rk::backend::cpu);
    EXPECT_NE(rt.backend_description().find("no usable CUDA device"), std::string::npos)
        << rt.backend_description();
  }
}

TEST(CpuBackend, ExplicitCudaWithoutADeviceThrowsAClearError) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (probe.usable) GTEST_SKIP() << "a CUDA device is present: " << probe.description;
  rk::runtime_options o;
  o.backend = rk::backend::cuda;
  try {
    rk::runtime rt(o);
    ADD_FAILURE() << "expected rk::error";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("backend::automatic"), std::string::npos) << e.what();
  }
}

TEST(CpuBackend, OneWorkerThreadServesManyActors) {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.cpu_workers = 1;
  rk::runtime rt(o);
  std::vector<actor_index> ids;
  for (int i = 0; i < 16; ++i) ids.push_back(rt.spawn<echo>(std::string("echo").append(std::to_string(i))));
  rt.start();
  for (auto id : ids) {
    const ping_payload p{id, id};
    ASSERT_EQ(rt.send(id, msg_ping, rk::as_bytes(p)), rk::status::enqueued);
  }
  std::set<std::uint64_t> seen;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto m = rt.receive(5s);
    ASSERT_TRUE(m.has_value());
    seen.insert(m->as<ping_payload>().sequence);
  }
  EXPECT_EQ(seen.size(), ids.size());
  EXPECT_TRUE(rt.shutdown().drained);
}

} // namespace rk_cases
