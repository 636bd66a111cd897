// A trap inside a CUDA handler surfaces as rk::error naming the actor, never as a hang. In its own
// binary because a device fault leaves the process's CUDA context unusable.
#include "test_handlers.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

using namespace std::chrono_literals;

namespace rk_cases {

TEST(CudaFault, TrapInAHandlerSurfacesAsAnErrorNamingTheActor) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (!probe.usable) GTEST_SKIP() << "no usable CUDA device: " << probe.description;
  rk::runtime_options o;
  o.backend = rk::backend::cuda;
  o.announce_backend = false;
  rk::runtime rt(o);
  (void)rt.spawn<echo>("bystander");
  const auto t = rt.spawn<trapper>("fragile");
  rt.start();
  ASSERT_EQ(rt.send_wait(t, msg_ping, {}, 5s), rk::status::delivered) << "healthy before the trap";
  ASSERT_TRUE(rt.receive(5s).has_value());
  ASSERT_EQ(rt.send(t, msg_trap, {}), rk::status::enqueued);
  bool surfaced = false;
  try {
    (void)rt.receive(30s);
  } catch (const rk::error& e) {
    surfaced = true;
    const std::string what = e.what();
    EXPECT_NE(what.find("fragile"), std::string::npos) << what;
    EXPECT_NE(what.find("ctx.trap(42)"), std::string::npos) << what;
    EXPECT_NE(what.find("device fault"), std::string::npos) << what;
  }
  EXPECT_TRUE(surfaced) << "receive() returned instead of reporting the fault";
  const rk::shutdown_report r = rt.shutdown();
  ASSERT_TRUE(r.fault.has_value());
  EXPECT_TRUE(r.workers_stopped) << "a faulted kernel is not running";
}

} // namespace rk_cases
