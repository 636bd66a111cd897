#pragma once
// Runtime behaviour, written once and instantiated per backend: test_runtime_cpu.cpp (g++, also run
// under ThreadSanitizer) and test_runtime_cuda.cu (nvcc, label `gpu`, skipped without a device).

#include "case_fixture.hpp"

#include <cmath>
#include <set>

namespace rk_cases {

// --- lifecycle ------------------------------------------------------------------------------------

TEST_P(RuntimeCases, LifecycleStartRunShutdown) {
  rk::runtime rt(options());
  EXPECT_EQ(rt.backend(), backend());
  const actor_index a = rt.spawn<echo>("echo", small_mailbox());
  EXPECT_EQ(rt.find("echo"), a);
  EXPECT_EQ(rt.name_of(a), "echo");
  EXPECT_FALSE(rt.running());
  EXPECT_EQ(rt.send(a, msg_ping, {}), status::not_running) << "sends before start are refused";
  rt.start();
  EXPECT_TRUE(rt.running());
  EXPECT_THROW(rt.start(), rk::error) << "a runtime starts once";
  EXPECT_THROW(rt.spawn<counter>("late"), rk::error) << "a handler type unknown at start() is refused";

  const ping_payload p{1, 2};
  ASSERT_EQ(rt.send_wait(a, msg_ping, rk::as_bytes(p), 5s), status::delivered);
  const auto reply = rt.receive(5s);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->as<ping_payload>().value, 2u);

  const rk::shutdown_report r = rt.shutdown();
  EXPECT_TRUE(r.drained);
  EXPECT_EQ(r.undelivered, 0u);
  EXPECT_TRUE(r.workers_stopped);
  EXPECT_FALSE(r.fault.has_value());
  EXPECT_FALSE(rt.running());
  EXPECT_EQ(rt.send(a, msg_ping, rk::as_bytes(p)), status::not_running);
  const rk::shutdown_report again = rt.shutdown();
  EXPECT_TRUE(again.drained) << "shutdown is idempotent";
  EXPECT_EQ(rt.state<echo>(a).seen, 1u);
  // Calls that add or change something are refused after shutdown, like spawn.
  std::vector<std::byte> bytes(64);
  const std::string gone = "the runtime is stopped (shutdown() was called, or start() failed)";
  expect_refused([&] { rt.tenants().add(5, rk::tenant_quota::standard()); }, gone);
  expect_refused([&] { rt.tenants().set_quota(0, rk::tenant_quota::standard()); }, gone);
  expect_refused([&] { rt.tenants().set_engagement_budget(0, {1, 1}, 1s); }, gone);
  expect_refused([&] { (void)rt.register_region(bytes.data(), bytes.size(), {}); }, gone);
  expect_refused([&] { rt.register_message_type({4243, "late", true, "test"}); }, gone);
  expect_refused([&] { (void)rt.add_alias("late", a); }, gone);
}

TEST_P(RuntimeCases, StartAndStopOneHundredTimes) {
  for (int round = 0; round < 100; ++round) {
    rk::runtime rt(options());
    const actor_index a = rt.spawn<echo>("a", small_mailbox(16, 128));
    const actor_index b = rt.spawn<counter>("b", small_mailbox(16, 128));
    rt.start();
    const ping_payload p{static_cast<std::uint64_t>(round), 1};
    ASSERT_EQ(rt.send_wait(a, msg_ping, rk::as_bytes(p), 5s), status::delivered) << "round " << round;
    ASSERT_EQ(rt.send(b, msg_count, rk::as_bytes(p)), status::enqueued);
    const auto reply = rt.receive(5s);
    ASSERT_TRUE(reply.has_value()) << "round " << round;
    ASSERT_EQ(reply->as<ping_payload>().sequence, static_cast<std::uint64_t>(round));
    const rk::shutdown_report r = rt.shutdown();
    ASSERT_TRUE(r.drained) << "round " << round;
    ASSERT_TRUE(r.workers_stopped) << "round " << round;
    ASSERT_EQ(rt.state<counter>(b).count, 1u) << "round " << round;
  }
}

TEST_P(RuntimeCases, DestructorShutsDownARunningRuntime) {
  auto rt = std::make_unique<rk::runtime>(options());
  const actor_index a = rt->spawn<counter>("c", small_mailbox());
  rt->start();
  const ping_payload p{0, 5};
  ASSERT_EQ(rt->send(a, msg_count, rk::as_bytes(p)), status::enqueued);
  rt.reset(); // must drain, stop and free without throwing or hanging
  SUCCEED();
}

TEST_P(RuntimeCases, PauseParksWorkersAndResumeContinues) {
  rk::runtime rt(options());
  const actor_index a = rt.spawn<echo>("echo", small_mailbox());
  const actor_index c = rt.spawn<counter>("counter", small_mailbox());
  rt.start();
  ASSERT_TRUE(rt.pause(5s)) << "every worker acknowledges the pause";
  const ping_payload p{7, 7};
  EXPECT_EQ(rt.send_wait(a, msg_ping, rk::as_bytes(p), 5s), status::delivered)
      << "the gateway still delivers";
  EXPECT_EQ(rt.send_wait(c, msg_count, rk::as_bytes(p), 5s), status::delivered);
  EXPECT_EQ(rt.stats().actors[a].handled, 0u) << "a paused worker takes no message";
  EXPECT_EQ(rt.stats().actors[c].handled, 0u);
  EXPECT_EQ(rt.stats().actors[a].received, 1u) << "...but it is waiting in the mailbox";
  rt.resume();
  const auto reply = rt.receive(5s);
  ASSERT_TRUE(reply.has_value()) << "resumed workers handle what waited";
  EXPECT_EQ(reply->as<ping_payload>().sequence, 7u);
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<counter>(c).count, 1u);
}

TEST_P(RuntimeCases, ShutdownOfAPausedRuntimeStillDrains) {
  rk::runtime rt(options());
  const actor_index c = rt.spawn<counter>("counter", small_mailbox());
  rt.start();
  ASSERT_TRUE(rt.pause(5s));
  for (std::uint64_t i = 0; i < 10; ++i) {
    const ping_payload p{i, 1};
    ASSERT_EQ(rt.send_wait(c, msg_count, rk::as_bytes(p), 5s), status::delivered);
  }
  const rk::shutdown_report r = rt.shutdown();
  EXPECT_TRUE(r.drained);
  EXPECT_EQ(rt.state<counter>(c).count, 10u);
}

// --- host <-> device path -------------------------------------------------------------------------

TEST_P(RuntimeCases, PingPongHostToAToBToHost) {
  rk::runtime rt(options());
  const actor_index b = rt.spawn<stamper>("B", small_mailbox());
  const actor_index a = rt.spawn<forwarder>("A", small_mailbox(), forwarder::state{b});
  rt.start();
  const std::uint64_t rounds = rk::test::scaled(2'000);
  rk::hlc_timestamp previous{};
  for (std::uint64_t i = 0; i < rounds; ++i) {
    const ping_payload p{i, i * 3};
    rk::send_options o;
    o.correlation_id = 1'000 + i;
    ASSERT_EQ(rt.send(a, msg_ping, rk::as_bytes(p), o), status::enqueued);
    const auto reply = rt.receive(5s);
    ASSERT_TRUE(reply.has_value()) << "round trip " << i << " lost";
    EXPECT_EQ(reply->source(), b);
    EXPECT_EQ(reply->correlation_id(), 1'000 + i);
    const stamped_reply r = reply->as<stamped_reply>();
    EXPECT_EQ(r.sequence, i);
    EXPECT_LT(r.request_time, reply->header.timestamp) << "B's send is later than A's send it received";
    EXPECT_LT(previous, reply->header.timestamp) << "B's clock only moves forward";
    previous = reply->header.timestamp;
  }
  EXPECT_FALSE(rt.receive(10ms).has_value()) << "exactly one reply per request";
  ASSERT_TRUE(rt.shutdown().drained);
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(s.actors[a].handled, rounds);
  EXPECT_EQ(s.actors[b].handled, rounds);
  EXPECT_EQ(s.actors[a].sent[static_cast<int>(status::delivered)], rounds);
  EXPECT_EQ(s.actors[b].sent[static_cast<int>(status::delivered)], rounds);
  EXPECT_EQ(s.gateway_verdicts[static_cast<int>(status::delivered)], rounds);
  EXPECT_EQ(s.host_received, rounds);
  EXPECT_EQ(rt.state<forwarder>(a).forwarded, rounds);
}

// A delivery is counted before it is published, so counters read after receive() include that reply
// (a race CI once caught: the sender's counts landed just after the host saw the message).
TEST_P(RuntimeCases, CountersReadAfterAReceiveIncludeThatReply) {
  rk::runtime rt(options());
  rt.tenants().add(5, rk::tenant_quota::standard());
  const actor_index a = rt.spawn<echo>("echo", in_tenant(5));
  rt.start();
  const std::uint64_t rounds = rk::test::scaled(500);
  for (std::uint64_t i = 1; i <= rounds; ++i) {
    const ping_payload p{i, i};
    ASSERT_EQ(rt.send(a, msg_ping, rk::as_bytes(p), as_tenant(5)), status::enqueued);
    ASSERT_TRUE(rt.receive(5s).has_value());
    ASSERT_EQ(rt.stats().actors[a].sent[static_cast<int>(status::delivered)], i) << "round " << i;
    ASSERT_EQ(rt.tenants().usage(5).messages_sent, 2 * i) << "host sends and replies, round " << i;
  }
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST_P(RuntimeCases, BusyPollingHostWaitsDeliverTheSameResults) {
  rk::runtime_options o = options();
  o.host_busy_poll = true;
  rk::runtime rt(o);
  const actor_index a = rt.spawn<echo>("echo", small_mailbox());
  rt.start();
  for (std::uint64_t i = 0; i < 200; ++i) {
    const ping_payload p{i, i};
    ASSERT_EQ(rt.send_wait(a, msg_ping, rk::as_bytes(p), 5s), status::delivered);
    const auto reply = rt.receive(5s);
    ASSERT_TRUE(reply.has_value());
    ASSERT_EQ(reply->as<ping_payload>().sequence, i);
  }
  EXPECT_FALSE(rt.receive(1ms).has_value()) << "a busy-poll wait still times out";
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST_P(RuntimeCases, HostSendsFromFourThreadsBalanceExactly) {
  rk::runtime rt(options());
  const actor_index c = rt.spawn<counter>("counter", small_mailbox(64, 128));
  rt.start();
  const std::uint64_t per_thread = rk::test::scaled(5'000);
  std::vector<std::thread> senders;
  std::atomic<std::uint64_t> expected_sum{0};
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < per_thread; ++i) {
        const ping_payload p{i, static_cast<std::uint64_t>(t) * 1'000'000 + i};
        send_reliably(rt, c, msg_count, rk::as_bytes(p));
        expected_sum.fetch_add(p.value);
      }
    });
  }
  for (auto& s : senders) s.join();
  ASSERT_TRUE(rt.shutdown().drained);
  const rk::runtime_stats s = rt.stats();
  const std::uint64_t sent = 4 * per_thread;
  EXPECT_EQ(s.host_sends[static_cast<int>(status::enqueued)], sent);
  EXPECT_EQ(s.gateway_processed, sent);
  EXPECT_EQ(rk::total(s.gateway_verdicts), sent) << "every host message got exactly one verdict";
  const std::uint64_t delivered = s.gateway_verdicts[static_cast<int>(status::delivered)];
  const std::uint64_t full = s.gateway_verdicts[static_cast<int>(status::queue_full)];
  EXPECT_EQ(delivered + full, sent) << "only delivered or queue_full are possible here";
  EXPECT_EQ(s.actors[c].received, delivered);
  EXPECT_EQ(s.actors[c].handled, delivered);
  const counter::state st = rt.state<counter>(c);
  EXPECT_EQ(st.count, delivered);
  if (full == 0) {
    EXPECT_EQ(st.sum, expected_sum.load());
  }
}

TEST_P(RuntimeCases, SendWaitReportsTheDeviceVerdict) {
  rk::runtime rt(options());
  const actor_index small = rt.spawn<counter>("small", small_mailbox(16, 128)); // 64-byte payloads
  rt.start();
  const ping_payload p{0, 1};
  EXPECT_EQ(rt.send_wait(small, msg_count, rk::as_bytes(p), 5s), status::delivered);
  EXPECT_EQ(rt.send_wait(37, msg_count, rk::as_bytes(p), 5s), status::not_found) << "no actor 37";
  EXPECT_EQ(rt.send_wait(100'000, msg_count, rk::as_bytes(p), 5s), status::not_found) << "beyond the table";
  std::vector<std::byte> big(100);
  EXPECT_EQ(rt.send_wait(small, msg_count, {big.data(), 100}, 5s), status::too_large)
      << "fits the host ring slot but not the 64-byte payload of the mailbox slot";
  std::vector<std::byte> huge(2'000);
  EXPECT_EQ(rt.send(small, msg_count, {huge.data(), 2'000}), status::too_large)
      << "larger than the host ring slot";
  ASSERT_TRUE(rt.shutdown().drained);
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(s.gateway_verdicts[static_cast<int>(status::not_found)], 2u);
  EXPECT_EQ(s.gateway_verdicts[static_cast<int>(status::too_large)], 1u);
  EXPECT_EQ(s.host_sends[static_cast<int>(status::too_large)], 2u) << "device verdict + host-side refusal";
  EXPECT_EQ(rt.state<counter>(small).count, 1u);
}

TEST_P(RuntimeCases, HostMessagesOfEveryLengthArriveWhole) {
  // The device gateway's warp copies a host message out of mapped memory 16 bytes a lane, reading the
  // first 512 bytes before it knows the length: lengths on either side of every word and round boundary,
  // up to the largest the host ring holds, must arrive byte for byte (and nothing past them).
  rk::runtime rt(options());
  constexpr std::uint32_t slot_bytes = 1024; // the fixture's host ring slot
  const actor_index a = rt.spawn<echo>("echo", small_mailbox(16, slot_bytes));
  rt.start();
  const std::uint32_t most = slot_bytes - rk::envelope_bytes;
  for (const std::uint32_t length : {0u,   1u,   4u,   15u,  16u,  17u,  63u,  64u,  65u,      447u,
                                     448u, 449u, 463u, 464u, 465u, 511u, 512u, 513u, most - 1, most}) {
    std::vector<std::byte> bytes(length);
    for (std::uint32_t i = 0; i < length; ++i) bytes[i] = static_cast<std::byte>((i * 131u + length) & 0xFFu);
    ASSERT_EQ(rt.send_wait(a, msg_ping, {bytes.data(), length}, 5s), status::delivered) << length << " bytes";
    const auto reply = rt.receive(5s);
    ASSERT_TRUE(reply.has_value()) << length << " bytes";
    ASSERT_EQ(reply->payload.size(), length);
    EXPECT_TRUE(bytes == reply->payload) << "the " << length << "-byte message changed on its way";
  }
  ASSERT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<echo>(a).seen, 20u);
}

// --- K2K ------------------------------------------------------------------------------------------

TEST_P(RuntimeCases, DirectK2KSendBetweenTwoActors) {
  rk::runtime rt(options());
  const actor_index sink = rt.spawn<counter>("sink", small_mailbox(1024, 128));
  const actor_index source = rt.spawn<burster>("source", small_mailbox());
  rt.start();
  const std::uint32_t n = 500;
  const burst_request req{sink, n, rk::envelope_flags::none, 0};
  ASSERT_EQ(rt.send_wait(source, msg_burst, rk::as_bytes(req), 5s), status::delivered);
  const auto report = rt.receive(10s);
  ASSERT_TRUE(report.has_value());
  const burst_report r = report->as<burst_report>();
  EXPECT_EQ(r.delivered, n) << "the sink's mailbox holds all of them";
  EXPECT_EQ(r.not_found + r.dropped + r.not_routable + r.tenant_mismatch + r.quota_exceeded + r.other, 0u);
  ASSERT_TRUE(rt.shutdown().drained);
  const counter::state st = rt.state<counter>(sink);
  EXPECT_EQ(st.count, n);
  EXPECT_EQ(st.sum, std::uint64_t{n} * (n + 1) / 2);
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(s.actors[source].sent[static_cast<int>(status::delivered)], n + 1) << "n K2K + 1 report";
  EXPECT_EQ(s.actors[sink].received, n);
}

TEST_P(RuntimeCases, K2KToUnknownActorIsNotFoundOrCountedDrop) {
  rk::runtime rt(options());
  const actor_index source = rt.spawn<burster>("source", small_mailbox());
  rt.start();
  const burst_request mandatory{50, 10, rk::envelope_flags::none, 0};
  ASSERT_EQ(rt.send(source, msg_burst, rk::as_bytes(mandatory)), status::enqueued);
  const auto r1 = rt.receive(5s);
  ASSERT_TRUE(r1.has_value());
  EXPECT_EQ(r1->as<burst_report>().not_found, 10u);
  const burst_request drop{50, 7, rk::envelope_flags::drop_if_unroutable, 0};
  ASSERT_EQ(rt.send(source, msg_burst, rk::as_bytes(drop)), status::enqueued);
  const auto r2 = rt.receive(5s);
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->as<burst_report>().dropped, 7u);
  ASSERT_TRUE(rt.shutdown().drained);
  const rk::actor_stats st = rt.stats().actors[source];
  EXPECT_EQ(st.sent[static_cast<int>(status::not_found)], 10u);
  EXPECT_EQ(st.sent[static_cast<int>(status::dropped)], 7u);
  EXPECT_EQ(st.sent[static_cast<int>(status::delivered)], 2u) << "the two reports";
}

TEST_P(RuntimeCases, CooperativeHandlerUsesTheWorkersThreads) {
  rk::runtime rt(options());
  const actor_index a = rt.spawn<cooperative_summer>("summer", small_mailbox(16, 1024));
  rt.start();
  std::vector<std::uint32_t> words(200);
  std::uint64_t expected = 0;
  for (std::uint32_t i = 0; i < words.size(); ++i) expected += words[i] = i * 7 + 1;
  ASSERT_EQ(rt.send(a, msg_ping, {words.data(), static_cast<std::uint32_t>(words.size() * 4)}),
            status::enqueued);
  const auto reply = rt.receive(5s);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->as<std::uint64_t>(), expected);
  ASSERT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<cooperative_summer>(a).total, expected);
}

// --- shutdown -------------------------------------------------------------------------------------

TEST_P(RuntimeCases, ShutdownDrainsEverythingInFlight) {
  rk::runtime rt(options());
  const actor_index sink = rt.spawn<counter>("sink", small_mailbox(1024, 128));
  const actor_index hop = rt.spawn<forwarder>("hop", small_mailbox(1024, 128), forwarder::state{sink});
  rt.start();
  const std::uint64_t n = 200;
  for (std::uint64_t i = 0; i < n; ++i) {
    const ping_payload p{i, 1};
    send_reliably(rt, hop, msg_count, rk::as_bytes(p));
  }
  const rk::shutdown_report r = rt.shutdown(); // immediately: messages are still moving
  EXPECT_TRUE(r.drained);
  EXPECT_EQ(r.undelivered, 0u);
  const rk::runtime_stats s = rt.stats();
  const std::uint64_t delivered_to_hop = s.gateway_verdicts[static_cast<int>(status::delivered)];
  EXPECT_EQ(delivered_to_hop + s.gateway_verdicts[static_cast<int>(status::queue_full)], n);
  EXPECT_EQ(rt.state<counter>(sink).count, rt.state<forwarder>(hop).forwarded);
  EXPECT_EQ(rt.state<forwarder>(hop).forwarded + rt.state<forwarder>(hop).failed, delivered_to_hop);
}

TEST_P(RuntimeCases, ShutdownReportsUndeliveredWhenActorsNeverQuiesce) {
  rk::runtime_options o = options();
  o.drain_timeout = 200ms;
  rk::runtime rt(o);
  const actor_index a = rt.spawn<bouncer>("a", small_mailbox(), bouncer::state{1});
  const actor_index b = rt.spawn<bouncer>("b", small_mailbox(), bouncer::state{0});
  ASSERT_EQ(b, 1u);
  rt.start();
  const ping_payload p{0, 0};
  ASSERT_EQ(rt.send_wait(a, msg_ping, rk::as_bytes(p), 5s), status::delivered);
  const auto begin = std::chrono::steady_clock::now();
  const rk::shutdown_report r = rt.shutdown();
  EXPECT_FALSE(r.drained) << "the message bounces forever";
  EXPECT_EQ(r.undelivered, 1u);
  EXPECT_TRUE(r.workers_stopped) << "terminate still stops the workers";
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 30s);
}

// The report counts what was left when the drain gave up, read once every worker has stopped: tokens that
// kept bouncing between the first and the last of 20,002 actors while their counters were read are each
// counted exactly once (read while the workers ran, one could be counted at both ends or at neither).
TEST_P(RuntimeCases, UndeliveredCountsWhatWasLeftNotWhatMovedMeanwhile) {
  rk::runtime_options o = options();
  o.drain_timeout = 200ms;
  o.max_actors = 20'100;
  rk::runtime rt(o);
  const std::uint32_t idle = 20'000;
  const actor_index a = rt.spawn<bouncer>("a", small_mailbox(), bouncer::state{idle + 1});
  (void)rt.spawn_many<counter>("idle", idle, small_mailbox(2, 128));
  ASSERT_EQ(rt.spawn<bouncer>("b", small_mailbox(), bouncer::state{a}), idle + 1);
  rt.start();
  const std::uint64_t tokens = 3;
  for (std::uint64_t i = 0; i < tokens; ++i) {
    const ping_payload p{i, 0};
    ASSERT_EQ(rt.send_wait(a, msg_ping, rk::as_bytes(p), 5s), status::delivered);
  }
  const rk::shutdown_report r = rt.shutdown();
  EXPECT_FALSE(r.drained) << "the tokens bounce forever";
  ASSERT_TRUE(r.workers_stopped);
  EXPECT_EQ(r.undelivered, tokens) << "each token is in one mailbox once the workers stopped";
}

TEST_P(RuntimeCases, RepliesLeftInTheEgressRingAreReportedAndStillReceivable) {
  rk::runtime rt(options());
  const actor_index a = rt.spawn<echo>("echo", small_mailbox());
  rt.start();
  for (std::uint64_t i = 0; i < 3; ++i) {
    const ping_payload p{i, i};
    ASSERT_EQ(rt.send_wait(a, msg_ping, rk::as_bytes(p), 5s), status::delivered);
  }
  const rk::shutdown_report r = rt.shutdown();
  EXPECT_TRUE(r.drained);
  EXPECT_EQ(r.pending_host_messages, 3u);
  for (std::uint64_t i = 0; i < 3; ++i) {
    const auto m = rt.receive(0ms);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->as<ping_payload>().sequence, i);
  }
  EXPECT_FALSE(rt.receive(0ms).has_value());
}

// A receive() waiting in another thread when shutdown() completes returns at once (nothing more can
// arrive), not when its timeout runs out.
TEST_P(RuntimeCases, ShutdownEndsAReceiveWaitingInAnotherThread) {
  rk::runtime rt(options());
  (void)rt.spawn<echo>("echo", small_mailbox());
  rt.start();
  std::atomic<bool> waiting{false};
  std::optional<rk::received_message> got;
  std::chrono::steady_clock::duration waited{};
  std::thread receiver([&] {
    waiting.store(true);
    const auto begin = std::chrono::steady_clock::now();
    got = rt.receive(120s);
    waited = std::chrono::steady_clock::now() - begin;
  });
  while (!waiting.load()) std::this_thread::yield();
  EXPECT_TRUE(rt.shutdown().drained);
  receiver.join();
  EXPECT_FALSE(got.has_value());
  EXPECT_LT(waited, 60s) << "woken by the shutdown, not by its 120 s timeout";
}

//! Defers every message: its mailbox never drains.
struct always_defers {
  static constexpr const char* name = "always_defers";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message&) {
    ctx.defer();
  }
};

// A send_wait whose message is still parked when shutdown() gives up returns `aborted` then, not when its
// own timeout runs out; the report lists the message.
TEST_P(RuntimeCases, ShutdownEndsASendWaitWhoseMessageWasNeverSettled) {
  rk::runtime_options o = options();
  o.drain_timeout = 200ms;
  rk::runtime rt(o);
  const actor_index a = rt.spawn<always_defers>("stuck", small_mailbox(2));
  rt.start();
  const ping_payload p{0, 0};
  for (int i = 0; i < 2; ++i) ASSERT_EQ(rt.send_wait(a, msg_ping, rk::as_bytes(p), 5s), status::delivered);
  std::atomic<bool> waiting{false};
  status verdict = status::delivered;
  std::chrono::steady_clock::duration waited{};
  std::thread sender([&] {
    waiting.store(true);
    const auto begin = std::chrono::steady_clock::now();
    verdict = rt.send_wait(a, msg_ping, rk::as_bytes(ping_payload{1, 1}), 120s);
    waited = std::chrono::steady_clock::now() - begin;
  });
  while (!waiting.load()) std::this_thread::yield();
  ASSERT_EQ(
      rk::wait_until([&] { return rt.stats().gateway_parked == 1; }, [] { return false; }, 10'000'000'000ull),
      rk::wait_result::ready)
      << "the third message waits in the parking area for room";
  const rk::shutdown_report r = rt.shutdown();
  sender.join();
  EXPECT_FALSE(r.drained);
  EXPECT_EQ(verdict, status::aborted);
  EXPECT_LT(waited, 60s) << "ended by the shutdown, not by its 120 s timeout";
  EXPECT_EQ(r.undelivered_host_messages.size(), 1u);
}

// A stop() waiting on an actor that never finishes (it defers its queue) ends when shutdown() completes,
// even with no timeout.
TEST_P(RuntimeCases, ShutdownEndsAStopWaitingInAnotherThread) {
  rk::runtime_options o = options();
  o.drain_timeout = 200ms;
  rk::runtime rt(o);
  const actor_index deferring = rt.spawn<always_defers>("deferring", small_mailbox(2));
  rt.start();
  ASSERT_EQ(rt.send_wait(deferring, msg_ping, rk::as_bytes(ping_payload{0, 0}), 5s), status::delivered);
  std::atomic<bool> waiting{false};
  bool stopped = true;
  std::chrono::steady_clock::duration waited{};
  std::thread stopper([&] {
    waiting.store(true);
    const auto begin = std::chrono::steady_clock::now();
    stopped = rt.stop(deferring, std::chrono::milliseconds::max()); // never confirmed: it keeps deferring
    waited = std::chrono::steady_clock::now() - begin;
  });
  while (!waiting.load()) std::this_thread::yield();
  ASSERT_EQ(rk::wait_until([&] { return rt.lifecycle(deferring) == rk::actor_lifecycle::stopping; },
                           [] { return false; }, 10'000'000'000ull),
            rk::wait_result::ready);
  const rk::shutdown_report r = rt.shutdown();
  stopper.join();
  EXPECT_FALSE(r.drained);
  EXPECT_FALSE(stopped);
  EXPECT_LT(waited, 60s);
  // A NaN timeout is refused, not taken as "for ever".
  expect_refused([&] { (void)rt.receive(std::chrono::duration<double>(std::nan(""))); }, "not a number");
}

// --- faults -----------------------------------------------------------------------------------------

TEST_P(RuntimeCases, APayloadWithBytesButNoPointerIsRefusedAtOnce) {
  rk::runtime rt(options());
  const actor_index a = rt.spawn<counter>("c", small_mailbox());
  rt.start();
  const rk::byte_view broken{nullptr, 8};
  expect_refused([&] { (void)rt.send(a, msg_count, broken); },
                 "send(): the payload has 8 bytes but no data pointer");
  expect_refused([&] { (void)rt.send_wait(a, msg_count, broken, 1s); },
                 "send_wait(): the payload has 8 bytes");
  expect_refused([&] { (void)rt.send_blocking(a, msg_count, broken, 1s); },
                 "send_blocking(): the payload has 8");
  // Each names the call it was (send_keyed said send()).
  const actor_index members[] = {a};
  const rk::address g = rt.create_group("g", members);
  expect_refused([&] { (void)rt.send_keyed(g, 1, msg_count, broken); }, "send_keyed(): the payload has 8");
  EXPECT_EQ(rt.send_wait(a, msg_count, rk::byte_view{nullptr, 0}, 5s), status::delivered) << "empty is fine";
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST_P(RuntimeCases, InvalidOptionsGiveClearErrors) {
  auto expect_error = [](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "expected rk::error containing '" << needle << "'";
    } catch (const rk::error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  rk::runtime rt(options());
  expect_error([&] { rt.spawn<echo>("zero", small_mailbox(0, 256)); }, "between 2 and");
  expect_error([&] { rt.spawn<echo>("npot", small_mailbox(100, 256)); }, "power of two");
  expect_error([&] { rt.spawn<echo>("tiny", small_mailbox(16, 64)); }, "at least 128");
  expect_error([&] { rt.spawn<echo>("odd", small_mailbox(16, 200)); }, "multiple of 64");
  expect_error([&] { rt.spawn<echo>("", small_mailbox()); }, "must not be empty");
  expect_error([&] { rt.spawn<echo>("rk:rank 1/host as tenant 0", small_mailbox()); }, "reserved");
  expect_error([&] { (void)rt.spawn_many<echo>("rk:", 2, small_mailbox()); }, "reserved");
  rt.spawn<echo>("dup", small_mailbox());
  expect_error([&] { (void)rt.add_alias("rk:alias", rt.find("dup")); }, "reserved");
  expect_error([&] { rt.spawn<echo>("dup", small_mailbox()); }, "already exists");
  expect_error([&] { (void)rt.find("nobody"); }, "no actor or alias with this name");
  expect_error([&] { (void)rt.name_of(12); }, "unknown actor id 12");
  const rk::address pair = rt.create_group("pair", std::vector<actor_index>{rt.find("dup")});
  expect_error([&] { (void)rt.lifecycle(pair); }, "it is a group's address, not an actor's");
  expect_error([&] { (void)rt.state<echo>(0); }, "after shutdown");
  expect_error([&] { (void)rt.state<counter>(0); }, "not the requested type");

  rk::runtime_options bad = options();
  bad.max_actors = 0;
  expect_error([&] { rk::runtime r(bad); }, "max_actors");
  bad = options();
  bad.host_ring = {1000, 256};
  expect_error([&] { rk::runtime r(bad); }, "host_ring");
  bad = options();
  bad.max_tenants = 0;
  expect_error([&] { rk::runtime r(bad); }, "max_tenants");
  bad = options();
  bad.max_regions = 1u << 30;
  expect_error([&] { rk::runtime r(bad); }, "max_regions");
  bad = options();
  bad.audit_memory_records = 0;
  expect_error([&] { rk::runtime r(bad); }, "audit_memory_records");
  bad = options();
  bad.audit_sinks = {nullptr};
  expect_error([&] { rk::runtime r(bad); }, "audit_sinks[0] is null");

  rk::runtime_options one = options();
  one.max_actors = 1;
  rk::runtime full(one);
  full.spawn<echo>("only");
  expect_error([&] { full.spawn<echo>("second"); }, "actor table is full");

  rk::runtime empty(options());
  expect_error([&] { empty.start(); }, "no actors");
}

TEST_P(RuntimeCases, TrapInAHandlerFaultsOnlyItsActorOnTheCpuBackend) {
  if (backend() == rk::backend::cuda)
    GTEST_SKIP()
        << "a device trap poisons the CUDA context; covered by ringkernel.test.cuda_fault in its own process";
  rk::runtime rt(options());
  const actor_index t = rt.spawn<trapper>("fragile", small_mailbox());
  const actor_index bystander = rt.spawn<echo>("bystander", small_mailbox());
  rt.start();
  ASSERT_EQ(rt.send(t, msg_trap, {}), status::enqueued);
  ASSERT_EQ(rk::wait_until([&] { return rt.lifecycle(t) == rk::actor_lifecycle::faulted; },
                           [] { return false; }, 30'000'000'000ull),
            rk::wait_result::ready);
  const std::vector<rk::actor_fault> faults = rt.faults();
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_EQ(faults[0].actor, t);
  EXPECT_EQ(faults[0].name, "fragile");
  EXPECT_EQ(faults[0].handler, "trapper");
  EXPECT_EQ(faults[0].message_type, msg_trap);
  EXPECT_EQ(faults[0].code, 42u);
  EXPECT_EQ(faults[0].kind, rk::fault_kind::trap);
  EXPECT_EQ(faults[0].reason, "ctx.trap(42)");
  // Everything else keeps running, and sends to the faulted actor are refused, not lost.
  ASSERT_EQ(rt.send_wait(bystander, msg_ping, rk::as_bytes(ping_payload{1, 2}), 10s), status::delivered);
  ASSERT_TRUE(rt.receive(10s).has_value());
  EXPECT_EQ(rt.send_wait(t, msg_ping, {}, 10s), status::not_found);
  rt.respawn(t);
  EXPECT_EQ(rt.lifecycle(t), rk::actor_lifecycle::live);
  ASSERT_EQ(rt.send_wait(t, msg_ping, {}, 10s), status::delivered);
  ASSERT_TRUE(rt.receive(10s).has_value()) << "the respawned actor answers";
  const rk::shutdown_report r = rt.shutdown();
  EXPECT_FALSE(r.fault.has_value()) << "a contained fault is not the runtime's";
  EXPECT_TRUE(r.drained);
  EXPECT_EQ(r.lost_to_fault, 1u);
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(s.actors[t].interrupted, 1u);
  EXPECT_EQ(s.actors[t].deferred, 0u) << "the trap cancelled the call's ctx.defer()";
  EXPECT_EQ(s.actors[t].handled, 1u);
  EXPECT_EQ(s.actors[t].received, s.actors[t].handled + s.actors[t].discarded + s.actors[t].interrupted);
  EXPECT_EQ(s.actors[bystander].handled, 1u) << "accounting survives the fault";
}

// --- spawn_many -----------------------------------------------------------------------------------

TEST_P(RuntimeCases, SpawnManyCreatesNamedActorsWithTheirOwnStates) {
  rk::runtime_options o = options();
  o.max_actors = 1100;
  rk::runtime rt(o);
  std::vector<counter::state> states(1000);
  for (std::uint64_t i = 0; i < states.size(); ++i) states[i].sum = i * 1000;
  const std::vector<actor_index> ids = rt.spawn_many<counter>("w", 1000, {}, states);
  ASSERT_EQ(ids.size(), 1000u);
  EXPECT_EQ(std::set<actor_index>(ids.begin(), ids.end()).size(), 1000u) << "distinct ids";
  for (const std::uint64_t i : {0u, 1u, 517u, 999u}) {
    const std::string name = std::string("w/").append(std::to_string(i));
    EXPECT_EQ(rt.name_of(ids[i]), name);
    EXPECT_EQ(rt.find(name), ids[i]);
  }
  const std::vector<actor_index> same = rt.spawn_many<counter>("s", 3, {}, std::span(&states[7], 1));
  const std::vector<actor_index> defaults = rt.spawn_many<counter>("d", 2);
  rt.start();
  const std::vector<actor_index> late = rt.spawn_many<counter>("late", 50); // registered while running
  const ping_payload p{0, 1};
  for (const auto* batch : {&ids, &same, &late})
    for (actor_index a : *batch) send_reliably(rt, a, msg_count, rk::as_bytes(p));
  const rk::shutdown_report r = rt.shutdown();
  EXPECT_TRUE(r.drained);
  EXPECT_EQ(r.undelivered, 0u);
  for (std::uint64_t i = 0; i < ids.size(); ++i) {
    const counter::state st = rt.state<counter>(ids[i]);
    ASSERT_EQ(st.count, 1u) << "actor " << i;
    ASSERT_EQ(st.sum, i * 1000 + 1) << "actor " << i << " started from its own state";
  }
  for (actor_index a : same) EXPECT_EQ(rt.state<counter>(a).sum, 7001u) << "one state for all";
  for (actor_index a : defaults) EXPECT_EQ(rt.state<counter>(a).sum, 0u) << "default states";
  for (actor_index a : late) EXPECT_EQ(rt.state<counter>(a).count, 1u) << "late actors are served";
  std::uint64_t handled = 0;
  for (const rk::actor_stats& a : rt.stats().actors) handled += a.handled;
  EXPECT_EQ(handled, 1053u);
}

TEST_P(RuntimeCases, SpawnManyRefusesBadArgumentsAndLeavesNothingBehind) {
  rk::runtime rt(options()); // max_actors 64
  rt.spawn<counter>("keep");
  rt.spawn<counter>("w/1");
  const std::vector<counter::state> two(2);
  expect_refused([&] { rt.spawn_many<counter>("", 3); }, "prefix");
  expect_refused([&] { rt.spawn_many<counter>("w", 0); }, "count");
  expect_refused([&] { rt.spawn_many<counter>("w", 3, {}, two); }, "initial_states");
  expect_refused([&] { rt.spawn_many<counter>("w", 3, {.instances = 2}); }, "instances");
  expect_refused([&] { rt.spawn_many<counter>("m", 2, {.mailbox = {100, 256}}); }, "power of two");
  // The batch is told how many slots are free (it said "full" while 62 of 64 were).
  expect_refused([&] { rt.spawn_many<counter>("v", 63); },
                 "actor table is full (max_actors = 64) for 63 more: 62 slots are free");
  // A count no table could ever hold is refused before its names are built (4 x 10^9 names would
  // otherwise exhaust memory).
  expect_refused([&] { rt.spawn_many<counter>("huge", 4'000'000'000u); }, "can never fit");
  expect_refused([&] { rt.spawn<counter>("huge", {.instances = 4'000'000'000u}); }, "can never fit");
  // Mailboxes no device or machine holds (60 x 1 TiB) are refused before any of them is allocated.
  expect_refused([&] { rt.spawn_many<counter>("big", 60, {.mailbox = {1u << 24, 65536}}); }, "more than the");
  expect_refused([&] { rt.spawn_many<counter>("w", 3); },
                 "spawn_many('w', 3): 'w/1': an actor with this name");
  EXPECT_EQ(rt.actor_count(), 2u);
  EXPECT_THROW(rt.find("w/0"), rk::error) << "no name of a refused batch is left";
  const std::vector<actor_index> all = rt.spawn_many<counter>("v", 62);
  EXPECT_EQ(all.size(), 62u) << "every slot a refused batch took is free again";
  expect_refused([&] { rt.spawn_many<counter>("v", 1); },
                 "spawn_many('v', 1): 'v/0': an actor with this name");
}

} // namespace rk_cases
