// Remote entries and the outbound ring (ringkernel/host/detail/remote.hpp), on the CPU backend (also run
// under ThreadSanitizer): what rk::cluster's proxy relies on, tested without MPI. Two runtimes in one
// process stand for two ranks; the test moves messages between their outbound rings and gateways the way
// the proxy does, translating addresses as it would.

#include "case_fixture.hpp"

#include <ringkernel/host/detail/remote.hpp>

#include <thread>

namespace rk_cases {
namespace {

namespace remote = rk::detail::remote;

rk::runtime_options rank_options(std::uint32_t outbound_slots = 64) {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.max_actors = 64;
  o.host_ring = {256, 1024};
  o.cluster_outbound = {outbound_slots, 256};
  o.drain_timeout = 5s;
  return o;
}

//! The oldest message in `rt`'s outbound ring, waiting up to 5 s for one.
std::optional<rk::received_message> next_outbound(rk::runtime& rt) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  rk::received_message m;
  while (!remote::take_outbound(rt, m)) {
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::yield();
  }
  return m;
}

rk::byte_view bytes_of(const std::vector<std::byte>& v) {
  return {v.data(), static_cast<std::uint32_t>(v.size())};
}

rk::send_options as_tenant(std::uint64_t tenant) {
  rk::send_options o;
  o.tenant = tenant;
  return o;
}

TEST(RemoteEntries, ARoundTripBetweenTwoRuntimesGoesThroughBothOutboundRingsAndBothGateways) {
  rk::runtime a(rank_options());
  rk::runtime b(rank_options());
  const actor_index echo_b = b.spawn<echo>("echo", small_mailbox(16, 256));
  const actor_index echo_on_a = remote::add_entry(a, "b/echo", 0); // before start()
  (void)a.spawn<counter>("a's own", small_mailbox(16, 256));       // a runtime starts with one actor at least
  a.start();
  b.start();
  const actor_index a_host_on_b = remote::add_entry(b, "a/host", 0); // while running

  const ping_payload p{5, 6};
  ASSERT_EQ(a.send_wait(echo_on_a, msg_ping, rk::as_bytes(p), 5s), status::delivered)
      << "delivered = decided on a's device and written to its outbound ring";
  const auto out = next_outbound(a);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->header.destination, echo_on_a);
  EXPECT_EQ(out->header.source, rk::host_actor);
  ASSERT_EQ(out->payload.size(), sizeof p);
  EXPECT_FALSE(a.receive(0ms).has_value()) << "nothing bound for another rank reaches the host's receive()";

  rk::envelope to_b = out->header; // what b's proxy hands its gateway
  to_b.destination = echo_b;
  to_b.source = a_host_on_b;
  ASSERT_EQ(remote::relay(b, to_b, bytes_of(out->payload)), status::enqueued);
  const auto back = next_outbound(b);
  ASSERT_TRUE(back.has_value()) << "echo's reply to its remote sender leaves through b's outbound ring";
  EXPECT_EQ(back->header.destination, a_host_on_b);
  EXPECT_EQ(back->header.source, echo_b);

  rk::envelope to_a = back->header;
  to_a.destination = rk::host_actor;
  to_a.source = echo_on_a;
  ASSERT_EQ(remote::relay(a, to_a, bytes_of(back->payload)), status::enqueued);
  const auto reply = a.receive(5s);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->source(), echo_on_a) << "the reply comes from the remote entry standing for b's echo";
  EXPECT_EQ(reply->as<ping_payload>().value, 6u);

  EXPECT_TRUE(a.shutdown().drained);
  EXPECT_TRUE(b.shutdown().drained);
  EXPECT_EQ(b.state<echo>(echo_b).seen, 1u);
  EXPECT_EQ(remote::relayed(a), 1u);
  EXPECT_EQ(remote::relayed(b), 1u);
  EXPECT_EQ(a.stats().gateway_verdicts[static_cast<int>(status::delivered)], 2u);
}

TEST(RemoteEntries, TheSendingDeviceChecksTenantTypeAndSizeBeforeAnythingLeaves) {
  rk::runtime a(rank_options());
  a.tenants().add(7, rk::tenant_quota::standard());
  a.register_message_type({msg_secret, "secret", false, "internal"});
  const actor_index far = remote::add_entry(a, "far", 7);
  const actor_index fwd7 = a.spawn<forwarder>("fwd7", in_tenant(7, 16), forwarder::state{far});
  const actor_index fwd0 = a.spawn<forwarder>("fwd0", small_mailbox(16, 256), forwarder::state{far});
  a.start();

  const ping_payload p{1, 2};
  EXPECT_EQ(a.send_wait(far, msg_ping, rk::as_bytes(p), 5s, as_tenant(0)), status::tenant_mismatch)
      << "a host send as tenant 0 to a tenant-7 actor on another rank";
  std::vector<std::byte> big(300);
  EXPECT_EQ(a.send_wait(far, msg_ping, bytes_of(big), 5s, as_tenant(7)), status::too_large)
      << "larger than the outbound ring's 192-byte payload";
  ASSERT_EQ(a.send_wait(fwd7, msg_secret, rk::as_bytes(p), 5s, as_tenant(7)), status::delivered);
  ASSERT_EQ(a.send_wait(fwd0, msg_ping, rk::as_bytes(p), 5s), status::delivered);
  ASSERT_EQ(a.send_wait(fwd7, msg_ping, rk::as_bytes(p), 5s, as_tenant(7)), status::delivered);

  const auto out = next_outbound(a);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->header.source, fwd7);
  EXPECT_EQ(out->header.tenant, 7u) << "the device stamps the sender's tenant";
  EXPECT_EQ(out->header.type_id, msg_ping);
  EXPECT_TRUE(a.shutdown().drained);
  rk::received_message extra;
  EXPECT_FALSE(remote::take_outbound(a, extra)) << "only the one allowed send left the device";
  EXPECT_EQ(a.state<forwarder>(fwd7).forwarded, 1u);
  EXPECT_EQ(a.state<forwarder>(fwd7).failed, 1u) << "msg_secret is not routable K2K";
  EXPECT_EQ(a.state<forwarder>(fwd0).failed, 1u) << "tenant 0 may not send to tenant 7";
}

TEST(RemoteEntries, ARelayedMessageKeepsItsSourceOnlyWhenThatIsARemoteEntry) {
  rk::runtime b(rank_options());
  const actor_index reporter = b.spawn<envelope_reporter>("reporter", small_mailbox(16, 256));
  const actor_index local = b.spawn<echo>("local", small_mailbox(16, 256));
  const actor_index entry = remote::add_entry(b, "a/x", 0);
  b.start();
  for (const actor_index claimed : {entry, local, actor_index{12'345}, rk::host_actor}) {
    rk::envelope h;
    h.destination = reporter;
    h.source = claimed;
    h.type_id = msg_ping;
    ASSERT_EQ(remote::relay(b, h, {}), status::enqueued);
    const auto report = b.receive(5s);
    ASSERT_TRUE(report.has_value());
    EXPECT_EQ(report->as<ping_payload>().sequence, claimed == entry ? entry : rk::host_actor)
        << "claimed source " << claimed << ": only a remote entry may stand as the sender";
  }
  EXPECT_TRUE(b.shutdown().drained);
}

TEST(RemoteEntries, AFullOutboundRingHoldsHostSendsBackUntilTheProxyDrainsItAndLosesNothing) {
  rk::runtime a(rank_options(2));
  const actor_index far = remote::add_entry(a, "far", 0);
  (void)a.spawn<counter>("a's own", small_mailbox(16, 256));
  a.start();
  constexpr std::uint64_t n = 40;
  for (std::uint64_t i = 0; i < n; ++i) {
    const ping_payload p{i, i};
    ASSERT_EQ(a.send(far, msg_ping, rk::as_bytes(p)), status::enqueued) << i;
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto out = next_outbound(a);
    ASSERT_TRUE(out.has_value()) << "message " << i << " of " << n;
    EXPECT_EQ(out->as<ping_payload>().sequence, i) << "in order";
  }
  EXPECT_TRUE(a.shutdown().drained);
  EXPECT_EQ(a.stats().gateway_verdicts[static_cast<int>(status::delivered)], n);
}

// Messages from another rank to a host that is not receiving wait in the gateway's parking area while the
// host egress ring is full, as messages to a full mailbox do: they were refused (queue_full) after their
// senders had seen them delivered (a probe: 9,744 of 10,000 lost across two ranks).
TEST(RemoteEntries, RelaysToAFullHostWaitInTheParkingAreaAndLoseNothing) {
  rk::runtime_options o = rank_options();
  o.host_ring = {16, 256}; // the host egress ring holds 16
  rk::runtime a(o);
  const actor_index sender = remote::add_entry(a, "far/sender", 0);
  (void)a.spawn<counter>("a's own", small_mailbox(16, 256));
  a.start();
  constexpr std::uint64_t n = 40;
  for (std::uint64_t i = 0; i < n; ++i) {
    rk::envelope h;
    h.destination = rk::host_actor;
    h.source = sender;
    h.type_id = msg_ping;
    const ping_payload p{i, i};
    // queue_full: the ingress ring is full until the gateway takes from it (the proxy tries again too).
    status s = status::queue_full;
    for (const auto deadline = std::chrono::steady_clock::now() + 5s;
         s == status::queue_full && std::chrono::steady_clock::now() < deadline;)
      s = remote::relay(a, h, rk::as_bytes(p));
    ASSERT_EQ(s, status::enqueued) << i;
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto m = a.receive(5s);
    ASSERT_TRUE(m.has_value()) << "message " << i << " of " << n;
    EXPECT_EQ(m->as<ping_payload>().sequence, i) << "in order";
    EXPECT_EQ(m->source(), sender);
  }
  EXPECT_TRUE(a.shutdown().drained);
  const rk::runtime_stats st = a.stats();
  EXPECT_EQ(st.gateway_verdicts[static_cast<int>(status::delivered)], n);
  EXPECT_EQ(st.gateway_verdicts[static_cast<int>(status::queue_full)], 0u);
  EXPECT_GT(st.gateway_parked_total, 0u) << "some waited";
}

TEST(RemoteEntries, AnAliasLeadingToARemoteEntryNamesTheEntryToTheProxy) {
  rk::runtime a(rank_options());
  const actor_index far = remote::add_entry(a, "far", 0);
  const actor_index nickname = a.add_alias("nickname", far);
  (void)a.spawn<counter>("a's own", small_mailbox(16, 256));
  a.start();
  const ping_payload p{3, 4};
  ASSERT_EQ(a.send_wait(nickname, msg_ping, rk::as_bytes(p), 5s), status::delivered);
  const auto out = next_outbound(a);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->header.destination, far) << "the proxy maps remote entries, not the aliases leading to them";
  EXPECT_EQ(out->header.hops, 1u);
  EXPECT_TRUE(a.shutdown().drained);
}

TEST(RemoteEntries, AnEntryMarkedUnreachableRefusesEverySendOnTheDevice) {
  rk::runtime a(rank_options());
  const actor_index far = remote::add_entry(a, "far", 0);
  const actor_index nickname = a.add_alias("nickname", far);
  const actor_index fwd = a.spawn<forwarder>("fwd", small_mailbox(16, 256), forwarder::state{far});
  a.start();
  const ping_payload p{1, 2};
  ASSERT_EQ(a.send_wait(fwd, msg_ping, rk::as_bytes(p), 5s), status::delivered);
  ASSERT_TRUE(next_outbound(a).has_value()) << "reachable until marked";

  remote::mark_unreachable(a, far); // what the proxy does when far's rank is gone
  EXPECT_EQ(a.send_wait(far, msg_ping, rk::as_bytes(p), 5s), status::unreachable) << "decided by the gateway";
  EXPECT_EQ(a.send_wait(nickname, msg_ping, rk::as_bytes(p), 5s), status::unreachable) << "through an alias";
  ASSERT_EQ(a.send_wait(fwd, msg_ping, rk::as_bytes(p), 5s), status::delivered);
  EXPECT_TRUE(a.shutdown().drained);
  rk::received_message extra;
  EXPECT_FALSE(remote::take_outbound(a, extra)) << "nothing left for the unreachable rank";
  EXPECT_EQ(a.state<forwarder>(fwd).forwarded, 1u);
  EXPECT_EQ(a.state<forwarder>(fwd).failed, 1u) << "the handler's send was refused on the device";
  const rk::runtime_stats s = a.stats();
  EXPECT_EQ(s.gateway_verdicts[static_cast<int>(status::unreachable)], 2u);
  std::uint64_t handler_refusals = 0;
  for (const rk::actor_stats& st : s.actors)
    handler_refusals += st.sent[static_cast<int>(status::unreachable)];
  EXPECT_EQ(handler_refusals, 1u) << "counted under its own status";
}

TEST(RemoteEntries, OnlyRemoteEntriesCanBeMarkedUnreachable) {
  rk::runtime a(rank_options());
  const actor_index far = remote::add_entry(a, "far", 0);
  const actor_index own = a.spawn<counter>("own", small_mailbox(16, 256));
  const actor_index nickname = a.add_alias("nickname", far);
  expect_refused([&] { remote::mark_unreachable(a, own); }, "mark_remote_unreachable");
  expect_refused([&] { remote::mark_unreachable(a, nickname); }, "not a remote entry");
}

TEST(RemoteEntries, SetupErrorsSayWhatIsWrong) {
  rk::runtime_options plain = rank_options();
  plain.cluster_outbound = {0, 0};
  rk::runtime alone(plain);
  expect_refused([&] { (void)remote::add_entry(alone, "x", 0); }, "cluster_outbound");

  rk::runtime a(rank_options());
  expect_refused([&] { (void)remote::add_entry(a, "x", 99); }, "99");
  (void)remote::add_entry(a, "x", 0);
  expect_refused([&] { (void)remote::add_entry(a, "x", 0); }, "already exists");
  expect_refused([&] { (void)remote::add_entry(a, "", 0); }, "empty");

  rk::runtime_options odd = rank_options();
  odd.cluster_outbound = {3, 256};
  expect_refused([&] { rk::runtime bad(odd); }, "cluster_outbound");
}

} // namespace
} // namespace rk_cases
