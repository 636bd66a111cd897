// The MPSC mailbox on the CPU backend (host memory, the same header the GPU compiles).
#include <ringkernel/device/backoff.cuh>
#include <ringkernel/device/mailbox.cuh>
#include <ringkernel/device/message.cuh>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

namespace {

using rk::envelope;
using rk::mailbox;
using rk::ring_geometry;
using rk::status;
using rk::test::host_ring;

envelope header_for(std::uint32_t type, std::uint32_t length, std::uint64_t correlation = 0) {
  envelope e;
  e.type_id = type;
  e.payload_length = length;
  e.correlation_id = correlation;
  e.source = 7;
  e.destination = 9;
  return e;
}

struct record {
  std::uint32_t producer;
  std::uint32_t padding;
  std::uint64_t sequence;
  std::uint64_t check;
};

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

TEST(Mailbox, SingleProducerIsFifoAcrossManyLaps) {
  host_ring ring({64, 128});
  const mailbox mb(ring.view());
  std::uint64_t next_to_read = 0;
  for (std::uint64_t i = 0; i < 1'000; ++i) {
    ASSERT_EQ(mb.try_send(header_for(1, sizeof(i), i), &i), status::delivered);
    if (i % 3 == 2) { // consume in bursts so the ring wraps many times with varying fill
      while (const std::byte* slot = mb.try_peek()) {
        const rk::message m(slot);
        ASSERT_EQ(m.correlation_id(), next_to_read);
        ASSERT_EQ(*m.as<std::uint64_t>(), next_to_read);
        mb.pop();
        ++next_to_read;
      }
    }
  }
  while (const std::byte* slot = mb.try_peek()) {
    ASSERT_EQ(rk::message(slot).correlation_id(), next_to_read++);
    mb.pop();
  }
  EXPECT_EQ(next_to_read, 1'000u);
  EXPECT_EQ(mb.try_peek(), nullptr);
}

// The consumer that keeps its own head (the gateway, whose ring heads are in mapped memory) sees the
// same FIFO, frees slots for the producers' next lap, and leaves head where try_peek() expects it.
TEST(Mailbox, AConsumerWithItsOwnHeadCopyReadsTheSameFifo) {
  host_ring ring({4, 128});
  const mailbox mb(ring.view());
  std::uint64_t head = 0;
  for (std::uint64_t i = 0; i < 40; ++i) {
    ASSERT_EQ(mb.try_send(header_for(1, sizeof(i), i), &i), status::delivered);
    if (i % 4 == 3) {
      ASSERT_EQ(mb.try_send(header_for(1, sizeof(i), i), &i), status::queue_full) << "4 slots, all taken";
      while (const std::byte* slot = mb.try_peek_at(head)) {
        ASSERT_EQ(rk::message(slot).correlation_id(), head);
        mb.pop_at(head);
        ++head;
      }
    }
  }
  EXPECT_EQ(head, 40u);
  EXPECT_EQ(*ring.view().head, 40u);
  EXPECT_EQ(mb.try_peek(), nullptr);
  const std::uint64_t last = 40;
  ASSERT_EQ(mb.try_send(header_for(1, sizeof(last), last), &last), status::delivered);
  ASSERT_NE(mb.try_peek(), nullptr); // the plain consumer takes over where the head copy left off
  EXPECT_EQ(rk::message(mb.try_peek()).correlation_id(), 40u);
}

TEST(Mailbox, FullMailboxReturnsQueueFullAndLosesNothing) {
  host_ring ring({16, 128});
  const mailbox mb(ring.view());
  for (std::uint64_t i = 0; i < 16; ++i) ASSERT_EQ(mb.try_send(header_for(1, 8, i), &i), status::delivered);
  EXPECT_EQ(mb.approximate_size(), 16u);
  const std::uint64_t extra = 999;
  for (int attempt = 0; attempt < 5; ++attempt)
    EXPECT_EQ(mb.try_send(header_for(1, 8, extra), &extra), status::queue_full);
  EXPECT_EQ(mb.approximate_size(), 16u) << "a rejected send must not claim a slot";

  // Everything that was accepted is intact and in order; nothing was overwritten.
  for (std::uint64_t i = 0; i < 16; ++i) {
    const std::byte* slot = mb.try_peek();
    ASSERT_NE(slot, nullptr);
    ASSERT_EQ(*rk::message(slot).as<std::uint64_t>(), i);
    mb.pop();
    if (i == 0) { // one free slot: exactly one more send fits
      ASSERT_EQ(mb.try_send(header_for(1, 8, 16), &extra), status::delivered);
      ASSERT_EQ(mb.try_send(header_for(1, 8, 17), &extra), status::queue_full);
    }
  }
  const std::byte* last = mb.try_peek();
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(rk::message(last).correlation_id(), 16u);
  mb.pop();
  EXPECT_EQ(mb.try_peek(), nullptr);
}

TEST(Mailbox, OversizeReturnsTooLargeWithoutSideEffects) {
  host_ring ring({8, 256});
  const mailbox mb(ring.view());
  std::vector<std::byte> payload(256);
  EXPECT_EQ(mb.payload_capacity(), 192u);
  EXPECT_EQ(mb.try_send(header_for(1, 193), payload.data()), status::too_large);
  EXPECT_EQ(mb.approximate_size(), 0u);
  EXPECT_EQ(mb.try_peek(), nullptr);
  for (std::size_t i = 0; i < 192; ++i) payload[i] = static_cast<std::byte>(i);
  ASSERT_EQ(mb.try_send(header_for(1, 192), payload.data()), status::delivered);
  const std::byte* slot = mb.try_peek();
  ASSERT_NE(slot, nullptr);
  const rk::message m(slot);
  ASSERT_EQ(m.size(), 192u);
  EXPECT_EQ(std::memcmp(m.payload().data, payload.data(), 192), 0);
}

TEST(Mailbox, GeometryValidationExplainsEachMistake) {
  EXPECT_EQ(ring_geometry({256, 256}).validate(), nullptr);
  EXPECT_EQ(ring_geometry({2, 128}).validate(), nullptr);
  EXPECT_EQ(ring_geometry({1024, 1024}).validate(), nullptr);
  EXPECT_STRNE(ring_geometry({0, 256}).validate(), nullptr);
  EXPECT_NE(std::string(ring_geometry({100, 256}).validate()).find("power of two"), std::string::npos);
  EXPECT_NE(std::string(ring_geometry({256, 64}).validate()).find("at least 128"), std::string::npos);
  EXPECT_NE(std::string(ring_geometry({256, 200}).validate()).find("multiple of 64"), std::string::npos);
  EXPECT_NE(ring_geometry({256, 128 * 1024}).validate(), nullptr);
}

TEST(Mailbox, BatchClaimReservesConsecutiveSlotsOrNone) {
  host_ring ring({8, 128});
  const mailbox mb(ring.view());
  const rk::ring_claim c = mb.try_claim(5);
  ASSERT_TRUE(c.ok);
  EXPECT_EQ(c.position, 0u);
  EXPECT_FALSE(mb.try_claim(4).ok) << "only 3 free slots left";
  for (std::uint64_t p = c.position; p < c.position + 5; ++p) {
    envelope e = header_for(2, 0, p);
    mailbox::write_slot(mb.slot_at(p), e, &p);
    mb.publish(p);
  }
  const rk::ring_claim c2 = mb.try_claim(3);
  ASSERT_TRUE(c2.ok);
  EXPECT_EQ(c2.position, 5u);
  for (std::uint64_t p = 5; p < 8; ++p) {
    mailbox::write_slot(mb.slot_at(p), header_for(2, 0, p), &p);
    mb.publish(p);
  }
  for (std::uint64_t p = 0; p < 8; ++p) {
    const std::byte* slot = mb.try_peek();
    ASSERT_NE(slot, nullptr);
    EXPECT_EQ(rk::message(slot).correlation_id(), p);
    mb.pop();
  }
}

TEST(Mailbox, ConsumerSeesNothingUntilPublish) {
  host_ring ring({4, 128});
  const mailbox mb(ring.view());
  const rk::ring_claim c = mb.try_claim();
  ASSERT_TRUE(c.ok);
  const int unused = 0;
  mailbox::write_slot(mb.slot_at(c.position), header_for(3, 0), &unused);
  EXPECT_EQ(mb.try_peek(), nullptr) << "claimed and written but not published";
  mb.publish(c.position);
  EXPECT_NE(mb.try_peek(), nullptr);
}

// 8 producer threads x 1M messages into one mailbox: every message arrives exactly once, each producer's
// messages arrive in order, and a checksum over all payloads matches.
TEST(MailboxStress, EightProducersExactlyOnceAndPerProducerFifo) {
  constexpr std::uint32_t producers = 8;
  const std::uint64_t per_producer = rk::test::scaled(1'000'000);
  host_ring ring({1024, 128});
  const mailbox mb(ring.view());
  std::atomic<bool> go{false};
  std::atomic<std::uint64_t> queue_full_seen{0};

  std::vector<std::thread> threads;
  std::vector<std::uint64_t> sent_checksum(producers, 0);
  for (std::uint32_t p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      rk::backoff retry;
      for (std::uint64_t s = 0; s < per_producer; ++s) {
        const record r{p, 0, s, mix((std::uint64_t{p} << 40) ^ s)};
        status st;
        while ((st = mb.try_send(header_for(p, sizeof(r), s), &r)) == status::queue_full) {
          queue_full_seen.fetch_add(1, std::memory_order_relaxed);
          retry.pause();
        }
        ASSERT_EQ(st, status::delivered);
        retry.reset();
        sent_checksum[p] += r.check;
      }
    });
  }

  std::vector<std::uint64_t> next(producers, 0);
  std::uint64_t received_checksum = 0;
  std::uint64_t total = 0;
  go.store(true, std::memory_order_release);
  rk::backoff idle;
  while (total < producers * per_producer) {
    const std::byte* slot = mb.try_peek();
    if (slot == nullptr) {
      idle.pause();
      continue;
    }
    idle.reset();
    const rk::message m(slot);
    const record* r = m.as<record>();
    ASSERT_NE(r, nullptr);
    ASSERT_LT(r->producer, producers);
    ASSERT_EQ(r->sequence, next[r->producer]) << "producer " << r->producer << " out of order or duplicated";
    ASSERT_EQ(m.type(), r->producer);
    ASSERT_EQ(r->check, mix((std::uint64_t{r->producer} << 40) ^ r->sequence)) << "payload corrupted";
    ++next[r->producer];
    received_checksum += r->check;
    ++total;
    mb.pop();
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mb.try_peek(), nullptr) << "nothing beyond what was sent";
  std::uint64_t expected_checksum = 0;
  for (auto c : sent_checksum) expected_checksum += c;
  EXPECT_EQ(received_checksum, expected_checksum);
  for (std::uint32_t p = 0; p < producers; ++p) EXPECT_EQ(next[p], per_producer);
  RecordProperty("queue_full_retries", std::to_string(queue_full_seen.load()));
}

// Producers racing on batch claims of different sizes never overlap and never lose a message.
TEST(MailboxStress, ConcurrentBatchClaimsNeverOverlap) {
  constexpr std::uint32_t producers = 4;
  const std::uint64_t batches = rk::test::scaled(50'000);
  host_ring ring({256, 128});
  const mailbox mb(ring.view());
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      rk::backoff retry;
      std::uint64_t s = 0;
      for (std::uint64_t b = 0; b < batches; ++b) {
        const std::uint32_t count = 1 + static_cast<std::uint32_t>(b % 7);
        rk::ring_claim c;
        while (!(c = mb.try_claim(count)).ok) retry.pause();
        retry.reset();
        for (std::uint32_t i = 0; i < count; ++i) {
          const record r{p, 0, s, mix((std::uint64_t{p} << 40) ^ s)};
          ++s;
          mailbox::write_slot(mb.slot_at(c.position + i), header_for(p, sizeof(r)), &r);
          mb.publish(c.position + i);
        }
      }
    });
  }
  std::uint64_t expected_total = 0;
  for (std::uint64_t b = 0; b < batches; ++b) expected_total += 1 + b % 7;
  expected_total *= producers;
  std::vector<std::uint64_t> next(producers, 0);
  std::uint64_t total = 0;
  rk::backoff idle;
  while (total < expected_total) {
    const std::byte* slot = mb.try_peek();
    if (!slot) {
      idle.pause();
      continue;
    }
    idle.reset();
    const record* r = rk::message(slot).as<record>();
    ASSERT_EQ(r->sequence, next[r->producer]);
    ASSERT_EQ(r->check, mix((std::uint64_t{r->producer} << 40) ^ r->sequence));
    ++next[r->producer];
    ++total;
    mb.pop();
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mb.try_peek(), nullptr);
}

} // namespace
