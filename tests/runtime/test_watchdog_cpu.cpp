// The watchdog and contained faults on the CPU backend, where a test can hold a handler call as long as it
// likes: scheduled actors held up by a pool whose every worker is stuck, waits in a paused runtime while a
// call is stuck, the mark of a call that returned, and what a fault keeps of a handler's exception.

#include "case_fixture.hpp"

#include <functional>
#include <future>
#include <stdexcept>

namespace rk_cases {
namespace {

std::atomic<bool> release_blocker{false};
std::atomic<bool> blocker_entered{false};

//! Host-only: holds its call until the test releases it.
struct blocker {
  static constexpr const char* name = "blocker";
  template <class Ctx>
  void operator()(Ctx&, rk::no_state&, const rk::message&) {
    blocker_entered = true;
    rk::backoff idle;
    while (!release_blocker.load()) idle.pause();
  }
};

//! Host-only: throws an exception whose what() is 100,000 bytes long.
struct long_thrower {
  static constexpr const char* name = "long_thrower";
  template <class Ctx>
  void operator()(Ctx&, rk::no_state&, const rk::message&) {
    throw std::runtime_error(std::string(100'000, 'x'));
  }
};

//! Host-only: traps, swallows the runtime's exception with a catch-all, and carries on.
struct trap_swallower {
  static constexpr const char* name = "trap_swallower";
  struct state {
    std::uint64_t after_trap = 0;
  };
  template <class Ctx>
  void operator()(Ctx& ctx, state& s, const rk::message&) {
    try {
      ctx.trap(7);
    } catch (...) {
    }
    ++s.after_trap;
  }
};

//! `call` on another thread: the text of the rk::error it throws, or what else happened.
std::future<std::string> refusal_of(std::function<void()> call) {
  return std::async(std::launch::async, [call = std::move(call)]() -> std::string {
    try {
      call();
    } catch (const rk::error& e) {
      return e.what();
    }
    return "returned without rk::error";
  });
}

bool ended_within(std::future<std::string>& f, std::chrono::seconds limit) {
  return f.wait_for(limit) == std::future_status::ready;
}

//! cpu_options() with the watchdog at `timeout`, and the blocker ready to hold its next call.
rk::runtime_options watched_options(std::chrono::milliseconds timeout) {
  release_blocker = false;
  blocker_entered = false;
  rk::runtime_options o = cpu_options();
  o.handler_timeout = timeout;
  return o;
}

void await_report(rk::runtime& rt) {
  ASSERT_EQ(rk::wait_until([&] { return !rt.faults().empty(); }, [] { return false; }, 20'000'000'000ull),
            rk::wait_result::ready);
}

// One pool worker, stuck: no worker can serve another scheduled actor, so calls on it were neither told
// nor ended (pause_actor with milliseconds::max() never returned). Now they end as for an actor sharing a
// dedicated worker with the stuck call: an rk::error naming it.
TEST(CpuWatchdog, AScheduledActorWhosePoolIsAllStuckIsToldSoAndItsWaitsEnd) {
  rk::runtime_options o = watched_options(300ms);
  o.scheduled_workers = 1;
  rk::runtime rt(o);
  const actor_index stuck = rt.spawn<blocker>("stuck");
  const actor_index waiting = rt.spawn<counter>("waiting");
  rt.start();
  ASSERT_EQ(rt.send(stuck, msg_count, {}), status::enqueued);
  ASSERT_EQ(rk::wait_until([] { return blocker_entered.load(); }, [] { return false; }, 20'000'000'000ull),
            rk::wait_result::ready);
  // Begun before the report (300 ms from now): it ends with it.
  auto paused = refusal_of([&] { (void)rt.pause_actor(waiting, std::chrono::milliseconds::max()); });
  const bool pause_ended = ended_within(paused, 30s);
  await_report(rt);
  // Begun after it: refused at once.
  auto stopped = refusal_of([&] { (void)rt.stop(waiting, std::chrono::milliseconds::max()); });
  const bool stop_ended = ended_within(stopped, 30s);
  release_blocker = true; // lets a wait of the code before the fix end, so that the test fails, not hangs
  ASSERT_TRUE(pause_ended && stop_ended) << "a wait on an actor no worker could serve went on";
  for (const std::string& what : {paused.get(), stopped.get()}) {
    EXPECT_NE(what.find("every worker of its handler type (1) is stuck"), std::string::npos) << what;
    EXPECT_NE(what.find("actor 'stuck'"), std::string::npos) << what;
  }
  EXPECT_TRUE(rt.shutdown().drained);
}

// pause() throws while a call is stuck, and the pause stands: the other pool worker is held, the stuck one
// never acknowledges. pause_actor and stop then waited out their whole timeout (for ever with max()),
// although a paused runtime otherwise ends them at once.
TEST(CpuWatchdog, InARuntimeAStuckCallKeepsFromPausingWaitsOnOtherActorsEndAtOnce) {
  rk::runtime_options o = watched_options(100ms);
  o.scheduled_workers = 2;
  rk::runtime rt(o);
  const actor_index stuck = rt.spawn<blocker>("stuck");
  const actor_index other = rt.spawn<counter>("other");
  rt.start();
  ASSERT_EQ(rt.send(stuck, msg_count, {}), status::enqueued);
  await_report(rt);
  expect_refused([&] { (void)rt.pause(5s); }, "actor 'stuck'");
  // One after the other: a stop begun first would make the pause_actor a refusal ("is stopping").
  auto pause_wait =
      std::async(std::launch::async, [&] { return rt.pause_actor(other, std::chrono::milliseconds::max()); });
  bool ended = pause_wait.wait_for(30s) == std::future_status::ready;
  auto stop_wait =
      std::async(std::launch::async, [&] { return rt.stop(other, std::chrono::milliseconds::max()); });
  ended = stop_wait.wait_for(30s) == std::future_status::ready && ended;
  release_blocker = true;
  rt.resume(); // the code before the fix: lets the waits end
  ASSERT_TRUE(ended) << "a wait in a runtime that cannot pause went on";
  // Either answer may be right: false (the runtime held the free worker first: the request stands) or
  // true (the free worker confirmed before it took the runtime's pause).
  (void)pause_wait.get();
  (void)stop_wait.get();
  EXPECT_TRUE(rt.shutdown().drained);
}

// The mark went only at the watchdog's next look (up to a quarter of handler_timeout after the call
// returned): meanwhile stop() and respawn() were refused, saying a call runs that had returned.
TEST(CpuWatchdog, ACallThatReturnedIsNoLongerBlamedBeforeTheWatchdogLooksAgain) {
  rk::runtime rt(watched_options(400ms)); // the watchdog looks every 100 ms
  const actor_index stuck = rt.spawn<blocker>("stuck");
  rt.start();
  ASSERT_EQ(rt.send(stuck, msg_count, {}), status::enqueued);
  await_report(rt);
  release_blocker = true;
  // Returned: no worker shows it busy any more (dump_state reads the workers' status words).
  ASSERT_EQ(rk::wait_until(
                [&] {
                  for (const rk::worker_state& w : rt.dump_state().workers)
                    if (w.actor == stuck) return false;
                  return true;
                },
                [] { return false; }, 20'000'000'000ull),
            rk::wait_result::ready);
  bool stopped = false;
  EXPECT_NO_THROW(stopped = rt.stop(stuck, 5s));
  EXPECT_TRUE(stopped);
  EXPECT_TRUE(rt.shutdown().drained);
}

// A fault keeps the first 1,024 bytes of what() and says how many more there were: the whole text was
// kept, so a handler respawned after each throw could pin 4096 times any amount of host memory.
TEST(CpuFaults, AFaultKeepsAPrefixOfALongExceptionText) {
  rk::runtime rt(cpu_options());
  const actor_index a = rt.spawn<long_thrower>("a");
  rt.start();
  ASSERT_EQ(rt.send(a, msg_count, {}), status::enqueued);
  await_report(rt);
  const std::string reason = rt.faults().front().reason;
  EXPECT_LT(reason.size(), 1'200u);
  EXPECT_NE(reason.find("handler threw: xxxx"), std::string::npos) << reason.substr(0, 100);
  EXPECT_NE(reason.find("98976 more bytes left out"), std::string::npos) << reason.substr(1000);
  EXPECT_TRUE(rt.shutdown().drained);
}

// A catch-all in the handler swallowed ctx.trap() on the CPU backend: the actor carried on, unfaulted
// (on CUDA a trap cannot be caught). Now the call still ends as the trap's fault, when the handler returns.
TEST(CpuFaults, ATrapTheHandlerCaughtStillFaultsItsActor) {
  rk::runtime rt(cpu_options());
  const actor_index a = rt.spawn<trap_swallower>("a");
  rt.start();
  ASSERT_EQ(rt.send(a, msg_count, {}), status::enqueued);
  await_report(rt);
  const rk::actor_fault f = rt.faults().front();
  EXPECT_EQ(f.actor, a);
  EXPECT_NE(f.reason.find("ctx.trap(7), caught by the handler"), std::string::npos) << f.reason;
  EXPECT_EQ(rt.lifecycle(a), rk::actor_lifecycle::faulted);
  EXPECT_EQ(rt.send_wait(a, msg_count, {}, 5s), status::not_found);
  const rk::shutdown_report r = rt.shutdown();
  EXPECT_EQ(r.lost_to_fault, 1u);
  EXPECT_EQ(rt.stats().actors[a].fault_code, 7u);
}

} // namespace
} // namespace rk_cases
