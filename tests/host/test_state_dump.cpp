// The hang hunter (state_dump.hpp) on the CPU backend: a dump names the stuck actor, its message type and
// for how long, lists the mailboxes waiting behind it, arrives by itself when the watchdog fires and on
// SIGUSR1, and restores the process's SIGUSR1 handler after shutdown.
#include "../runtime/test_handlers.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <optional>
#include <thread>

namespace {

using namespace std::chrono_literals;
using namespace rk_cases;

constexpr std::uint32_t msg_block = 77;

std::atomic<bool> release_blocker{false};

//! Spins on `release_blocker` when it gets msg_block (the stuck handler a user would hunt); counts.
struct blocker {
  static constexpr const char* name = "blocker";
  struct state {
    std::uint64_t count = 0;
  };
  template <class Ctx>
  void operator()(Ctx&, state& s, const rk::message& m) {
    if (m.type() == msg_block)
      while (!release_blocker.load()) std::this_thread::yield();
    ++s.count;
  }
};

//! Collects the dumps a runtime hands to runtime_options::on_state_dump.
struct dump_inbox {
  std::mutex mutex;
  std::condition_variable arrived;
  std::vector<rk::state_dump> dumps;

  std::function<void(const rk::state_dump&)> sink() {
    return [this](const rk::state_dump& d) {
      std::lock_guard lock(mutex);
      dumps.push_back(d);
      arrived.notify_all();
    };
  }
  //! Waits (bounded) for the n-th dump; nullopt on timeout.
  std::optional<rk::state_dump> wait_for(std::size_t n) {
    std::unique_lock lock(mutex);
    if (!arrived.wait_for(lock, 20s, [&] { return dumps.size() >= n; })) return std::nullopt;
    return dumps[n - 1];
  }
};

rk::runtime_options cpu_options() {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.scheduled_workers = 1; // one worker: whoever is stuck holds up the rest
  return o;
}

const rk::worker_state* busy_with(const rk::state_dump& d, actor_index a) {
  for (const rk::worker_state& w : d.workers)
    if (w.actor == a) return &w;
  return nullptr;
}

const rk::mailbox_state* mailbox_of(const rk::state_dump& d, actor_index a) {
  for (const rk::mailbox_state& m : d.mailboxes)
    if (m.actor == a) return &m;
  return nullptr;
}

TEST(StateDump, AStuckHandlerIsNamedWithItsMessageTypeAgeAndTheMailboxesBehindIt) {
  release_blocker = false;
  dump_inbox inbox;
  rk::runtime_options o = cpu_options();
  o.handler_timeout = 100ms;
  o.on_state_dump = inbox.sink();
  rk::runtime rt(o);
  const actor_index stuck = rt.spawn<blocker>("stuck");
  const actor_index waiting = rt.spawn<blocker>("waiting");
  rt.start();
  ASSERT_EQ(rt.send(stuck, msg_block, {}), status::enqueued);
  ASSERT_EQ(rt.send(stuck, msg_count, {}), status::enqueued);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(rt.send(waiting, msg_count, {}), status::enqueued);

  // The watchdog fires after 100 ms and dumps by itself.
  const std::optional<rk::state_dump> automatic = inbox.wait_for(1);
  ASSERT_TRUE(automatic.has_value()) << "no dump from the watchdog within 20 s";
  ASSERT_NE(busy_with(*automatic, stuck), nullptr) << automatic->text();

  const rk::state_dump d = rt.dump_state(); // a handler is stuck right now: the dump still works
  EXPECT_EQ(d.phase, "running");
  EXPECT_TRUE(d.ages_known);
  EXPECT_EQ(d.actors, 2u);
  const rk::worker_state* w = busy_with(d, stuck);
  ASSERT_NE(w, nullptr) << d.text();
  EXPECT_EQ(w->actor_name, "stuck");
  EXPECT_EQ(w->message_type, msg_block);
  ASSERT_TRUE(w->busy_for.has_value());
  ASSERT_TRUE(w->heartbeat_age.has_value());
  EXPECT_GE(*w->busy_for, 100ms);
  EXPECT_GE(*w->heartbeat_age, 100ms) << "the heartbeat stood still while the call ran";
  const rk::mailbox_state* behind = mailbox_of(d, waiting);
  ASSERT_NE(behind, nullptr) << d.text();
  EXPECT_EQ(behind->queued, 3u);
  EXPECT_EQ(behind->lane_count, 1u);
  EXPECT_EQ(behind->lanes[0], 3u);
  EXPECT_EQ(behind->lifecycle, "live");
  const rk::mailbox_state* own = mailbox_of(d, stuck);
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->queued, 2u) << "the message in the handler and the one behind it";

  const std::string text = d.text();
  EXPECT_NE(text.find("handling actor 'stuck'"), std::string::npos) << text;
  EXPECT_NE(text.find("message type 77"), std::string::npos) << text;
  EXPECT_NE(text.find("actor 'waiting'"), std::string::npos) << text;
  const nlohmann::json j = nlohmann::json::parse(d.json());
  EXPECT_EQ(j["format"], "ringkernel-state/1");
  bool found = false;
  for (const auto& jw : j["workers"])
    if (jw["actor"] == stuck) {
      found = true;
      EXPECT_EQ(jw["message_type"], msg_block);
      EXPECT_GE(jw["busy_for_ns"].get<std::int64_t>(), 100'000'000);
    }
  EXPECT_TRUE(found) << j.dump();

  release_blocker = true;
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<blocker>(waiting).count, 3u);
  const rk::state_dump after = rt.dump_state();
  EXPECT_EQ(after.phase, "stopped");
  EXPECT_TRUE(after.workers.empty());
  EXPECT_TRUE(after.mailboxes.empty());
}

std::atomic<int> user_sigusr1{0};
extern "C" void count_user_sigusr1(int) {
  user_sigusr1.fetch_add(1);
}

TEST(StateDump, SigusrOneDumpsWhileRunningAndTheUsersHandlerComesBack) {
  struct sigaction mine {};
  mine.sa_handler = count_user_sigusr1;
  sigemptyset(&mine.sa_mask);
  struct sigaction before {};
  ASSERT_EQ(::sigaction(SIGUSR1, &mine, &before), 0);

  dump_inbox inbox;
  rk::runtime_options o = cpu_options();
  o.dump_state_on_sigusr1 = true;
  o.on_state_dump = inbox.sink();
  {
    rk::runtime rt(o);
    const actor_index a = rt.spawn<blocker>("a");
    rt.start();
    ASSERT_EQ(std::raise(SIGUSR1), 0);
    const std::optional<rk::state_dump> d = inbox.wait_for(1);
    ASSERT_TRUE(d.has_value()) << "SIGUSR1 produced no dump within 20 s";
    EXPECT_EQ(d->phase, "running");
    EXPECT_EQ(d->actors, 1u);
    EXPECT_EQ(user_sigusr1.load(), 0) << "the runtime's handler replaced the user's while running";
    ASSERT_EQ(rt.send(a, msg_count, {}), status::enqueued);
    EXPECT_TRUE(rt.shutdown().drained);
  }
  ASSERT_EQ(std::raise(SIGUSR1), 0);
  EXPECT_EQ(user_sigusr1.load(), 1) << "shutdown restored the user's SIGUSR1 handler";
  ASSERT_EQ(::sigaction(SIGUSR1, &before, nullptr), 0);
}

// A refused second start() left a running runtime without its SIGUSR1 dump (the next SIGUSR1 ended the
// process) and without its rk-top object: start()'s failure path dropped both though it had made neither.
TEST(StateDump, ARefusedSecondStartKeepsTheDumpSignalAndTheStatsObject) {
  struct sigaction mine {};
  mine.sa_handler = count_user_sigusr1;
  sigemptyset(&mine.sa_mask);
  struct sigaction before {};
  ASSERT_EQ(::sigaction(SIGUSR1, &mine, &before), 0); // a lost registration shows as a count, not a crash
  const int user_calls = user_sigusr1.load();

  dump_inbox inbox;
  rk::runtime_options o = cpu_options();
  o.dump_state_on_sigusr1 = true;
  o.publish_stats = true;
  o.on_state_dump = inbox.sink();
  {
    rk::runtime rt(o);
    rt.spawn<blocker>("a");
    rt.start();
    const std::string published = rt.stats_shm_name();
    ASSERT_FALSE(published.empty());
    EXPECT_THROW(rt.start(), rk::error);
    EXPECT_EQ(rt.stats_shm_name(), published) << "the rk-top object outlives a refused start()";
    ASSERT_EQ(std::raise(SIGUSR1), 0);
    EXPECT_TRUE(inbox.wait_for(1).has_value()) << "SIGUSR1 produced no dump within 20 s";
    EXPECT_EQ(user_sigusr1.load(), user_calls) << "SIGUSR1 went to the handler from before start()";
    EXPECT_TRUE(rt.shutdown().drained);
    EXPECT_THROW(rt.start(), rk::error);
    EXPECT_EQ(rt.stats_shm_name(), published) << "the last snapshot outlives a start() after shutdown()";
  }
  ASSERT_EQ(::sigaction(SIGUSR1, &before, nullptr), 0);
}

TEST(StateDump, WithoutAWatchdogAgesAreUnknownAndSaidSo) {
  rk::runtime_options o = cpu_options();
  o.handler_timeout = 0ms;
  rk::runtime rt(o);
  rt.spawn<counter>("c");
  const rk::state_dump before = rt.dump_state();
  EXPECT_EQ(before.phase, "created");
  EXPECT_TRUE(before.workers.empty());
  EXPECT_TRUE(before.mailboxes.empty());
  rt.start();
  const rk::state_dump d = rt.dump_state();
  EXPECT_FALSE(d.ages_known);
  EXPECT_FALSE(d.workers.empty()) << "the pool worker is listed";
  for (const rk::worker_state& w : d.workers) EXPECT_FALSE(w.heartbeat_age.has_value());
  EXPECT_NE(d.text().find("ages need the watchdog"), std::string::npos);
  EXPECT_TRUE(rt.shutdown().drained);
}

// Each worker says what it serves as the CPU backend laid it out: a dedicated thread its actors, the pool
// thread every handler type's run queue. (The labels once came from the CUDA layout, one entry per group
// member in the order of the groups, and named the dedicated thread as another handler type's pool.)
TEST(StateDump, EachCpuWorkerSaysWhatItServes) {
  release_blocker = false;
  rk::runtime_options o = cpu_options();
  o.cpu_workers = 1;
  rk::runtime rt(o);
  (void)rt.spawn<counter>("pooled");
  rk::actor_options alone;
  alone.dedicated_worker = true;
  const actor_index d = rt.spawn<blocker>("alone", alone);
  rt.start();
  ASSERT_EQ(rt.send(d, msg_block, {}), status::enqueued);
  std::optional<rk::state_dump> dump;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline && !(dump && busy_with(*dump, d)))
    dump = rt.dump_state();
  ASSERT_TRUE(dump && busy_with(*dump, d));
  const rk::worker_state& dedicated = *busy_with(*dump, d);
  EXPECT_FALSE(dedicated.scheduled);
  EXPECT_EQ(dedicated.serves, "alone (dedicated)");
  ASSERT_EQ(dump->workers.size(), 2u);
  for (const rk::worker_state& w : dump->workers)
    if (w.worker != dedicated.worker) {
      EXPECT_TRUE(w.scheduled);
      EXPECT_NE(w.serves.find("every handler type"), std::string::npos) << w.serves;
    }
  release_blocker = true;
  EXPECT_TRUE(rt.shutdown().drained);
}

} // namespace

// One runtime's on_state_dump may shut down another runtime that also dumps on SIGUSR1: the dump thread
// ran it holding the registry's lock, and the other's shutdown took that lock again on the same thread
// (a deadlock, for good).
TEST(StateDump, ADumpCallbackMayShutDownAnotherRuntimeThatDumpsOnSigusrOne) {
  struct sigaction before {};
  ASSERT_EQ(::sigaction(SIGUSR1, nullptr, &before), 0);
  std::atomic<rk::runtime*> other{nullptr};
  std::atomic<int> other_stopped{0}; // 1: its shutdown() returned, drained
  rk::runtime_options ob = cpu_options();
  ob.dump_state_on_sigusr1 = true;
  ob.on_state_dump = [](const rk::state_dump&) {};
  rk::runtime b(ob);
  (void)b.spawn<counter>("b");
  b.start();
  other = &b;
  rk::runtime_options oa = cpu_options();
  oa.dump_state_on_sigusr1 = true;
  oa.on_state_dump = [&](const rk::state_dump&) {
    if (rk::runtime* r = other.exchange(nullptr)) other_stopped = r->shutdown().drained ? 1 : 2;
  };
  rk::runtime a(oa);
  (void)a.spawn<counter>("a");
  a.start();
  ASSERT_EQ(std::raise(SIGUSR1), 0);
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (other_stopped.load() == 0 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  EXPECT_EQ(other_stopped.load(), 1) << "the other runtime's shutdown() from a dump callback did not return";
  ASSERT_EQ(std::raise(SIGUSR1), 0); // a dumps again; b's entry is gone
  EXPECT_TRUE(a.shutdown().drained);
  struct sigaction after {};
  ASSERT_EQ(::sigaction(SIGUSR1, nullptr, &after), 0);
  EXPECT_EQ(after.sa_handler, before.sa_handler) << "the last registration restored the handler";
}

// Names are the application's (and restore() takes them from a file): a newline or an escape sequence
// in one must not forge a line of text() or reach the reader's terminal. They used to be printed raw.
TEST(StateDump, TextEscapesControlCharactersInNames) {
  rk::state_dump d;
  d.backend = "cpu";
  d.phase = "running";
  d.fault = std::string("boom\nworker 7 [forged]: idle");
  d.ages_known = true;
  rk::worker_state w;
  w.serves = "pool\x1b[2J";
  w.actor = 3;
  w.actor_name = "stuck\nworker 9 [fake]: idle\x1b]0;title\x07";
  d.workers.push_back(w);
  rk::mailbox_state m;
  m.name = "c1\xc2\x9b"
           "31m"; // U+009B: CSI as a C1 control
  m.handler = "tab\there\\x41";
  m.lifecycle = "live";
  d.mailboxes.push_back(m);
  const std::string text = d.text();
  const auto lines = std::count(text.begin(), text.end(), '\n');
  EXPECT_EQ(lines, 4) << "header, fault, one worker, one mailbox:\n" << text;
  for (const char c : text)
    EXPECT_TRUE(c == '\n' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f)) << text;
  EXPECT_EQ(text.find("\xc2\x9b"), std::string::npos) << text;
  EXPECT_NE(text.find("stuck\\x0aworker 9 [fake]: idle\\x1b]0;title\\x07"), std::string::npos) << text;
  EXPECT_NE(text.find("c1\\u009b31m"), std::string::npos) << text;
  EXPECT_NE(text.find("tab\\x09here\\\\x41"), std::string::npos) << "a backslash cannot forge an escape";
  EXPECT_NE(text.find("boom\\x0aworker 7"), std::string::npos) << text;
}
