#pragma once
// Helpers of the snapshot suites (test_snapshot.cpp, test_snapshot_restore.cpp): a quiet CPU runtime,
// per-process temporary files, and bounded waits (no sleeps) for handled messages.
#include "../runtime/test_handlers.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <unistd.h>

namespace rk_snapshot_test {

using namespace std::chrono_literals;
using namespace rk_cases;

inline rk::runtime_options cpu_options() {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  return o;
}

inline std::filesystem::path temp_file(const std::string& tag) {
  return std::filesystem::temp_directory_path() /
         ("rk_snapshot_" + std::to_string(::getpid()) + "_" + tag + ".snap");
}

//! Waits (bounded, no sleeps) until actor `a` has handled `n` messages.
inline bool handled(rk::runtime& rt, actor_index a, std::uint64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (rt.stats().actors[a].handled >= n) return true;
    std::this_thread::yield();
  }
  return false;
}

inline void send_counts(rk::runtime& rt, actor_index a, std::uint64_t first, std::uint64_t count,
                        std::uint64_t tenant = 0) {
  rk::send_options o;
  o.tenant = tenant;
  for (std::uint64_t i = first; i < first + count; ++i)
    ASSERT_EQ(rt.send_blocking(a, msg_count, rk::as_bytes(ping_payload{i, i}), 10s, o), status::enqueued);
}

} // namespace rk_snapshot_test
