// A trap inside a CUDA handler surfaces as rk::error naming the actor, never as a hang. In its own
// binary because a device fault leaves the process's CUDA context unusable.
#include "test_handlers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <string>

using namespace std::chrono_literals;

namespace rk_cases {

//! Whether this process runs under compute-sanitizer: it loads its tool into the target through the CUDA
//! driver's injection variable (CUDA_INJECTION64_PATH naming a sanitizer library); RK_UNDER_COMPUTE_SANITIZER
//! says so explicitly. Not yet confirmed on a GPU machine.
bool under_compute_sanitizer() {
  if (std::getenv("RK_UNDER_COMPUTE_SANITIZER") != nullptr) return true;
  const char* injection = std::getenv("CUDA_INJECTION64_PATH");
  if (injection == nullptr) return false;
  std::string path(injection);
  std::transform(path.begin(), path.end(), path.begin(), [](unsigned char c) { return std::tolower(c); });
  return path.find("sanitizer") != std::string::npos;
}

TEST(CudaFault, TrapInAHandlerSurfacesAsAnErrorNamingTheActor) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (!probe.usable) GTEST_SKIP() << "no usable CUDA device: " << probe.description;
  // The trap is deliberate; memcheck would report it as the error it is and fail the run.
  if (under_compute_sanitizer())
    GTEST_SKIP() << "a deliberate device trap: not run under compute-sanitizer, which reports every trap";
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
