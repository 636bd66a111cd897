// Shutdown racing the runtime's own callers on the CPU backend: a pause(), a respawn() or a handler's call
// that shutdown() overtakes, and audit sinks that call back into (or wait in) a runtime shutting down. Each
// call ends with an answer (refused, or false), never a hang or a drain held up. Compiled by the host
// compiler; also run under ThreadSanitizer.
#include "case_fixture.hpp"

#include <atomic>
#include <thread>

namespace rk_cases {

std::atomic<bool> blocker_entered{false};
std::atomic<bool> blocker_release{false};

//! Host-only: holds its worker until the test releases it.
struct blocker {
  template <class Ctx>
  void operator()(Ctx&, rk::no_state&, const rk::message&) {
    blocker_entered = true;
    while (!blocker_release.load()) std::this_thread::yield();
  }
};

TEST(CpuBackend, APauseThatShutdownOvertakesReturnsFalse) {
  // The stopped workers counted as all paused: pause() returned true once shutdown() had ended the
  // runtime, where stop() and pause_actor() return false.
  blocker_entered = false;
  blocker_release = false;
  rk::runtime_options o = cpu_options();
  o.drain_timeout = 100ms;
  rk::runtime rt(o);
  const auto a = rt.spawn<blocker>("blocker");
  rt.start();
  ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!blocker_entered.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  std::atomic<bool> pausing{false};
  std::atomic<int> paused{-1}; // 1 true, 0 false, 2 refused (shutdown came first: nothing to check)
  std::thread pauser([&] {
    pausing = true;
    try {
      paused = rt.pause(60s) ? 1 : 0; // waits: the blocked worker cannot acknowledge
    } catch (const rk::error&) {
      paused = 2;
    }
  });
  std::thread releaser([&] {
    while (rt.running()) std::this_thread::yield(); // shutdown() began
    blocker_release = true;
  });
  while (!pausing.load()) std::this_thread::yield();
  (void)rt.shutdown();
  pauser.join();
  releaser.join();
  EXPECT_NE(paused.load(), 1) << "pause() said paused after shutdown() ended the runtime";
  EXPECT_NE(paused.load(), -1);
}

std::atomic<bool> tables_caller_entered{false};
std::atomic<bool> tables_caller_go{false};
std::atomic<int> tables_caller_result{0}; //!< 1: answered, 2: refused (setup lock taken), 3: other error

//! Host-only: once the test says go, asks for tables(), a call that takes the runtime's setup lock.
struct tables_caller {
  struct state {
    rk::runtime* rt = nullptr;
  };
  template <class Ctx>
  void operator()(Ctx&, state& s, const rk::message&) {
    tables_caller_entered = true;
    rk::backoff wait;
    while (!tables_caller_go.load()) wait.pause();
    try {
      (void)s.rt->tables();
      tables_caller_result = 1;
    } catch (const rk::error& e) {
      tables_caller_result = std::string(e.what()).find("setup lock taken") != std::string::npos ? 2 : 3;
    }
  }
};

TEST(CpuBackend, AHandlersCallIsRefusedWhileShutdownHoldsTheSetupLockAndWaitsForIt) {
  // shutdown() holds the setup lock while it drains, waiting for this handler: the handler waiting for
  // the lock held up the drain until drain_timeout, and its worker was reported stuck and leaked.
  rk::runtime_options o = cpu_options();
  o.drain_timeout = 60s;
  tables_caller_entered = false;
  tables_caller_go = false;
  tables_caller_result = 0;
  rk::runtime rt(o);
  const auto a = rt.spawn<tables_caller>("caller", {}, tables_caller::state{&rt});
  rt.start();
  ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
  ASSERT_EQ(
      rk::wait_until([] { return tables_caller_entered.load(); }, [] { return false; }, 20'000'000'000ull),
      rk::wait_result::ready);
  rk::shutdown_report report;
  const auto begin = std::chrono::steady_clock::now();
  std::thread closer([&] { report = rt.shutdown(); });
  // shutdown() leaves `running` under the setup lock, before it drains.
  ASSERT_EQ(rk::wait_until([&] { return !rt.running(); }, [] { return false; }, 20'000'000'000ull),
            rk::wait_result::ready);
  tables_caller_go = true;
  closer.join();
  EXPECT_EQ(tables_caller_result.load(), 2);
  EXPECT_TRUE(report.drained);
  EXPECT_TRUE(report.workers_stopped);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 30s) << "the drain did not wait for the handler";
}

// pause() from another thread racing shutdown(): a pause that landed after shutdown() resumed the workers
// for its drain held them paused, and the drain gave up with the actor's messages unhandled (1-2 rounds
// in 1,000 before pause() read the phase under the lock shutdown() changes it under). Timing-dependent:
// it checks the invariant each round rather than forcing the interleaving.
TEST(CpuBackend, APauseRacingShutdownNeverHoldsItsDrain) {
  constexpr int rounds = 100;
  constexpr std::uint64_t queued = 6; // within the default 8 slots
  for (int round = 0; round < rounds; ++round) {
    rk::runtime_options o = cpu_options();
    o.drain_timeout = 10s; // a held drain fails the round (and costs this long)
    rk::runtime rt(o);
    const auto a = rt.spawn<counter>("c");
    rt.start();
    ASSERT_TRUE(rt.pause(5s)); // the messages wait in the mailbox for the drain
    const ping_payload p{0, 1};
    for (std::uint64_t i = 0; i < queued; ++i)
      ASSERT_EQ(rt.send(a, 1, rk::as_bytes(p)), rk::status::enqueued);
    rt.resume();
    std::atomic<bool> go{false};
    std::thread pauser([&] {
      rk::backoff wait;
      while (!go.load()) wait.pause();
      try {
        (void)rt.pause(5s); // false or rk::error ("not running") once shutdown() has begun
      } catch (const rk::error&) {
      }
    });
    go = true;
    const rk::shutdown_report report = rt.shutdown();
    pauser.join();
    ASSERT_TRUE(report.drained) << "round " << round << ": the drain was held paused";
    ASSERT_EQ(rt.state<counter>(a).count, queued) << "round " << round;
  }
}

//! An audit sink that asks its runtime for its tables at every record (and once, when asked, to shut down).
struct tables_asking_sink final : rk::audit_sink {
  std::atomic<rk::runtime*> rt{nullptr};
  std::atomic<std::uint64_t> answered{0}, refused{0};
  std::atomic<bool> shut_down_once{false};
  std::atomic<bool> shutdown_refused{false};
  void write(const rk::audit_entry&) override {
    if (rk::runtime* r = rt.load()) {
      if (shut_down_once.exchange(false)) { // it would join this very thread (std::terminate once)
        const rk::shutdown_report report = r->shutdown();
        shutdown_refused = report.fault && report.fault->find("runtime callback") != std::string::npos;
      }
      try {
        (void)r->tables();
        ++answered;
      } catch (const rk::error&) {
        ++refused;
      }
    }
  }
};

TEST(CpuBackend, AnAuditSinksCallIsRefusedWhileShutdownHoldsTheSetupLock) {
  // shutdown() joins the audit drain while it holds the setup lock: a sink waiting for that lock (tables(),
  // spawn(), ...) deadlocked shutdown() and ~runtime() for ever.
  auto sink = std::make_shared<tables_asking_sink>();
  rk::runtime_options o = cpu_options();
  o.audit_sinks.push_back(sink);
  rk::runtime rt(o);
  sink->rt = &rt;
  const auto a = rt.spawn<counter>("c");
  rt.start();
  sink->shut_down_once = true;
  EXPECT_EQ(rt.send_wait(a, 1, {}, 10s), rk::status::delivered);
  EXPECT_TRUE(rt.stop(a, 10s)); // a record for the sink
  (void)rt.flush_audit();
  EXPECT_TRUE(sink->shutdown_refused.load()) << "shutdown() from the sink was not refused";
  EXPECT_TRUE(rt.running());
  const rk::shutdown_report report = rt.shutdown(); // its own records reach the sink under the lock
  EXPECT_TRUE(report.drained);
  EXPECT_GT(sink->refused.load(), 0u) << "no record reached the sink while shutdown() held the lock";
  sink->rt = nullptr;
}

//! An audit sink that, once armed, waits in its runtime (receive() for a minute), and, once given another
//! runtime, shuts that one down.
struct waiting_sink final : rk::audit_sink {
  std::atomic<rk::runtime*> rt{nullptr};
  std::atomic<bool> armed{false};
  std::atomic<rk::runtime*> other{nullptr};
  std::atomic<bool> other_stopped{false};
  void write(const rk::audit_entry&) override {
    if (rk::runtime* o = other.exchange(nullptr)) {
      const rk::shutdown_report report = o->shutdown(); // not this sink's runtime: nothing waits for us
      other_stopped = !report.fault.has_value() && !o->running();
    }
    if (rk::runtime* r = rt.load(); r != nullptr && armed.exchange(false)) (void)r->receive(60s);
  }
};

TEST(CpuBackend, ACallbacksWaitEndsWhenItsRuntimeShutsDown) {
  // shutdown() joins the audit drain before the runtime is stopped: a sink waiting in the runtime (a
  // receive(), a stop(), a send_wait()) until then held shutdown() for as long as its timeout.
  auto sink = std::make_shared<waiting_sink>();
  rk::runtime_options o = cpu_options();
  o.audit_sinks.push_back(sink);
  rk::runtime rt(o);
  sink->rt = &rt;
  rk::runtime_options plain = o;
  plain.audit_sinks.clear();
  rk::runtime other(plain);
  (void)other.spawn<counter>("c");
  other.start();
  sink->other = &other; // shut down from the sink: another runtime's calls are not refused
  const auto a = rt.spawn<counter>("c");
  rt.start();
  EXPECT_EQ(rt.send_wait(a, 1, {}, 10s), rk::status::delivered);
  (void)rt.flush_audit();
  EXPECT_TRUE(sink->other_stopped.load()) << "the other runtime's shutdown() was refused or failed";
  sink->armed = true;
  const auto begin = std::chrono::steady_clock::now();
  const rk::shutdown_report report = rt.shutdown(); // its records reach the armed sink
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 30s) << "shutdown() waited for the sink's receive()";
  EXPECT_FALSE(sink->armed.load()) << "no record reached the armed sink during shutdown()";
  EXPECT_TRUE(report.drained);
  sink->rt = nullptr;
}

std::atomic<std::uint64_t> alias_answers{0};
std::atomic<std::uint64_t> alias_refusals{0};
std::string alias_refusal_text; //!< the first

//! Host-only: adds and removes an alias of itself on every message (setup calls from a handler).
struct aliasing_handler {
  struct state {
    rk::runtime* rt = nullptr;
  };
  template <class Ctx>
  void operator()(Ctx& ctx, state& s, const rk::message&) {
    try {
      s.rt->remove_alias(s.rt->add_alias("alias", ctx.self()));
      ++alias_answers;
    } catch (const rk::error& e) {
      if (alias_refusals++ == 0) alias_refusal_text = e.what();
    }
  }
};

TEST(CpuBackend, AUsageReaderDoesNotMakeHandlersSetupCallsFail) {
  // usage() lets go of released memory under the setup lock when it is free: a handler's setup call that
  // found it taken by such a reader was refused as if a shutdown held it (up to a third of 3,000 calls in
  // a probe; none in some runs, so this test can pass by chance on that code). The reader waits for no
  // worker, so the handler waits for it.
  alias_answers = 0;
  alias_refusals = 0;
  rk::runtime_options o = cpu_options();
  o.max_actors = 8'192; // every alias fits without a slot given back: a handler cannot wait for that
  rk::runtime rt(o);
  rt.tenants().add(3, rk::tenant_quota::standard());
  const auto a = rt.spawn<aliasing_handler>("aliaser", {}, aliasing_handler::state{&rt});
  rt.start();
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) (void)rt.tenants().usage(3);
  });
  const std::uint64_t messages = rk::test::scaled(3'000);
  std::uint64_t sent = 0;
  for (; sent < messages; ++sent)
    if (rt.send_blocking(a, 1, {}, 10s) != rk::status::enqueued) break;
  EXPECT_EQ(rk::wait_until([&] { return alias_answers.load() + alias_refusals.load() == sent; },
                           [] { return false; }, 60'000'000'000ull),
            rk::wait_result::ready);
  done = true;
  reader.join();
  EXPECT_EQ(sent, messages);
  EXPECT_EQ(alias_refusals.load(), 0u) << alias_answers.load() << " answered; " << alias_refusal_text;
  EXPECT_TRUE(rt.shutdown().drained);
}

std::atomic<bool> held_fault_entered{false};
std::atomic<bool> held_fault_release{false};

//! Host-only: faults (ctx.fault), then holds its worker until the test releases it (at most 30 s).
struct fault_and_hold {
  template <class Ctx>
  void operator()(Ctx& ctx, rk::no_state&, const rk::message&) {
    ctx.fault(7);
    held_fault_entered = true;
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (!held_fault_release.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  }
};

TEST(CpuBackend, ARespawnWaitingForAFaultedCallEndsWhenShutdownBegins) {
  // respawn() of an actor whose faulted call still ran went on waiting for that call through a shutdown()
  // that began meanwhile (up to 10 s), and then for the setup lock the drain held.
  for (const bool dedicated : {false, true}) {
    const char* mode = dedicated ? "dedicated" : "scheduled";
    held_fault_entered = false;
    held_fault_release = false;
    rk::runtime rt(unwatched_cpu_options(dedicated));
    const auto a = rt.spawn<fault_and_hold>("held");
    rt.start();
    ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
    const auto entered_by = std::chrono::steady_clock::now() + 20s;
    while (!held_fault_entered.load() && std::chrono::steady_clock::now() < entered_by)
      std::this_thread::yield();
    ASSERT_TRUE(held_fault_entered.load()) << mode;
    std::atomic<int> outcome{0}; // 1 refused for the drain, 2 another error, 3 respawned
    std::atomic<bool> respawning{false};
    std::thread respawner([&] {
      respawning = true;
      try {
        rt.respawn(a); // waits for the faulted call, which holds until released
        outcome = 3;
      } catch (const rk::error& e) {
        const bool drain = std::string(e.what()).find("shutdown() was called and the runtime is draining") !=
                           std::string::npos;
        outcome = drain ? 1 : 2;
      }
    });
    while (!respawning.load()) std::this_thread::yield();
    rk::shutdown_report report;
    std::thread stopper([&] { report = rt.shutdown(); }); // drains until the held call returns
    const auto answered_by = std::chrono::steady_clock::now() + 5s;
    while (outcome.load() == 0 && std::chrono::steady_clock::now() < answered_by) std::this_thread::yield();
    const int answered_during_drain = outcome.load();
    held_fault_release = true;
    respawner.join();
    stopper.join();
    EXPECT_EQ(answered_during_drain, 1)
        << mode << ": respawn() answers when the drain begins (final " << outcome.load() << ")";
    EXPECT_TRUE(report.workers_stopped) << mode;
    EXPECT_EQ(rt.lifecycle(a), rk::actor_lifecycle::faulted) << mode;
  }
}

} // namespace rk_cases
