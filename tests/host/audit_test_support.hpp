#pragma once
// Helpers shared by the audit suites (test_audit.cpp: emit, chain, sinks, drain; test_audit_verify.cpp:
// the verifier and rk-audit-verify): an audit ring in host memory, records, scratch files. Each suite
// includes it once, inside its own translation unit.
#include <ringkernel/device/audit.cuh>
#include <ringkernel/host/audit.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace audit_test {

using namespace std::chrono_literals;
using rk::audit_entry;
using rk::audit_event;
using rk::audit_level;
using rk::audit_origin;
using rk::audit_record;
using rk::status;
using rk::test::host_ring;

//! Waits on a condition (never a fixed sleep): true once `ready()` holds, false after `timeout`.
template <class Ready>
bool eventually(Ready&& ready, std::chrono::nanoseconds timeout = 20s) {
  return rk::wait_until(
             ready, [] { return false; }, static_cast<std::uint64_t>(timeout.count())) ==
         rk::wait_result::ready;
}

inline audit_record make_record(audit_event event, std::uint64_t value, rk::actor_index actor = 1,
                                std::uint64_t tenant = 7) {
  audit_record r;
  r.event = event;
  r.level = audit_level::warning;
  r.time = {1'000 + value, 0, 0};
  r.tenant = tenant;
  r.other_tenant = tenant + 1;
  r.actor = actor;
  r.other_actor = actor + 1;
  r.tag = {11, 12};
  r.detail = static_cast<std::uint32_t>(status::tenant_mismatch);
  r.value = value;
  return r;
}

//! An audit ring in host memory plus its overflow counter: what the CPU backend sets up.
struct test_ring {
  explicit test_ring(std::uint32_t capacity) : ring(rk::audit_ring_geometry(capacity)) {
    channel.ring = ring.view();
    channel.overflow = &overflow;
  }
  rk::audit_drain::counter_reader overflow_reader() {
    return [this] { return rk::audit_overflow_count(overflow); };
  }
  std::function<std::uint64_t()> claimed_reader() {
    return [this] {
      return cuda::atomic_ref<std::uint64_t, rk::peer_scope>(*ring.view().tail)
          .load(cuda::std::memory_order_relaxed);
    };
  }
  host_ring ring;
  alignas(8) std::uint64_t overflow = 0;
  rk::audit_channel channel;
};

//! A fresh directory per test, removed afterwards.
class scratch_dir {
public:
  scratch_dir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() / ("rk_audit_" + std::string(info->test_suite_name()) +
                                                      "_" + info->name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~scratch_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::filesystem::path file(const std::string& name) const { return path_ / name; }

private:
  std::filesystem::path path_;
};

inline std::vector<std::string> read_lines(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline void write_lines(const std::filesystem::path& p, const std::vector<std::string>& lines) {
  std::ofstream out(p, std::ios::trunc);
  for (const auto& l : lines) out << l << '\n';
}

inline std::size_t count_event(const std::vector<audit_entry>& entries, audit_event e) {
  return static_cast<std::size_t>(std::count_if(entries.begin(), entries.end(),
                                                [&](const audit_entry& x) { return x.record.event == e; }));
}

} // namespace audit_test
