// Runtime behaviour on the CPU backend: the shared cases in both worker modes, exceptions and faults,
// handlers calling back into the host API, backend choice (compiled by the host compiler; also run under
// ThreadSanitizer). Shutdown racing callers: test_shutdown_races_cpu.cpp.
#include "quota_change_cases.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <thread>

namespace rk_cases {

INSTANTIATE_TEST_SUITE_P(cpu, RuntimeCases, both_modes(rk::backend::cpu), backend_name);
INSTANTIATE_TEST_SUITE_P(cpu, RoutingCases, both_modes(rk::backend::cpu), backend_name);
INSTANTIATE_TEST_SUITE_P(cpu, TenancyCases, both_modes(rk::backend::cpu), backend_name);

//! Host-only handler: exceptions cannot exist in device code, but on the CPU backend one that escapes a
//! handler faults that actor alone. Throws on type 1, counts the rest.
struct thrower {
  struct state {
    std::uint64_t handled = 0;
  };
  template <class Ctx>
  void operator()(Ctx&, state& s, const rk::message& m) {
    if (m.type() == 1) throw std::runtime_error("bad input 7");
    ++s.handled;
  }
};

TEST(CpuBackend, AnExceptionFaultsOnlyItsActorAndAccountingSurvives) {
  rk::runtime_options o = cpu_options();
  o.cpu_workers = 1; // both actors share one worker: the fault must not stop the other
  rk::runtime rt(o);
  rk::actor_options other_tenant;
  other_tenant.tenant = 9;
  rt.tenants().add(9, rk::tenant_quota::standard());
  const auto a = rt.spawn<thrower>("thrower");
  const auto b = rt.spawn<thrower>("other", other_tenant);
  rt.start();
  ASSERT_TRUE(rt.pause_actor(a, 5s));
  ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);                             // throws when handled
  for (int i = 0; i < 3; ++i) ASSERT_EQ(rt.send(a, 2, {}), rk::status::enqueued); // queued behind it
  ASSERT_EQ(rk::wait_until([&] { return rt.stats().actors[a].received == 4; }, [] { return false; },
                           30'000'000'000ull),
            rk::wait_result::ready);
  rt.resume_actor(a);
  ASSERT_EQ(rk::wait_until([&] { return rt.stats().actors[a].discarded == 3; }, [] { return false; },
                           30'000'000'000ull),
            rk::wait_result::ready)
      << "the messages queued behind the fault are discarded and counted";
  EXPECT_EQ(rt.lifecycle(a), rk::actor_lifecycle::faulted);
  const auto faults = rt.faults();
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_EQ(faults[0].name, "thrower");
  EXPECT_EQ(faults[0].message_type, 1u);
  EXPECT_EQ(faults[0].kind, rk::fault_kind::exception);
  EXPECT_EQ(faults[0].code, rk::fault_code_exception);
  EXPECT_NE(faults[0].reason.find("bad input 7"), std::string::npos) << faults[0].reason;
  rk::send_options as9;
  as9.tenant = 9;
  EXPECT_EQ(rt.send_wait(b, 2, {}, 10s, as9), rk::status::delivered) << "the other tenant's actor still runs";
  ASSERT_EQ(rt.flush_audit(10s), rk::wait_result::ready);
  std::size_t fault_records = 0;
  for (const auto& e : rt.audit_records())
    if (e.record.event == rk::audit_event::actor_fault && e.record.actor == a) ++fault_records;
  EXPECT_EQ(fault_records, 1u);
  rt.respawn(a);
  EXPECT_EQ(rt.send_wait(a, 2, {}, 10s), rk::status::delivered);
  const rk::shutdown_report r = rt.shutdown();
  EXPECT_TRUE(r.drained);
  EXPECT_FALSE(r.fault.has_value());
  EXPECT_EQ(r.lost_to_fault, 1u);
  EXPECT_EQ(r.discarded, 3u);
  const rk::runtime_stats s = rt.stats();
  ASSERT_EQ(s.actors.size(), 2u) << "stats survive the fault";
  EXPECT_EQ(s.actors[a].interrupted, 1u);
  EXPECT_EQ(s.actors[a].handled, 1u);
  EXPECT_EQ(rt.state<thrower>(a).handled, 1u) << "respawn started from a fresh state";
  EXPECT_EQ(rt.state<thrower>(b).handled, 1u);
}

//! Host-only handler that calls back into the host API (possible on the CPU backend only): calls that
//! would wait for its own worker must refuse at once instead of timing out or hanging.
struct host_api_caller {
  struct state {
    rk::runtime* rt = nullptr;
  };
  struct report {
    std::uint32_t stop_refused = 0, pause_refused = 0, shutdown_refused = 0, pause_all_refused = 0,
                  snapshot_refused = 0, snapshot_all_refused = 0;
  };
  template <class Ctx>
  void operator()(Ctx& ctx, state& s, const rk::message&) {
    report r;
    try {
      (void)s.rt->stop(ctx.self(), 30s);
    } catch (const rk::error& e) {
      r.stop_refused = std::string(e.what()).find("called from a handler") != std::string::npos;
    }
    try {
      (void)s.rt->pause_actor(ctx.self(), 30s);
    } catch (const rk::error& e) {
      r.pause_refused = std::string(e.what()).find("called from a handler") != std::string::npos;
    }
    try {
      (void)s.rt->pause(30s);
    } catch (const rk::error& e) {
      r.pause_all_refused = std::string(e.what()).find("called from a handler") != std::string::npos;
    }
    try {
      (void)s.rt->snapshot(ctx.self(), 30s);
    } catch (const rk::error& e) {
      r.snapshot_refused =
          std::string(e.what()).find("snapshot(): called from a handler") != std::string::npos;
    }
    try { // it waited out its timeout, holding the setup lock, with the watchdog reporting this call
      (void)s.rt->snapshot_all(std::filesystem::temp_directory_path() / "rk_never_written.snap", 30s);
    } catch (const rk::error& e) {
      r.snapshot_all_refused =
          std::string(e.what()).find("snapshot_all(): called from a handler") != std::string::npos;
    }
    const rk::shutdown_report sr = s.rt->shutdown();
    r.shutdown_refused = sr.fault && sr.fault->find("called from a handler") != std::string::npos;
    (void)ctx.send_host(1, rk::as_bytes(r));
  }
};

TEST(CpuBackend, HostCallsThatWouldWaitForTheirOwnWorkerRefuseFromAHandler) {
  for (const bool dedicated : {false, true}) {
    rk::runtime_options o = cpu_options();
    o.dedicated_workers = dedicated;
    rk::runtime rt(o);
    const auto a = rt.spawn<host_api_caller>("caller", {}, host_api_caller::state{&rt});
    rt.start();
    const auto begin = std::chrono::steady_clock::now();
    ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
    const auto reply = rt.receive(20s);
    ASSERT_TRUE(reply.has_value());
    const auto r = reply->as<host_api_caller::report>();
    EXPECT_EQ(r.stop_refused, 1u);
    EXPECT_EQ(r.pause_refused, 1u);
    EXPECT_EQ(r.shutdown_refused, 1u);
    EXPECT_EQ(r.pause_all_refused, 1u);
    EXPECT_EQ(r.snapshot_refused, 1u);
    EXPECT_EQ(r.snapshot_all_refused, 1u);
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 20s) << "refused at once, no 30 s waits";
    EXPECT_EQ(rt.lifecycle(a), rk::actor_lifecycle::live) << "nothing was stopped";
    const rk::shutdown_report sr = rt.shutdown();
    EXPECT_TRUE(sr.drained);
    EXPECT_TRUE(sr.workers_stopped);
  }
}

//! respawn(target) called from a handler call: what it said, and how long it took.
struct respawn_outcome {
  std::uint32_t outcome = 0; //!< 1 respawned, 2 refused saying `expected`, 3 another error
  std::uint32_t waited_ms = 0;
};
respawn_outcome respawn_from_handler(rk::runtime& rt, rk::actor_index target, const char* expected) {
  respawn_outcome r;
  const auto begin = std::chrono::steady_clock::now();
  try {
    rt.respawn(target);
    r.outcome = 1;
  } catch (const rk::error& e) {
    r.outcome = std::string(e.what()).find(expected) != std::string::npos ? 2 : 3;
  }
  r.waited_ms = static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - begin)
          .count());
  return r;
}

//! Host-only: faults (ctx.fault), then respawns itself from the same call and reports what that said.
struct self_respawner {
  struct state {
    rk::runtime* rt = nullptr;
  };
  struct report {
    std::uint32_t refused_at_once = 0;
    std::uint32_t waited_ms = 0;
  };
  template <class Ctx>
  void operator()(Ctx& ctx, state& s, const rk::message&) {
    ctx.fault(7);
    const respawn_outcome o = respawn_from_handler(
        *s.rt, ctx.self(), "respawn(): called from the handler call of actor 'respawner' that faulted");
    const report r{o.outcome == 2 ? 1u : 0u, o.waited_ms};
    (void)ctx.send_host(1, rk::as_bytes(r));
  }
};

TEST(CpuBackend, AFaultedCallThatRespawnsItsOwnActorIsRefusedAtOnce) {
  // respawn() waits for a faulted call to return (its writes would land in the fresh state): from that
  // very call it waited 10 s (or until the watchdog reported it) and then blamed the call on itself.
  for (const bool dedicated : {false, true}) {
    rk::runtime rt(unwatched_cpu_options(dedicated));
    const auto a = rt.spawn<self_respawner>("respawner", {}, self_respawner::state{&rt});
    rt.start();
    ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
    const auto reply = rt.receive(30s);
    ASSERT_TRUE(reply.has_value());
    const auto r = reply->as<self_respawner::report>();
    EXPECT_EQ(r.refused_at_once, 1u);
    EXPECT_LT(r.waited_ms, 5'000u);
    EXPECT_EQ(rt.lifecycle(a), rk::actor_lifecycle::faulted);
    rt.respawn(a); // from the host, once the call returned
    EXPECT_EQ(rt.lifecycle(a), rk::actor_lifecycle::live);
    EXPECT_TRUE(rt.shutdown().drained);
  }
}

//! Host-only: type 1 faults (ctx.fault) and then throws; any other type is answered to the host.
struct fault_then_throw {
  template <class Ctx>
  void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    if (m.type() == 1) {
      ctx.fault(7);
      throw std::runtime_error("the faulted call's own exception");
    }
    (void)ctx.send_host(2, {});
  }
};

TEST(CpuBackend, ARespawnAfterAFaultedCallThatThrowsIsNeverFaultedByThatCall) {
  // A respawn could land before the faulted call ended, and the call's exception then faulted the fresh
  // actor (0.6% of rounds in a probe): the worker recorded the exception after it showed the actor idle,
  // which is all respawn() waits for, and respawn() could read the fault after it last looked for a
  // running faulted call. Statistical: each round respawns as soon as the call faulted, then checks that
  // the fresh actor answers. Fails within tens of rounds on the old code, in both modes.
  for (const bool dedicated : {false, true}) {
    rk::runtime rt(unwatched_cpu_options(dedicated));
    const auto a = rt.spawn<fault_then_throw>("thrower");
    rt.start();
    const std::uint64_t rounds = rk::test::scaled(2'000);
    std::uint64_t late_faults = 0;
    for (std::uint64_t round = 0; round < rounds && late_faults == 0; ++round) {
      ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      bool respawned = false;
      while (!respawned && std::chrono::steady_clock::now() < deadline) {
        try {
          rt.respawn(a); // refused until ctx.fault marked it; then waits for the call to return
          respawned = true;
        } catch (const rk::error&) {
        }
      }
      ASSERT_TRUE(respawned) << "round " << round;
      const rk::status sent = rt.send_wait(a, 2, {}, 10s);
      const auto reply = sent == rk::status::delivered ? rt.receive(10s) : std::nullopt;
      if (!reply || rt.lifecycle(a) != rk::actor_lifecycle::live) ++late_faults;
    }
    EXPECT_EQ(late_faults, 0u) << (dedicated ? "dedicated" : "scheduled")
                               << ": a respawned actor was faulted by the call before it";
    EXPECT_TRUE(rt.shutdown().drained);
  }
}

std::atomic<int> cross_faulted{0};
std::atomic<rk::actor_index> cross_partner_of_first{rk::host_actor};
std::atomic<rk::actor_index> cross_partner_of_second{rk::host_actor};

//! Host-only: faults, waits (bounded) until its partner faulted too, then respawns the partner from the
//! same call and reports the outcome: 1 respawned, 2 refused for the cycle, 3 another error.
struct cross_respawner {
  struct state {
    rk::runtime* rt = nullptr;
    bool first = true;
  };
  using report = respawn_outcome;
  template <class Ctx>
  void operator()(Ctx& ctx, state& s, const rk::message&) {
    ctx.fault(7);
    ++cross_faulted;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (cross_faulted.load() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    const report r =
        respawn_from_handler(*s.rt, s.first ? cross_partner_of_first.load() : cross_partner_of_second.load(),
                             "waits for (directly or through others): neither call could return");
    (void)ctx.send_host(1, rk::as_bytes(r));
  }
};

//! Spawns cross_respawner "a" in `for_a` and "b" in `for_b` (the same runtime or two), each respawning
//! the other from its faulted call, and checks that one is refused at once and the other respawns its
//! partner.
void expect_one_of_two_cross_respawns_refused_at_once(rk::runtime& for_a, rk::runtime& for_b,
                                                      const char* mode) {
  cross_faulted = 0;
  const auto a = for_a.spawn<cross_respawner>("a", {}, cross_respawner::state{&for_b, true});
  const auto b = for_b.spawn<cross_respawner>("b", {}, cross_respawner::state{&for_a, false});
  cross_partner_of_first = b;
  cross_partner_of_second = a;
  for_a.start();
  if (&for_b != &for_a) for_b.start();
  ASSERT_EQ(for_a.send(a, 1, {}), rk::status::enqueued);
  ASSERT_EQ(for_b.send(b, 1, {}), rk::status::enqueued);
  std::vector<std::uint32_t> outcomes;
  for (rk::runtime* rt : {&for_a, &for_b}) {
    const auto reply = rt->receive(30s);
    ASSERT_TRUE(reply.has_value()) << mode;
    const auto r = reply->as<cross_respawner::report>();
    outcomes.push_back(r.outcome);
    EXPECT_LT(r.waited_ms, 5'000u) << mode;
  }
  std::sort(outcomes.begin(), outcomes.end());
  EXPECT_EQ(outcomes, (std::vector<std::uint32_t>{1, 2}))
      << mode << ": one is refused at once, then the other respawns its partner";
  const bool a_live = for_a.lifecycle(a) == rk::actor_lifecycle::live;
  EXPECT_NE(a_live, for_b.lifecycle(b) == rk::actor_lifecycle::live) << mode << ": exactly one was respawned";
  EXPECT_TRUE(for_a.shutdown().drained) << mode;
  if (&for_b != &for_a) {
    EXPECT_TRUE(for_b.shutdown().drained) << mode;
  }
}

TEST(CpuBackend, TwoFaultedCallsThatRespawnEachOtherEndAtOnce) {
  // Each waited 10 s for the other's call to return (neither could), then both were refused.
  for (const bool dedicated : {false, true}) {
    rk::runtime_options o = unwatched_cpu_options(dedicated);
    o.cpu_workers = 2; // the two calls run at once
    rk::runtime rt(o);
    expect_one_of_two_cross_respawns_refused_at_once(rt, rt, dedicated ? "dedicated" : "scheduled");
  }
}

TEST(CpuBackend, TwoFaultedCallsOfTwoRuntimesThatRespawnEachOtherEndAtOnce) {
  // The same cycle across two runtimes: each runtime took the other's worker thread for a host thread,
  // so both calls waited 10 s and were then refused, blaming a slow call.
  for (const bool dedicated : {false, true}) {
    const rk::runtime_options o = unwatched_cpu_options(dedicated);
    rk::runtime first(o);
    rk::runtime second(o);
    expect_one_of_two_cross_respawns_refused_at_once(first, second, dedicated ? "dedicated" : "scheduled");
  }
}

std::atomic<bool> self_waiter_go{false};
std::atomic<bool> self_waiter_entered{false};
std::atomic<rk::address> self_waiter_target{rk::host_actor}; //!< host_actor: its own id
//! send_blocking instead of send_wait, again and again until the answer is not `enqueued` (the gateway
//! parks the messages to the full mailbox until its admission limit for it is reached).
std::atomic<bool> self_waiter_blocking{false};

//! Host-only: on type 1, once the test filled its mailbox, send_waits a message to itself (or to
//! self_waiter_target) and reports
//! the verdict and how long the call took (ms). Other types are counted only.
struct self_waiter {
  struct state {
    rk::runtime* rt = nullptr;
    std::uint32_t others = 0;
  };
  struct report {
    rk::status verdict = rk::status::delivered;
    std::uint32_t waited_ms = 0;
  };
  template <class Ctx>
  void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() != 1) {
      ++s.others;
      return;
    }
    self_waiter_entered = true;
    const auto until = std::chrono::steady_clock::now() + 30s; // the test fills the mailbox meanwhile
    while (!self_waiter_go.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    const auto begin = std::chrono::steady_clock::now();
    report r;
    const rk::address target = self_waiter_target.load();
    const rk::address to = target == rk::host_actor ? ctx.self() : target;
    if (self_waiter_blocking.load()) {
      for (int i = 0;
           i < 100'000 && (r.verdict = s.rt->send_blocking(to, 2, {}, 20s)) == rk::status::enqueued; ++i) {
      }
    } else {
      r.verdict = s.rt->send_wait(to, 2, {}, 20s);
    }
    r.waited_ms = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - begin)
            .count());
    (void)ctx.send_host(1, rk::as_bytes(r));
  }
};

TEST(CpuBackend, AHandlersSendWaitToItsOwnFullMailboxAnswersAtOnce) {
  // Only the handler's return can make room in its own mailbox: waiting for room waited the full 20 s and
  // said timed_out. It is refused queue_full at once now, and counted as a refusal.
  for (const bool dedicated : {false, true}) {
    self_waiter_go = false;
    rk::runtime_options o = cpu_options();
    o.dedicated_workers = dedicated;
    rk::runtime rt(o);
    rk::actor_options small;
    small.mailbox = {2, 256};
    const auto a = rt.spawn<self_waiter>("self", small, self_waiter::state{&rt});
    rt.start();
    ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
    rk::send_options drop;
    drop.flags = rk::envelope_flags::drop_if_full;
    int filled = 0;
    while (rt.send_wait(a, 3, {}, 20s, drop) == rk::status::delivered) ++filled;
    ASSERT_LE(filled, 2) << "the mailbox holds two messages, the trigger among them once taken";
    self_waiter_go = true;
    const auto reply = rt.receive(25s);
    ASSERT_TRUE(reply.has_value());
    const auto r = reply->as<self_waiter::report>();
    EXPECT_EQ(r.verdict, rk::status::queue_full) << "dedicated " << dedicated;
    EXPECT_LT(r.waited_ms, 10'000u) << "dedicated " << dedicated;
    const rk::shutdown_report sr = rt.shutdown();
    EXPECT_TRUE(sr.drained);
    EXPECT_EQ(rt.state<self_waiter>(a).others, static_cast<std::uint32_t>(filled));
  }
}

TEST(CpuBackend, AHandlersSendBlockingToItsOwnFullMailboxAnswersAtOnce) {
  // As for send_wait: once the gateway would take no more for the mailbox, send_blocking waited its
  // whole timeout for room only the handler's return could make, and said timed_out.
  self_waiter_go = true;
  self_waiter_blocking = true;
  rk::runtime rt(cpu_options());
  rk::actor_options small;
  small.mailbox = {2, 256};
  const auto a = rt.spawn<self_waiter>("self", small, self_waiter::state{&rt});
  rt.start();
  ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
  const auto reply = rt.receive(25s);
  self_waiter_blocking = false;
  ASSERT_TRUE(reply.has_value());
  const auto r = reply->as<self_waiter::report>();
  EXPECT_EQ(r.verdict, rk::status::queue_full);
  EXPECT_LT(r.waited_ms, 10'000u);
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST(CpuBackend, AHandlersSendWaitToItsOwnIdRedirectedElsewhereWaitsForItsVerdict) {
  // Redirected by set_route, the message goes to another actor's mailbox: no reason to refuse it at once
  // (the first version of the self check did, queue_full).
  self_waiter_go = false;
  self_waiter_entered = false;
  rk::runtime rt(cpu_options());
  rk::actor_options small;
  small.mailbox = {2, 256};
  const auto a = rt.spawn<self_waiter>("self", small, self_waiter::state{&rt});
  const auto b = rt.spawn<self_waiter>("other", {}, self_waiter::state{&rt});
  rt.start();
  ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
  rk::send_options drop;
  drop.flags = rk::envelope_flags::drop_if_full;
  while (rt.send_wait(a, 3, {}, 20s, drop) == rk::status::delivered) {
  } // a's mailbox is full now
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!self_waiter_entered.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  rt.set_route(a, b);
  self_waiter_go = true;
  const auto reply = rt.receive(25s);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->as<self_waiter::report>().verdict, rk::status::delivered);
  rt.clear_route(a);
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<self_waiter>(b).others, 1u) << "the message went to b";
}

//! A self_waiter `a` that send_waits to `target_of(a, b, rt)` once the host filled the mailbox of a
//! (`fill_a`) or b (both have two slots); the verdict and how long it took.
template <class Target>
self_waiter::report wait_on_a_full_mailbox(const rk::runtime_options& o, bool fill_a, Target target_of) {
  self_waiter_go = false;
  self_waiter_entered = false;
  rk::runtime rt(o);
  rk::actor_options small;
  small.mailbox = {2, 256};
  const auto a = rt.spawn<self_waiter>("a", small, self_waiter::state{&rt});
  const auto b = rt.spawn<self_waiter>("b", small, self_waiter::state{&rt});
  self_waiter_target = target_of(a, b, rt);
  rt.start();
  EXPECT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!self_waiter_entered.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  rk::send_options drop;
  drop.flags = rk::envelope_flags::drop_if_full;
  // Full after two where only the waiting thread serves it; another thread keeps draining it.
  for (int i = 0; i < 8 && rt.send_wait(fill_a ? a : b, 3, {}, 20s, drop) == rk::status::delivered; ++i) {
  }
  self_waiter_go = true;
  const auto reply = rt.receive(25s);
  EXPECT_TRUE(reply.has_value());
  self_waiter_target = rk::host_actor;
  EXPECT_TRUE(rt.shutdown().drained);
  return reply ? reply->as<self_waiter::report>() : self_waiter::report{rk::status::timed_out, 0};
}

TEST(CpuBackend, AHandlersSendWaitToAMailboxOnlyItsThreadEmptiesAnswersAtOnce) {
  // Each waited its whole 20 s and said timed_out: nothing else could make room while the handler waited.
  const auto self_through_alias = [](rk::actor_index a, rk::actor_index, rk::runtime& rt) {
    return rt.add_alias("me", a);
  };
  const auto to_b = [](rk::actor_index, rk::actor_index b, rk::runtime&) { return b; };
  for (const bool dedicated : {false, true}) {
    rk::runtime_options o = cpu_options();
    o.dedicated_workers = dedicated;
    const self_waiter::report r = wait_on_a_full_mailbox(o, true, self_through_alias);
    EXPECT_EQ(r.verdict, rk::status::queue_full)
        << "its own mailbox through an alias, dedicated " << dedicated;
    EXPECT_LT(r.waited_ms, 10'000u);
  }
  {
    rk::runtime_options o = cpu_options();
    o.dedicated_workers = true;
    o.cpu_workers = 1; // a and b share the thread
    const self_waiter::report r = wait_on_a_full_mailbox(o, false, to_b);
    EXPECT_EQ(r.verdict, rk::status::queue_full) << "a dedicated actor of the same thread";
    EXPECT_LT(r.waited_ms, 10'000u);
  }
  {
    rk::runtime_options o = cpu_options();
    o.scheduled_workers = 1; // the only pool thread
    const self_waiter::report r = wait_on_a_full_mailbox(o, false, to_b);
    EXPECT_EQ(r.verdict, rk::status::queue_full) << "a scheduled actor, one pool thread";
    EXPECT_LT(r.waited_ms, 10'000u);
  }
}

TEST(CpuBackend, AHandlersSendWaitToAMailboxAnotherThreadEmptiesWaitsForItsVerdict) {
  const auto to_b = [](rk::actor_index, rk::actor_index b, rk::runtime&) { return b; };
  {
    rk::runtime_options o = cpu_options();
    o.scheduled_workers = 2; // the other pool thread serves b
    EXPECT_EQ(wait_on_a_full_mailbox(o, false, to_b).verdict, rk::status::delivered) << "scheduled";
  }
  {
    rk::runtime_options o = cpu_options();
    o.dedicated_workers = true;
    o.cpu_workers = 2; // a thread each
    EXPECT_EQ(wait_on_a_full_mailbox(o, false, to_b).verdict, rk::status::delivered) << "dedicated";
  }
}

TEST(CpuBackend, AFragmentedMemberListSaysHowMuchFitsInOnePiece) {
  // A group's members take one run of the shared list: with 6 of 8 entries free in pieces of 4 and 2, a
  // group of 6 is refused, saying so (it said "full, 6 free").
  rk::runtime_options o = cpu_options();
  o.max_group_members = 8;
  rk::runtime rt(o);
  std::vector<actor_index> a;
  for (const char* name : {"a0", "a1", "a2", "a3", "a4", "a5"}) a.push_back(rt.spawn<counter>(name));
  const auto group = [&](const char* name, std::size_t n) {
    return rt.create_group(name, std::span(a.data(), n));
  };
  const rk::address g1 = group("g1", 4);
  const rk::address g2 = group("g2", 2);
  const rk::address g3 = group("g3", 2);
  rt.remove_group(g1);
  rt.remove_group(g3);
  (void)g2;
  try {
    (void)group("g6", 6);
    ADD_FAILURE() << "a list of 6 found room in pieces of 4 and 2";
  } catch (const rk::error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("6 free, at most 4 of them in one piece"), std::string::npos) << what;
    EXPECT_NE(what.find("max_group_members"), std::string::npos) << what;
  }
  EXPECT_NO_THROW((void)group("g4", 4));
}

//! A handler type whose name is not UTF-8 (it would label metrics, traces and snapshots).
struct badly_named {
  static constexpr const char* name = "caf\xe9";
  struct state {};
  template <class Ctx>
  void operator()(Ctx&, state&, const rk::message&) {}
};

TEST(CpuBackend, NamesMustBeUtf8SoThatEveryJsonExportWorks) {
  rk::runtime_options o = cpu_options();
  o.trace.sample_every = 1;
  rk::runtime rt(o);
  //! Whether `call` throws rk::error saying `why`.
  const auto refused_for = [](const char* why, auto&& call) {
    try {
      call();
    } catch (const rk::error& e) {
      return std::string(e.what()).find(why) != std::string::npos;
    }
    return false;
  };
  const auto refused = [&](auto&& call) { return refused_for("UTF-8", call); };
  EXPECT_TRUE(refused([&] { (void)rt.spawn<counter>("bad\xff"); }));
  EXPECT_TRUE(refused([&] { (void)rt.spawn<counter>("overlong\xc0\xaf"); }));
  EXPECT_TRUE(refused([&] { (void)rt.spawn<counter>("surrogate\xed\xa0\x80"); }));
  EXPECT_TRUE(refused([&] { (void)rt.spawn<counter>("cut\xe2\x82"); }));
  const rk::actor_index a = rt.spawn<counter>("caf\xc3\xa9 \xf0\x9f\x93\x88"); // "café 📈"
  EXPECT_TRUE(refused([&] { (void)rt.add_alias("alias\xff", a); }));
  const rk::actor_index members[] = {a};
  EXPECT_TRUE(refused([&] { (void)rt.create_group("group\xff", members); }));
  EXPECT_TRUE(refused([&] { rt.register_message_type({4242, "type\xff", true, "test"}); }));
  EXPECT_TRUE(refused([&] { (void)rt.spawn<badly_named>("fine"); })) << "handler type names too";
  EXPECT_TRUE(refused([&] { rt.prepare<badly_named>(); }));
  // NUL is valid UTF-8 but ends a name early wherever it is a C string (a probe's "job\0evil" printed as
  // "job", and went into metrics labels raw).
  const auto refused_for_nul = [&](auto&& call) { return refused_for("NUL byte", call); };
  const std::string with_nul("job\0evil", 8);
  EXPECT_TRUE(refused_for_nul([&] { (void)rt.spawn<counter>(with_nul); }));
  EXPECT_TRUE(refused_for_nul([&] { (void)rt.add_alias(with_nul, a); }));
  EXPECT_TRUE(refused_for_nul([&] { (void)rt.create_group(with_nul, members); }));
  EXPECT_TRUE(refused_for_nul([&] { rt.register_message_type({4243, with_nul, true, "test"}); }));
  EXPECT_EQ(rt.stats().actors.size(), 1u) << "nothing was spawned";
  rt.start();
  const ping_payload p{0, 1};
  ASSERT_EQ(rt.send_wait(a, msg_count, rk::as_bytes(p), 5s), rk::status::delivered);
  for (const std::string& json : {rt.metrics_json(), rt.dump_state().json(), rt.trace_json()})
    EXPECT_TRUE(nlohmann::json::accept(json)) << json.substr(0, 200);
  EXPECT_NE(rt.metrics_json().find("caf\xc3\xa9"), std::string::npos);
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST(CpuBackend, HandlersSpawnedFromAHostCompiledFileCannotUseCuda) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (!probe.usable) GTEST_SKIP() << "needs a CUDA device to reach the check: " << probe.description;
  rk::runtime_options o;
  o.backend = rk::backend::cuda;
  o.announce_backend = false;
  rk::runtime rt(o);
  try {
    rt.spawn<echo>("echo");
    ADD_FAILURE() << "spawn<echo> from a .cpp file must be refused on the CUDA backend";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("compiled without nvcc"), std::string::npos) << e.what();
  }
}

TEST(CpuBackend, AutomaticFallsBackToCpuAndSaysWhy) {
  const rk::device_probe probe = rk::probe_cuda_device();
  rk::runtime_options o;
  o.announce_backend = false;
  rk::runtime rt(o);
  if (probe.usable) {
    EXPECT_EQ(rt.backend(), rk::backend::cuda);
  } else {
    EXPECT_EQ(rt.backend(), rk::backend::cpu);
    EXPECT_NE(rt.backend_description().find("no usable CUDA device"), std::string::npos)
        << rt.backend_description();
  }
}

TEST(CpuBackend, ExplicitCudaWithoutADeviceThrowsAClearError) {
  const rk::device_probe probe = rk::probe_cuda_device();
  if (probe.usable) GTEST_SKIP() << "a CUDA device is present: " << probe.description;
  rk::runtime_options o;
  o.backend = rk::backend::cuda;
  try {
    rk::runtime rt(o);
    ADD_FAILURE() << "expected rk::error";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("backend::automatic"), std::string::npos) << e.what();
  }
}

TEST(CpuBackend, OneWorkerThreadServesManyActors) {
  rk::runtime_options o = cpu_options();
  o.cpu_workers = 1;
  rk::runtime rt(o);
  std::vector<actor_index> ids;
  for (int i = 0; i < 16; ++i) ids.push_back(rt.spawn<echo>(std::string("echo").append(std::to_string(i))));
  rt.start();
  for (auto id : ids) {
    const ping_payload p{id, id};
    ASSERT_EQ(rt.send(id, msg_ping, rk::as_bytes(p)), rk::status::enqueued);
  }
  std::set<std::uint64_t> seen;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto m = rt.receive(5s);
    ASSERT_TRUE(m.has_value());
    seen.insert(m->as<ping_payload>().sequence);
  }
  EXPECT_EQ(seen.size(), ids.size());
  EXPECT_TRUE(rt.shutdown().drained);
}

} // namespace rk_cases
