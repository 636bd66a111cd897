#pragma once
// Hardening, tried as a hostile tenant and as a careless user would: region access only through the
// message a handler was given, quota and bounds arithmetic at the u64 edges, timeouts at their edges, hop
// limits the 8-bit counter can enforce, all-or-nothing batches to the host, forwards that keep their
// descriptor and key, receivers that do not queue behind each other, and a completion for region memory.
// Written once, instantiated per backend (test_hardening_cpu.cpp, test_hardening_cuda.cu).

#include "case_fixture.hpp"

#include <cstring>
#include <limits>
#include <set>

namespace rk_cases {

inline constexpr std::uint32_t msg_started = 30;

//! Reads a region through a message it builds itself from the descriptor it is sent, then reports how
//! many bytes it got.
struct region_thief {
  static constexpr const char* name = "region_thief";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    const rk::region_descriptor* wanted = m.as<rk::region_descriptor>();
    if (wanted == nullptr) return;
    alignas(64) std::byte fake[rk::envelope_bytes + sizeof(rk::region_descriptor)] = {};
    rk::envelope h = m.header();
    h.flags = rk::envelope_flags::descriptor;
    h.payload_length = sizeof(rk::region_descriptor);
    memcpy(fake, &h, sizeof h);
    memcpy(fake + rk::envelope_bytes, wanted, sizeof *wanted);
    const rk::byte_view bytes = ctx.region_bytes(rk::message(fake));
    const ping_payload reply{bytes.size, 0};
    (void)ctx.send_host(msg_region, rk::as_bytes(reply));
  }
};

//! Receives a valid descriptor, overwrites it in its own delivered slot with `replacement`, then reads.
struct slot_rewriter {
  static constexpr const char* name = "slot_rewriter";
  struct state {
    rk::region_descriptor replacement{};
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.size() == sizeof(rk::region_descriptor))
      memcpy(const_cast<std::byte*>(m.payload().bytes()), &s.replacement, sizeof s.replacement);
    const rk::byte_view bytes = ctx.region_bytes(m);
    std::uint64_t sum = 0;
    for (std::uint32_t i = 0; i < bytes.size; ++i) sum += static_cast<std::uint8_t>(bytes.bytes()[i]);
    const ping_payload reply{bytes.size, sum};
    (void)ctx.send_host(msg_region, rk::as_bytes(reply));
  }
};

//! On its first call turns its delivered slot into a descriptor message naming `replacement` (whatever it
//! carried: a descriptor or inline bytes) and defers; on the next call reads what region_bytes grants.
struct deferring_rewriter {
  static constexpr const char* name = "deferring_rewriter";
  struct state {
    rk::region_descriptor replacement{};
    bool rewrote = false;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (!s.rewrote) {
      auto& header = const_cast<rk::envelope&>(m.header());
      header.flags = static_cast<std::uint16_t>(header.flags | rk::envelope_flags::descriptor);
      header.payload_length = sizeof s.replacement;
      memcpy(const_cast<std::byte*>(m.payload().bytes()), &s.replacement, sizeof s.replacement);
      s.rewrote = true;
      ctx.defer();
      return;
    }
    s.rewrote = false;
    const rk::byte_view bytes = ctx.region_bytes(m);
    std::uint64_t sum = 0;
    for (std::uint32_t i = 0; i < bytes.size; ++i) sum += static_cast<std::uint8_t>(bytes.bytes()[i]);
    const ping_payload reply{bytes.size, sum};
    (void)ctx.send_host(msg_region, rk::as_bytes(reply));
  }
};

//! Says it started, then keeps reading the region it was given for `spin_ns`, then reports the sum.
struct slow_region_reader {
  static constexpr const char* name = "slow_region_reader";
  struct state {
    std::uint64_t spin_ns = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    // Resolve the bytes first: "started" tells the host this call holds them (it may release the region
    // at once, and a descriptor resolved after that sees no bytes).
    const rk::byte_view bytes = ctx.region_bytes(m);
    (void)ctx.send_host(msg_started, {});
    const std::uint64_t begin = rk::physical_clock_ns();
    std::uint64_t sum = 0;
    do {
      sum = 0;
      for (std::uint32_t i = 0; i < bytes.size; ++i) sum += static_cast<std::uint8_t>(bytes.bytes()[i]);
    } while (rk::physical_clock_ns() - begin < s.spin_ns);
    const ping_payload reply{bytes.size, sum};
    (void)ctx.send_host(msg_region, rk::as_bytes(reply));
  }
};

//! Sends a batch of `count` messages to the host with one send_aggregated and reports nothing (its
//! counters tell).
struct host_batcher {
  static constexpr const char* name = "host_batcher";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    const ping_payload* req = m.as<ping_payload>();
    if (req == nullptr || req->value > 64) return;
    ping_payload items[64];
    rk::byte_view views[64];
    for (std::uint32_t i = 0; i < req->value; ++i) {
      items[i] = ping_payload{req->sequence, i};
      views[i] = rk::as_bytes(items[i]);
    }
    if (ctx.is_leader())
      (void)ctx.send_aggregated(rk::host_actor, msg_tag, views, static_cast<std::uint32_t>(req->value));
  }
};

//! Forwards every message to `next` with ctx.forward.
struct plain_forwarder {
  static constexpr const char* name = "plain_forwarder";
  struct state {
    rk::address next = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    (void)ctx.forward(m, s.next);
  }
};

//! Every thread of the worker reports a fault, then another one.
struct fault_everywhere {
  static constexpr const char* name = "fault_everywhere";
  static constexpr std::uint32_t threads_per_worker = 32;
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message&) {
    ctx.fault(5);
    ctx.fault(6);
  }
};

//! Sends payloads that name no bytes (null data, 8 bytes) to `next`, one by one and as a batch, then
//! reports both verdicts to the host (sequence: send's, value: send_aggregated's).
struct null_payload_sender {
  static constexpr const char* name = "null_payload_sender";
  struct state {
    rk::address next = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message&) {
    const rk::byte_view nothing(nullptr, 8);
    const rk::byte_view batch[2] = {rk::byte_view(nullptr, 0), nothing};
    const status one = ctx.send(s.next, msg_count, nothing);
    const status many =
        ctx.is_leader() ? ctx.send_aggregated(s.next, msg_count, batch, 2) : status::delivered;
    const ping_payload verdicts{static_cast<std::uint64_t>(one), static_cast<std::uint64_t>(many)};
    (void)ctx.send_host(msg_ping, rk::as_bytes(verdicts));
  }
};

class HardeningCases : public RuntimeCases {
protected:
  static rk::send_options descriptor_as(std::uint64_t tenant) {
    rk::send_options o = as_tenant(tenant);
    o.flags = rk::envelope_flags::descriptor;
    return o;
  }
  static std::uint64_t audited(rk::runtime& rt, rk::audit_event event, actor_index actor) {
    EXPECT_EQ(rt.flush_audit(10s), rk::wait_result::ready);
    std::uint64_t n = 0;
    for (const auto& e : rt.audit_records()) n += e.record.event == event && e.record.actor == actor;
    return n;
  }
  static ping_payload reply_of(rk::runtime& rt) {
    const auto r = rt.receive(10s);
    EXPECT_TRUE(r.has_value());
    return r ? r->as<ping_payload>() : ping_payload{~0ull, ~0ull};
  }
};

// --- 1. region access is a per-delivery capability --------------------------------------------------------

TEST_P(HardeningCases, HandlersReadOnlyTheRegionBytesTheyWereGiven) {
  rk::runtime rt(options());
  rt.tenants().add(1, rk::tenant_quota::standard());
  rt.tenants().add(2, rk::tenant_quota::standard());
  const std::vector<std::byte> secret(64, std::byte{0x55}), own(64, std::byte{1});
  const rk::region_handle theirs =
      rt.create_region({secret.data(), 64}, 64, {rk::region_policy::immutable, 2, {}});
  rk::region_handle mine = rt.create_region({own.data(), 64}, 64, {rk::region_policy::immutable, 1, {}});
  const rk::region_handle stale = mine;
  rt.unregister_region(mine);
  mine = rt.create_region({own.data(), 64}, 64, {rk::region_policy::immutable, 1, {}});
  const rk::region_handle other_own =
      rt.create_region({own.data(), 64}, 64, {rk::region_policy::immutable, 1, {}});
  const actor_index thief = rt.spawn<region_thief>("thief", in_tenant(1));
  // One rewriter per forgery, each starting from a valid descriptor of its own tenant's region.
  const std::vector<std::pair<const char*, rk::region_descriptor>> forgeries{
      {"another tenant's region", theirs.describe(0, 64)},
      {"out of bounds", mine.describe(32, 64)},
      {"offset 2^62", mine.describe(std::uint64_t{1} << 62, 8)},
      {"wrapping range", mine.describe(~std::uint64_t{0} - 4, 16)},
      {"stale generation", stale.describe(0, 8)},
      {"unknown region", rk::region_descriptor{4000, 1, 0, 8}},
      // Valid for its tenant, but not what it was sent: more of the same region, and another one.
      {"widened to its whole region", mine.describe(0, 64)},
      {"another region of its tenant", other_own.describe(0, 8)},
  };
  std::vector<actor_index> rewriters;
  for (std::size_t i = 0; i < forgeries.size(); ++i)
    rewriters.push_back(rt.spawn<slot_rewriter>("rewriter" + std::to_string(i), in_tenant(1),
                                                slot_rewriter::state{forgeries[i].second}));
  // Writes back the very descriptor it was sent.
  const actor_index honest =
      rt.spawn<slot_rewriter>("honest", in_tenant(1), slot_rewriter::state{mine.describe(0, 8)});
  rt.start();

  // A message the handler built itself grants nothing, even for its own tenant's region.
  for (const rk::region_descriptor& d : {theirs.describe(0, 64), mine.describe(0, 64)}) {
    ASSERT_EQ(rt.send(thief, msg_region, rk::as_bytes(d), as_tenant(1)), status::enqueued);
    EXPECT_EQ(reply_of(rt).sequence, 0u) << "a forged message reads nothing";
  }
  EXPECT_EQ(audited(rt, rk::audit_event::descriptor_violation, thief), 2u);

  for (std::size_t i = 0; i < forgeries.size(); ++i) {
    SCOPED_TRACE(forgeries[i].first);
    ASSERT_EQ(rt.send_wait(rewriters[i], msg_region, rk::as_bytes(mine.describe(0, 8)), 5s, descriptor_as(1)),
              status::delivered);
    const ping_payload r = reply_of(rt);
    EXPECT_EQ(r.sequence, 0u) << "the rewritten descriptor is checked again on access";
    EXPECT_EQ(r.value, 0u);
    EXPECT_EQ(audited(rt, rk::audit_event::descriptor_violation, rewriters[i]), 1u);
  }
  ASSERT_EQ(rt.send_wait(honest, msg_region, rk::as_bytes(mine.describe(0, 8)), 5s, descriptor_as(1)),
            status::delivered);
  const ping_payload r = reply_of(rt);
  EXPECT_EQ(r.sequence, 8u) << "the descriptor it was sent reads (the check is not a blanket refusal)";
  EXPECT_EQ(r.value, 8u);
  EXPECT_TRUE(rt.shutdown().drained);
}

// A deferred message is offered again from its slot: what the handler wrote there before deferring must
// not become the next call's grant (it did: the grant was taken from the slot at each call).
TEST_P(HardeningCases, ADeferredMessageGrantsOnlyWhatItWasDelivered) {
  rk::runtime rt(options());
  rt.tenants().add(1, rk::tenant_quota::standard());
  const std::vector<std::byte> ones(64, std::byte{1}), twos(64, std::byte{2});
  const rk::region_handle mine =
      rt.create_region({ones.data(), 64}, 64, {rk::region_policy::immutable, 1, {}});
  const rk::region_handle other_own =
      rt.create_region({twos.data(), 64}, 64, {rk::region_policy::immutable, 1, {}});
  struct forgery {
    const char* what;
    rk::region_descriptor replacement;
    bool sent_as_descriptor;
    std::uint64_t granted_bytes, granted_sum; // what the second call may read: the delivered range or none
  };
  const std::vector<forgery> forgeries{
      {"widened to its whole region", mine.describe(0, 64), true, 8, 8},
      {"another region of its tenant", other_own.describe(0, 8), true, 8, 8},
      {"inline bytes turned into a descriptor", mine.describe(0, 64), false, 0, 0},
  };
  std::vector<actor_index> rewriters;
  for (std::size_t i = 0; i < forgeries.size(); ++i)
    rewriters.push_back(rt.spawn<deferring_rewriter>("rewriter" + std::to_string(i), in_tenant(1),
                                                     deferring_rewriter::state{forgeries[i].replacement}));
  rt.start();
  for (std::size_t i = 0; i < forgeries.size(); ++i) {
    SCOPED_TRACE(forgeries[i].what);
    const rk::region_descriptor delivered = mine.describe(0, 8);
    const ping_payload inline_bytes{1, 2};
    const status st =
        forgeries[i].sent_as_descriptor
            ? rt.send_wait(rewriters[i], msg_region, rk::as_bytes(delivered), 5s, descriptor_as(1))
            : rt.send_wait(rewriters[i], msg_region, rk::as_bytes(inline_bytes), 5s, as_tenant(1));
    ASSERT_EQ(st, status::delivered);
    const ping_payload r = reply_of(rt);
    EXPECT_EQ(r.sequence, forgeries[i].granted_bytes);
    EXPECT_EQ(r.value, forgeries[i].granted_sum) << "the bytes read are the delivered region's";
    EXPECT_EQ(rt.stats().actors[rewriters[i]].deferred, 1u);
  }
  EXPECT_TRUE(rt.shutdown().drained);
}

// --- 2. quota and bounds arithmetic at the u64 edges -----------------------------------------------------

TEST_P(HardeningCases, QuotaAndBoundsArithmeticHoldsAtTheU64Edges) {
  rk::runtime rt(options());
  rk::tenant_quota gib = rk::tenant_quota::standard(); // 1 GiB
  rt.tenants().add(1, gib);
  std::vector<std::byte> bytes(64, std::byte{1});
  const rk::region_handle backing =
      rt.create_region({bytes.data(), 64}, 64, {rk::region_policy::immutable, 1, {}});
  void* memory = rt.region_pointer(backing);
  // Sizes no address space holds are refused as such; large ones that fit one, by the quota.
  const std::uint64_t huge = 18446744073709284352ull;
  expect_refused(
      [&] {
        rt.register_region(memory, huge, {rk::region_policy::immutable, 1, {}});
      },
      "past the end of the address space");
  expect_refused(
      [&] {
        (void)rt.create_region({}, ~std::uint64_t{0}, {rk::region_policy::immutable, 1, {}});
      },
      "more than any address space holds");
  expect_refused(
      [&] {
        rt.register_region(memory, std::uint64_t{1} << 40, {rk::region_policy::immutable, 1, {}});
      },
      "max_device_bytes");
  EXPECT_EQ(rt.tenants().usage(1).device_bytes, 256u)
      << "nothing was charged (no wrap-around) beyond the backing region's 256-byte piece";

  // Unlimited quota: the sum itself must not wrap. Regions of 3 x 2^55 bytes (each inside the address
  // space) add up past 2^64 at the 171st.
  rt.tenants().add(2, rk::tenant_quota::unlimited());
  const std::uint64_t big = std::uint64_t{3} << 55;
  std::vector<rk::region_handle> held;
  for (int i = 0; i < 170; ++i)
    held.push_back(rt.register_region(memory, big, {rk::region_policy::immutable, 2, {}}));
  expect_refused(
      [&] {
        rt.register_region(memory, big, {rk::region_policy::immutable, 2, {}});
      },
      "18446744073709551615");
  EXPECT_EQ(rt.tenants().usage(2).device_bytes, 170 * big);
  for (const rk::region_handle& h : held) rt.unregister_region(h);
  // 8 GiB (never read: every descriptor of it below is refused) shared with the reader's tenant.
  const rk::region_handle wide =
      rt.register_region(memory, std::uint64_t{1} << 33, {rk::region_policy::immutable, 2, {1}});

  const actor_index reader = rt.spawn<region_reader>("reader", in_tenant(1));
  rt.start();
  // A descriptor names less than 4 GiB (what a receiver's view can hold): longer ones are refused on
  // delivery, not delivered and then refused to the receiver.
  for (const rk::region_descriptor& d :
       {backing.describe(std::uint64_t{1} << 62, 8), backing.describe(~std::uint64_t{0} - 7, 16),
        backing.describe(0, ~std::uint64_t{0}), backing.describe(64, 1), backing.describe(1, 64),
        wide.describe(0, rk::max_descriptor_length + 1), wide.describe(8, std::uint64_t{5} << 30)})
    EXPECT_EQ(rt.send_wait(reader, msg_region, rk::as_bytes(d), 5s, descriptor_as(1)),
              status::invalid_descriptor)
        << "offset " << d.offset << " length " << d.length;
  EXPECT_EQ(rt.send_wait(reader, msg_region, rk::as_bytes(backing.describe(0, 64)), 5s, descriptor_as(1)),
            status::delivered);
  EXPECT_EQ(reply_of(rt).sequence, 64u);
  EXPECT_TRUE(rt.shutdown().drained);
}

// --- 4. timeouts at their edges
// ----------------------------------------------------------------------------------

TEST_P(HardeningCases, TimeoutsAreSafeAtTheirEdges) {
  for (auto spoil : {+[](rk::runtime_options& o) { o.start_timeout = -1ms; },
                     +[](rk::runtime_options& o) { o.drain_timeout = -1ms; },
                     +[](rk::runtime_options& o) { o.stop_timeout = std::chrono::milliseconds::min(); }}) {
    rk::runtime_options o = options();
    spoil(o);
    expect_refused([&] { rk::runtime rt(o); }, "must not be negative");
  }
  {
    rk::runtime_options zero = options();
    zero.stop_timeout = 0ms; // shutdown() gave up before the workers could exit, and leaked every time
    expect_refused([&] { rk::runtime rt(zero); }, "stop_timeout must be at least 1 ms");
  }
  rk::runtime_options o = options();
  o.drain_timeout = std::chrono::milliseconds::max(); // "as long as it takes", not an overflow
  o.stop_timeout = std::chrono::milliseconds::max();
  o.start_timeout = std::chrono::milliseconds::max();
  rk::runtime rt(o);
  const actor_index e = rt.spawn<echo>("echo", small_mailbox());
  const actor_index c = rt.spawn<counter>("counter", small_mailbox());
  rt.start();
  const ping_payload p{1, 2};
  expect_refused([&] { (void)rt.receive(-1ms); }, "must not be negative");
  expect_refused([&] { (void)rt.send_wait(e, msg_ping, rk::as_bytes(p), -1s); }, "must not be negative");
  expect_refused([&] { (void)rt.pause(std::chrono::seconds::min()); }, "must not be negative");
  expect_refused([&] { (void)rt.stop(e, -1ns); }, "must not be negative");
  EXPECT_EQ(rt.send_wait(e, msg_ping, rk::as_bytes(p), std::chrono::hours::max()), status::delivered);
  EXPECT_TRUE(rt.receive(std::chrono::milliseconds::max()).has_value()) << "a reply is there: no wait at all";
  EXPECT_FALSE(rt.receive(std::chrono::nanoseconds::zero()).has_value());
  EXPECT_EQ(rt.flush_audit(std::chrono::milliseconds::max()), rk::wait_result::ready);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(rt.send(c, msg_count, rk::as_bytes(p)), status::enqueued);
  const rk::shutdown_report r = rt.shutdown();
  EXPECT_TRUE(r.drained) << "drain_timeout = max drains everything";
  EXPECT_EQ(rt.state<counter>(c).count, 100u);
}

// --- 5. hop limits
// ------------------------------------------------------------------------------------------------

TEST_P(HardeningCases, TheHopLimitHoldsAtItsMaximum) {
  rk::runtime_options o = options();
  o.max_hops = 255;
  expect_refused([&] { rk::runtime rt(o); }, "at most 254");
  o.max_hops = rk::max_hops_limit;
  rk::runtime rt(o);
  const actor_index a = rt.spawn<counter>("a", small_mailbox());
  const actor_index b = rt.spawn<counter>("b", small_mailbox());
  rt.set_route(a, b);
  rt.set_route(b, a); // a loop of indirect routes
  const actor_index x = rt.spawn<plain_forwarder>("x", small_mailbox());
  const actor_index y = rt.spawn<plain_forwarder>("y", small_mailbox(), plain_forwarder::state{x});
  rt.start();
  const ping_payload p{0, 1};
  EXPECT_EQ(rt.send_wait(a, msg_count, rk::as_bytes(p), 5s), status::max_hops_exceeded);
  // x forwards to itself, y to x: a forwarding loop that only the hop counter can end.
  ASSERT_TRUE(rt.stop(x, 5s));
  rt.respawn<plain_forwarder>(x, plain_forwarder::state{x});
  ASSERT_EQ(rt.send_wait(y, msg_count, rk::as_bytes(p), 5s), status::delivered);
  const rk::wait_result ended = rk::wait_until(
      [&] {
        const rk::runtime_stats s = rt.stats();
        return s.actors[x].sent[static_cast<int>(status::max_hops_exceeded)] == 1;
      },
      [] { return false; }, 30'000'000'000ull);
  EXPECT_EQ(ended, rk::wait_result::ready) << "the loop ends at max_hops";
  const rk::runtime_stats s = rt.stats();
  EXPECT_EQ(s.actors[x].sent[static_cast<int>(status::delivered)], rk::max_hops_limit - 1)
      << "y's forward was hop 1; x forwarded until the counter passed the limit";
  EXPECT_TRUE(rt.shutdown().drained);
}

// --- 6. batches and forwards keep their promises
// -------------------------------------------------------------------

TEST_P(HardeningCases, BatchesToTheHostAreAllOrNothingAndCountedExactly) {
  rk::runtime_options o = options();
  o.host_ring = {16, 256};
  rk::runtime rt(o);
  const actor_index batcher = rt.spawn<host_batcher>("batcher", small_mailbox());
  rt.start();
  const auto batch = [&](std::uint64_t tag, std::uint64_t count) {
    const ping_payload req{tag, count};
    ASSERT_EQ(rt.send_wait(batcher, msg_ping, rk::as_bytes(req), 5s), status::delivered);
    // The `tag`-th request is done once the batcher handled it; its batch is counted by then.
    ASSERT_EQ(rk::wait_until([&] { return rt.stats().actors[batcher].handled >= tag; }, [] { return false; },
                             10'000'000'000ull),
              rk::wait_result::ready);
  };
  batch(1, 12); // 12 of 16 slots
  batch(2, 8);  // 4 free: refused whole
  rk::runtime_stats s = rt.stats();
  EXPECT_EQ(s.actors[batcher].sent[static_cast<int>(status::delivered)], 12u);
  EXPECT_EQ(s.actors[batcher].sent[static_cast<int>(status::queue_full)], 8u);
  std::uint64_t received = 0;
  while (const auto m = rt.receive(0s)) {
    EXPECT_EQ(m->as<ping_payload>().sequence, 1u) << "nothing of the refused batch reached the host";
    ++received;
  }
  EXPECT_EQ(received, 12u);
  batch(3, 8);  // room again
  batch(4, 17); // more than the ring holds: never fits
  s = rt.stats();
  EXPECT_EQ(s.actors[batcher].sent[static_cast<int>(status::delivered)], 20u);
  EXPECT_EQ(s.actors[batcher].sent[static_cast<int>(status::too_large)], 17u);
  received = 0;
  while (const auto m = rt.receive(0s)) received += m->as<ping_payload>().sequence == 3;
  EXPECT_EQ(received, 8u);
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST_P(HardeningCases, ForwardKeepsDescriptorsAndKeys) {
  rk::runtime rt(options());
  rt.tenants().add(1, rk::tenant_quota::standard());
  const std::vector<std::byte> ones(32, std::byte{1});
  const rk::region_handle region =
      rt.create_region({ones.data(), 32}, 32, {rk::region_policy::immutable, 1, {}});
  const actor_index reader = rt.spawn<region_reader>("reader", in_tenant(1));
  const actor_index relay = rt.spawn<plain_forwarder>("relay", in_tenant(1), plain_forwarder::state{reader});
  rk::actor_options pool = small_mailbox();
  pool.instances = 4;
  const rk::address workers = rt.spawn<tagger>("pool", pool);
  const actor_index keyed_relay =
      rt.spawn<plain_forwarder>("keyed_relay", small_mailbox(), plain_forwarder::state{workers});
  rt.start();
  ASSERT_EQ(rt.send_wait(relay, msg_region, rk::as_bytes(region.describe(0, 32)), 5s, descriptor_as(1)),
            status::delivered);
  const ping_payload read = reply_of(rt);
  EXPECT_EQ(read.sequence, 32u) << "the forwarded message is still a descriptor the reader may use";
  EXPECT_EQ(read.value, 32u);
  // The same key reaches the same member through the relay, as it would directly.
  for (std::uint64_t key : {3u, 7u, 11u}) {
    std::set<actor_index> members;
    for (int i = 0; i < 4; ++i) {
      ASSERT_EQ(rt.send_keyed(keyed_relay, key, msg_tag, {}), status::enqueued);
      const auto m = rt.receive(10s);
      ASSERT_TRUE(m.has_value());
      members.insert(m->source());
    }
    EXPECT_EQ(members.size(), 1u) << "key " << key << " went to " << members.size() << " members";
  }
  EXPECT_TRUE(rt.shutdown().drained);
}

// --- 7. receivers do not queue behind each other
// -------------------------------------------------------------------

TEST_P(HardeningCases, AShortReceiveIsNotHeldUpByALongOne) {
  rk::runtime rt(options());
  const actor_index e = rt.spawn<echo>("echo", small_mailbox());
  rt.start();
  std::atomic<bool> long_wait_started{false};
  std::optional<rk::received_message> long_result;
  std::thread waiter([&] {
    long_wait_started = true;
    long_result = rt.receive(60s);
  });
  ASSERT_EQ(rk::wait_until([&] { return long_wait_started.load(); }, [] { return false; }, 10'000'000'000ull),
            rk::wait_result::ready);
  const auto begin = std::chrono::steady_clock::now();
  EXPECT_FALSE(rt.receive(10ms).has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 20s)
      << "the short receive did not wait for the long one";
  const ping_payload p{9, 9};
  ASSERT_EQ(rt.send(e, msg_ping, rk::as_bytes(p)), status::enqueued);
  waiter.join(); // the reply ends the long wait
  ASSERT_TRUE(long_result.has_value());
  EXPECT_EQ(long_result->as<ping_payload>().sequence, 9u);
  EXPECT_TRUE(rt.shutdown().drained);
}

// --- 8. a completion for region memory
// -------------------------------------------------------------------------------

TEST_P(HardeningCases, ReleaseRegionWaitsForHandlersStillReadingIt) {
  rk::runtime rt(options());
  const actor_index reader =
      rt.spawn<slow_region_reader>("slow", small_mailbox(), slow_region_reader::state{50'000'000}); // 50 ms
  const std::vector<std::byte> ones(256, std::byte{1});
  const rk::region_handle backing = rt.create_region({ones.data(), 256}, 256, {});
  const rk::region_handle view = rt.register_region(rt.region_pointer(backing), 256, {});
  rt.start();
  rk::send_options o;
  o.flags = rk::envelope_flags::descriptor;
  ASSERT_EQ(rt.send(reader, msg_region, rk::as_bytes(view.describe(0, 256)), o), status::enqueued);
  const auto started = rt.receive(10s);
  ASSERT_TRUE(started.has_value());
  ASSERT_EQ(started->type(), msg_started) << "the handler holds the region's bytes now";
  EXPECT_EQ(rt.release_region(view, 10s), rk::wait_result::ready);
  // Released means no worker can read it: the handler that held the bytes has returned.
  const auto done = rt.receive(0s);
  ASSERT_TRUE(done.has_value()) << "release_region returned while a handler could still read the region";
  EXPECT_EQ(done->as<ping_payload>().value, 256u);
  EXPECT_EQ(rt.release_region(view, 0s), rk::wait_result::ready) << "idempotent";
  // Handles of this runtime with a slot or a generation it never gave out (made by editing real ones).
  const auto edited = [](rk::region_handle h, std::uint32_t region, std::uint32_t generation) {
    h.region = region;
    h.generation = generation;
    return h;
  };
  expect_refused([&] { (void)rt.release_region(edited(view, 9999, 1), 0s); }, "never registered");
  // A live region's slot with a generation it never had: said ready, and left that region registered.
  expect_refused(
      [&] { (void)rt.release_region(edited(backing, backing.region, backing.generation + 5), 0s); },
      "never registered");
  expect_refused([&] { (void)rt.release_region(edited(view, view.region, view.generation + 1), 0s); },
                 "never registered");
  expect_refused(
      [&] {
        (void)rt.release_region(rk::region_handle{backing.region, backing.generation}, 0s);
      },
      "built by hand");
  EXPECT_NO_THROW((void)rt.region_pointer(backing)) << "still registered";
  EXPECT_EQ(rt.release_region(backing, 10s), rk::wait_result::ready) << "the runtime frees its own region";
  EXPECT_TRUE(rt.shutdown().drained);
}

// What a tenant gave up stays charged to it until it is freed: refunded at once, regions created and
// unregistered while a handler call held the grace period open went past the tenant's max_device_bytes
// (ten 3 MiB regions under a 4 MiB quota), until the running arena was full for every tenant.
TEST_P(HardeningCases, GivenUpBytesStayChargedUntilTheyAreFreed) {
  rk::runtime rt(options());
  rk::tenant_quota quota = rk::tenant_quota::standard();
  quota.max_device_bytes = 4u << 20;
  rt.tenants().add(1, quota);
  const actor_index holder = rt.spawn<slow_region_reader>(
      "holder", small_mailbox(), slow_region_reader::state{4'000'000'000}); // a 4 s call
  const actor_index c = rt.spawn<counter>("c", in_tenant(1, 8));
  const std::uint64_t actor_bytes = rt.tenants().usage(1).device_bytes;
  rt.start();
  ASSERT_EQ(rt.send(holder, msg_ping, {}), status::enqueued);
  const auto started = rt.receive(10s);
  ASSERT_TRUE(started.has_value());
  ASSERT_EQ(started->type(), msg_started) << "no grace period can end while its call runs";

  constexpr std::uint64_t region_bytes = 3u << 20;
  rt.unregister_region(rt.create_region({}, region_bytes, {rk::region_policy::immutable, 1, {}}));
  ASSERT_TRUE(rt.stop(c, 5s));
  rt.forget(c);
  EXPECT_EQ(rt.tenants().usage(1).device_bytes, actor_bytes + region_bytes) << "not freed yet";
  try {
    (void)rt.create_region({}, region_bytes, {rk::region_policy::immutable, 1, {}});
    ADD_FAILURE() << "a region that fits only once the given-up bytes are freed";
  } catch (const rk::error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("come back once every handler call running since they were given up has returned"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("after waiting 2 s"), std::string::npos) << "it says it waited: " << text;
  }

  const auto done = rt.receive(10s);
  ASSERT_TRUE(done.has_value());
  ASSERT_EQ(rk::wait_until([&] { return rt.tables().pending_releases == 0; }, [] { return false; },
                           10'000'000'000ull),
            rk::wait_result::ready);
  EXPECT_EQ(rt.tenants().usage(1).device_bytes, 0u) << "refunded once freed";
  EXPECT_NO_THROW(
      rt.unregister_region(rt.create_region({}, region_bytes, {rk::region_policy::immutable, 1, {}})));
  EXPECT_TRUE(rt.shutdown().drained);
}

// forget() of an actor whose stop a paused runtime cannot confirm names the pause (it blamed queued
// messages or a deferring handler).
TEST_P(HardeningCases, ForgetOfAnActorStoppingWhilePausedNamesThePause) {
  rk::runtime rt(options());
  const actor_index c = rt.spawn<counter>("c", small_mailbox());
  rt.start();
  ASSERT_TRUE(rt.pause(5s));
  EXPECT_FALSE(rt.stop(c, 100ms)) << "a paused worker confirms no stop";
  expect_refused([&] { rt.forget(c); }, "the runtime is paused (pause())");
  rt.resume();
  ASSERT_TRUE(rt.stop(c, 5s));
  EXPECT_NO_THROW(rt.forget(c));
  EXPECT_TRUE(rt.shutdown().drained);
}

// --- one fault, one record -----------------------------------------------------------------------------

TEST_P(HardeningCases, AFaultReportedByEveryThreadIsAuditedOnce) {
  rk::runtime rt(options());
  const actor_index a = rt.spawn<fault_everywhere>("faulty", small_mailbox());
  rt.start();
  ASSERT_EQ(rt.send(a, msg_ping, {}), status::enqueued);
  ASSERT_EQ(rk::wait_until([&] { return rt.stats().actors[a].fault_code == 5; }, [] { return false; },
                           10'000'000'000ull),
            rk::wait_result::ready);
  EXPECT_EQ(audited(rt, rk::audit_event::actor_fault, a), 1u)
      << "32 threads x 2 calls of ctx.fault are one fault";
  for (const rk::audit_entry& e : rt.audit_records()) {
    if (e.record.event == rk::audit_event::actor_fault) {
      EXPECT_EQ(e.record.detail, 5u) << "the first code";
    }
  }
  (void)rt.shutdown();
  EXPECT_EQ(rt.stats().actors[a].fault_code, 5u) << "a later ctx.fault does not replace the first code";
}

// A payload naming no bytes (null data with a size) is refused, counted and audited, the sender's actor and
// every other one going on; it was copied from address 0 after the slot was claimed (the process crashed).
TEST_P(HardeningCases, APayloadThatNamesNoBytesIsRefusedNotRead) {
  rk::runtime rt(options());
  const actor_index sink = rt.spawn<counter>("sink", small_mailbox());
  const actor_index sender =
      rt.spawn<null_payload_sender>("sender", small_mailbox(), null_payload_sender::state{sink});
  rt.start();
  ASSERT_EQ(rt.send(sender, msg_ping, {}), status::enqueued);
  const ping_payload verdicts = reply_of(rt);
  EXPECT_EQ(verdicts.sequence, static_cast<std::uint64_t>(status::invalid_descriptor));
  EXPECT_EQ(verdicts.value, static_cast<std::uint64_t>(status::invalid_descriptor));
  EXPECT_EQ(rt.send_wait(sink, msg_count, rk::as_bytes(ping_payload{1, 1}), 10s), status::delivered);
  // Audited like any invalid descriptor, one record per message (they left none).
  EXPECT_EQ(audited(rt, rk::audit_event::descriptor_violation, sender), 3u);
  const rk::shutdown_report report = rt.shutdown();
  EXPECT_TRUE(report.drained);
  EXPECT_EQ(rt.stats().actors[sender].sent[static_cast<int>(status::invalid_descriptor)], 3u)
      << "one single send and a batch of two";
  EXPECT_EQ(rt.state<counter>(sink).count, 1u) << "only the host's message arrived";
}

} // namespace rk_cases
