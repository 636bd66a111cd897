// Snapshots on the CUDA backend (label gpu; skips without a device): a running actor's state is copied
// from device memory while its kernel keeps running, and snapshot_all() / restore() round-trip into a new
// runtime. The CPU-backend suite (tests/host/test_snapshot.cpp) covers the refusals.
#include "test_handlers.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <unistd.h>

using namespace std::chrono_literals;

namespace rk_cases {

TEST(SnapshotCuda, RunningActorsAreCopiedAndRestoredIntoANewRuntime) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (!probe.usable) GTEST_SKIP() << "no usable CUDA device: " << probe.description;
  rk::runtime_options o;
  o.backend = rk::backend::cuda;
  o.announce_backend = false;
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("rk_snapshot_cuda_" + std::to_string(::getpid()) + ".snap");
  counter::state saved{};
  {
    rk::runtime rt(o);
    const actor_index c = rt.spawn<counter>("c");
    rt.start();
    for (std::uint64_t i = 1; i <= 40; ++i)
      ASSERT_EQ(rt.send_wait(c, msg_count, rk::as_bytes(ping_payload{i, i}), 5s), status::delivered);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (rt.stats().actors[c].handled < 40 && std::chrono::steady_clock::now() < deadline) {
    }
    saved = rt.snapshot_state<counter>(c);
    EXPECT_EQ(saved.count, 40u);
    EXPECT_EQ(saved.sum, 40u * 41 / 2);
    EXPECT_EQ(rt.lifecycle(c), rk::actor_lifecycle::live);
    EXPECT_EQ(rt.snapshot_all(file), 1u);
    EXPECT_TRUE(rt.shutdown().drained);
  }
  rk::runtime restored(o);
  restored.prepare<counter>();
  ASSERT_EQ(restored.restore(file), 1u);
  restored.start();
  const actor_index c = restored.find("c");
  EXPECT_EQ(restored.snapshot_state<counter>(c).sum, saved.sum);
  ASSERT_EQ(restored.send_wait(c, msg_count, rk::as_bytes(ping_payload{1, 1}), 5s), status::delivered);
  EXPECT_TRUE(restored.shutdown().drained);
  EXPECT_EQ(restored.state<counter>(c).count, saved.count + 1);
  std::filesystem::remove(file);
}

} // namespace rk_cases
