// Refusal records (device/.../detail/relay_refusals.cuh, host/src/relay_refusals.hpp), on the CPU backend
// (also under ThreadSanitizer): a rank's gateway records each relayed message it refuses, for the proxy
// to send back as a refusal notice; until the proxy takes them, records hold back relays that could add
// more, never the gateway. Tested on one runtime standing for the receiving rank, relaying as the proxy
// does.

#include "case_fixture.hpp"

#include <ringkernel/host/detail/remote.hpp>

#include <thread>

namespace rk_cases {
namespace {

namespace remote = rk::detail::remote;

rk::runtime_options receiving_rank(std::uint32_t ingress_slots = 256, std::uint32_t parking_slots = 4096) {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.max_actors = 64;
  o.host_ring = {ingress_slots, 256};
  o.host_parking_slots = parking_slots;
  o.cluster_outbound = {64, 256};
  o.drain_timeout = 5s;
  return o;
}

//! What the proxy hands its gateway: a message from the sender's remote entry `from` to `to`.
rk::envelope relayed(actor_index from, actor_index to, std::uint64_t correlation, std::uint16_t flags = 0,
                     std::uint32_t type = msg_ping) {
  rk::envelope h;
  h.source = from;
  h.destination = to;
  h.type_id = type;
  h.correlation_id = correlation;
  h.flags = flags;
  return h;
}

//! Waits until the gateway settled everything it was given (up to 5 s).
bool settled(rk::runtime& rt) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (rt.stats().gateway_processed != remote::enqueued(rt)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

const ping_payload payload{1, 2};

TEST(RefusalRecords, ARefusedRelayIsRecordedWithWhatTheSendersRankNeedsAndNothingElseIs) {
  rk::runtime b(receiving_rank());
  const actor_index live = b.spawn<counter>("live", small_mailbox(16, 256));
  const actor_index gone = b.spawn<counter>("gone", small_mailbox(16, 256));
  const actor_index sender_entry = remote::add_entry(b, "a/sender", 0);
  b.start();
  ASSERT_TRUE(b.stop(gone));

  const std::uint16_t notify = rk::envelope_flags::notify_refusal;
  ASSERT_EQ(remote::relay(b, relayed(sender_entry, live, 1, notify), rk::as_bytes(payload)),
            status::enqueued);
  ASSERT_EQ(remote::relay(b, relayed(sender_entry, gone, 2, notify), rk::as_bytes(payload)),
            status::enqueued);
  ASSERT_EQ(remote::relay(b, relayed(sender_entry, gone, 3, rk::envelope_flags::drop_if_unroutable),
                          rk::as_bytes(payload)),
            status::enqueued);
  ASSERT_EQ(
      remote::relay(b, relayed(sender_entry, gone, 4, 0, rk::refusal_notice_type), rk::as_bytes(payload)),
      status::enqueued);
  ASSERT_EQ(b.send(gone, msg_ping, rk::as_bytes(payload)), status::enqueued) << "a host send, not a relay";
  ASSERT_TRUE(settled(b));

  rk::detail::refusal_record r;
  ASSERT_TRUE(remote::take_refusal(b, r)) << "the relay to the stopped actor";
  EXPECT_EQ(r.source, sender_entry);
  EXPECT_EQ(r.destination, gone);
  EXPECT_EQ(r.type_id, msg_ping);
  EXPECT_EQ(r.correlation_id, 2u);
  EXPECT_EQ(static_cast<status>(r.verdict), status::not_found);
  EXPECT_EQ(r.flags, notify) << "the sender's flags, without the runtime's";
  EXPECT_FALSE(remote::take_refusal(b, r))
      << "no record for a delivered relay, a dropped one (drop_if_unroutable), a refused notice, a host send";
  EXPECT_EQ(remote::refusals_pending(b), 0u);
  EXPECT_TRUE(b.shutdown().drained);
}

TEST(RefusalRecords, RecordsNotTakenHoldBackRelaysThatCouldAddOneAndTakingOneLetsTheNextIn) {
  // 16 ingress slots + 16 parking slots: room for 64 records (the smallest channel).
  rk::runtime b(receiving_rank(16, 16));
  const actor_index gone = b.spawn<counter>("gone", small_mailbox(16, 256));
  const actor_index live = b.spawn<counter>("live", small_mailbox(256, 256));
  const actor_index sender_entry = remote::add_entry(b, "a/sender", 0);
  b.start();
  ASSERT_TRUE(b.stop(gone));

  std::uint64_t admitted = 0;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (admitted < 64 && std::chrono::steady_clock::now() < deadline) { // queue_full: ingress busy, retry
    if (remote::relay(b, relayed(sender_entry, gone, admitted), rk::as_bytes(payload)) == status::enqueued)
      ++admitted;
  }
  ASSERT_EQ(admitted, 64u);
  ASSERT_TRUE(settled(b));
  EXPECT_EQ(remote::refusals_pending(b), 64u);
  for (int attempt = 0; attempt < 100; ++attempt)
    ASSERT_EQ(remote::relay(b, relayed(sender_entry, live, 1000), rk::as_bytes(payload)), status::queue_full)
        << "with 64 records not taken, even a relay that would be delivered waits: it could be refused";
  ASSERT_EQ(
      remote::relay(b, relayed(sender_entry, live, 2000, 0, rk::refusal_notice_type), rk::as_bytes(payload)),
      status::enqueued)
      << "a notice is never noticed, so it is not held back";

  rk::detail::refusal_record r;
  ASSERT_TRUE(remote::take_refusal(b, r));
  EXPECT_EQ(r.correlation_id, 0u) << "oldest first";
  ASSERT_EQ(remote::relay(b, relayed(sender_entry, gone, 64), rk::as_bytes(payload)), status::enqueued);
  ASSERT_TRUE(settled(b));
  for (std::uint64_t expected = 1; expected <= 64; ++expected) {
    ASSERT_TRUE(remote::take_refusal(b, r));
    EXPECT_EQ(r.correlation_id, expected) << "none overwritten, none lost";
  }
  EXPECT_FALSE(remote::take_refusal(b, r));
  EXPECT_TRUE(b.shutdown().drained);
  EXPECT_EQ(b.stats().gateway_verdicts[static_cast<int>(status::not_found)], 65u);
}

TEST(RefusalRecords, ManyRelaysRacingRefusalsAndTakesLoseNoRecordAndOverwriteNone) {
  rk::runtime b(receiving_rank(16, 16)); // 64 records: the producer runs into the bound again and again
  const actor_index gone = b.spawn<counter>("gone", small_mailbox(16, 256));
  const actor_index live = b.spawn<counter>("live", small_mailbox(1024, 128));
  const actor_index sender_entry = remote::add_entry(b, "a/sender", 0);
  b.start();
  ASSERT_TRUE(b.stop(gone));
  constexpr std::uint64_t n = 6000; // ~4,000 refusals: 60 laps of the 64 records
  std::atomic<bool> done{false};
  std::vector<std::uint64_t> seen;
  std::thread taker([&] {
    rk::detail::refusal_record r;
    for (;;) {
      if (remote::take_refusal(b, r)) {
        seen.push_back(r.correlation_id);
      } else if (done.load()) {
        if (!remote::take_refusal(b, r)) break;
        seen.push_back(r.correlation_id);
      } else {
        std::this_thread::yield();
      }
    }
  });
  std::uint64_t refused_sent = 0;
  for (std::uint64_t i = 0; i < n;) {
    const bool refuse = i % 3 != 0; // two in three go to the stopped actor
    if (remote::relay(b, relayed(sender_entry, refuse ? gone : live, i), rk::as_bytes(payload)) ==
        status::enqueued) {
      refused_sent += refuse ? 1 : 0;
      ++i;
    } else {
      std::this_thread::yield();
    }
  }
  ASSERT_TRUE(settled(b));
  done.store(true);
  taker.join();
  ASSERT_EQ(seen.size(), refused_sent);
  for (std::size_t k = 1; k < seen.size(); ++k) ASSERT_LT(seen[k - 1], seen[k]) << "in order, each once";
  for (std::uint64_t c : seen) ASSERT_NE(c % 3, 0u) << "only refused relays are recorded";
  EXPECT_TRUE(b.shutdown().drained);
}

} // namespace
} // namespace rk_cases
