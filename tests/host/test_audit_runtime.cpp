// The audit log as the runtime writes it (CPU backend): every record about an actor, host-written or
// device-written, carries the actor's tenant and audit tag; spawn_many's actor_spawn records name exactly
// the actors it created, however their ids fall.
#include "../runtime/case_fixture.hpp"

#include <ringkernel/host/runtime.hpp>

#include <algorithm>
#include <atomic>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace rk_cases;
using rk::audit_event;

constexpr std::uint32_t msg_throw = 901, msg_slow = 902;
std::atomic<bool> release_slow{false};

//! Host-only: throws on msg_throw, runs until the test says so on msg_slow, does nothing otherwise.
struct tagged_worker {
  static constexpr const char* name = "tagged_worker";
  template <class Ctx>
  void operator()(Ctx&, rk::no_state&, const rk::message& m) {
    if (m.type() == msg_throw) throw std::runtime_error("thrown on purpose");
    if (m.type() == msg_slow) {
      rk::backoff idle;
      while (!release_slow.load()) idle.pause();
    }
  }
};

rk::runtime_options audited_cpu_options() {
  rk::runtime_options o = cpu_options();
  o.audit_memory_records = 100'000;
  return o;
}

bool eventually(const std::function<bool()>& done) {
  return rk::wait_until(
             done, [] { return false; }, 20'000'000'000ull) == rk::wait_result::ready;
}

std::vector<rk::audit_entry> flushed_log(rk::runtime& rt) {
  EXPECT_EQ(rt.flush_audit(10s), rk::wait_result::ready);
  return rt.audit_records();
}

//! The records about `actor` (drain entries, which name no actor, excluded).
std::vector<rk::audit_record> about(const std::vector<rk::audit_entry>& log, actor_index actor) {
  std::vector<rk::audit_record> out;
  for (const rk::audit_entry& e : log)
    if (e.record.actor == actor && e.record.origin != rk::audit_origin::drain) out.push_back(e.record);
  return out;
}

std::size_t count(const std::vector<rk::audit_record>& records, audit_event event, rk::audit_origin origin,
                  std::uint32_t detail) {
  return static_cast<std::size_t>(
      std::count_if(records.begin(), records.end(), [&](const rk::audit_record& r) {
        return r.event == event && r.origin == origin && r.detail == detail;
      }));
}

TEST(AuditRuntime, EveryRecordAboutATaggedActorCarriesItsTenantAndTag) {
  rk::runtime_options o = audited_cpu_options();
  o.handler_timeout = 100ms;
  o.dump_state_on_watchdog = false;
  rk::runtime rt(o);
  rt.tenants().add(5, rk::tenant_quota::standard());
  rk::actor_options opts = in_tenant(5);
  opts.audit_tag = rk::audit_tag{21, 22};
  const actor_index a = rt.spawn<tagged_worker>("tagged", opts);
  rt.start();

  // A contained exception (device record), then a respawn.
  ASSERT_EQ(rt.send(a, msg_throw, {}, as_tenant(5)), status::enqueued);
  ASSERT_TRUE(eventually([&] { return rt.stats().actors[a].fault_code == rk::fault_code_exception; }));
  rt.respawn(a);
  // A call past handler_timeout: the watchdog's record (host).
  release_slow = false;
  ASSERT_EQ(rt.send(a, msg_slow, {}, as_tenant(5)), status::enqueued);
  ASSERT_TRUE(eventually([&] {
    const std::vector<rk::actor_fault> f = rt.faults();
    return std::any_of(f.begin(), f.end(),
                       [](const rk::actor_fault& x) { return x.kind == rk::fault_kind::watchdog; });
  }));
  release_slow = true;
  // stop() refuses while the watchdog still reports the call; once it returned, the actor stops.
  ASSERT_TRUE(eventually([&] {
    try {
      return rt.stop(a, 5s);
    } catch (const rk::error&) {
      return false;
    }
  }));
  ASSERT_TRUE(rt.stop(a, 5s)) << "stopping a stopped actor confirms the stop (and writes no second record)";
  rt.forget(a);

  const std::vector<rk::audit_record> records = about(flushed_log(rt), a);
  using rk::audit_origin;
  EXPECT_EQ(count(records, audit_event::actor_spawn, audit_origin::host, 0), 1u) << "the spawn";
  EXPECT_EQ(count(records, audit_event::actor_fault, audit_origin::device, rk::fault_code_exception), 1u)
      << "the exception";
  EXPECT_EQ(count(records, audit_event::actor_spawn, audit_origin::host, 1), 1u) << "the respawn";
  EXPECT_EQ(count(records, audit_event::actor_fault, audit_origin::host, msg_slow), 1u) << "the watchdog";
  EXPECT_EQ(count(records, audit_event::actor_stop, audit_origin::host, 0), 1u) << "the stop, once";
  EXPECT_EQ(count(records, audit_event::actor_stop, audit_origin::host, 1), 1u) << "the forget";
  for (const rk::audit_record& r : records) {
    const std::string what = std::string(rk::to_string(r.event)) + " (" + rk::to_string(r.origin) +
                             ", detail " + std::to_string(r.detail) + ")";
    EXPECT_EQ(r.tenant, 5u) << what;
    EXPECT_EQ(r.tag.org_id, 21u) << what;
    EXPECT_EQ(r.tag.engagement_id, 22u) << what;
  }
  EXPECT_TRUE(rt.shutdown().drained);
}

// A stop that no stop() call confirmed (its call timed out while a handler ran) is recorded by the respawn
// or forget that ends it, before their own record; stop() calls still waiting on it record nothing more.
TEST(AuditRuntime, EachStopIsRecordedOnceBeforeWhatEndsIt) {
  rk::runtime rt(audited_cpu_options());
  const actor_index a = rt.spawn<tagged_worker>("a");
  rt.start();
  for (int round = 0; round < 2; ++round) {
    release_slow = false;
    ASSERT_EQ(rt.send(a, msg_slow, {}), status::enqueued);
    ASSERT_TRUE(
        eventually([&] { return rt.stats().actors[a].received == rt.stats().actors[a].handled + 1; }));
    EXPECT_FALSE(rt.stop(a, 1ms)) << "its handler still runs";
    release_slow = true;
    ASSERT_TRUE(eventually([&] { return rt.lifecycle(a) == rk::actor_lifecycle::stopped; }));
    if (round == 0) {
      rt.respawn(a);
    } else {
      ASSERT_TRUE(rt.stop(a, 5s)) << "a stop() of the stopped actor confirms it";
      rt.forget(a);
    }
  }
  std::vector<std::pair<audit_event, std::uint32_t>> seen;
  for (const rk::audit_record& r : about(flushed_log(rt), a))
    if (r.event == audit_event::actor_spawn || r.event == audit_event::actor_stop)
      seen.emplace_back(r.event, r.detail);
  const std::vector<std::pair<audit_event, std::uint32_t>> expected = {{audit_event::actor_spawn, 0},
                                                                       {audit_event::actor_stop, 0},
                                                                       {audit_event::actor_spawn, 1},
                                                                       {audit_event::actor_stop, 0},
                                                                       {audit_event::actor_stop, 1}};
  EXPECT_EQ(seen, expected) << "spawn, stop, respawn, stop, forget: each once, in that order";
  EXPECT_TRUE(rt.shutdown().drained);
}

//! The ids the actor_spawn records written after entry `from` of `log` say were created: detail 0 is one
//! actor, detail 1 a respawn (none created), N >= 2 the N consecutive ids from `actor`.
std::multiset<actor_index> spawned_ids(const std::vector<rk::audit_entry>& log, std::size_t from) {
  std::multiset<actor_index> ids;
  for (std::size_t i = from; i < log.size(); ++i) {
    const rk::audit_record& r = log[i].record;
    if (r.event != audit_event::actor_spawn || r.detail == 1) continue;
    for (std::uint32_t k = 0; k < std::max<std::uint32_t>(r.detail, 1); ++k) ids.insert(r.actor + k);
  }
  return ids;
}

TEST(AuditRuntime, SpawnManyRecordsNameEveryActorItCreatedAcrossGaps) {
  rk::runtime_options o = audited_cpu_options();
  o.max_actors = 16; // the second batch needs the forgotten slots: its ids cannot be consecutive
  rk::runtime rt(o);
  rt.tenants().add(3, rk::tenant_quota::standard());
  rk::actor_options opts = in_tenant(3, 8);
  opts.audit_tag = rk::audit_tag{7, 8};
  const std::vector<actor_index> first = rt.spawn_many<counter>("first", 12, opts);
  for (std::size_t i : {3u, 5u, 6u, 9u}) rt.forget(first[i]); // gaps, and slots that come back renamed
  const std::size_t before = flushed_log(rt).size();
  const std::vector<actor_index> second = rt.spawn_many<counter>("second", 8, opts);
  bool consecutive = true;
  for (std::size_t i = 1; i < second.size(); ++i) consecutive = consecutive && second[i] == second[i - 1] + 1;
  ASSERT_FALSE(consecutive) << "the test needs a batch whose ids are not consecutive";

  const std::vector<rk::audit_entry> log = flushed_log(rt);
  EXPECT_EQ(spawned_ids(log, before), std::multiset<actor_index>(second.begin(), second.end()))
      << "the records name exactly the actors spawn_many created";
  for (std::size_t i = before; i < log.size(); ++i) {
    EXPECT_EQ(log[i].record.tenant, 3u);
    EXPECT_EQ(log[i].record.tag.org_id, 7u);
    EXPECT_EQ(log[i].record.tag.engagement_id, 8u);
    EXPECT_EQ(log[i].record.value, log[before].record.value) << "value: the handler type's index";
  }

  // Forgetting actors from the middle of a batch keeps the others' tag (and the forgotten ones' records
  // carry it too).
  const std::size_t mark = log.size();
  for (std::size_t i : {1u, 0u, 2u}) rt.forget(first[i]);
  rt.start();
  for (std::size_t i : {4u, 11u}) ASSERT_TRUE(rt.stop(first[i], 10s));
  ASSERT_TRUE(rt.stop(second[3], 10s));
  const std::vector<rk::audit_entry> later = flushed_log(rt);
  std::size_t stops = 0;
  for (std::size_t i = mark; i < later.size(); ++i) {
    if (later[i].record.event != audit_event::actor_stop) continue;
    ++stops;
    EXPECT_EQ(later[i].record.tenant, 3u) << "actor " << later[i].record.actor;
    EXPECT_EQ(later[i].record.tag.org_id, 7u) << "actor " << later[i].record.actor;
    EXPECT_EQ(later[i].record.tag.engagement_id, 8u) << "actor " << later[i].record.actor;
  }
  EXPECT_EQ(stops, 6u);
  EXPECT_TRUE(rt.shutdown().drained);
}

} // namespace
