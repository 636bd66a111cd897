#pragma once
// Adversarial tenancy suite, written once and instantiated per backend (test_runtime_cpu.cpp and
// test_runtime_cuda.cu): cross-tenant sends by every path, forged source fields, tenant 0 mixing,
// descriptors out of bounds / overflowing / stale / into a slab / beyond the append cursor / into another
// tenant's region, rate and budget exhaustion, audit-ring overflow, host quotas. Every refusal must come
// back with the right status, leave an audit record, and deliver nothing.

#include "routing_cases.hpp"

#include <array>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <thread>

#include <unistd.h>

namespace rk_cases {

class TenancyCases : public RuntimeCases {
protected:
  //! Audit entries of `event` after a flush (the runtime keeps the newest audit_memory_records).
  static std::vector<rk::audit_entry> audited(rk::runtime& rt, rk::audit_event event) {
    EXPECT_EQ(rt.flush_audit(10s), rk::wait_result::ready);
    std::vector<rk::audit_entry> out;
    for (const auto& e : rt.audit_records())
      if (e.record.event == event) out.push_back(e);
    return out;
  }

  //! Sends `req` to burster `b` as `tenant` and returns its report.
  static burst_report burst(rk::runtime& rt, actor_index b, std::uint64_t tenant, const burst_request& req) {
    EXPECT_EQ(rt.send(b, msg_burst, rk::as_bytes(req), as_tenant(tenant)), status::enqueued);
    const auto reply = rt.receive(10s);
    EXPECT_TRUE(reply.has_value());
    return reply ? reply->as<burst_report>() : burst_report{};
  }

  //! Has aggregator `a` (tenant 1; 64 threads, thread i sends a batch of 1 + i % 3) send its batches to
  //! `target` with `flags`, then checks that every message was refused with `verdict`, left one `event`
  //! record (none lost), and that nothing reached `target`. Shuts the runtime down.
  static void expect_aggregated_refused(rk::runtime& rt, actor_index a, actor_index target,
                                        std::uint16_t flags, status verdict, rk::audit_event event) {
    const aggregate_request req{{target, target, target, target}, flags};
    ASSERT_EQ(rt.send(a, msg_ping, rk::as_bytes(req), as_tenant(1)), status::enqueued);
    ASSERT_TRUE(rt.receive(10s).has_value());
    std::uint64_t messages = 0;
    for (std::uint32_t i = 0; i < 64; ++i) messages += 1 + i % 3;
    const rk::runtime_stats s = rt.stats();
    EXPECT_EQ(s.actors[a].sent[static_cast<int>(verdict)], messages);
    EXPECT_EQ(audited(rt, event).size(), messages);
    EXPECT_EQ(rt.audit_stats().records_lost, 0u);
    EXPECT_TRUE(rt.shutdown().drained);
    EXPECT_EQ(s.actors[target].received, 0u);
    EXPECT_EQ(rt.state<aggregator>(a).failures, 64u) << "every call was refused";
  }

  //! Waits (bounded, no sleeps) until actor `a` has handled `n` messages.
  static bool handled(rk::runtime& rt, actor_index a, std::uint64_t n) {
    return rk::wait_until([&] { return rt.stats().actors[a].handled >= n; }, [] { return false; },
                          10'000'000'000ull) == rk::wait_result::ready;
  }
};

// --- tenant isolation by every path ------------------------------------------------------------------

TEST_P(TenancyCases, CrossTenantSendsAreRejectedOnEveryPathAndAudited) {
  rk::runtime rt(options());
  rt.tenants().add(1, rk::tenant_quota::standard());
  rt.tenants().add(2, rk::tenant_quota::standard());
  const actor_index sink1 = rt.spawn<counter>("sink1", in_tenant(1));
  const actor_index sink2 = rt.spawn<counter>("sink2", in_tenant(2));
  rk::actor_options pool = in_tenant(2);
  pool.instances = 2;
  const rk::address group2 = rt.spawn<counter>("pool2", pool);
  const actor_index b1 = rt.spawn<burster>("b1", in_tenant(1));
  const actor_index alias2 = rt.add_alias("to_sink2", sink2);
  rt.start();

  const ping_payload p{0, 1};
  // host path
  EXPECT_EQ(rt.send_wait(sink2, msg_count, rk::as_bytes(p), 5s, as_tenant(1)), status::tenant_mismatch);
  EXPECT_EQ(rt.send_wait(group2, msg_count, rk::as_bytes(p), 5s, as_tenant(1)), status::tenant_mismatch);
  EXPECT_EQ(rt.send_wait(sink2, msg_count, rk::as_bytes(p), 5s, as_tenant(2)), status::delivered)
      << "own tenant";
  // K2K: direct, group, alias, and a redirected actor (next-hop route)
  EXPECT_EQ(burst(rt, b1, 1, {sink2, 3, 0, 0}).tenant_mismatch, 3u);
  EXPECT_EQ(burst(rt, b1, 1, {group2, 3, 0, 0}).tenant_mismatch, 3u);
  EXPECT_EQ(burst(rt, b1, 1, {alias2, 3, 0, 0}).tenant_mismatch, 3u);
  rt.set_route(sink1, sink2);
  EXPECT_EQ(burst(rt, b1, 1, {sink1, 3, 0, 0}).tenant_mismatch, 3u);
  rt.clear_route(sink1);
  EXPECT_EQ(burst(rt, b1, 1, {sink1, 3, 0, 0}).delivered, 3u) << "same tenant still works";

  const auto records = audited(rt, rk::audit_event::cross_tenant_attempt);
  ASSERT_EQ(records.size(), 14u) << "2 host + 12 K2K attempts, each audited";
  for (const auto& e : records) {
    EXPECT_EQ(e.record.other_tenant, 2u);
    EXPECT_EQ(e.record.detail, static_cast<std::uint32_t>(status::tenant_mismatch));
    EXPECT_EQ(e.record.origin, rk::audit_origin::device);
  }
  EXPECT_TRUE(rt.shutdown().drained);
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(rt.state<counter>(sink2).count, 1u) << "nothing crossed";
  for (actor_index m : rt.members(group2)) EXPECT_EQ(s.actors[m].received, 0u);
  EXPECT_EQ(s.actors[b1].sent[static_cast<int>(status::tenant_mismatch)], 12u);
  EXPECT_EQ(s.gateway_verdicts[static_cast<int>(status::tenant_mismatch)], 2u);
}

// Sends another tenant makes to a group are refused at the member they reach, and must not move the group's
// round-robin cursor: otherwise a hostile tenant chooses which member the group's own traffic lands on.
TEST_P(TenancyCases, RefusedForeignSendsDoNotSteerAGroupsRoundRobin) {
  rk::runtime rt(options());
  rt.tenants().add(1, rk::tenant_quota::standard());
  rt.tenants().add(2, rk::tenant_quota::standard());
  rk::actor_options pool = in_tenant(2);
  pool.instances = 2;
  const rk::address group2 = rt.spawn<counter>("pool2", pool);
  const actor_index b1 = rt.spawn<burster>("b1", in_tenant(1));
  rt.start();
  const ping_payload p{0, 1};
  constexpr int rounds = 20;
  for (int i = 0; i < rounds; ++i) {
    ASSERT_EQ(rt.send_wait(group2, msg_count, rk::as_bytes(p), 5s, as_tenant(2)), status::delivered);
    // One foreign send per round: each would move the cursor by one, sending tenant 2 always to one member.
    if (i % 2 == 0) {
      EXPECT_EQ(burst(rt, b1, 1, {group2, 1, 0, 0}).tenant_mismatch, 1u);
    } else {
      EXPECT_EQ(rt.send_wait(group2, msg_count, rk::as_bytes(p), 5s, as_tenant(1)), status::tenant_mismatch);
    }
  }
  EXPECT_EQ(audited(rt, rk::audit_event::cross_tenant_attempt).size(), static_cast<std::size_t>(rounds));
  EXPECT_TRUE(rt.shutdown().drained);
  const rk::runtime_stats s = rt.stats();
  for (actor_index m : rt.members(group2)) EXPECT_EQ(s.actors[m].received, rounds / 2u) << "member " << m;
}

// An aggregated send is one decision for many messages; a refusal is still counted and audited per message.
TEST_P(TenancyCases, RefusedAggregatedSendsLeaveOneAuditRecordPerMessage) {
  rk::runtime rt(options());
  rt.tenants().add(1, rk::tenant_quota::standard());
  rt.tenants().add(2, rk::tenant_quota::standard());
  const actor_index victim = rt.spawn<counter>("victim", in_tenant(2));
  const actor_index a = rt.spawn<aggregator>("aggregator", in_tenant(1));
  rt.start();
  expect_aggregated_refused(rt, a, victim, 0, status::tenant_mismatch, rk::audit_event::cross_tenant_attempt);
}

TEST_P(TenancyCases, AggregatedDescriptorSendsAreRefusedAndAuditedPerMessage) {
  rk::runtime rt(options());
  rt.tenants().add(1, rk::tenant_quota::standard());
  const actor_index sink = rt.spawn<counter>("sink", in_tenant(1));
  const actor_index a = rt.spawn<aggregator>("aggregator", in_tenant(1));
  rt.start();
  // Descriptors go one by one (send_descriptor): a batch flagged as descriptors is refused, like any
  // invalid descriptor with one descriptor_violation record per message.
  expect_aggregated_refused(rt, a, sink, rk::envelope_flags::descriptor, status::invalid_descriptor,
                            rk::audit_event::descriptor_violation);
}

TEST_P(TenancyCases, HandlersCannotForgeTheirSourceOrTenant) {
  rk::runtime rt(options());
  rt.tenants().add(1, rk::tenant_quota::standard());
  rt.tenants().add(2, rk::tenant_quota::standard());
  const actor_index victim = rt.spawn<envelope_reporter>("victim", in_tenant(2));
  const actor_index own = rt.spawn<envelope_reporter>("own", in_tenant(1));
  const actor_index f = rt.spawn<forger>("forger", in_tenant(1));
  rt.start();
  // The forger claims to be tenant 2 via send_options::tenant; the device stamps its real tenant.
  ASSERT_EQ(rt.send(f, msg_ping, rk::as_bytes(burst_request{victim, 2, 0, 0}), as_tenant(1)),
            status::enqueued);
  auto reply = rt.receive(5s);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(static_cast<status>(reply->as<ping_payload>().sequence), status::tenant_mismatch);
  EXPECT_EQ(reply->as<ping_payload>().value, 1u);
  ASSERT_EQ(rt.send(f, msg_ping, rk::as_bytes(burst_request{own, 2, 0, 0}), as_tenant(1)), status::enqueued);
  std::optional<rk::received_message> stamped, status_reply;
  for (int i = 0; i < 2; ++i) {
    auto m = rt.receive(5s);
    ASSERT_TRUE(m.has_value());
    (m->type() == msg_report ? stamped : status_reply) = std::move(m);
  }
  ASSERT_TRUE(stamped && status_reply);
  EXPECT_EQ(static_cast<status>(status_reply->as<ping_payload>().sequence), status::delivered);
  EXPECT_EQ(stamped->as<ping_payload>().sequence, f) << "source is the real sender";
  EXPECT_EQ(stamped->as<ping_payload>().value, 1u) << "tenant is the real sender's";
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.stats().actors[victim].received, 0u);
}

TEST_P(TenancyCases, TenantZeroAndNamedTenantsDoNotMix) {
  rk::runtime rt(options());
  rt.tenants().add(7, rk::tenant_quota::standard());
  const actor_index z = rt.spawn<counter>("zero", in_tenant(0));
  const actor_index s7 = rt.spawn<counter>("seven", in_tenant(7));
  const actor_index b0 = rt.spawn<burster>("b0", in_tenant(0));
  const actor_index b7 = rt.spawn<burster>("b7", in_tenant(7));
  rt.start();
  const ping_payload p{0, 1};
  EXPECT_EQ(rt.send_wait(z, msg_count, rk::as_bytes(p), 5s), status::delivered)
      << "host defaults to tenant 0";
  EXPECT_EQ(rt.send_wait(s7, msg_count, rk::as_bytes(p), 5s), status::tenant_mismatch);
  EXPECT_EQ(rt.send_wait(s7, msg_count, rk::as_bytes(p), 5s, as_tenant(7)), status::delivered);
  EXPECT_EQ(rt.send_wait(z, msg_count, rk::as_bytes(p), 5s, as_tenant(7)), status::tenant_mismatch);
  EXPECT_EQ(burst(rt, b0, 0, {s7, 2, 0, 0}).tenant_mismatch, 2u) << "tenant 0 -> named";
  EXPECT_EQ(burst(rt, b7, 7, {z, 2, 0, 0}).tenant_mismatch, 2u) << "named -> tenant 0";
  EXPECT_EQ(burst(rt, b0, 0, {z, 2, 0, 0}).delivered, 2u) << "tenant 0 -> tenant 0";
  EXPECT_EQ(audited(rt, rk::audit_event::cross_tenant_attempt).size(), 6u);
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<counter>(z).count, 3u);
  EXPECT_EQ(rt.state<counter>(s7).count, 1u);
}

// --- zero-copy descriptors -----------------------------------------------------------------------------

TEST_P(TenancyCases, DescriptorsAreValidatedOnTheDeviceBeforeDelivery) {
  rk::runtime rt(options());
  rt.tenants().add(1, rk::tenant_quota::standard());
  rt.tenants().add(2, rk::tenant_quota::standard());
  const actor_index reader = rt.spawn<region_reader>("reader", in_tenant(1));
  const actor_index reader2 = rt.spawn<region_reader>("reader2", in_tenant(2));
  const actor_index sender = rt.spawn<descriptor_sender>("sender", in_tenant(1));
  std::vector<std::uint8_t> bytes(256);
  std::iota(bytes.begin(), bytes.end(), 0);
  const rk::byte_view contents{bytes.data(), 256};
  const rk::region_handle imm = rt.create_region(contents, 256, {rk::region_policy::immutable, 1, {}});
  const rk::region_handle slab = rt.create_region(contents, 256, {rk::region_policy::slab, 1, {}});
  const rk::region_handle app =
      rt.create_region({bytes.data(), 64}, 256, {rk::region_policy::append_only, 1, {}});
  const rk::region_handle foreign = rt.create_region(contents, 256, {rk::region_policy::immutable, 2, {}});
  const rk::region_handle shared = rt.create_region(contents, 256, {rk::region_policy::immutable, 2, {1}});
  const rk::region_handle doomed = rt.create_region(contents, 256, {rk::region_policy::immutable, 1, {}});
  rt.start();

  auto k2k = [&](const rk::region_descriptor& d) {
    EXPECT_EQ(rt.send(sender, msg_region_request, rk::as_bytes(region_request{reader, 0, d}), as_tenant(1)),
              status::enqueued);
    std::optional<rk::received_message> verdict;
    std::vector<rk::received_message> reads;
    // The sender reports its status; a delivered descriptor also makes the reader answer.
    while (!verdict) {
      auto m = rt.receive(5s);
      if (!m) break;
      if (m->type() == msg_status) {
        verdict = std::move(m);
      } else {
        reads.push_back(std::move(*m));
      }
    }
    EXPECT_TRUE(verdict.has_value());
    const auto st = verdict ? static_cast<status>(verdict->as<ping_payload>().sequence) : status::timed_out;
    if (st == status::delivered && reads.empty()) {
      auto m = rt.receive(5s);
      EXPECT_TRUE(m.has_value());
      if (m) reads.push_back(std::move(*m));
    }
    return std::make_pair(st, reads);
  };

  // Valid: the reader sees the named bytes in place.
  auto [ok_status, ok_reads] = k2k(imm.describe(10, 20));
  EXPECT_EQ(ok_status, status::delivered);
  ASSERT_EQ(ok_reads.size(), 1u);
  EXPECT_EQ(ok_reads[0].as<ping_payload>().sequence,
            std::accumulate(bytes.begin() + 10, bytes.begin() + 30, 0ull));
  EXPECT_EQ(ok_reads[0].as<ping_payload>().value, 20u);
  EXPECT_EQ(k2k(shared.describe(0, 4)).first, status::delivered) << "shared with tenant 1";
  EXPECT_EQ(k2k(app.describe(0, 64)).first, status::delivered) << "below the append cursor";

  // Invalid, each refused before delivery:
  const rk::region_descriptor invalid[] = {
      imm.describe(250, 10),                  // out of bounds
      imm.describe(~0ull - 4, 10),            // offset + length overflows
      {imm.region, imm.generation + 1, 0, 4}, // generation that does not exist
      slab.describe(0, 4),                    // slab: bytes may change after the check
      app.describe(60, 10),                   // beyond the append cursor (64)
      foreign.describe(0, 4),                 // another tenant's region
      {200, 1, 0, 4},                         // no such region
  };
  for (const auto& d : invalid) EXPECT_EQ(k2k(d).first, status::invalid_descriptor) << "region " << d.region;
  rt.unregister_region(doomed);
  EXPECT_EQ(k2k(doomed.describe(0, 4)).first, status::invalid_descriptor) << "stale after unregister";
  EXPECT_THROW(rt.append(imm, {bytes.data(), 4}), rk::error) << "only append-only regions append";

  // Appending makes the range valid.
  EXPECT_EQ(rt.append(app, {bytes.data(), 32}), 64u);
  EXPECT_EQ(k2k(app.describe(60, 10)).first, status::delivered);

  // Host path: the same checks for the tenant the host acts for; a malformed payload is refused too.
  rk::send_options host1 = as_tenant(1);
  host1.flags = rk::envelope_flags::descriptor;
  rk::send_options host2 = as_tenant(2);
  host2.flags = rk::envelope_flags::descriptor;
  const rk::region_descriptor d = imm.describe(0, 8);
  EXPECT_EQ(rt.send_wait(reader, msg_region, rk::as_bytes(d), 5s, host1), status::delivered);
  EXPECT_EQ(rt.send_wait(reader2, msg_region, rk::as_bytes(d), 5s, host2), status::invalid_descriptor)
      << "tenant 2 may not hand out tenant 1's region";
  const std::uint64_t eight = 8;
  EXPECT_EQ(rt.send_wait(reader, msg_region, rk::as_bytes(eight), 5s, host1), status::invalid_descriptor);
  ASSERT_TRUE(rt.receive(5s).has_value()); // the one host-path read

  const auto violations = audited(rt, rk::audit_event::descriptor_violation);
  EXPECT_EQ(violations.size(), 7u + 1 + 2);
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<region_reader>(reader).read, 5u) << "only the valid descriptors were delivered";
  EXPECT_EQ(rt.state<region_reader>(reader2).read, 0u);
}

// --- quotas on the device --------------------------------------------------------------------------------

TEST_P(TenancyCases, OverRateSendsAreRefusedOnTheDevice) {
  rk::runtime rt(options());
  rk::tenant_quota q = rk::tenant_quota::standard();
  q.max_messages_per_second = 100;
  q.burst = 10;
  rt.tenants().add(3, q);
  const actor_index sink = rt.spawn<counter>("sink", in_tenant(3, 1024));
  const actor_index b = rt.spawn<burster>("b3", in_tenant(3));
  rt.start();
  const auto begin = std::chrono::steady_clock::now();
  ASSERT_EQ(rt.send(b, msg_burst, rk::as_bytes(burst_request{sink, 300, 0, 0}), as_tenant(3)),
            status::enqueued);
  ASSERT_TRUE(handled(rt, b, 1));
  const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  const rk::actor_stats st = rt.stats().actors[b];
  const std::uint64_t to_sink = st.sent[static_cast<int>(status::delivered)];
  const std::uint64_t refused = st.sent[static_cast<int>(status::quota_exceeded)];
  EXPECT_EQ(to_sink + refused, 301u) << "300 to the sink + the report (either may be refused)";
  EXPECT_GT(refused, 0u);
  // The bucket holds 10 and refills at 100/s: the host's own send took a token too.
  EXPECT_LE(to_sink, 10 + 100.0 * elapsed_s + 2) << "elapsed " << elapsed_s << " s";
  const rk::tenant_usage u = rt.tenants().usage(3);
  EXPECT_EQ(u.rate_rejections, refused);
  const auto records = audited(rt, rk::audit_event::quota_exceeded);
  EXPECT_EQ(records.size(), refused);
  for (const auto& e : records) {
    EXPECT_EQ(e.record.tenant, 3u);
    EXPECT_EQ(e.record.value, rk::detail::quota_reason_rate);
  }
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST_P(TenancyCases, RateTokensPayForDeliveriesOnly) {
  rk::runtime rt(options());
  rk::tenant_quota q = rk::tenant_quota::standard();
  q.max_messages_per_second = 1; // refills slowly enough that the burst decides
  q.burst = 4;
  rt.tenants().add(3, q);
  const actor_index sink = rt.spawn<counter>("sink", in_tenant(3, 2));
  const actor_index b = rt.spawn<burster>("b3", in_tenant(3));
  rt.start();
  ASSERT_TRUE(rt.pause_actor(sink, 5s)); // its 2-slot mailbox fills and stays full
  // Tokens: 1 for this host send, 2 for the deliveries that fit; the 6 sends that find the mailbox full
  // give theirs back, so none is refused for the rate and the report to the host still has one.
  ASSERT_EQ(rt.send(b, msg_burst, rk::as_bytes(burst_request{sink, 8, 0, 0}), as_tenant(3)),
            status::enqueued);
  const auto reply = rt.receive(10s);
  ASSERT_TRUE(reply.has_value());
  const burst_report r = reply->as<burst_report>();
  EXPECT_EQ(r.delivered, 2u);
  EXPECT_EQ(r.quota_exceeded, 0u) << "a send refused for a full mailbox spent no token";
  EXPECT_EQ(r.other, 6u);
  const rk::actor_stats st = rt.stats().actors[b];
  EXPECT_EQ(st.sent[static_cast<int>(status::queue_full)], 6u) << "refusals are counted by reason";
  EXPECT_EQ(st.sent[static_cast<int>(status::delivered)], 3u) << "2 to the sink and the report";
  const rk::tenant_usage u = rt.tenants().usage(3);
  EXPECT_EQ(u.messages_sent, 4u) << "the host send, 2 to the sink and the report: deliveries only";
  EXPECT_EQ(u.rate_rejections, 0u);
  rt.resume_actor(sink); // the 2 delivered messages are handled before shutdown reports drained
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST_P(TenancyCases, SpentEngagementBudgetsRefuseThatEngagementsSends) {
  rk::runtime rt(options());
  rt.tenants().add(4, rk::tenant_quota::standard());
  const rk::audit_tag billed{9, 1}, other_tag{9, 2};
  rt.tenants().set_engagement_budget(4, billed, std::chrono::microseconds(100));
  const actor_index sink = rt.spawn<counter>("sink", in_tenant(4));
  rk::actor_options w = in_tenant(4);
  w.audit_tag = billed;
  const actor_index worker = rt.spawn<busy_sender>("worker", w, busy_sender::state{sink, 300'000});
  rk::actor_options o = in_tenant(4);
  o.audit_tag = other_tag;
  const actor_index other = rt.spawn<busy_sender>("other", o, busy_sender::state{sink, 300'000});
  rt.start();
  auto run = [&](actor_index a) {
    EXPECT_EQ(rt.send(a, msg_ping, {}, as_tenant(4)), status::enqueued);
    const auto reply = rt.receive(10s);
    EXPECT_TRUE(reply.has_value());
    return reply ? static_cast<status>(reply->as<ping_payload>().sequence) : status::timed_out;
  };
  EXPECT_EQ(run(worker), status::delivered) << "the budget is charged after the handler returns";
  ASSERT_TRUE(handled(rt, worker, 1)) << "handled is counted after the time was charged";
  ASSERT_TRUE(rt.tenants().engagement(4, billed).exhausted());
  // Every send of the spent engagement is refused, its report to the host included: read the counters.
  ASSERT_EQ(rt.send(worker, msg_ping, {}, as_tenant(4)), status::enqueued);
  ASSERT_TRUE(handled(rt, worker, 2));
  EXPECT_EQ(rt.stats().actors[worker].sent[static_cast<int>(status::quota_exceeded)], 2u)
      << "its send to the sink and its report to the host";
  EXPECT_EQ(run(other), status::delivered) << "another engagement of the same tenant is unaffected";
  const rk::engagement_usage e = rt.tenants().engagement(4, billed);
  EXPECT_GE(e.used_ns, 300'000u);
  EXPECT_EQ(e.budget_ns, 100'000u);
  EXPECT_EQ(e.rejections, 2u);
  const auto records = audited(rt, rk::audit_event::quota_exceeded);
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records[0].record.value, rk::detail::quota_reason_budget);
  EXPECT_EQ(records[0].record.tag.org_id, 9u);
  EXPECT_EQ(records[0].record.tag.engagement_id, 1u);
  EXPECT_GE(rt.tenants().usage(4).handler_ns, 600'000u);
  EXPECT_TRUE(rt.shutdown().drained);
}

// --- the audit drain ------------------------------------------------------------------------------------

TEST_P(TenancyCases, AuditRingOverflowIsCountedAndReported) {
  rk::runtime_options o = options();
  o.audit_ring_slots = 2;
  o.audit_memory_records = 100'000;
  rk::runtime rt(o);
  rt.tenants().add(1, rk::tenant_quota::standard());
  rt.tenants().add(2, rk::tenant_quota::standard());
  const actor_index victim = rt.spawn<counter>("victim", in_tenant(2));
  const actor_index b = rt.spawn<burster>("b", in_tenant(1));
  rt.start();
  const std::uint32_t attempts = static_cast<std::uint32_t>(rk::test::scaled(20'000));
  EXPECT_EQ(burst(rt, b, 1, {victim, attempts, 0, 0}).tenant_mismatch, attempts);
  EXPECT_TRUE(rt.shutdown().drained); // stops the drain: every record and the final overflow are in
  const rk::audit_drain_stats st = rt.audit_stats();
  std::uint64_t logged = 0, reported_lost = 0;
  for (const auto& e : rt.audit_records()) {
    if (e.record.event == rk::audit_event::cross_tenant_attempt) ++logged;
    if (e.record.event == rk::audit_event::audit_overflow && e.record.origin == rk::audit_origin::drain)
      reported_lost += e.record.value; // the drain's reports: an application may use the code too
  }
  EXPECT_GT(st.records_lost, 0u) << "a 2-slot ring cannot keep up";
  EXPECT_EQ(reported_lost, st.records_lost) << "every loss is itself an audit record";
  EXPECT_EQ(logged + reported_lost, attempts) << "nothing lost silently";
  EXPECT_TRUE(st.closed);
}

TEST_P(TenancyCases, TheAuditLogIsHashChainedAndVerifies) {
  const auto path = std::filesystem::temp_directory_path() / (std::string("rk_audit_")
                                                                  .append(std::to_string(::getpid()))
                                                                  .append(rk::to_string(backend()))
                                                                  .append(".jsonl"));
  {
    rk::runtime_options o = options();
    o.audit_sinks.push_back(std::make_shared<rk::audit_file_sink>(path));
    rk::runtime rt(o);
    rt.tenants().add(1, rk::tenant_quota::standard());
    rt.tenants().add(2, rk::tenant_quota::standard());
    const actor_index victim = rt.spawn<counter>("victim", in_tenant(2));
    const actor_index b = rt.spawn<burster>("b", in_tenant(1));
    rt.start();
    EXPECT_EQ(burst(rt, b, 1, {victim, 5, 0, 0}).tenant_mismatch, 5u);
    ASSERT_TRUE(rt.stop(victim));
    EXPECT_TRUE(rt.shutdown().drained);
    const auto entries = rt.audit_records();
    std::size_t spawns = 0, stops = 0;
    for (const auto& e : entries) {
      spawns += e.record.event == rk::audit_event::actor_spawn;
      stops += e.record.event == rk::audit_event::actor_stop;
    }
    EXPECT_EQ(spawns, 2u);
    EXPECT_EQ(stops, 1u);
  }
  const rk::audit_verify_result r = rk::verify_audit_log(path);
  EXPECT_EQ(r.verdict, rk::audit_verdict::intact) << r.reason << " at line " << r.bad_line;
  EXPECT_TRUE(r.closed);
  EXPECT_GE(r.entries, 5u + 3 + 1);
  std::filesystem::remove(path);
}

// --- quotas and registry on the host --------------------------------------------------------------------

// The hop limit is checked after tenancy: the hops a sender chooses tell it nothing about the length of
// another tenant's chain of aliases (it read tenant_mismatch below the length, max_hops_exceeded from it on).
TEST_P(TenancyCases, HopsASenderChoosesTellItNothingOfAnotherTenantsAliasChain) {
  rk::runtime_options o = options();
  o.max_hops = 4;
  rk::runtime rt(o);
  rt.tenants().add(1, rk::tenant_quota::standard());
  rt.tenants().add(2, rk::tenant_quota::standard());
  const actor_index sink2 = rt.spawn<counter>("sink2", in_tenant(2));
  actor_index head = sink2;
  for (int i = 0; i < 3; ++i) head = rt.add_alias(std::string("chain").append(std::to_string(i)), head);
  // Tenant 1: f[0] -> f[1] -> f[2] -> f[3] -> head. A message sent to f[i] leaves f[3] with 4 - i hops,
  // and would reach sink2 with 3 more: 4 .. 7 against max_hops 4.
  std::array<actor_index, 4> f{};
  for (int i = 3; i >= 0; --i)
    f[i] = rt.spawn<hop_forwarder>(std::string("f").append(std::to_string(i)), in_tenant(1),
                                   hop_forwarder::state{i == 3 ? head : f[i + 1]});
  // Tenant 2's own sender: g2 -> g1 -> head (5 hops in all), g1 -> head (4).
  const actor_index g1 = rt.spawn<hop_forwarder>("g1", in_tenant(2), hop_forwarder::state{head});
  const actor_index g2 = rt.spawn<hop_forwarder>("g2", in_tenant(2), hop_forwarder::state{g1});
  rt.start();
  const ping_payload p{0, 1};
  for (int i = 3; i >= 0; --i) {
    ASSERT_EQ(rt.send(f[i], msg_count, rk::as_bytes(p), as_tenant(1)), status::enqueued);
    const auto report = rt.receive(10s);
    ASSERT_TRUE(report.has_value());
    EXPECT_EQ(static_cast<status>(report->as<ping_payload>().sequence), status::tenant_mismatch)
        << "tenant 1 sent with " << 4 - i << " hops into a chain of 3";
  }
  EXPECT_EQ(audited(rt, rk::audit_event::cross_tenant_attempt).size(), 4u) << "every probe is on record";
  // Within tenant 2 the limit holds as before: 4 hops in all are delivered, 5 are refused.
  ASSERT_EQ(rt.send(g1, msg_count, rk::as_bytes(p), as_tenant(2)), status::enqueued);
  ASSERT_EQ(rt.send(g2, msg_count, rk::as_bytes(p), as_tenant(2)), status::enqueued);
  const auto report = rt.receive(10s);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(static_cast<status>(report->as<ping_payload>().sequence), status::max_hops_exceeded);
  EXPECT_EQ(report->as<ping_payload>().value, 1u) << "refused at g1, which got the message with 1 hop";
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<counter>(sink2).count, 1u);
}

// A host send for one tenant to another tenant's actor that has messages parked is refused as it arrives:
// it neither waits behind them undecided (holding that actor's parking share, so that the owner's own next
// send found it full) nor tells its sender about the backlog.
TEST_P(TenancyCases, ForeignHostSendsToABackloggedActorAreRefusedAtOnceNotParked) {
  rk::runtime_options o = options();
  o.host_parking_per_destination = 64;
  rk::runtime rt(o);
  rt.tenants().add(1, rk::tenant_quota::standard());
  rt.tenants().add(2, rk::tenant_quota::standard());
  const actor_index b = rt.spawn<counter>("b", in_tenant(2, 8));
  rt.start();
  ASSERT_TRUE(rt.pause_actor(b, 10s));
  const ping_payload p{0, 1};
  for (int i = 0; i < 18; ++i)
    ASSERT_EQ(rt.send(b, msg_count, rk::as_bytes(p), as_tenant(2)), status::enqueued);
  ASSERT_EQ(rk::wait_until([&] { return rt.stats().gateway_parked == 10; }, [] { return false; },
                           30'000'000'000ull),
            rk::wait_result::ready)
      << "8 in the mailbox, 10 parked behind them";
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ(rt.send_wait(b, msg_count, rk::as_bytes(p), 10s, as_tenant(1)), status::tenant_mismatch)
        << "send " << i;
  EXPECT_EQ(rt.stats().gateway_parked, 10u);
  EXPECT_EQ(rt.send(b, msg_count, rk::as_bytes(p), as_tenant(2)), status::enqueued)
      << "the owner's 19th message fits its share of 64";
  rt.resume_actor(b);
  EXPECT_TRUE(rt.shutdown().drained);
  EXPECT_EQ(rt.state<counter>(b).count, 19u);
  EXPECT_EQ(rt.stats().gateway_verdicts[static_cast<int>(status::tenant_mismatch)], 100u);
}

namespace {
//! A counter with a 64 KiB state: what a tenant's max_device_bytes must count too.
struct bulky {
  static constexpr const char* name = "bulky";
  struct state {
    std::uint64_t count = 0;
    std::uint8_t bytes[65536 - sizeof(std::uint64_t)] = {};
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx&, state& s, const rk::message&) {
    ++s.count;
  }
};
} // namespace

// Handler states live in device memory (the arena, for spawns while running) like mailboxes: a tenant's
// max_device_bytes counts them (it counted only mailboxes, so a tenant under a small quota could take the
// whole running arena with large states).
TEST_P(TenancyCases, HandlerStatesCountAgainstMaxDeviceBytes) {
  rk::runtime rt(options());
  rt.tenants().add(5, rk::tenant_quota::unlimited());
  const actor_index small = rt.spawn<counter>("small", in_tenant(5));
  const std::uint64_t one_small = rt.tenants().usage(5).device_bytes;
  const std::uint64_t mailbox = one_small - sizeof(counter::state);
  const actor_index big = rt.spawn<bulky>("big", in_tenant(5));
  const std::uint64_t both = rt.tenants().usage(5).device_bytes;
  EXPECT_EQ(both - one_small, mailbox + sizeof(bulky::state));
  rk::tenant_quota q;
  q.max_device_bytes = both + mailbox + sizeof(bulky::state) / 2; // room for the mailbox, not the state
  rt.tenants().set_quota(5, q);
  try {
    rt.spawn<bulky>("big2", in_tenant(5));
    ADD_FAILURE() << "expected rk::error";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("max_device_bytes"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rt.tenants().usage(5).device_bytes, both) << "a refused spawn charges nothing";
  rt.forget(big);
  EXPECT_EQ(rt.tenants().usage(5).device_bytes, one_small) << "forget gives the state's bytes back";
  rt.forget(small);
  EXPECT_EQ(rt.tenants().usage(5).device_bytes, 0u);
}

TEST_P(TenancyCases, HostQuotasAndRegistryMistakesGiveClearErrors) {
  rk::runtime rt(options());
  auto expect_error = [](auto&& f, std::initializer_list<const char*> needles) {
    try {
      f();
      ADD_FAILURE() << "expected rk::error";
    } catch (const rk::error& e) {
      for (const char* n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
  };
  rk::tenant_quota q;
  q.max_actors = 2;
  q.max_device_bytes = 1 << 20;
  rt.tenants().add(5, q);
  rt.spawn<counter>("a", in_tenant(5));
  rt.spawn<counter>("b", in_tenant(5));
  expect_error([&] { rt.spawn<counter>("c", in_tenant(5)); }, {"tenant 5", "max_actors", "2"});
  rk::tenant_quota roomy = q;
  roomy.max_actors = 10;
  rt.tenants().set_quota(5, roomy);
  rk::actor_options big = in_tenant(5);
  big.mailbox = {8192, 1024};
  expect_error([&] { rt.spawn<counter>("big", big); }, {"tenant 5", "max_device_bytes"});
  std::vector<std::byte> blob(1 << 20);
  expect_error(
      [&] {
        (void)rt.create_region({blob.data(), 4}, 1 << 20, {rk::region_policy::immutable, 5, {}});
      },
      {"tenant 5", "max_device_bytes"});
  // A size that would run past the end of the address space is refused before any quota is looked at.
  expect_error([&] { (void)rt.register_region(blob.data(), std::uint64_t{1} << 63, {}); }, {"address space"});
  const rk::tenant_usage u = rt.tenants().usage(5);
  EXPECT_EQ(u.actors, 2u);
  EXPECT_GT(u.device_bytes, 0u);
  EXPECT_LE(u.device_bytes, q.max_device_bytes);

  rk::tenant_quota fast = q;
  fast.max_messages_per_second = 100'000'000'001; // the bucket's refill arithmetic holds up to 1e11
  expect_error([&] { rt.tenants().add(88, fast); }, {"tenant 88", "max_messages_per_second", "1e11"});
  fast.max_messages_per_second = 100'000'000'000;
  EXPECT_NO_THROW(rt.tenants().add(88, fast));
  expect_error([&] { rt.tenants().add(0, q); }, {"tenant 0"});
  expect_error([&] { rt.tenants().add(5, q); }, {"already registered"});
  expect_error([&] { rt.tenants().remove(5); }, {"still has 2 actors"});
  expect_error([&] { rt.spawn<counter>("stranger", in_tenant(6)); }, {"tenant 6", "not registered"});
  EXPECT_NO_THROW(rt.tenants().set_quota(5, q)) << "2 actors fit max_actors 2";
  rk::tenant_quota tiny = q;
  tiny.max_actors = 1;
  expect_error([&] { rt.tenants().set_quota(5, tiny); }, {"already has 2 actors"});
  rt.tenants().add(8, rk::tenant_quota::standard());
  const actor_index other = rt.spawn<counter>("other", in_tenant(8));
  const std::vector<actor_index> mixed{rt.find("a"), other};
  expect_error([&] { rt.create_group("mixed", mixed); }, {"different tenants"});
  expect_error(
      [&] {
        (void)rt.create_region({nullptr, 10}, 64, {rk::region_policy::immutable, 5, {}});
      },
      {"create_region()", "no data pointer"});
  rt.tenants().add(9, rk::tenant_quota::standard());
  EXPECT_TRUE(rt.tenants().contains(9));
  // A grant to tenant 9 must not outlive it (the id added again later would read the region).
  const rk::region_handle lent =
      rt.create_region({blob.data(), 4}, 64, {rk::region_policy::immutable, 8, {9}});
  expect_error([&] { rt.tenants().remove(9); }, {"tenants().remove(9)", "shares its bytes", "unregister"});
  EXPECT_TRUE(rt.tenants().contains(9));
  rt.unregister_region(lent);
  rt.tenants().remove(9);
  EXPECT_FALSE(rt.tenants().contains(9));
}

} // namespace rk_cases
