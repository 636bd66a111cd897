#pragma once
// Setup calls are transactions: a call that throws leaves the runtime exactly as it was (every table,
// name, charge, arena byte and the ids the next call hands out), and the corrected retry succeeds. Each
// test injects a failure at every step a call has (table full, quota exceeded, duplicate name, bad
// option, an allocation that fails) and compares everything a user can observe before and after.
// Written once, instantiated per backend (test_runtime_cpu.cpp, test_runtime_cuda.cu).

#include "case_fixture.hpp"

#include "memory.hpp" // rk::detail::testing::fail_allocation_after

#include <sstream>

namespace rk_cases {

class TransactionCases : public RuntimeCases {
protected:
  //! Everything observable about the runtime's tables, as text: equal pictures, equal runtimes.
  static std::string picture(rk::runtime& rt, const std::vector<std::string>& names = {}) {
    std::ostringstream o;
    const rk::table_usage t = rt.tables();
    o << "actors " << t.actors.used << "/" << t.actors.capacity << ", groups " << t.groups.used << "/"
      << t.groups.capacity << ", members " << t.group_members.used << ", tenants " << t.tenants.used
      << ", engagements " << t.engagements.used << ", regions " << t.regions.used << ", arena "
      << t.running_arena.used << "/" << t.running_arena.capacity << ", pending " << t.pending_releases
      << "\n";
    o << "actor_count " << rt.actor_count() << "\n";
    for (const auto& a : rt.stats().actors)
      o << "actor " << a.id << " '" << a.name << "' " << a.lifecycle << "\n";
    for (const auto& u : rt.tenants().all())
      o << "tenant " << u.tenant << ": " << u.actors << " actors, " << u.device_bytes << " bytes, quota "
        << u.quota.max_actors << "/" << u.quota.max_device_bytes << "/" << u.quota.max_messages_per_second
        << "/" << u.quota.burst << "\n";
    for (const auto& m : rt.message_types().all())
      o << "type " << m.id << " '" << m.name << "' " << m.routable << " " << m.category << "\n";
    for (const auto& n : names) {
      o << "name '" << n << "': ";
      try {
        o << "actor " << rt.find(n);
      } catch (const rk::error&) {
        o << "no actor";
      }
      try {
        const rk::address g = rt.group(n);
        o << ", group " << g << " of " << rt.members(g).size();
      } catch (const rk::error&) {
        o << ", no group";
      }
      o << "\n";
    }
    return o.str();
  }

  //! Makes the `n`-th allocation from now fail; cleared when the scope ends.
  struct failing_allocation {
    explicit failing_allocation(std::uint64_t n) { rk::detail::testing::fail_allocation_after(n); }
    ~failing_allocation() { rk::detail::testing::fail_allocation_after(0); }
  };

  static rk::actor_options group_of(std::uint32_t n, std::uint64_t tenant = 5) {
    rk::actor_options a = in_tenant(tenant, 16);
    a.instances = n;
    return a;
  }
};

// --- spawn ----------------------------------------------------------------------------------------------

TEST_P(TransactionCases, SpawnWithInstancesRollsBackAtEveryStepBeforeStart) {
  const std::vector<std::string> names{"g", "g/0", "g/1", "g/2", "keep"};
  // Each scenario: options, a setup, the failing spawn's options, what the error says, and the correction.
  struct scenario {
    const char* what;
    std::function<void(rk::runtime_options&)> configure;
    std::function<void(rk::runtime&)> setup;
    std::function<rk::actor_options()> spawn_options;
    const char* needle;
    std::function<void(rk::runtime&, rk::actor_options&)> correct; //!< fixes the runtime or the options
  };
  const rk::audit_tag tag_a{1, 1}, tag_b{1, 2};
  const std::vector<scenario> scenarios{
      {"duplicate instance name", [](auto&) {}, [](rk::runtime& rt) { rt.add_alias("g/2", rt.find("keep")); },
       [] { return group_of(3); }, "already exists",
       [](rk::runtime& rt, rk::actor_options&) { rt.remove_alias(rt.find("g/2")); }},
      {"group table full", [](auto& o) { o.max_groups = 2; },
       [](rk::runtime& rt) {
         const actor_index keep = rt.find("keep");
         rt.create_group("other2", std::span(&keep, 1));
       },
       [] { return group_of(2); }, "group table is full",
       [](rk::runtime& rt, rk::actor_options&) { rt.remove_group(rt.group("other2")); }},
      {"member lists full", [](auto& o) { o.max_group_members = 3; }, [](rk::runtime&) {},
       [] { return group_of(3); }, "no room for a list of 3 members",
       [](rk::runtime& rt, rk::actor_options&) { rt.remove_group(rt.group("other")); }},
      {"actor table full",
       [](auto& o) {
         o.max_actors = 3;
         o.max_group_members = 8;
       },
       [](rk::runtime&) {}, [] { return group_of(3); }, "actor table is full",
       [](rk::runtime& rt, rk::actor_options&) {
         rt.remove_group(rt.group("other"));
         rt.forget(rt.find("keep"));
       }},
      {"tenant actor quota", [](auto&) {},
       [](rk::runtime& rt) {
         rk::tenant_quota q = rk::tenant_quota::standard();
         q.max_actors = 3;
         rt.tenants().set_quota(5, q);
       },
       [] { return group_of(3); }, "max_actors",
       [](rk::runtime& rt, rk::actor_options&) { rt.tenants().set_quota(5, rk::tenant_quota::standard()); }},
      {"tenant byte quota", [](auto&) {},
       [](rk::runtime& rt) {
         rk::tenant_quota q = rk::tenant_quota::standard();
         q.max_device_bytes = rt.tenants().usage(5).device_bytes + 1000;
         rt.tenants().set_quota(5, q);
       },
       [] { return group_of(3); }, "max_device_bytes",
       [](rk::runtime& rt, rk::actor_options&) { rt.tenants().set_quota(5, rk::tenant_quota::standard()); }},
      {"engagement table full", [](auto& o) { o.max_engagements = 1; },
       [tag_a](rk::runtime& rt) { rt.tenants().set_engagement_budget(5, tag_a, 1s); },
       [tag_b] {
         rk::actor_options a = group_of(3);
         a.audit_tag = tag_b;
         return a;
       },
       "raise runtime_options::max_engagements",
       [tag_a](rk::runtime&, rk::actor_options& a) { a.audit_tag = tag_a; }},
      {"unregistered tenant", [](auto&) {}, [](rk::runtime&) {}, [] { return group_of(3, 9); },
       "not registered",
       [](rk::runtime& rt, rk::actor_options&) { rt.tenants().add(9, rk::tenant_quota::standard()); }},
      {"invalid mailbox", [](auto&) {}, [](rk::runtime&) {},
       [] {
         rk::actor_options a = group_of(3);
         a.mailbox = {100, 256};
         return a;
       },
       "power of two",
       [](rk::runtime&, rk::actor_options& a) {
         a.mailbox = {16, 256};
       }},
  };
  for (const scenario& s : scenarios) {
    SCOPED_TRACE(s.what);
    rk::runtime_options o = options();
    o.max_actors = 8;
    s.configure(o);
    rk::runtime rt(o);
    rt.tenants().add(5, rk::tenant_quota::standard());
    const actor_index keep = rt.spawn<counter>("keep", in_tenant(5, 16));
    rt.create_group("other", std::span(&keep, 1));
    s.setup(rt);
    const std::string before = picture(rt, names);
    rk::actor_options failing = s.spawn_options();
    expect_refused([&] { rt.spawn<counter>("g", failing); }, s.needle);
    EXPECT_EQ(picture(rt, names), before) << "the failed spawn left something behind";
    rk::actor_options corrected = failing;
    s.correct(rt, corrected);
    rk::address g = 0;
    ASSERT_NO_THROW(g = rt.spawn<counter>("g", corrected)) << "the corrected retry succeeds";
    EXPECT_EQ(rt.members(g).size(), corrected.instances);
    EXPECT_EQ(rt.name_of(rt.members(g).back()), "g/" + std::to_string(corrected.instances - 1));
  }
}

TEST_P(TransactionCases, SpawnRollsBackAnAllocationFailureAtEachStep) {
  // One allocation for the group's mailboxes and states; while running, dedicated workers then take the
  // launch's two worker lists (scheduled actors are only registered). Each failing step leaves the
  // runtime as it was, and the ids the next spawn gets are unchanged.
  for (const bool running : {false, true}) {
    const std::uint64_t steps = running && GetParam().dedicated ? 3 : 1;
    for (std::uint64_t step = 1; step <= steps; ++step) {
      SCOPED_TRACE((running ? "while running, allocation " : "before start, allocation ") +
                   std::to_string(step));
      rk::runtime rt(options());
      rt.tenants().add(5, rk::tenant_quota::standard());
      const actor_index keep = rt.spawn<counter>("keep", in_tenant(5, 16));
      if (running) rt.start();
      const std::string before = picture(rt, {"g", "g/0", "g/1", "g/2"});
      {
        failing_allocation fail(step);
        expect_refused([&] { rt.spawn<counter>("g", group_of(3)); }, "injected");
      }
      EXPECT_EQ(picture(rt, {"g", "g/0", "g/1", "g/2"}), before);
      const rk::address g = rt.spawn<counter>("g", group_of(3));
      const std::vector<actor_index> members = rt.members(g);
      EXPECT_EQ(members, (std::vector<actor_index>{keep + 1, keep + 2, keep + 3}))
          << "ids as if nothing failed";
      if (running) {
        const ping_payload p{1, 1};
        for (actor_index m : members)
          EXPECT_EQ(rt.send_wait(m, msg_count, rk::as_bytes(p), 5s, as_tenant(5)), status::delivered);
      }
    }
  }
}

TEST_P(TransactionCases, SpawnWhileRunningRollsBackWhenTheArenaRunsOut) {
  rk::runtime_options o = options();
  o.running_arena_bytes = 600 << 10;
  rk::runtime rt(o);
  rt.spawn<counter>("first", small_mailbox(16, 128));
  rt.start();
  const std::string before = picture(rt, {"g", "g/0", "g/1", "g/2"});
  rk::actor_options big = small_mailbox(256, 256); // 4 lanes x 64 KiB each: three do not fit in 600 KiB
  big.priority_lanes = true;
  big.instances = 3;
  // The largest piece it names is one a slice can use: slices start at 256-byte boundaries.
  expect_refused([&] { rt.spawn<counter>("g", big); }, "usable, at a 256-byte boundary");
  EXPECT_EQ(picture(rt, {"g", "g/0", "g/1", "g/2"}), before);
  expect_refused([&] { rt.spawn<echo>("late_type"); }, "not known at start()");
  EXPECT_EQ(picture(rt, {"g", "g/0", "g/1", "g/2"}), before);
  big.mailbox = {64, 256};
  const rk::address g = rt.spawn<counter>("g", big);
  const ping_payload p{1, 1};
  for (actor_index m : rt.members(g))
    EXPECT_EQ(rt.send_wait(m, msg_count, rk::as_bytes(p), 5s), status::delivered);
  EXPECT_TRUE(rt.shutdown().drained);
}

// --- groups, aliases, routes -----------------------------------------------------------------------------

TEST_P(TransactionCases, GroupAliasAndRouteCallsRollBack) {
  rk::runtime_options o = options();
  o.max_actors = 6;
  o.max_groups = 2;
  rk::runtime rt(o);
  rt.tenants().add(5, rk::tenant_quota::standard());
  const actor_index a = rt.spawn<counter>("a", small_mailbox(16, 128));
  const actor_index b = rt.spawn<counter>("b", small_mailbox(16, 128));
  const actor_index other = rt.spawn<counter>("other", in_tenant(5, 16));
  const std::vector<std::string> names{"a", "b", "pair", "alias", "x"};
  const std::string before = picture(rt, names);
  const auto unchanged = [&] { EXPECT_EQ(picture(rt, names), before); };

  const std::vector<actor_index> dup{a, b, a}, mixed{a, other}, unknown{a, 4000}, none{};
  expect_refused([&] { rt.create_group("pair", dup); }, "listed more than once");
  unchanged();
  expect_refused([&] { rt.create_group("pair", mixed); }, "different tenants");
  unchanged();
  expect_refused([&] { rt.create_group("pair", unknown); }, "not an actor");
  unchanged();
  expect_refused([&] { rt.create_group("pair", none); }, "at least one member");
  unchanged();
  expect_refused([&] { rt.create_group("", std::vector<actor_index>{a}); }, "must not be empty");
  unchanged();

  expect_refused([&] { rt.add_alias("a", b); }, "already exists");
  unchanged();
  expect_refused([&] { rt.add_alias("alias", rk::host_actor); }, "cannot lead to the host");
  unchanged();
  expect_refused([&] { rt.add_alias("alias", rk::group_address(1)); }, "no group");
  unchanged();
  expect_refused([&] { rt.set_route(a, 4000); }, "no actor or alias");
  unchanged();
  expect_refused([&] { rt.set_route(4000, a); }, "unknown actor id");
  unchanged();

  const std::vector<actor_index> pair{a, b};
  const rk::address g = rt.create_group("pair", pair);
  rt.create_group("x", std::vector<actor_index>{a});
  const std::string full = picture(rt, names);
  expect_refused([&] { rt.create_group("third", pair); }, "group table is full");
  EXPECT_EQ(picture(rt, names), full);
  rt.add_alias("alias", g);
  rt.add_alias("alias2", a);
  rt.add_alias("alias3", a);
  const std::string actors_full = picture(rt, names);
  expect_refused([&] { rt.add_alias("alias4", a); }, "actor table is full");
  EXPECT_EQ(picture(rt, names), actors_full);
}

// --- tenants, regions, message types ---------------------------------------------------------------------

TEST_P(TransactionCases, TenantAndRegionCallsRollBack) {
  rk::runtime_options o = options();
  o.max_tenants = 2;
  o.max_regions = 2;
  rk::runtime rt(o);
  rk::tenant_quota q = rk::tenant_quota::standard();
  q.max_device_bytes = 1 << 16;
  rt.tenants().add(5, q);
  const actor_index a = rt.spawn<counter>("a", in_tenant(5, 16));
  std::vector<std::byte> blob(4096);
  const std::vector<std::string> names{"a"};
  std::string before = picture(rt, names);
  const auto unchanged = [&] { EXPECT_EQ(picture(rt, names), before); };

  expect_refused([&] { rt.tenants().add(6, q); }, "tenant table is full");
  unchanged();
  expect_refused([&] { rt.tenants().add(0, q); }, "tenant 0");
  unchanged();
  expect_refused([&] { rt.tenants().add(5, q); }, "already registered");
  unchanged();
  rk::tenant_quota bad = q;
  bad.burst = 1u << 21;
  expect_refused([&] { rt.tenants().set_quota(5, bad); }, "burst");
  unchanged();
  bad = q;
  bad.max_actors = 0;
  expect_refused([&] { rt.tenants().set_quota(5, bad); }, "already has 1 actors");
  unchanged();
  expect_refused([&] { rt.tenants().remove(5); }, "still has 1 actors");
  unchanged();
  expect_refused([&] { rt.tenants().set_engagement_budget(5, {1, 1}, -1s); }, "must not be negative");
  unchanged();
  EXPECT_EQ(rt.tenants().engagement(5, {1, 1}).budget_ns, 0u);
  // Unregistered: refused as usage() is (it answered zeros).
  expect_refused([&] { (void)rt.tenants().engagement(6, {1, 1}); }, "tenant 6 is not registered");

  const rk::region_options owned{rk::region_policy::immutable, 5, {}};
  expect_refused([&] { rt.register_region(nullptr, 16, owned); }, "null");
  unchanged();
  expect_refused([&] { rt.register_region(blob.data(), 0, owned); }, "at least one byte");
  unchanged();
  expect_refused(
      [&] {
        rt.register_region(blob.data(), 16, {rk::region_policy::immutable, 5, {77}});
      },
      "not registered");
  unchanged();
  expect_refused(
      [&] {
        rt.register_region(blob.data(), 16, {rk::region_policy::immutable, 5, {0, 0, 0, 0, 0, 0, 0, 0, 0}});
      },
      "at most 8");
  unchanged();
  expect_refused(
      [&] {
        rt.register_region(blob.data(), 16, {rk::region_policy::immutable, 5, {0, 5}});
      },
      "lists the owner, tenant 5");
  unchanged();
  expect_refused(
      [&] {
        rt.register_region(blob.data(), 16, {rk::region_policy::immutable, 5, {0, 0}});
      },
      "lists tenant 0 twice");
  unchanged();
  expect_refused([&] { rt.register_region(blob.data(), 1 << 20, owned); }, "max_device_bytes");
  unchanged();
  expect_refused([&] { (void)rt.create_region({blob.data(), 64}, 32, owned); }, "smaller than the initial");
  unchanged();
  expect_refused([&] { (void)rt.create_region({blob.data(), 64}, 1 << 20, owned); }, "max_device_bytes");
  unchanged();
  expect_refused(
      [&] {
        (void)rt.create_region({blob.data(), 64}, ~std::uint64_t{0} - 4095,
                               {rk::region_policy::immutable, 0, {}});
      },
      "");
  unchanged();
  {
    failing_allocation fail(1);
    expect_refused([&] { (void)rt.create_region({blob.data(), 64}, 4096, owned); }, "injected");
  }
  unchanged();
  rt.create_region({blob.data(), 64}, 4096, owned);
  rt.register_region(blob.data(), 16, owned);
  before = picture(rt, names);
  expect_refused([&] { rt.register_region(blob.data(), 16, owned); }, "region table is full");
  unchanged();
  (void)a;
}

TEST_P(TransactionCases, AConflictingMessageTypeLeavesTheDeviceBitmapAlone) {
  rk::runtime rt(options());
  rt.register_message_type({500, "open_type", true, "test"});
  const std::string before = picture(rt);
  expect_refused(
      [&] {
        rt.register_message_type({500, "closed_type", false, "test"});
      },
      "already registered");
  EXPECT_EQ(picture(rt), before);
  expect_refused(
      [&] {
        rt.register_message_type({options().max_message_types, "too_high", false, "test"});
      },
      "max_message_types");
  EXPECT_EQ(picture(rt), before);
  const actor_index source = rt.spawn<burster>("source", small_mailbox());
  const actor_index sink = rt.spawn<counter>("sink", small_mailbox());
  rt.start();
  const burst_request req{sink, 3, rk::envelope_flags::none, 500};
  ASSERT_EQ(rt.send(source, msg_burst, rk::as_bytes(req)), status::enqueued);
  const auto report = rt.receive(5s);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->as<burst_report>().delivered, 3u) << "type 500 is still routable on the device";
}

// --- the host cannot address itself
// -------------------------------------------------------------------------

TEST_P(TransactionCases, HostSendsToTheHostAreRefusedAtTheCall) {
  rk::runtime rt(options());
  rt.spawn<echo>("echo", small_mailbox());
  rt.start();
  const ping_payload p{1, 2};
  EXPECT_EQ(rt.send(rk::host_actor, msg_ping, rk::as_bytes(p)), status::invalid_destination);
  EXPECT_EQ(rt.send_wait(rk::host_actor, msg_ping, rk::as_bytes(p), 1s), status::invalid_destination);
  EXPECT_EQ(rt.send_keyed(rk::host_actor, 3, msg_ping, rk::as_bytes(p)), status::invalid_destination);
  EXPECT_EQ(rt.send_descriptor(rk::host_actor, msg_ping, rk::region_descriptor{}),
            status::invalid_destination);
  EXPECT_FALSE(rt.receive(0s).has_value()) << "nothing came back to the host";
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(s.host_sends[static_cast<int>(status::invalid_destination)], 4u);
  EXPECT_EQ(s.gateway_processed, 0u) << "refused at the call, not by the device";
  EXPECT_TRUE(rt.shutdown().drained);
}

} // namespace rk_cases
