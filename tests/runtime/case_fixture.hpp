#pragma once
// The fixture every runtime case suite shares: one test per backend and worker mode (GetParam()), skipped
// with the reason when the CUDA backend has no device, small default options, and helpers for building actors
// and sends.

#include "test_handlers.hpp"

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace rk_cases {

using namespace std::chrono_literals;
using rk::actor_index;
using rk::status;

//! The CPU backend, without its announcement on stderr.
inline rk::runtime_options cpu_options() {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  return o;
}
//! cpu_options() in one worker mode (dedicated or scheduled) and without the watchdog (handler_timeout
//! 0), for tests of waits that only the awaited handler call may end.
inline rk::runtime_options unwatched_cpu_options(bool dedicated) {
  rk::runtime_options o = cpu_options();
  o.dedicated_workers = dedicated;
  o.handler_timeout = 0ms;
  return o;
}

//! Runs `call`, which must throw rk::error containing `needle`.
template <class Call>
void expect_refused(Call&& call, const std::string& needle) {
  try {
    call();
    ADD_FAILURE() << "expected rk::error containing '" << needle << "'";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

inline rk::actor_options small_mailbox(std::uint32_t slots = 256, std::uint32_t slot_bytes = 256) {
  rk::actor_options a;
  a.mailbox = {slots, slot_bytes};
  return a;
}

//! One mailbox lane per priority level (actor_options::priority_lanes; off by default).
inline rk::actor_options priority_mailbox() {
  rk::actor_options a = small_mailbox();
  a.priority_lanes = true;
  return a;
}

inline rk::actor_options in_tenant(std::uint64_t tenant, std::uint32_t slots = 256) {
  rk::actor_options a = small_mailbox(slots, 256);
  a.tenant = tenant;
  return a;
}

inline rk::send_options as_tenant(std::uint64_t tenant) {
  rk::send_options o;
  o.tenant = tenant;
  return o;
}

// --- fixture --------------------------------------------------------------------------------------

//! What a case runs on: the backend, and whether every actor gets a dedicated worker
//! (runtime_options::dedicated_workers) or is served by the scheduled pool (the default).
struct run_mode {
  rk::backend backend = rk::backend::cpu;
  bool dedicated = false;
};

//! "cpu" / "cpu_dedicated" / "cuda" ... in test names.
inline std::string backend_name(const ::testing::TestParamInfo<run_mode>& info) {
  return std::string(rk::to_string(info.param.backend)) + (info.param.dedicated ? "_dedicated" : "");
}

//! Both worker modes on one backend: every suite runs scheduled and dedicated.
inline auto both_modes(rk::backend b) {
  return ::testing::Values(run_mode{b, false}, run_mode{b, true});
}

class RuntimeCases : public ::testing::TestWithParam<run_mode> {
protected:
  rk::backend backend() const { return GetParam().backend; }

  void SetUp() override {
    if (backend() == rk::backend::cuda) {
      const rk::device_probe probe = rk::probe_cuda_device();
      if (!probe.usable) GTEST_SKIP() << "no usable CUDA device: " << probe.description;
    }
  }

  rk::runtime_options options() const {
    rk::runtime_options o;
    o.backend = backend();
    o.dedicated_workers = GetParam().dedicated;
    o.announce_backend = false;
    o.max_actors = 64;
    o.host_ring = {256, 1024};
    o.drain_timeout = 5s;
    return o;
  }

  //! Sends, waiting for room (with a deadline: a test never hangs on a runtime that stopped taking
  //! messages).
  static void send_reliably(rk::runtime& rt, actor_index to, std::uint32_t type, rk::byte_view payload,
                            const rk::send_options& o = {}) {
    ASSERT_EQ(rt.send_blocking(to, type, payload, 60s, o), status::enqueued);
  }
};

} // namespace rk_cases
