// rk-top against a running runtime in this process (CPU backend): the published snapshot carries the
// counters (`--once --json`), the live view draws under tmux (capture-pane), and the shared-memory object
// goes away with the runtime.
#include "../runtime/test_handlers.hpp"

#include <ringkernel/host/stats_shm.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <string>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
  // Options that do not go together are refused like bad ones: with the usage line (it was missing).
  for (const char* args : {" --json", " --clean --once", " --pid 1 --name /x"}) {
    const run_result refused = run(top + args + " 2>&1");
    EXPECT_EQ(refused.status, 2) << args;
    EXPECT_NE(refused.output.find("\nusage: rk-top "), std::string::npos) << args << ": " << refused.output;
  }
  EXPECT_EQ(run(top + " --pid x 2>&1").status, 2);
  EXPECT_EQ(run(top + " --pid 1 --name /x 2>&1").status, 2);
  EXPECT_EQ(run(top + " --name /ringkernel.no.such --once 2>&1").status, 2);
  EXPECT_EQ(run(top + " --interval-ms 1 2>&1").status, 2);
  EXPECT_EQ(run(top + " --clean --once 2>&1").status, 2);
  EXPECT_EQ(run(top + " --clean --pid 1 2>&1").status, 2);
}

//! A shared-memory object laid out as stats_shm.hpp says, holding `json` and naming `pid` as its
//! publisher, as another program (or another version) could leave it; removed on destruction.
struct crafted_snapshot {
  std::string name;
  crafted_snapshot(const std::string& object, std::uint32_t pid, const std::string& json,
                   std::uint64_t published_ns = 0)
      : name(object) {
    const int fd = ::shm_open(name.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0) return;
    rk::stats_shm_header h{};
    std::memcpy(h.magic, rk::stats_shm_magic, sizeof h.magic);
    h.version = 1;
    h.pid = pid;
    h.sequence = 2; // one complete snapshot (even, not 0)
    h.length = json.size();
    h.capacity = json.size();
    h.interval_ns = 100'000'000;
    h.published_ns = published_ns;
    std::string bytes(reinterpret_cast<const char*>(&h), sizeof h);
    bytes += json;
    const bool written = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    ::close(fd);
    if (!written) ::shm_unlink(name.c_str());
  }
  ~crafted_snapshot() { ::shm_unlink(name.c_str()); }
};

TEST(RkTop, ASnapshotItCannotReadIsAnErrorNotACrash) {
  const std::string prefix = "/rk_top_test." + std::to_string(::getpid());
  // Valid JSON without the fields the view shows (a runtime of another version, or not a runtime).
  const crafted_snapshot missing(prefix + ".missing", static_cast<std::uint32_t>(::getpid()), R"({"pid":1})");
  const run_result a = run(top + " --name " + missing.name + " --once 2>&1");
  EXPECT_EQ(a.status, 2) << a.output;
  EXPECT_NE(a.output.find("does not hold a snapshot this rk-top reads"), std::string::npos) << a.output;
  const crafted_snapshot garbage(prefix + ".garbage", static_cast<std::uint32_t>(::getpid()), "{not json");
  const run_result b = run(top + " --name " + garbage.name + " --once 2>&1");
  EXPECT_EQ(b.status, 2) << b.output;
  // --json passes the text through unread.
  EXPECT_EQ(run(top + " --name " + missing.name + " --once --json 2>&1").status, 0);
  // A runtime that could not say ("error"): exit 2 with or without --json (--json exited 0).
  const crafted_snapshot error(prefix + ".error", static_cast<std::uint32_t>(::getpid()),
                               R"({"format":"ringkernel-top/1","error":"snapshot too large"})");
  const run_result c = run(top + " --name " + error.name + " --once --json 2>/dev/null");
  EXPECT_EQ(c.status, 2) << c.output;
  EXPECT_NE(c.output.find("snapshot too large"), std::string::npos) << "the document is still printed";
  EXPECT_EQ(run(top + " --name " + error.name + " --once 2>&1").status, 2);
}

TEST(RkTop, APublisherNamedAsPidZeroIsNotALiveProcess) {
  // kill(0, 0) succeeds (it asks about the caller's process group): such a snapshot has no live owner.
  const std::string json = R"({"pid":0,"backend":"cpu","running":true,"uptime_seconds":1,
    "audit":{"records_lost":0},"handler_types":[],"tenants":[],"busiest":[],"deepest":[],"stuck":[]})";
  const crafted_snapshot zero("/rk_top_test." + std::to_string(::getpid()) + ".pid0", 0, json);
  const run_result r = run(top + " --name " + zero.name + " --once 2>&1");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("PROCESS GONE"), std::string::npos) << r.output;
}

//! A snapshot of a "running" runtime of this (live) process, published `age` ago, whose busiest actor is
//! `actor`.
std::string running_snapshot(const std::string& actor) {
  return R"({"pid":1,"backend":"cpu","running":true,"uptime_seconds":1,"audit":{"records_lost":0},
    "handler_types":[],"tenants":[],"busiest":[{"name":")" +
         actor + R"(","id":1,"handler":"h","handled_per_s":1.0,"queued":0,"lifecycle":"live"}],
    "deepest":[],"stuck":[]})";
}
std::uint64_t published_ago(std::chrono::seconds age) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch() - age)
                                        .count());
}

// A process that crashed leaves its snapshot in /dev/shm: --clean removes those whose process is gone,
// and leaves alone a live process's, one a publisher holds locked (a live process in another PID
// namespace sharing /dev/shm, whose pid names nothing here), and a FIFO under a snapshot's name (opening
// it hung rk-top).
TEST(RkTop, CleanRemovesTheSnapshotsOfGoneProcessesOnly) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child); // reaped: its pid names no process (until reused)
  const auto gone = static_cast<std::uint32_t>(child);
  const auto me = static_cast<std::uint32_t>(::getpid());
  const std::string json = running_snapshot("a");
  const crafted_snapshot left(rk::stats_shm_name(gone, 0), gone, json);
  const crafted_snapshot live(rk::stats_shm_name(me, 900), me, json);
  const crafted_snapshot elsewhere(rk::stats_shm_name(gone, 901), gone, json);
  const int held = ::shm_open(elsewhere.name.c_str(), O_RDONLY, 0); // as its publisher holds it
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_SH), 0);
  const std::string fifo = rk::stats_shm_name(gone, 902);
  ASSERT_EQ(::mkfifo(("/dev/shm" + fifo).c_str(), 0600), 0);
  // Truncated after their publisher died (a live one gives its object its size back): too short to name a
  // publisher, so its name says whose it was. Under another name, or a live process's, it stays.
  const crafted_snapshot cut(rk::stats_shm_name(gone, 903), gone, json);
  const crafted_snapshot cut_live(rk::stats_shm_name(me, 904), me, json);
  const crafted_snapshot cut_other("/ringkernel." + std::to_string(gone) + ".905.x", gone, json);
  for (const crafted_snapshot* c : {&cut, &cut_live, &cut_other}) {
    const int fd = ::shm_open(c->name.c_str(), O_RDWR, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 0), 0);
    ::close(fd);
  }
  const run_result listed = run(top + " --once 2>&1"); // several publish: each is listed
  EXPECT_NE(listed.output.find(left.name + " (process gone: rk-top --clean removes it)"), std::string::npos)
      << listed.output;
  EXPECT_NE(listed.output.find(live.name + "\n"), std::string::npos) << listed.output;
  const run_result r = run(top + " --clean 2>&1");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("removed " + left.name + " (process " + std::to_string(gone) + " is gone)"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find(live.name), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find(elsewhere.name), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("removed " + cut.name + " (process " + std::to_string(gone) + " is gone)"),
            std::string::npos)
      << r.output;
  for (const crafted_snapshot* c : {&cut_live, &cut_other}) {
    EXPECT_EQ(r.output.find("removed " + c->name), std::string::npos) << r.output;
    const int fd = ::shm_open(c->name.c_str(), O_RDONLY, 0);
    EXPECT_GE(fd, 0) << c->name << " was removed";
    if (fd >= 0) ::close(fd);
  }
  const int fd = ::shm_open(left.name.c_str(), O_RDONLY, 0);
  EXPECT_LT(fd, 0) << "the gone process's snapshot is still there";
  if (fd >= 0) ::close(fd);
  const int kept = ::shm_open(live.name.c_str(), O_RDONLY, 0);
  EXPECT_GE(kept, 0) << "the live process's snapshot was removed";
  if (kept >= 0) ::close(kept);
  const int still = ::shm_open(elsewhere.name.c_str(), O_RDONLY, 0);
  EXPECT_GE(still, 0) << "a snapshot its publisher holds was removed";
  if (still >= 0) ::close(still);
  ::close(held);
  EXPECT_EQ(::unlink(("/dev/shm" + fifo).c_str()), 0) << "the FIFO was removed";
}

// A publisher killed in the middle of a write leaves the sequence odd for good: rk-top says its process is
// gone instead of waiting for a snapshot that will not come (the live view stayed blank, without a word).
TEST(RkTop, ASnapshotLeftHalfWrittenByAGoneProcessIsSaidSo) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  const auto gone = static_cast<std::uint32_t>(child);
  // Not under a runtime's name: `rk-top --clean` in a test running beside this one removes those.
  const crafted_snapshot half("/rk_top_test." + std::to_string(::getpid()) + ".half", gone,
                              running_snapshot("a"));
  const int fd = ::shm_open(half.name.c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  const std::uint64_t odd = 3;
  ASSERT_EQ(::pwrite(fd, &odd, sizeof odd, offsetof(rk::stats_shm_header, sequence)),
            static_cast<ssize_t>(sizeof odd));
  ::close(fd);
  const run_result once = run(top + " --name " + half.name + " --once 2>&1");
  EXPECT_EQ(once.status, 2) << once.output;
  EXPECT_NE(once.output.find("its process is gone"), std::string::npos) << once.output;
  const run_result live = run("timeout 2 " + top + " --name " + half.name + " 2>&1");
  EXPECT_NE(live.output.find("its process is gone"), std::string::npos) << live.output;
}

// A leftover of a process killed without cleaning up, whose pid now belongs to a live process (pids are
// reused, in containers at once), claims "running" for ever: rk-top says it is not updating.
TEST(RkTop, ARunningSnapshotThatIsNotRewrittenIsShownAsNotUpdating) {
  const std::string prefix = "/rk_top_test." + std::to_string(::getpid());
  const auto me = static_cast<std::uint32_t>(::getpid());
  const crafted_snapshot old(prefix + ".old", me, running_snapshot("a"), published_ago(60s));
  const run_result r = run(top + " --name " + old.name + " --once 2>&1");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("NOT UPDATING for 60 s"), std::string::npos) << r.output;
  const crafted_snapshot fresh(prefix + ".fresh", me, running_snapshot("a"), published_ago(0s));
  const run_result f = run(top + " --name " + fresh.name + " --once 2>&1");
  EXPECT_NE(f.output.find("running"), std::string::npos) << f.output;
  EXPECT_EQ(f.output.find("NOT UPDATING"), std::string::npos) << f.output;
}

// The live view follows its name: a runtime destroyed and another started under the same name (the same
// process's first publishing runtime again) is shown, and a name that is gone says so. It once kept
// showing the first object it mapped.
TEST(RkTop, TheLiveViewFollowsItsNameToANewRuntimeAndSaysWhenItIsGone) {
  const std::string name = "/rk_top_test." + std::to_string(::getpid()) + ".follow";
  const auto me = static_cast<std::uint32_t>(::getpid());
  auto first =
      std::make_unique<crafted_snapshot>(name, me, running_snapshot("first-runtime"), published_ago(0s));
  const std::string session = "rktopf" + std::to_string(::getpid());
  ASSERT_EQ(run("tmux new-session -d -s " + session + " -x 160 -y 50 '" + top + " --name " + name +
                " --interval-ms 50'")
                .status,
            0);
  std::string screen;
  const auto shows = [&](const char* text) {
    return eventually([&] {
      screen = run("tmux capture-pane -p -t " + session).output;
      return screen.find(text) != std::string::npos;
    });
  };
  EXPECT_TRUE(shows("first-runtime")) << screen;
  first.reset(); // removed ...
  const crafted_snapshot second(name, me, running_snapshot("second-runtime"),
                                published_ago(0s)); // ... and new
  EXPECT_TRUE(shows("second-runtime")) << screen;
  ::shm_unlink(name.c_str());
  EXPECT_TRUE(shows("RUNTIME DESTROYED")) << screen;
  // A runtime started under the name after a while is shown too.
  const crafted_snapshot third(name, me, running_snapshot("third-runtime"), published_ago(0s));
  EXPECT_TRUE(shows("third-runtime")) << screen;
  (void)run("tmux kill-session -t " + session);
}

// Names are the application's, and anyone who can write the object can put bytes in it: control
// characters in them are escaped in the view (an actor named with ESC [2J cleared the reader's screen, a
// newline forged a line), and --json refuses text with raw control characters, which JSON never has.
TEST(RkTop, ControlCharactersInNamesNeverReachTheTerminalRaw) {
  const std::string json = R"({"pid":1,"backend":"cpu","running":true,"uptime_seconds":1,
    "audit":{"records_lost":0},"handler_types":[{"handler":"h\u001b]0;title\u0007","actors":1,
    "handled_per_s":0.0,"queued":0,"handled":0,"sent_delivered":0,"sent_refused":0,"faults":0}],
    "tenants":[],"busiest":[{"name":"clear\u001b[2Jscreen","id":1,"handler":"h","handled_per_s":1.0,
    "queued":0,"lifecycle":"live"}],"deepest":[],"stuck":["stuck\nforged line"]})";
  const auto me = static_cast<std::uint32_t>(::getpid());
  const crafted_snapshot named("/rk_top_test." + std::to_string(::getpid()) + ".ctl", me, json,
                               published_ago(0s));
  const run_result r = run(top + " --name " + named.name + " --once 2>&1");
  EXPECT_EQ(r.status, 0) << r.output;
  for (const char c : r.output)
    EXPECT_TRUE(c == '\n' || static_cast<unsigned char>(c) >= 0x20) << "a raw control character";
  EXPECT_NE(r.output.find("clear\\x1b[2Jscreen"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stuck\\x0aforged line"), std::string::npos) << r.output;
  const crafted_snapshot raw("/rk_top_test." + std::to_string(::getpid()) + ".raw", me,
                             "{\"pid\":1,\x1b[2J\"x\":1}");
  const run_result j = run(top + " --name " + raw.name + " --once --json 2>&1");
  EXPECT_EQ(j.status, 2) << j.output;
  EXPECT_EQ(j.output.find('\x1b'), std::string::npos) << j.output;
  // Valid JSON may carry DEL and C1 controls raw (a runtime's actor named with U+009B, CSI): --json
  // writes the same document with them escaped.
  const crafted_snapshot c1("/rk_top_test." + std::to_string(::getpid()) + ".c1", me,
                            "{\"pid\":1,\"name\":\"csi\xc2\x9b"
                            "31m\\\"\"}");
  const run_result k = run(top + " --name " + c1.name + " --once --json 2>&1");
  EXPECT_EQ(k.status, 0) << k.output;
  EXPECT_EQ(k.output.find("\xc2\x9b"), std::string::npos) << k.output;
  EXPECT_EQ(nlohmann::json::parse(k.output)["name"], "csi\xc2\x9b"
                                                     "31m\"")
      << k.output;
  // The object's name is anyone's too: an error naming it escapes it.
  const std::string hostile = "/rk_top_test." + std::to_string(::getpid()) + ".\x1b[2J";
  const crafted_snapshot named_badly(hostile, me, R"({"pid":1})");
  const run_result n = run(top + " --name \"$(printf '/rk_top_test." + std::to_string(::getpid()) +
                           ".\\033[2J')\" --once 2>&1");
  EXPECT_EQ(n.status, 2) << n.output;
  EXPECT_EQ(n.output.find('\x1b'), std::string::npos) << n.output;
  EXPECT_NE(n.output.find("\\x1b[2J"), std::string::npos) << n.output;
}

// Deep nesting: parsing is iterative, but --json writes a document with raw controls again, recursively
// (100,000 levels and a CR, 200 KB of a 1 MiB object, overflowed rk-top's stack). Brackets in strings do not
// count.
TEST(RkTop, DeeplyNestedJsonIsRefusedNotAStackOverflow) {
  const auto me = static_cast<std::uint32_t>(::getpid());
  const std::string prefix = "/rk_top_test." + std::to_string(::getpid());
  const std::size_t levels = 100'000;
  const crafted_snapshot deep(prefix + ".deep", me,
                              std::string(levels, '[') + std::string(levels, ']') + "\r", published_ago(0s));
  for (const char* how : {" --once --json", " --once"}) {
    const run_result r = run(top + " --name " + deep.name + how + " 2>&1");
    EXPECT_EQ(r.status, 2) << how << ": " << r.output.substr(0, 300);
    EXPECT_NE(r.output.find("nests 100000 levels deep"), std::string::npos) << r.output.substr(0, 300);
  }
  const crafted_snapshot brackets(prefix + ".brackets", me,
                                  R"({"pid":1,"name":"[[[[\"{{{{)" + std::string(100, '[') + R"("})");
  const run_result b = run(top + " --name " + brackets.name + " --once --json 2>&1");
  EXPECT_EQ(b.status, 0) << b.output;
}

// The publisher's side: any process of the runtime's user may truncate the object the runtime writes
// through its mapping, and that killed the runtime with SIGBUS (a probe, 3 of 3 runs). Now such a write
// costs a snapshot: the object gets its size back and is written again, and rk-top reads it afterwards.
TEST(RkTop, APublishedObjectTruncatedByAnotherProcessCostsASnapshotNotTheRuntime) {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.publish_stats = true;
  rk::runtime rt(o);
  const actor_index e = rt.spawn<echo>("echo-t");
  rt.start();
  const std::string name = rt.stats_shm_name();
  // Cut to a size inside the first page, the object was never repaired: writes there raise no SIGBUS,
  // and rk-top read 1 or 100 bytes ("too small", or not JSON) for the rest of the runtime's life.
  for (const off_t size : {off_t{0}, off_t{1}, off_t{100}}) {
    const int fd = ::shm_open(name.c_str(), O_RDWR, 0);
    ASSERT_GE(fd, 0) << name;
    // About ten snapshots are written meanwhile, nearly all into an object of `size` bytes.
    for (const auto until = std::chrono::steady_clock::now() + 1s; std::chrono::steady_clock::now() < until;)
      ASSERT_EQ(::ftruncate(fd, size), 0);
    ::close(fd);
    ASSERT_EQ(rt.send(e, msg_ping, rk::as_bytes(ping_payload{1, 2})), status::enqueued);
    ASSERT_TRUE(rt.receive(10s).has_value()) << "the runtime still works";
    run_result r;
    EXPECT_TRUE(eventually([&] {
      r = run(top + " --name " + name + " --once --json 2>&1");
      return r.status == 0;
    })) << "truncated to "
        << size << ": " << r.output;
    EXPECT_EQ(nlohmann::json::parse(r.output).value("running", false), true) << r.output;
  }
  EXPECT_TRUE(rt.shutdown().drained);
}

// An object truncated while rk-top has it mapped (by anyone who may write it): an error saying so, not
// death by SIGBUS.
TEST(RkTop, AnObjectTruncatedWhileMappedIsAnErrorNotABusError) {
  const std::string name = "/rk_top_test." + std::to_string(::getpid()) + ".shrink";
  const crafted_snapshot shrinking(name, static_cast<std::uint32_t>(::getpid()),
                                   running_snapshot("shrinking-runtime"), published_ago(0s));
  const std::string exit_file = "/tmp/rk_top_test." + std::to_string(::getpid()) + ".rc";
  const std::string error_file = exit_file + ".err";
  std::remove(exit_file.c_str());
  const std::string session = "rktops" + std::to_string(::getpid());
  ASSERT_EQ(run("tmux new-session -d -s " + session + " -x 160 -y 50 '" + top + " --name " + name +
                " --interval-ms 10 2>" + error_file + "; echo $? > " + exit_file + "'")
                .status,
            0);
  EXPECT_TRUE(eventually([&] {
    return run("tmux capture-pane -p -t " + session).output.find("shrinking-runtime") != std::string::npos;
  })) << "rk-top never showed the snapshot";
  const int fd = ::shm_open(name.c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 0), 0);
  ::close(fd);
  std::string code;
  EXPECT_TRUE(eventually([&] {
    code = run("cat " + exit_file + " 2>/dev/null").output;
    return !code.empty();
  })) << "rk-top did not exit";
  EXPECT_EQ(code, "2\n");
  const std::string error = run("cat " + error_file).output;
  EXPECT_NE(error.find("shrank while it was read"), std::string::npos) << error;
  (void)run("tmux kill-session -t " + session + " 2>/dev/null");
  std::remove(exit_file.c_str());
  std::remove(error_file.c_str());
}

// A snapshot stays readable however long the names and however many the tenants: names are cut, the
// tenants that sent most are shown. (One 120,000-byte name, or 12,000 tenants, made it "too large", and
// the snapshot then showed nothing at all.)
TEST(RkTop, LongNamesAndManyTenantsStillGiveASnapshot) {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.publish_stats = true;
  o.max_tenants = 2048;
  rk::runtime rt(o);
  for (std::uint64_t t = 1; t <= 1500; ++t) rt.tenants().add(t, rk::tenant_quota::standard());
  (void)rt.spawn<echo>(std::string(120'000, 'n'));
  rt.start();
  nlohmann::json snapshot;
  ASSERT_TRUE(eventually([&] {
    const run_result r = run(top + " --name " + rt.stats_shm_name() + " --once --json");
    if (r.status != 0) return false;
    snapshot = nlohmann::json::parse(r.output);
    return !snapshot["busiest"].empty();
  })) << snapshot.dump().substr(0, 300);
  EXPECT_FALSE(snapshot.contains("error"));
  EXPECT_EQ(snapshot["busiest"][0]["name"].get<std::string>(), std::string(256, 'n') + "...");
  EXPECT_EQ(snapshot["tenants"].size(), 256u);
  EXPECT_GE(snapshot["tenants_total"].get<std::size_t>(), 1500u);
  EXPECT_TRUE(rt.shutdown().drained);
}

} // namespace
