#pragma once
// K2K routing rules, written once and instantiated per backend (test_runtime_cpu.cpp and
// test_runtime_cuda.cu): not_found, hop limit, drop vs mandatory, groups (round-robin, dead-member skip
// and rejoin, keyed), not_routable, priorities and starvation, counter balance under random traffic,
// warp-aggregated sends, and the routing table changing while the runtime runs.

#include "runtime_cases.hpp"

#include <atomic>
#include <map>
#include <set>
#include <thread>

namespace rk_cases {

class RoutingCases : public RuntimeCases {
protected:
  //! Sends `n` pings to `to`, one round trip at a time (the egress ring is bounded), and returns how many
  //! replies (msg_tag) each actor sent back.
  static std::map<actor_index, int> tally_replies(rk::runtime& rt, rk::address to, int n,
                                                  std::uint64_t first_sequence = 0) {
    std::map<actor_index, int> by_actor;
    for (int i = 0; i < n; ++i) {
      const ping_payload p{first_sequence + static_cast<std::uint64_t>(i), 0};
      EXPECT_EQ(rt.send_wait(to, msg_ping, rk::as_bytes(p), 5s), status::delivered);
      const auto reply = rt.receive(5s);
      if (!reply) {
        ADD_FAILURE() << "reply " << i << " of " << n << " missing";
        break;
      }
      ++by_actor[static_cast<actor_index>(reply->as<ping_payload>().value)];
    }
    return by_actor;
  }
};

// --- unknown destinations and hops ----------------------------------------------------------------

TEST_P(RoutingCases, UnknownDestinationIsNotFoundOrACountedDrop) {
  rk::runtime rt(options());
  const actor_index a = rt.spawn<counter>("a", small_mailbox());
  rt.start();
  const ping_payload p{0, 1};
  EXPECT_EQ(rt.send_wait(40, msg_count, rk::as_bytes(p), 5s), status::not_found);
  rk::send_options drop;
  drop.flags = rk::envelope_flags::drop_if_unroutable;
  EXPECT_EQ(rt.send_wait(40, msg_count, rk::as_bytes(p), 5s, drop), status::dropped);
  EXPECT_EQ(rt.send_wait(rk::group_address(9), msg_count, rk::as_bytes(p), 5s), status::not_found)
      << "no group 9";
  EXPECT_EQ(rt.send_wait(a, msg_count, rk::as_bytes(p), 5s, drop), status::delivered)
      << "drop only applies when unroutable";
  ASSERT_TRUE(rt.shutdown().drained);
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(s.gateway_verdicts[static_cast<int>(status::not_found)], 2u);
  EXPECT_EQ(s.gateway_verdicts[static_cast<int>(status::dropped)], 1u);
  EXPECT_EQ(s.gateway_verdicts[static_cast<int>(status::delivered)], 1u);
}

TEST_P(RoutingCases, IndirectRoutesCountHopsUpToMaxHops) {
  rk::runtime_options o = options();
  o.max_hops = 3;
  rk::runtime rt(o);
  const actor_index target = rt.spawn<counter>("target", small_mailbox());
  // alias3 -> alias2 -> alias1 -> target: three hops, allowed; alias4 adds a fourth.
  const actor_index alias1 = rt.add_alias("alias1", target);
  const actor_index alias2 = rt.add_alias("alias2", alias1);
  const actor_index alias3 = rt.add_alias("alias3", alias2);
  const actor_index alias4 = rt.add_alias("alias4", alias3);
  rt.start();
  const ping_payload p{0, 1};
  EXPECT_EQ(rt.send_wait(alias1, msg_count, rk::as_bytes(p), 5s), status::delivered);
  EXPECT_EQ(rt.send_wait(alias3, msg_count, rk::as_bytes(p), 5s), status::delivered);
  EXPECT_EQ(rt.send_wait(alias4, msg_count, rk::as_bytes(p), 5s), status::max_hops_exceeded);

  // A loop never delivers: it runs out of hops.
  const actor_index loop_a = rt.add_alias("loop_a", target);
  const actor_index loop_b = rt.add_alias("loop_b", loop_a);
  rt.set_route(loop_a, loop_b);
  EXPECT_EQ(rt.send_wait(loop_a, msg_count, rk::as_bytes(p), 5s), status::max_hops_exceeded);
  // An alias leading to itself is refused (it would end in not_found, not as a loop).
  expect_refused([&] { rt.set_route(loop_a, loop_a); }, "cannot lead to itself");
  EXPECT_EQ(rt.send_wait(loop_a, msg_count, rk::as_bytes(p), 5s), status::max_hops_exceeded) << "unchanged";

  // Redirecting a live actor and restoring it while running.
  const actor_index other = rt.spawn<counter>("other", small_mailbox());
  rt.set_route(target, other);
  EXPECT_EQ(rt.send_wait(target, msg_count, rk::as_bytes(p), 5s), status::delivered);
  rt.clear_route(target);
  EXPECT_EQ(rt.send_wait(target, msg_count, rk::as_bytes(p), 5s), status::delivered);
  EXPECT_THROW(rt.set_route(target, rk::host_actor), rk::error);
  EXPECT_THROW(rt.set_route(target, 500), rk::error);
  ASSERT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<counter>(target).count, 3u);
  EXPECT_EQ(rt.state<counter>(other).count, 1u);
  EXPECT_EQ(rt.lifecycle(alias1), rk::actor_lifecycle::alias);
}

TEST_P(RoutingCases, ForwardingActorsRunOutOfHops) {
  rk::runtime_options o = options();
  o.max_hops = 5;
  rk::runtime rt(o);
  const actor_index a = rt.spawn<hop_forwarder>("a", small_mailbox(), hop_forwarder::state{1});
  const actor_index b = rt.spawn<hop_forwarder>("b", small_mailbox(), hop_forwarder::state{0});
  ASSERT_EQ(b, 1u);
  rt.start();
  const ping_payload p{0, 0};
  ASSERT_EQ(rt.send_wait(a, msg_ping, rk::as_bytes(p), 5s), status::delivered);
  const auto report = rt.receive(10s);
  ASSERT_TRUE(report.has_value()) << "the bounce must end with max_hops_exceeded";
  const ping_payload r = report->as<ping_payload>();
  EXPECT_EQ(static_cast<status>(r.sequence), status::max_hops_exceeded);
  EXPECT_EQ(r.value, 5u) << "the refused forward came from the message that had taken max_hops hops";
  EXPECT_TRUE(rt.shutdown().drained) << "nothing keeps bouncing";
}

// --- groups ---------------------------------------------------------------------------------------

TEST_P(RoutingCases, GroupSendsAreRoundRobinAcrossMembers) {
  rk::runtime rt(options());
  rk::actor_options ao = small_mailbox();
  ao.instances = 4;
  const rk::address workers = rt.spawn<tagger>("worker", ao);
  EXPECT_TRUE(rk::is_group_address(workers));
  EXPECT_EQ(rt.group("worker"), workers);
  const std::vector<actor_index> members = rt.members(workers);
  ASSERT_EQ(members.size(), 4u);
  EXPECT_EQ(rt.name_of(members[2]), "worker/2");
  rt.start();
  const auto tally = tally_replies(rt, workers, 400);
  ASSERT_EQ(tally.size(), 4u);
  for (actor_index m : members) EXPECT_EQ(tally.at(m), 100) << "member " << m;
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST_P(RoutingCases, StoppedMembersLeaveTheRotationAndRejoinOnceRespawned) {
  rk::runtime rt(options());
  rk::actor_options ao = small_mailbox();
  ao.instances = 4;
  const rk::address workers = rt.spawn<tagger>("worker", ao);
  const std::vector<actor_index> members = rt.members(workers);
  rt.start();
  ASSERT_TRUE(rt.stop(members[2]));
  EXPECT_EQ(rt.lifecycle(members[2]), rk::actor_lifecycle::stopped);
  const ping_payload p{0, 0};
  EXPECT_EQ(rt.send_wait(members[2], msg_ping, rk::as_bytes(p), 5s), status::not_found)
      << "a stopped actor takes nothing";
  auto tally = tally_replies(rt, workers, 300);
  EXPECT_EQ(tally.count(members[2]), 0u) << "the stopped member received nothing";
  for (actor_index m : {members[0], members[1], members[3]}) EXPECT_EQ(tally[m], 100);

  rt.respawn(members[2]);
  EXPECT_EQ(rt.lifecycle(members[2]), rk::actor_lifecycle::live);
  tally = tally_replies(rt, workers, 400, 1000);
  for (actor_index m : members) EXPECT_EQ(tally[m], 100) << "respawned member rejoins exactly once";

  ASSERT_TRUE(rt.pause_actor(members[0]));
  tally = tally_replies(rt, workers, 30, 5000);
  EXPECT_EQ(tally.count(members[0]), 0u) << "paused members are skipped";
  rt.resume_actor(members[0]);
  EXPECT_THROW(rt.respawn(members[1]), rk::error) << "respawn needs a stopped or faulted actor";
  EXPECT_TRUE(rt.shutdown().drained);
  const rk::runtime_stats s = rt.stats();
  // members[2]: 0 before its stop, 100 after respawn, 10 of the 30 sent while members[0] was paused.
  EXPECT_EQ(rt.state<tagger>(members[2]).seen, 110u) << "respawn reset the state";
  EXPECT_EQ(s.actors[members[2]].handled, 110u);
}

TEST_P(RoutingCases, AGroupWithoutLiveMembersIsNotFound) {
  rk::runtime rt(options());
  rk::actor_options ao = small_mailbox();
  ao.instances = 2;
  const rk::address g = rt.spawn<tagger>("pair", ao);
  rt.start();
  for (actor_index m : rt.members(g)) ASSERT_TRUE(rt.stop(m));
  const ping_payload p{0, 0};
  EXPECT_EQ(rt.send_wait(g, msg_ping, rk::as_bytes(p), 5s), status::not_found);
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST_P(RoutingCases, KeyedSendsStickToOneMemberWhileItLives) {
  rk::runtime rt(options());
  rk::actor_options ao = small_mailbox();
  ao.instances = 5;
  const rk::address g = rt.spawn<tagger>("shard", ao);
  rt.start();
  auto owner_of = [&](std::uint64_t key) {
    const ping_payload p{key, 0};
    EXPECT_EQ(rt.send_keyed(g, key, msg_ping, rk::as_bytes(p)), status::enqueued);
    const auto reply = rt.receive(5s);
    EXPECT_TRUE(reply.has_value());
    return reply ? static_cast<actor_index>(reply->as<ping_payload>().value) : rk::host_actor;
  };
  std::map<std::uint64_t, actor_index> first;
  std::set<actor_index> used;
  for (std::uint64_t key = 0; key < 100; ++key) used.insert(first[key] = owner_of(key));
  EXPECT_GE(used.size(), 3u) << "keys spread over the members";
  for (std::uint64_t key = 0; key < 100; ++key) EXPECT_EQ(owner_of(key), first[key]) << "key " << key;

  const actor_index victim = first[7];
  ASSERT_TRUE(rt.stop(victim));
  for (std::uint64_t key = 0; key < 100; ++key) {
    const actor_index now = owner_of(key);
    EXPECT_NE(now, victim);
    if (first[key] != victim) {
      EXPECT_EQ(now, first[key]) << "keys of live members do not move";
    }
  }
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST_P(RoutingCases, GroupsAndAliasesCanBeCreatedWhileRunning) {
  rk::runtime rt(options());
  const actor_index a = rt.spawn<tagger>("a", small_mailbox());
  const actor_index b = rt.spawn<tagger>("b", small_mailbox());
  rt.start();
  const std::vector<actor_index> list{b, a};
  const rk::address g = rt.create_group("pair", list);
  const auto tally = tally_replies(rt, g, 10);
  EXPECT_EQ(tally.at(a), 5);
  EXPECT_EQ(tally.at(b), 5);
  const actor_index front = rt.add_alias("front", g);
  const auto via_alias = tally_replies(rt, front, 4, 100);
  EXPECT_EQ(via_alias.at(a) + via_alias.at(b), 4);
  const std::vector<actor_index> dup{a, a};
  EXPECT_THROW(rt.create_group("dup", dup), rk::error);
  EXPECT_THROW(rt.create_group("empty", std::vector<actor_index>{}), rk::error);
  EXPECT_THROW(rt.create_group("pair", list), rk::error) << "names are unique";
  EXPECT_TRUE(rt.shutdown().drained);
}

// --- spawning and stopping while running ----------------------------------------------------------------

// A route that changes under a send: the device read the old hop, then found its target (an alias or a
// group) removed, and refused a send to an actor that stayed reachable throughout with not_found (a probe
// saw a few in 10^5 sends). Every send reaches `a` directly or `b` through the route.
TEST_P(RoutingCases, ASendRacingARouteChangeReachesTheActorOrTheRoutesTarget) {
  rk::runtime rt(options());
  const actor_index a = rt.spawn<counter>("a", small_mailbox());
  const actor_index b = rt.spawn<counter>("b", small_mailbox());
  rt.start();
  std::atomic<bool> done{false};
  std::thread churn([&] {
    const actor_index members[] = {b};
    for (int i = 0; i < 100'000 / RK_TEST_SCALE_DIVISOR; ++i) { // about 1 s here
      const actor_index alias = rt.add_alias("via", b);
      rt.set_route(a, alias);
      rt.clear_route(a);
      rt.remove_alias(alias);
      const rk::address group = rt.create_group("via group", members);
      rt.set_route(a, group);
      rt.clear_route(a);
      rt.remove_group(group);
    }
    done = true;
  });
  std::uint64_t delivered = 0;
  std::map<status, std::uint64_t> refused;
  const ping_payload p{0, 1};
  while (!done.load()) {
    const status s = rt.send_wait(a, msg_count, rk::as_bytes(p), 10s);
    s == status::delivered ? ++delivered : ++refused[s];
  }
  churn.join();
  for (const auto& [s, n] : refused) ADD_FAILURE() << n << " sends to a refused " << rk::to_string(s);
  ASSERT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<counter>(a).count + rt.state<counter>(b).count, delivered);
}

TEST_P(RoutingCases, SpawningWhileRunningKeepsOtherActorsRunning) {
  rk::runtime rt(options());
  const actor_index first = rt.spawn<counter>("first", small_mailbox());
  rt.prepare<tagger>();
  rt.start();
  const ping_payload p{0, 2};
  ASSERT_EQ(rt.send_wait(first, msg_count, rk::as_bytes(p), 5s), status::delivered);
  const actor_index late = rt.spawn<counter>("late", small_mailbox());
  rk::actor_options ao = small_mailbox();
  ao.instances = 3;
  const rk::address pool = rt.spawn<tagger>("pool", ao); // prepared before start
  EXPECT_EQ(rt.send_wait(late, msg_count, rk::as_bytes(p), 5s), status::delivered);
  EXPECT_EQ(rt.send_wait(first, msg_count, rk::as_bytes(p), 5s), status::delivered);
  const auto tally = tally_replies(rt, pool, 6);
  EXPECT_EQ(tally.size(), 3u);
  try {
    rt.spawn<echo>("unprepared");
    ADD_FAILURE() << "a handler type unknown at start() must be refused while running";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("not known at start()"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<counter>(first).count, 2u);
  EXPECT_EQ(rt.state<counter>(late).count, 1u);
}

TEST_P(RoutingCases, AllocationsWhileRunningComeFromTheArenaAndRunOutClearly) {
  rk::runtime_options o = options();
  o.running_arena_bytes = 256 * 1024; // room for a few 64 KiB mailboxes, not for a 1 MiB one
  rk::runtime rt(o);
  const actor_index first = rt.spawn<counter>("first", small_mailbox());
  rt.start();
  const actor_index late = rt.spawn<counter>("late", small_mailbox(64, 128));
  try {
    rt.spawn<counter>("too_many", small_mailbox(1024, 1024));
    ADD_FAILURE() << "the arena cannot hold a 1 MiB mailbox";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("running_arena_bytes"), std::string::npos) << e.what();
  }
  const ping_payload p{0, 1};
  EXPECT_EQ(rt.send_wait(late, msg_count, rk::as_bytes(p), 5s), status::delivered)
      << "the runtime is unharmed";
  EXPECT_EQ(rt.send_wait(first, msg_count, rk::as_bytes(p), 5s), status::delivered);
  EXPECT_THROW(rt.find("too_many"), rk::error) << "the failed spawn left nothing behind";
  EXPECT_EQ(rt.tenants().usage(0).actors, 2u) << "nor a tenant charge";
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<counter>(late).count, 1u);
}

TEST_P(RoutingCases, AFaultedActorIsSkippedUntilRespawned) {
  rk::runtime rt(options());
  rk::actor_options ao = small_mailbox();
  ao.instances = 2;
  const rk::address g = rt.spawn<fragile>("pair", ao);
  const actor_index victim = rt.members(g)[0];
  const actor_index other = rt.members(g)[1];
  const actor_index source = rt.spawn<burster>("source", small_mailbox());
  rt.start();
  ASSERT_EQ(rt.send_wait(victim, msg_trap, {}, 5s), status::delivered);
  // Its own handler faulted it; wait for the device to say so (no sleeps: poll the lifecycle).
  const rk::wait_result faulted =
      rk::wait_until([&] { return rt.lifecycle(victim) == rk::actor_lifecycle::faulted; },
                     [] { return false; }, 5'000'000'000ull);
  ASSERT_EQ(faulted, rk::wait_result::ready);
  expect_refused([&] { (void)rt.pause_actor(victim, 1s); }, "is faulted; respawn() it first");
  const ping_payload p{0, 0};
  EXPECT_EQ(rt.send_wait(victim, msg_ping, rk::as_bytes(p), 5s), status::not_found);
  const auto tally = tally_replies(rt, g, 6);
  EXPECT_EQ(tally.count(victim), 0u) << "groups skip a faulted member";
  EXPECT_EQ(tally.at(other), 6);
  const burst_request req{victim, 5, rk::envelope_flags::none, 0};
  ASSERT_EQ(rt.send(source, msg_burst, rk::as_bytes(req)), status::enqueued);
  const auto report = rt.receive(5s);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->as<burst_report>().not_found, 5u);
  EXPECT_EQ(rt.stats().actors[victim].fault_code, 7u);
  rt.respawn(victim);
  EXPECT_EQ(rt.lifecycle(victim), rk::actor_lifecycle::live);
  EXPECT_EQ(rt.stats().actors[victim].fault_code, 0u) << "the respawned actor has not faulted";
  const auto after = tally_replies(rt, g, 4, 100);
  EXPECT_EQ(after.at(victim), 2) << "back in the rotation";
  EXPECT_TRUE(rt.shutdown().drained);
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(s.actors[victim].fault_code, 0u);
  EXPECT_EQ(s.actors[victim].received, s.actors[victim].handled + s.actors[victim].discarded);
  for (const actor_index a : {victim, other, source}) {
    EXPECT_EQ(rt.lifecycle(a), rk::actor_lifecycle::stopped) << "no actor runs after shutdown";
    EXPECT_EQ(s.actors[a].lifecycle, rk::actor_lifecycle::stopped);
  }
}

TEST_P(RoutingCases, StoppingDrainsWhatIsQueued) {
  rk::runtime rt(options());
  const actor_index c = rt.spawn<counter>("counter", small_mailbox());
  rt.start();
  ASSERT_TRUE(rt.pause_actor(c));
  EXPECT_TRUE(rt.pause_actor(c)) << "pausing a paused actor confirms again";
  for (std::uint64_t i = 0; i < 10; ++i) {
    const ping_payload p{i, 1};
    ASSERT_EQ(rt.send_wait(c, msg_count, rk::as_bytes(p), 5s), status::delivered);
  }
  ASSERT_TRUE(rt.stop(c)) << "a paused actor can be stopped; it handles its queue first";
  EXPECT_EQ(rt.lifecycle(c), rk::actor_lifecycle::stopped);
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(s.actors[c].handled, 10u);
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<counter>(c).count, 10u);
}

// --- message types ----------------------------------------------------------------------------------

TEST_P(RoutingCases, NonRoutableTypesNeverTravelActorToActor) {
  rk::runtime rt(options());
  rt.register_message_type({msg_secret, "secret", false, "internal"});
  rt.register_message_type({msg_count, "count", true, "internal"});
  EXPECT_EQ(rt.message_types().find("secret")->id, msg_secret);
  EXPECT_FALSE(rt.message_types().find(msg_secret)->routable);
  EXPECT_EQ(rt.message_types().in_category("internal").size(), 2u);
  EXPECT_THROW(rt.register_message_type({msg_secret, "other", true, ""}), rk::error) << "id taken";
  const actor_index sink = rt.spawn<counter>("sink", small_mailbox());
  const actor_index source = rt.spawn<burster>("source", small_mailbox());
  const actor_index mirror = rt.spawn<echo>("mirror", small_mailbox());
  rt.start();
  const burst_request req{sink, 4, rk::envelope_flags::none, msg_secret};
  ASSERT_EQ(rt.send(source, msg_burst, rk::as_bytes(req)), status::enqueued);
  const auto report = rt.receive(5s);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->as<burst_report>().not_routable, 4u);
  const ping_payload p{1, 1};
  EXPECT_EQ(rt.send_wait(sink, msg_secret, rk::as_bytes(p), 5s), status::delivered)
      << "host -> actor is not K2K";
  EXPECT_EQ(rt.send_wait(mirror, msg_secret, rk::as_bytes(p), 5s), status::delivered);
  const auto echoed = rt.receive(5s);
  ASSERT_TRUE(echoed.has_value()) << "actor -> host is not K2K either";
  EXPECT_EQ(echoed->type(), msg_secret);
  rt.register_message_type({msg_ping + 200, "late_secret", false, ""}); // while running
  const burst_request late{sink, 2, rk::envelope_flags::none, msg_ping + 200};
  ASSERT_EQ(rt.send(source, msg_burst, rk::as_bytes(late)), status::enqueued);
  const auto late_report = rt.receive(5s);
  ASSERT_TRUE(late_report.has_value());
  EXPECT_EQ(late_report->as<burst_report>().not_routable, 2u);
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.stats().actors[source].sent[static_cast<int>(status::not_routable)], 6u);
  EXPECT_EQ(rt.state<counter>(sink).count, 1u);
}

// A refused registration changes nothing, not even for a moment: the device's not-routable bit was once set
// before the conflict was found (and cleared after), refusing K2K sends of the routable type meanwhile.
TEST_P(RoutingCases, RefusedTypeRegistrationsNeverBlockARoutableTypeEvenBriefly) {
  rk::runtime_options o = options();
  o.drain_timeout = 200ms; // the message bounces until shutdown gives up
  rk::runtime rt(o);
  rt.register_message_type({msg_count, "count", true, ""});
  const actor_index a = rt.spawn<bouncer>("a", small_mailbox(), bouncer::state{1});
  const actor_index b = rt.spawn<bouncer>("b", small_mailbox(), bouncer::state{0});
  ASSERT_EQ(b, 1u);
  rt.start();
  const ping_payload p{0, 0};
  ASSERT_EQ(rt.send_wait(a, msg_count, rk::as_bytes(p), 5s), status::delivered);
  std::uint64_t refused = 0;
  for (int i = 0; i < 20'000; ++i) {
    try { // the id is taken by a routable type; then the name is taken
      rt.register_message_type({msg_count, "count_secret", false, ""});
    } catch (const rk::error&) {
      ++refused;
    }
    try {
      rt.register_message_type({msg_ping + 201, "count", false, ""});
    } catch (const rk::error&) {
      ++refused;
    }
  }
  EXPECT_EQ(refused, 40'000u);
  const std::uint64_t before = rt.stats().actors[a].handled;
  EXPECT_TRUE(rk::wait_until([&] { return rt.stats().actors[a].handled > before; }, [] { return false; },
                             10'000'000'000ull) == rk::wait_result::ready)
      << "the message still bounces";
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(s.actors[a].sent[static_cast<int>(status::not_routable)] +
                s.actors[b].sent[static_cast<int>(status::not_routable)],
            0u);
  EXPECT_TRUE(rt.message_types().find(msg_count)->routable);
  EXPECT_FALSE(rt.message_types().find(msg_ping + 201).has_value());
  (void)rt.shutdown();
}

// --- priorities -------------------------------------------------------------------------------------

TEST_P(RoutingCases, HigherPrioritiesDrainFirst) {
  rk::runtime_options o = options();
  o.starvation_limit = 255; // effectively strict priority for this test
  rk::runtime rt(o);
  const actor_index r = rt.spawn<order_recorder>("recorder", priority_mailbox());
  rt.start();
  ASSERT_TRUE(rt.pause_actor(r));
  for (std::uint64_t i = 0; i < 20; ++i) {
    const ping_payload low{i, 0}, urgent{100 + i, 0};
    ASSERT_EQ(rt.send_wait(r, msg_ping, rk::as_bytes(low), 5s, {.priority = rk::priority::low}),
              status::delivered);
    ASSERT_EQ(rt.send_wait(r, msg_ping, rk::as_bytes(urgent), 5s, {.priority = rk::priority::urgent}),
              status::delivered);
  }
  rt.resume_actor(r);
  EXPECT_TRUE(rt.shutdown().drained);
  const order_recorder::state st = rt.state<order_recorder>(r);
  ASSERT_EQ(st.count, 40u);
  for (std::uint32_t i = 0; i < 20; ++i) {
    EXPECT_EQ(st.sequence[i], 100 + i) << "position " << i << ": urgent first, in order";
    EXPECT_EQ(st.sequence[20 + i], i) << "position " << 20 + i << ": then low, in order";
  }
}

TEST_P(RoutingCases, OneLaneServesInArrivalOrderWhateverThePriority) {
  rk::runtime rt(options());
  const actor_index r = rt.spawn<order_recorder>("recorder", small_mailbox()); // priority_lanes off
  rt.start();
  ASSERT_TRUE(rt.pause_actor(r));
  for (std::uint64_t i = 0; i < 20; ++i) {
    const ping_payload p{i, 0};
    const rk::priority pr = i % 2 ? rk::priority::urgent : rk::priority::low;
    ASSERT_EQ(rt.send_wait(r, msg_ping, rk::as_bytes(p), 5s, {.priority = pr}), status::delivered);
  }
  // A priority beyond urgent (an integer cast to the enum) travels as urgent, never as itself.
  const ping_payload last{20, 0};
  ASSERT_EQ(rt.send_wait(r, msg_ping, rk::as_bytes(last), 5s, {.priority = static_cast<rk::priority>(200)}),
            status::delivered);
  rt.resume_actor(r);
  EXPECT_TRUE(rt.shutdown().drained);
  const order_recorder::state st = rt.state<order_recorder>(r);
  ASSERT_EQ(st.count, 21u);
  for (std::uint32_t i = 0; i < 21; ++i) EXPECT_EQ(st.sequence[i], i) << "position " << i;
  EXPECT_EQ(st.priority[20], static_cast<std::uint8_t>(rk::priority::urgent));
}

TEST_P(RoutingCases, StarvationLimitBoundsHowLongALaneWaits) {
  // 1 and 2 included: there, serving the higher of several starved lanes first let urgent and high take
  // turns while low and normal waited for both to empty.
  for (const std::uint32_t limit : {1u, 2u, 4u}) {
    SCOPED_TRACE("starvation_limit " + std::to_string(limit));
    rk::runtime_options o = options();
    o.starvation_limit = limit;
    rk::runtime rt(o);
    const actor_index r = rt.spawn<order_recorder>("recorder", priority_mailbox());
    rt.start();
    ASSERT_TRUE(rt.pause_actor(r));
    constexpr std::uint32_t per_lane = 12;
    for (std::uint32_t lane = 0; lane < rk::priority_levels; ++lane)
      for (std::uint32_t i = 0; i < per_lane; ++i) {
        const ping_payload p{lane * 100 + i, 0};
        ASSERT_EQ(
            rt.send_wait(r, msg_ping, rk::as_bytes(p), 5s, {.priority = static_cast<rk::priority>(lane)}),
            status::delivered);
      }
    rt.resume_actor(r);
    EXPECT_TRUE(rt.shutdown().drained);
    const order_recorder::state st = rt.state<order_recorder>(r);
    ASSERT_EQ(st.count, per_lane * rk::priority_levels);
    EXPECT_EQ(st.priority[0], static_cast<std::uint8_t>(rk::priority::urgent)) << "highest first";
    std::uint32_t next_in_lane[rk::priority_levels] = {};
    std::uint32_t last_served[rk::priority_levels] = {};
    for (std::uint32_t pos = 0; pos < st.count; ++pos) {
      const std::uint32_t lane = st.priority[pos];
      EXPECT_EQ(st.sequence[pos], lane * 100 + next_in_lane[lane]) << "FIFO within a lane, position " << pos;
      ++next_in_lane[lane];
      // Every lane that still had messages waited at most limit + (levels - 1) picks since its last service.
      for (std::uint32_t other = 0; other < rk::priority_levels; ++other) {
        if (other == lane || next_in_lane[other] >= per_lane) continue;
        EXPECT_LE(pos + 1 - last_served[other], limit + rk::priority_levels)
            << "lane " << other << " starved at position " << pos;
      }
      last_served[lane] = pos + 1;
    }
  }
}

// --- counters balance under concurrent random traffic ----------------------------------------------------

TEST_P(RoutingCases, CountersBalanceAfterRandomTrafficFromManySenders) {
  rk::runtime_options o = options();
  rk::runtime rt(o);
  rt.register_message_type({msg_secret, "secret", false, "test"});
  rk::actor_options sinks = small_mailbox(16, 128); // small: some sends meet queue_full
  sinks.instances = 3;
  const rk::address sink_group = rt.spawn<counter>("sink", sinks);
  const std::vector<actor_index> sink_ids = rt.members(sink_group);
  std::vector<actor_index> senders;
  for (int i = 0; i < 4; ++i)
    senders.push_back(rt.spawn<random_sender>(std::string("sender").append(std::to_string(i))));
  const actor_index alias = rt.add_alias("sink_alias", sink_ids[0]);
  rt.start();
  random_request req{};
  req.count = static_cast<std::uint32_t>(rk::test::scaled(4'000));
  req.target_count = 7;
  const rk::address targets[7] = {sink_ids[0], sink_ids[1], sink_ids[2],          sink_group,
                                  alias,       50,          rk::group_address(40)};
  std::copy(std::begin(targets), std::end(targets), req.targets);
  for (std::size_t i = 0; i < senders.size(); ++i) {
    req.seed = 1234 + i;
    ASSERT_EQ(rt.send(senders[i], msg_random, rk::as_bytes(req)), status::enqueued);
  }
  // Two host threads add traffic of their own at the same time.
  std::vector<std::thread> hosts;
  for (int t = 0; t < 2; ++t)
    hosts.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const ping_payload p{static_cast<std::uint64_t>(i), 1};
        (void)rt.send(targets[(i + t) % 7], msg_count, rk::as_bytes(p));
      }
    });
  for (auto& h : hosts) h.join();
  ASSERT_TRUE(rt.shutdown().drained);

  const rk::runtime_stats s = rt.stats();
  std::uint64_t actor_deliveries = 0;
  for (actor_index id : senders) {
    const random_sender::state st = rt.state<random_sender>(id);
    EXPECT_EQ(st.attempts, req.count);
    EXPECT_EQ(rk::total(s.actors[id].sent), st.attempts) << "every send counted exactly once";
    for (std::uint32_t k = 0; k < rk::status_count; ++k)
      EXPECT_EQ(s.actors[id].sent[k], st.by_status[k])
          << "sender " << id << " status " << rk::to_string(static_cast<status>(k));
    EXPECT_GT(st.by_status[static_cast<int>(status::not_routable)], 0u);
    EXPECT_GT(st.by_status[static_cast<int>(status::not_found)] +
                  st.by_status[static_cast<int>(status::dropped)],
              0u);
    actor_deliveries += s.actors[id].sent[static_cast<int>(status::delivered)];
  }
  // Every delivery landed in exactly one mailbox and was handled or discarded.
  std::uint64_t received = 0;
  for (const auto& a : s.actors) {
    received += a.received;
    EXPECT_EQ(a.received, a.handled + a.discarded) << a.name;
  }
  const std::uint64_t host_delivered = s.gateway_verdicts[static_cast<int>(status::delivered)];
  EXPECT_EQ(received, actor_deliveries + host_delivered);
  EXPECT_EQ(rk::total(s.gateway_verdicts), s.gateway_processed);
  EXPECT_EQ(s.gateway_processed, s.host_sends[static_cast<int>(status::enqueued)]);
  std::uint64_t sink_count = 0, sink_received = 0;
  for (actor_index id : sink_ids) {
    sink_count += rt.state<counter>(id).count;
    sink_received += s.actors[id].received;
  }
  EXPECT_EQ(sink_count, sink_received);
  EXPECT_EQ(sink_received + senders.size(), received)
      << "besides the sinks, only the 4 requests were delivered";
}

// --- warp-aggregated sends ------------------------------------------------------------------------------

TEST_P(RoutingCases, AggregatedSendsReserveOnceAndKeepOrder) {
  rk::runtime rt(options());
  std::vector<actor_index> sinks;
  for (int i = 0; i < 4; ++i)
    sinks.push_back(
        rt.spawn<sequence_checker>(std::string("check").append(std::to_string(i)), small_mailbox(256, 128)));
  const actor_index agg = rt.spawn<aggregator>("aggregator", small_mailbox());
  rt.start();
  aggregate_request req{};
  std::copy(sinks.begin(), sinks.end(), req.destinations);
  ASSERT_EQ(rt.send_wait(agg, msg_aggregate, rk::as_bytes(req), 5s), status::delivered);
  ASSERT_TRUE(rt.receive(10s).has_value()) << "the aggregator reports when it is done";
  ASSERT_TRUE(rt.shutdown().drained);
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(rt.state<aggregator>(agg).failures, 0u);
  std::uint32_t expected_total = 0;
  for (std::uint32_t i = 0; i < 64; ++i) expected_total += 1 + i % 3;
  std::uint32_t total = 0;
  for (actor_index id : sinks) {
    const sequence_checker::state st = rt.state<sequence_checker>(id);
    EXPECT_EQ(st.violations, 0u) << "each thread's messages arrive in order";
    total += st.count;
  }
  EXPECT_EQ(total, expected_total);
  EXPECT_EQ(s.actors[agg].sent[static_cast<int>(status::delivered)], expected_total + 1) << "+ the report";
  // CUDA: 2 full warps x 4 destinations, one reservation each. CPU: one reservation per call. Plus one
  // for the report to the host.
  EXPECT_EQ(s.actors[agg].reservations, (backend() == rk::backend::cuda ? 8u : 64u) + 1);
}

TEST_P(RoutingCases, AnAggregatedBatchIsAllOrNothing) {
  rk::runtime rt(options());
  const actor_index small = rt.spawn<sequence_checker>("small", small_mailbox(4, 128));
  const actor_index agg = rt.spawn<aggregator>("aggregator", small_mailbox());
  rt.start();
  ASSERT_TRUE(rt.pause_actor(small)); // its 4-slot lanes fill up and stay full
  aggregate_request req{};
  for (auto& d : req.destinations) d = small;
  ASSERT_EQ(rt.send_wait(agg, msg_aggregate, rk::as_bytes(req), 5s), status::delivered);
  ASSERT_TRUE(rt.receive(10s).has_value()) << "all sends were made while `small` was paused";
  rt.resume_actor(small);
  ASSERT_TRUE(rt.shutdown().drained);
  const rk::runtime_stats s = rt.stats();
  const sequence_checker::state st = rt.state<sequence_checker>(small);
  EXPECT_EQ(st.violations, 0u) << "no batch was split: every thread's messages arrived complete and in order";
  EXPECT_LE(st.count, 4u) << "one lane of four slots";
  const std::uint64_t to_small = s.actors[agg].sent[static_cast<int>(status::delivered)] - 1; // - the report
  EXPECT_EQ(to_small, st.count);
  std::uint64_t attempted = 0;
  for (std::uint32_t i = 0; i < 64; ++i) attempted += 1 + i % 3;
  EXPECT_EQ(to_small + s.actors[agg].sent[static_cast<int>(status::queue_full)], attempted);
  EXPECT_GT(rt.state<aggregator>(agg).failures, 0u);
}

} // namespace rk_cases
