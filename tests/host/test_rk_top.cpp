// rk-top against a running runtime in this process (CPU backend): the published snapshot carries the
// counters (`--once --json`), the live view draws under tmux (capture-pane), and the shared-memory object
// goes away with the runtime.
#include "../runtime/test_handlers.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using namespace rk_cases;

struct run_result {
  int status = -1;
  std::string output;
};

run_result run(const std::string& command) {
  run_result r;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[65536];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) r.output.append(buffer, n);
  const int raw = ::pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

//! Polls `probe` (bounded: 20 s) until it returns true; the runtime publishes every 100 ms.
template <class Probe>
bool eventually(Probe&& probe) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline)
    if (probe()) return true;
  return false;
}

const std::string top = RK_TOP_EXE;

TEST(RkTop, OnceJsonShowsTheCountersAndTheLiveViewDrawsUnderTmux) {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.publish_stats = true;
  std::string name;
  {
    rk::runtime rt(o);
    rt.tenants().add(4, rk::tenant_quota::standard());
    rk::actor_options t4;
    t4.tenant = 4;
    const actor_index e = rt.spawn<echo>("echo-a", t4);
    EXPECT_EQ(rt.stats_shm_name(), "") << "nothing is published before start()";
    rt.start();
    name = rt.stats_shm_name();
    EXPECT_EQ(name.rfind("/ringkernel." + std::to_string(::getpid()) + ".", 0), 0u) << name;
    for (std::uint64_t i = 0; i < 100; ++i) {
      rk::send_options s;
      s.tenant = 4;
      ASSERT_EQ(rt.send(e, msg_ping, rk::as_bytes(ping_payload{i, i}), s), status::enqueued);
      ASSERT_TRUE(rt.receive(10s).has_value());
    }

    nlohmann::json snapshot;
    ASSERT_TRUE(eventually([&] {
      const run_result r = run(top + " --name " + name + " --once --json");
      if (r.status != 0) return false;
      snapshot = nlohmann::json::parse(r.output);
      for (const auto& h : snapshot["handler_types"])
        if (h["handler"] == "echo" && h["handled"] == 100) return true;
      return false;
    })) << "no snapshot showed 100 handled messages; last: "
        << snapshot.dump();
    EXPECT_EQ(snapshot["format"], "ringkernel-top/1");
    EXPECT_EQ(snapshot["pid"], ::getpid());
    EXPECT_EQ(snapshot["backend"], "cpu");
    EXPECT_TRUE(snapshot["running"].get<bool>());
    bool tenant_seen = false;
    for (const auto& t : snapshot["tenants"])
      if (t["tenant"] == 4) {
        tenant_seen = true;
        EXPECT_EQ(t["messages_sent"], 200u) << "100 host sends and 100 replies";
      }
    EXPECT_TRUE(tenant_seen) << snapshot.dump();
    EXPECT_EQ(snapshot["busiest"].size(), 1u);

    // --pid finds the same runtime; the plain --once view is a table.
    const run_result by_pid = run(top + " --pid " + std::to_string(::getpid()) + " --once");
    EXPECT_EQ(by_pid.status, 0);
    EXPECT_NE(by_pid.output.find("HANDLER"), std::string::npos) << by_pid.output;
    EXPECT_NE(by_pid.output.find("echo"), std::string::npos) << by_pid.output;

    // The live view, refreshing in place, in a detached tmux session.
    const std::string session = "rktop" + std::to_string(::getpid());
    ASSERT_EQ(run("tmux new-session -d -s " + session + " -x 160 -y 50 '" + top + " --name " + name +
                  " --interval-ms 100'")
                  .status,
              0);
    std::string screen;
    const bool drawn = eventually([&] {
      screen = run("tmux capture-pane -p -t " + session).output;
      return screen.find("HANDLER") != std::string::npos && screen.find("echo-a") != std::string::npos &&
             screen.find("running") != std::string::npos;
    });
    (void)run("tmux kill-session -t " + session);
    EXPECT_TRUE(drawn) << "the live view never showed the handler and actor; last screen:\n" << screen;

    EXPECT_TRUE(rt.shutdown().drained);
    const run_result after = run(top + " --name " + name + " --once --json");
    ASSERT_EQ(after.status, 0);
    EXPECT_FALSE(nlohmann::json::parse(after.output)["running"].get<bool>())
        << "the last snapshot says stopped";
  }
  const run_result gone = run(top + " --name " + name + " --once 2>&1");
  EXPECT_EQ(gone.status, 2) << "the object is removed with the runtime: " << gone.output;
}

TEST(RkTop, BadArgumentsAreRefused) {
  EXPECT_EQ(run(top + " --json 2>&1").status, 2) << "--json without --once";
  EXPECT_EQ(run(top + " --pid x 2>&1").status, 2);
  EXPECT_EQ(run(top + " --pid 1 --name /x 2>&1").status, 2);
  EXPECT_EQ(run(top + " --name /ringkernel.no.such --once 2>&1").status, 2);
  EXPECT_EQ(run(top + " --interval-ms 1 2>&1").status, 2);
}

} // namespace
