// Setup calls as transactions and tables that give slots back, and runtimes destroyed where they cannot
// shut down (on their own threads, in a child of fork()), on the CPU backend (compiled by the host
// compiler; also run under ThreadSanitizer and ASan/UBSan). A separate binary from runtime_cpu so the two
// compile in parallel.
#include "reuse_cases.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <optional>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace rk_cases {

INSTANTIATE_TEST_SUITE_P(cpu, TransactionCases, both_modes(rk::backend::cpu), backend_name);
INSTANTIATE_TEST_SUITE_P(cpu, ReuseCases, both_modes(rk::backend::cpu), backend_name);

} // namespace rk_cases

// --- a runtime destroyed where it cannot shut down ---------------------------------------------------------

namespace {

using namespace std::chrono_literals;

rk::runtime_options quiet_cpu() {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  return o;
}

//! Host-only: ends the process from inside its handler.
struct exiter {
  template <class Ctx>
  void operator()(Ctx&, rk::no_state&, const rk::message&) {
    std::exit(3);
  }
};

//! A static runtime whose handler calls std::exit: the static's destructor runs on that worker thread.
[[noreturn]] void exit_from_a_handler() {
  static rk::runtime rt(quiet_cpu());
  const rk::actor_index a = rt.spawn<exiter>("exiter");
  rt.start();
  if (rt.send(a, 1, {}) != rk::status::enqueued) std::_Exit(98);
  (void)rt.receive(60s);
  std::_Exit(99); // the handler never ended the process
}

//! Host-only: faults its actor (an actor_fault audit record).
struct self_faulting {
  template <class Ctx>
  void operator()(Ctx& ctx, rk::no_state&, const rk::message&) {
    ctx.fault(1);
  }
};

//! A static runtime whose audit sink calls std::exit: the destructor runs on the drain thread. It exits on
//! the fault's record, once the runtime runs (exiting while start() still sets up is not this test's case).
[[noreturn]] void exit_from_an_audit_sink() {
  static rk::runtime rt([] {
    rk::runtime_options o = quiet_cpu();
    o.audit_sinks.push_back(std::make_shared<rk::audit_callback_sink>([](const rk::audit_entry& e) {
      if (e.record.event == rk::audit_event::actor_fault) std::exit(4);
    }));
    return o;
  }());
  const rk::actor_index a = rt.spawn<self_faulting>("faulting");
  rt.start();
  if (rt.send(a, 1, {}) != rk::status::enqueued) std::_Exit(98);
  (void)rt.receive(60s);
  std::_Exit(99);
}

//! As above, but the sink exits while another thread is inside start(): on the first spawn record it waits
//! until main is about to call start(), then lets `delay` pass (where in start() the exit lands) and
//! exits. ~runtime's stop requests then race start's set-up (the watchdog's thread object was written by
//! both: ThreadSanitizer).
[[noreturn]] void exit_from_an_audit_sink_during_start(std::chrono::microseconds delay) {
  static std::atomic<bool> starting{false};
  static std::chrono::microseconds exit_delay{};
  exit_delay = delay;
  static rk::runtime rt([] {
    rk::runtime_options o = quiet_cpu();
    o.handler_timeout = 1000ms; // a watchdog, whose thread start() creates last
    o.dedicated_workers = true; // a thread each (start() checks them in)
    o.audit_sinks.push_back(std::make_shared<rk::audit_callback_sink>([](const rk::audit_entry& e) {
      if (e.record.event != rk::audit_event::actor_spawn) return;
      while (!starting.load()) std::this_thread::yield();
      const auto until = std::chrono::steady_clock::now() + exit_delay; // a position, not a wait for anything
      while (std::chrono::steady_clock::now() < until) {
      }
      std::exit(5);
    }));
    return o;
  }());
  for (int i = 0; i < 64; ++i) (void)rt.spawn<rk_cases::echo>("echo" + std::to_string(i));
  starting.store(true);
  try {
    rt.start();
  } catch (const rk::error&) { // stopped under it: exit() still ends the process with its code
  }
  (void)rt.receive(60s);
  std::_Exit(99);
}

//! Host-only: leaves every message in its mailbox (a mailbox that stays full: a send_wait to it parks).
struct always_deferring {
  template <class Ctx>
  void operator()(Ctx& ctx, rk::no_state&, const rk::message&) {
    ctx.defer();
  }
};

//! Host-only: deletes the runtime that `runtime_to_delete` points to, from its own handler.
rk::runtime* runtime_to_delete = nullptr;
struct runtime_deleter {
  template <class Ctx>
  void operator()(Ctx&, rk::no_state&, const rk::message&) {
    delete runtime_to_delete;
  }
};

rk::runtime_options short_drain() {
  rk::runtime_options o = quiet_cpu();
  o.drain_timeout = 200ms; // the deferring actor never drains
  return o;
}

//! Fills actor `full`'s two-slot mailbox and starts a send_wait to it with no timeout in another thread;
//! returns once that send_wait's message is parked in the gateway (the thread is inside the call), or
//! after 20 s with `parked` false (only a shutdown ends that wait then).
std::future<rk::status> send_wait_that_parks(rk::runtime& rt, rk::actor_index full, bool& parked) {
  for (int i = 0; i < 2; ++i) (void)rt.send(full, 1, {});
  auto waiting = std::async(std::launch::async,
                            [&rt, full] { return rt.send_wait(full, 1, {}, std::chrono::hours::max()); });
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!(parked = rt.stats().gateway_parked != 0) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  return waiting;
}

//! A handler deletes the runtime while a host thread waits in send_wait with no timeout: the wait ends
//! (aborted), as after shutdown(). It used to wait for good. Exit code 0 when it did.
[[noreturn]] void delete_from_a_handler_while_a_send_waits() {
  auto* rt = new rk::runtime(short_drain());
  runtime_to_delete = rt;
  rk::actor_options two_slots;
  two_slots.mailbox = {2, 128};
  const rk::actor_index full = rt->spawn<always_deferring>("full", two_slots);
  const rk::actor_index deleter = rt->spawn<runtime_deleter>("deleter");
  rt->start();
  bool parked = false;
  std::future<rk::status> waiting = send_wait_that_parks(*rt, full, parked);
  if (!parked) std::_Exit(97);
  if (rt->send(deleter, 1, {}) != rk::status::enqueued) std::_Exit(98);
  // From here on `rt` may be gone: only the waiting thread's answer is looked at.
  if (waiting.wait_for(20s) != std::future_status::ready) std::_Exit(1);
  std::_Exit(waiting.get() == rk::status::aborted ? 0 : 2);
}

//! Host-only: a handler call that never returns (no watchdog reports it: handler_timeout 0).
struct stuck_for_good {
  template <class Ctx>
  void operator()(Ctx&, rk::no_state&, const rk::message&) {
    for (;;) std::this_thread::yield();
  }
};

//! shutdown() with a worker it cannot stop: a pause() and a release_region() waiting with no timeout in
//! other threads end (false; aborted: the stuck worker may still read the region). Both waited for good:
//! the stuck worker never confirms a pause nor passes a grace period. Exit code 0 when they ended.
[[noreturn]] void shutdown_leaving_a_stuck_worker_ends_pause_and_release_region() {
  rk::runtime_options o = quiet_cpu();
  o.handler_timeout = 0ms;
  o.drain_timeout = 100ms;
  o.stop_timeout = 200ms;
  auto* rt = new rk::runtime(o); // never destroyed: its worker never stops
  const rk::actor_index stuck = rt->spawn<stuck_for_good>("stuck");
  const rk::region_handle region = rt->create_region({}, 4096, {});
  rt->start();
  if (rt->send(stuck, 1, {}) != rk::status::enqueued) std::_Exit(97);
  const auto in_call = [&] {
    for (const rk::worker_state& w : rt->dump_state().workers)
      if (w.actor == stuck) return true;
    return false;
  };
  const auto eventually = [](auto&& condition) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!condition())
      if (std::chrono::steady_clock::now() > deadline)
        return false;
      else
        std::this_thread::yield();
    return true;
  };
  if (!eventually(in_call)) std::_Exit(98);
  auto pausing = std::async(std::launch::async, [rt] { return rt->pause(std::chrono::hours::max()); });
  if (!eventually([&] { return rt->dump_state().paused; })) std::_Exit(99);
  auto releasing = std::async(std::launch::async,
                              [rt, region] { return rt->release_region(region, std::chrono::hours::max()); });
  if (rt->shutdown().workers_stopped) std::_Exit(3);
  if (pausing.wait_for(20s) != std::future_status::ready) std::_Exit(4);
  if (pausing.get()) std::_Exit(5);
  if (releasing.wait_for(20s) != std::future_status::ready) std::_Exit(6);
  std::_Exit(releasing.get() == rk::wait_result::aborted ? 0 : 7);
}

//! The death tests' children exit with the runtime's threads asked to stop but not joined, and its memory
//! kept for good (by design: the process ends). ThreadSanitizer would report the threads as leaked and
//! change the exit code to 66, LeakSanitizer anything it counts as lost (exit code 23).
void allow_unjoined_threads_in_death_tests() {
  const auto add = [](const char* variable, const char* option) {
    const char* given = std::getenv(variable);
    ::setenv(variable, (std::string(given != nullptr ? given : "") + " " + option).c_str(), 1);
  };
#if defined(__SANITIZE_THREAD__)
  add("TSAN_OPTIONS", "report_thread_leaks=0");
#endif
#if defined(__SANITIZE_ADDRESS__)
  add("ASAN_OPTIONS", "detect_leaks=0");
#endif
  (void)add;
}

} // namespace

TEST(RuntimeLifetime, StdExitFromAHandlerEndsTheProcessWithoutWaitingForThatHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  allow_unjoined_threads_in_death_tests();
  const auto begin = std::chrono::steady_clock::now();
  // The static's destructor waited for its own worker: the drain and stop timeouts, 15 s.
  EXPECT_EXIT(exit_from_a_handler(), ::testing::ExitedWithCode(3), "");
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 10s);
}

TEST(RuntimeLifetime, StdExitFromAnAuditSinkEndsTheProcessWithItsCode) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  allow_unjoined_threads_in_death_tests();
  // The destructor destroyed the drain's std::thread on that thread: std::terminate (SIGABRT).
  EXPECT_EXIT(exit_from_an_audit_sink(), ::testing::ExitedWithCode(4), "");
}

TEST(RuntimeLifetime, StdExitFromAnAuditSinkWhileStartRunsEndsTheProcessWithItsCode) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  allow_unjoined_threads_in_death_tests();
  for (const auto delay : {0us, 100us, 300us, 1000us, 3000us, 10000us})
    EXPECT_EXIT(exit_from_an_audit_sink_during_start(delay), ::testing::ExitedWithCode(5), "")
        << delay.count();
}

TEST(RuntimeLifetime, AForkedChildDestroysItsCopyOfARuntimeWithoutTouchingItsThreads) {
  std::optional<rk::runtime> rt;
  rt.emplace(quiet_cpu());
  const rk::actor_index a = rt->spawn<rk_cases::echo>("echo");
  rt->start();
  const pid_t child = ::fork();
  if (child == 0) {
    rt.reset(); // joined threads that are not in the child: SIGSEGV
    std::_Exit(0);
  }
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  // The parent's runtime is untouched.
  ASSERT_EQ(rt->send(a, 1, rk::as_bytes(std::uint64_t{42})), rk::status::enqueued);
  const auto reply = rt->receive(20s);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->as<std::uint64_t>(), 42u);
  EXPECT_TRUE(rt->shutdown().drained);
}

TEST(RuntimeLifetime, DeletingTheRuntimeFromAHandlerEndsWaitsInHostThreads) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  allow_unjoined_threads_in_death_tests();
  EXPECT_EXIT(delete_from_a_handler_while_a_send_waits(), ::testing::ExitedWithCode(0), "");
}

// A host thread destroys the runtime while another waits in send_wait with no timeout for a message that
// never settles: the shutdown ends the wait (aborted) and the destructor frees nothing until that call
// has returned. It used to free the runtime under the returning call (a use after free, seen by ASan in
// about half the runs).
TEST(RuntimeLifetime, DestroyingTheRuntimeLetsCallsWaitingInOtherThreadsReturnFirst) {
  auto rt = std::make_unique<rk::runtime>(short_drain());
  rk::actor_options two_slots;
  two_slots.mailbox = {2, 128};
  const rk::actor_index full = rt->spawn<always_deferring>("full", two_slots);
  rt->start();
  bool parked = false;
  std::future<rk::status> waiting = send_wait_that_parks(*rt, full, parked);
  EXPECT_TRUE(parked) << "the send_wait's message was never parked";
  rt.reset();
  ASSERT_EQ(waiting.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(waiting.get(), rk::status::aborted);
}

TEST(RuntimeLifetime, AShutdownThatLeavesAStuckWorkerEndsPauseAndReleaseRegionWaits) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  allow_unjoined_threads_in_death_tests();
  EXPECT_EXIT(shutdown_leaving_a_stuck_worker_ends_pause_and_release_region(), ::testing::ExitedWithCode(0),
              "");
}
