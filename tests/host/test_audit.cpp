// The audit log: device-side emit into the audit ring (host memory, as on the CPU backend), the SHA-256
// hash chain, the sinks and the host drain. The verifier has its own suite (test_audit_verify.cpp).
#include "audit_test_support.hpp"

#include <algorithm>

namespace {
using namespace audit_test;

// --- record format and device-side emit ----------------------------------------------------------------

TEST(AuditRecord, LayoutIsFixedAndNamesAreStable) {
  EXPECT_EQ(sizeof(audit_record), 128u);
  EXPECT_EQ(rk::audit_slot_bytes, 192u);
  EXPECT_EQ(rk::audit_ring_geometry(256).validate(), nullptr);
  EXPECT_EQ(offsetof(audit_record, time), 0u);
  EXPECT_EQ(offsetof(audit_record, event), 68u);
  EXPECT_STREQ(rk::to_string(audit_event::cross_tenant_attempt), "cross_tenant_attempt");
  EXPECT_STREQ(rk::to_string(audit_event::audit_overflow), "audit_overflow");
  EXPECT_STREQ(rk::to_string(static_cast<audit_event>(0x8001)), "unknown");
  EXPECT_EQ(rk::audit_event_name(static_cast<audit_event>(0x8001)), nullptr);
  EXPECT_STREQ(rk::to_string(audit_level::critical), "critical");
  EXPECT_STREQ(rk::to_string(audit_origin::drain), "drain");
}

TEST(AuditEmit, FullRingCountsOverflowAndOverwritesNothing) {
  test_ring t(8);
  for (std::uint64_t i = 0; i < 8; ++i) {
    audit_record r = make_record(audit_event::quota_exceeded, i);
    r.origin = audit_origin::host; // emit stamps the device origin whatever the caller wrote
    ASSERT_EQ(rk::emit_audit(t.channel, r), status::delivered);
  }
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(rk::emit_audit(t.channel, make_record(audit_event::quota_exceeded, 100)), status::queue_full);
  EXPECT_EQ(rk::audit_overflow_count(t.overflow), 5u);

  const rk::audit_ring ring(t.ring.view());
  for (std::uint64_t i = 0; i < 8; ++i) {
    const std::byte* slot = ring.try_peek();
    ASSERT_NE(slot, nullptr);
    rk::envelope header;
    std::memcpy(&header, slot, sizeof(header));
    EXPECT_EQ(header.type_id, rk::audit_envelope_type);
    EXPECT_EQ(header.payload_length, sizeof(audit_record));
    audit_record r;
    std::memcpy(&r, slot + rk::envelope_bytes, sizeof(r));
    EXPECT_EQ(r.value, i) << "a full ring must never overwrite";
    EXPECT_EQ(r.origin, audit_origin::device);
    EXPECT_EQ(r.tenant, 7u);
    ring.pop();
  }
  EXPECT_EQ(ring.try_peek(), nullptr);

  rk::audit_channel disabled; // no ring: nothing written, nothing counted
  EXPECT_EQ(rk::emit_audit(disabled, make_record(audit_event::actor_fault, 1)), status::not_running);
}

// --- the chain -------------------------------------------------------------------------------------------

TEST(AuditChain, UsesSha256OverPrevAndTheDocumentedCanonicalForm) {
  // FIPS 180-2 test vector: SHA-256("abc").
  EXPECT_EQ(rk::audit_chain_hash("", "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  audit_record r;
  r.event = audit_event::cross_tenant_attempt;
  r.level = audit_level::error;
  r.origin = audit_origin::device;
  r.time = {1000, 2, 0};
  r.tenant = 7;
  r.other_tenant = 8;
  r.actor = 3;
  r.other_actor = rk::host_actor;
  r.tag = {11, 12};
  r.detail = static_cast<std::uint32_t>(status::tenant_mismatch);
  r.value = 42;
  const std::string canonical =
      R"({"seq":0,"event":"cross_tenant_attempt","level":"error","origin":"device","time_ns":1000,)"
      R"("time_logical":2,"tenant":7,"other_tenant":8,"actor":3,"other_actor":4294967295,"org_id":11,)"
      R"("engagement_id":12,"detail":7,"value":42})";
  EXPECT_EQ(rk::audit_canonical_form(0, r), canonical);

  // Expected hash computed independently: sha256(("0" * 64 + canonical).encode()) in Python.
  const audit_entry e = rk::make_audit_entry(0, r, rk::audit_genesis_hash);
  EXPECT_EQ(e.prev, rk::audit_genesis_hash);
  EXPECT_EQ(e.hash, "b2fdbfc6ab2b037ff4d34c54d747efc0cdf36bad4c16a3f4b2d5da83c5852e08");
  EXPECT_EQ(e.json, canonical.substr(0, canonical.size() - 1) + R"(,"prev":")" +
                        std::string(rk::audit_genesis_hash) + R"(","hash":")" + e.hash + R"("})");

  // The line parses back to the same entry.
  std::string why;
  const std::optional<audit_entry> back = rk::parse_audit_line(e.json, &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(back->sequence, 0u);
  EXPECT_EQ(back->hash, e.hash);
  EXPECT_EQ(rk::audit_canonical_form(back->sequence, back->record), canonical);

  // Codes without a built-in name are written as event_<code>, and still round-trip.
  r.event = static_cast<audit_event>(0x8002);
  const audit_entry custom = rk::make_audit_entry(5, r, e.hash);
  EXPECT_NE(custom.json.find(R"("event":"event_32770")"), std::string::npos) << custom.json;
  const std::optional<audit_entry> custom_back = rk::parse_audit_line(custom.json, &why);
  ASSERT_TRUE(custom_back) << why;
  EXPECT_EQ(custom_back->record.event, static_cast<audit_event>(0x8002));
}

TEST(AuditChain, ParserRejectsNonCanonicalSpellings) {
  const audit_entry e =
      rk::make_audit_entry(0, make_record(audit_event::actor_spawn, 5), rk::audit_genesis_hash);
  std::string why;
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = e.json;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  EXPECT_FALSE(rk::parse_audit_line(replaced(R"("tenant":7)", R"("tenant":07)"), &why));
  EXPECT_NE(why.find("canonical"), std::string::npos) << why;
  EXPECT_FALSE(rk::parse_audit_line(replaced(R"("event":"actor_spawn")", R"("event":"event_5")"), &why));
  EXPECT_FALSE(rk::parse_audit_line(replaced(R"("tenant":7)", R"("tenant": 7)"), &why));
  EXPECT_FALSE(
      rk::parse_audit_line(replaced(R"("event":"actor_spawn")", R"("event":"no_such_event")"), &why));
  EXPECT_NE(why.find("unknown event"), std::string::npos) << why;
  EXPECT_FALSE(rk::parse_audit_line(e.json + " ", &why));
  EXPECT_FALSE(rk::parse_audit_line(replaced(R"("actor":1)", R"("actor":4294967296)"), &why));
  EXPECT_TRUE(rk::parse_audit_line(e.json, &why)) << why;
}

// --- sinks -----------------------------------------------------------------------------------------------

TEST(AuditMemorySink, KeepsTheNewestAndCountsEvictions) {
  rk::audit_memory_sink sink(3);
  std::string prev(rk::audit_genesis_hash);
  for (std::uint64_t i = 0; i < 10; ++i) {
    const audit_entry e = rk::make_audit_entry(i, make_record(audit_event::actor_spawn, i), prev);
    prev = e.hash;
    sink.write(e);
  }
  const std::vector<audit_entry> kept = sink.entries();
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].sequence, 7u);
  EXPECT_EQ(kept[2].sequence, 9u);
  EXPECT_EQ(sink.evicted(), 7u);
  EXPECT_EQ(sink.written(), 10u);
  EXPECT_THROW(rk::audit_memory_sink(0), rk::error);
}

TEST(AuditMemorySink, KeepsTheNewestOfWhatTheDrainDelivers) {
  test_ring t(16);
  auto memory = std::make_shared<rk::audit_memory_sink>(5);
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {memory});
  for (std::uint64_t i = 0; i < 12; ++i)
    ASSERT_EQ(drain.record_host(make_record(audit_event::actor_spawn, i)), status::enqueued);
  const rk::audit_drain_stats s = drain.stop();
  EXPECT_EQ(s.entries, 13u) << "12 host records and the closing entry";
  const std::vector<audit_entry> kept = memory->entries();
  ASSERT_EQ(kept.size(), 5u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(kept[i].sequence, 8 + i);
    EXPECT_EQ(kept[i].record.value, 8 + i);
  }
  EXPECT_EQ(kept[4].record.event, audit_event::audit_closed);
  EXPECT_EQ(memory->evicted(), 8u);
}

TEST(AuditSinks, RejectBadConstruction) {
  EXPECT_THROW(rk::audit_callback_sink(nullptr), rk::error);
  try {
    rk::audit_file_sink sink("/nonexistent-dir-for-rk-audit/log.jsonl");
    ADD_FAILURE() << "creating a file in a missing directory must throw";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir-for-rk-audit/log.jsonl"), std::string::npos)
        << e.what();
  }
}

TEST(AuditSinks, AFileSinkOnAFullDiskWritesWholeLinesOnlyAndCatchesUpWhenThereIsRoom) {
  // A write cut short by a full disk left half a line, and the lines after it followed it. Then the sink
  // cut such a write back to where it began, so a nearly full disk took nothing at all.
  const scratch_dir dir;
  const auto path = dir.file("log.jsonl");
  rk::audit_file_sink sink(path);
  std::vector<std::string> lines;
  for (int i = 0; i < 2000; ++i)
    lines.push_back("{\"seq\":" + std::to_string(i) + ",\"filler\":\"" + std::string(100, 'x') + "\"}");
  const auto write = [&](std::size_t i) {
    rk::audit_entry e;
    e.json = lines[i];
    sink.write(e);
  };
  constexpr std::size_t before = 50;
  for (std::size_t i = 0; i < before; ++i) write(i);
  sink.flush();
  const std::uintmax_t whole = std::filesystem::file_size(path);
  std::uint64_t refused = 0;
  {
    const rk::test::file_size_limit full_disk(whole + 1000); // room for ~8 more lines, not a batch
    for (std::size_t i = before; i < lines.size(); ++i) {
      try {
        write(i);
      } catch (const rk::error& error) {
        ++refused;
        EXPECT_NE(std::string(error.what()).find("stay buffered"), std::string::npos) << error.what();
      }
    }
    EXPECT_THROW(sink.flush(), rk::error);
    const std::vector<std::string> kept = read_lines(path);
    EXPECT_GT(std::filesystem::file_size(path), whole) << "the whole lines that fit stay in the file";
    EXPECT_LE(std::filesystem::file_size(path), whole + 1000);
    ASSERT_GT(kept.size(), before);
    EXPECT_TRUE(std::equal(kept.begin(), kept.end(), lines.begin())) << "whole lines, in order";
  }
  EXPECT_GT(refused, 0u) << "the full disk was noticed";
  EXPECT_EQ(sink.refused(), 0u) << "entries that wait are not refused";
  sink.flush(); // room again: what waited goes out, in order
  EXPECT_EQ(read_lines(path), lines);
}

TEST(AuditSinks, AFileSinkTakesWhatANearlyFullDiskHoldsAndCountsTheEntriesItRefuses) {
  const scratch_dir dir;
  const auto path = dir.file("log.jsonl");
  rk::audit_file_sink sink(path);
  const std::string filler(200, 'x');
  const auto entry = [&](std::uint64_t i) {
    rk::audit_entry e;
    e.sequence = i;
    e.json = "{\"seq\":" + std::to_string(i) + ",\"filler\":\"" + filler + "\"}";
    return e;
  };
  std::uint64_t next = 0;
  std::uint64_t refused = 0;
  {
    const rk::test::file_size_limit full_disk(0);
    // Fill what may wait (pending_limit), then one more: refused and counted, not kept.
    while (refused == 0) {
      try {
        sink.write(entry(next));
      } catch (const rk::error& e) {
        if (std::string(e.what()).find("missing from the file") != std::string::npos) ++refused;
      }
      ++next;
    }
    EXPECT_EQ(sink.refused(), 1u);
  }
  const std::uint64_t waiting = next - 1; // every entry but the refused last one
  {
    // Room for about half of what waits: the disk takes that much, in whole lines, at the next flush.
    const std::uintmax_t room = rk::audit_file_sink::pending_limit / 2;
    const rk::test::file_size_limit nearly_full(room);
    EXPECT_THROW(sink.flush(), rk::error);
    const std::uintmax_t written = std::filesystem::file_size(path);
    EXPECT_LE(written, room);
    EXPECT_GT(written, room - 300) << "all the whole lines that fit";
    // Less waits now than the limit: the next entry is kept (the write still reports the full disk).
    EXPECT_THROW(sink.write(entry(next)), rk::error);
  }
  sink.flush();
  const std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(lines.size(), waiting + 1);
  for (std::uint64_t i = 0; i < waiting; ++i) ASSERT_EQ(lines[i], entry(i).json) << "line " << i;
  EXPECT_EQ(lines.back(), entry(next).json);
  EXPECT_EQ(sink.refused(), 1u);
}

// --- the drain ---------------------------------------------------------------------------------------------

TEST(AuditDrain, RejectsBadSetup) {
  test_ring t(8);
  auto memory = std::make_shared<rk::audit_memory_sink>(4);
  EXPECT_THROW(rk::audit_drain(t.ring.view(), nullptr, {memory}), rk::error);
  EXPECT_THROW(rk::audit_drain(t.ring.view(), t.overflow_reader(), {nullptr}), rk::error);
  host_ring small({8, 128}); // slots too small for envelope + record
  EXPECT_THROW(rk::audit_drain(small.view(), t.overflow_reader(), {memory}), rk::error);
  rk::audit_drain_options bad;
  bad.overflow_check_interval = 0ms;
  EXPECT_THROW(rk::audit_drain(t.ring.view(), t.overflow_reader(), {memory}, bad), rk::error);
}

// Several device producers and host threads at once: every accepted record reaches every sink exactly once,
// in per-producer order; every refused one is accounted for by an audit_overflow entry; the file verifies.
TEST(AuditDrain, ManyProducersArriveExactlyOnceAndLossesAreReported) {
  constexpr std::uint32_t device_producers = 4;
  constexpr std::uint32_t host_producers = 2;
  const std::uint64_t per_device = rk::test::scaled(20'000);
  const std::uint64_t per_host = rk::test::scaled(2'000);
  scratch_dir dir;
  test_ring t(64);

  struct seen {
    std::uint64_t sequence;
    audit_event event;
    audit_origin origin;
    std::uint64_t value;
    rk::actor_index actor;
  };
  std::vector<seen> via_callback; // written by the drain thread only; read after stop() joined it
  auto callback = std::make_shared<rk::audit_callback_sink>([&](const audit_entry& e) {
    via_callback.push_back({e.sequence, e.record.event, e.record.origin, e.record.value, e.record.actor});
  });
  auto memory = std::make_shared<rk::audit_memory_sink>(1'000);
  auto file = std::make_shared<rk::audit_file_sink>(dir.file("audit.jsonl"));
  rk::audit_drain_options options;
  options.overflow_check_interval = 1ms;
  options.idle_sleep_max_ns = 20'000;
  options.read_claimed = t.claimed_reader();
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {memory, callback, file}, options);

  std::atomic<bool> go{false};
  std::vector<std::vector<std::uint64_t>> delivered(device_producers);
  std::vector<std::uint64_t> refused(device_producers, 0);
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < device_producers; ++p) {
    threads.emplace_back([&, p] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      // Even producers retry a refused record until it is accepted (every one of their records must
      // arrive); odd ones give it up. Each refusal counts as a lost record either way.
      const bool retries = p % 2 == 0;
      rk::backoff after_full;
      for (std::uint64_t i = 0; i < per_device; ++i) {
        const std::uint64_t value = (std::uint64_t{p} << 32) | i;
        for (;;) {
          const status s =
              rk::emit_audit(t.channel, make_record(audit_event::cross_tenant_attempt, value, p));
          if (s == status::delivered) {
            delivered[p].push_back(value);
            after_full.reset();
            break;
          }
          ASSERT_EQ(s, status::queue_full);
          ++refused[p];
          after_full.pause();
          if (!retries) break;
        }
      }
    });
  }
  for (std::uint32_t h = 0; h < host_producers; ++h) {
    threads.emplace_back([&, h] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (std::uint64_t i = 0; i < per_host; ++i) {
        const rk::actor_index actor = 100 + h;
        ASSERT_EQ(drain.record_host(make_record(audit_event::actor_spawn, i, actor)), status::enqueued);
      }
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  const rk::audit_drain_stats stats = drain.stop();

  std::uint64_t total_refused = 0, total_delivered = 0;
  for (std::uint32_t p = 0; p < device_producers; ++p) {
    total_refused += refused[p];
    total_delivered += delivered[p].size();
  }
  for (std::uint32_t p = 0; p < device_producers; p += 2) EXPECT_EQ(delivered[p].size(), per_device);
  EXPECT_EQ(rk::audit_overflow_count(t.overflow), total_refused);

  // Sequence numbers are dense and in order; every delivered record appears exactly once, per-producer FIFO.
  ASSERT_EQ(via_callback.size(), stats.entries);
  std::vector<std::vector<std::uint64_t>> arrived(device_producers);
  std::map<rk::actor_index, std::uint64_t> host_next;
  std::uint64_t lost_reported = 0;
  for (std::size_t i = 0; i < via_callback.size(); ++i) {
    const seen& s = via_callback[i];
    ASSERT_EQ(s.sequence, i);
    if (s.event == audit_event::cross_tenant_attempt) {
      ASSERT_EQ(s.origin, audit_origin::device);
      arrived[s.value >> 32].push_back(s.value);
    } else if (s.event == audit_event::actor_spawn) {
      ASSERT_EQ(s.origin, audit_origin::host);
      ASSERT_EQ(s.value, host_next[s.actor]++) << "host records of one thread arrive in call order";
    } else if (s.event == audit_event::audit_overflow) {
      ASSERT_EQ(s.origin, audit_origin::drain);
      lost_reported += s.value;
    } else {
      ASSERT_EQ(s.event, audit_event::audit_closed);
      ASSERT_EQ(i, via_callback.size() - 1) << "the closing entry is the last";
    }
  }
  for (std::uint32_t p = 0; p < device_producers; ++p)
    EXPECT_EQ(arrived[p], delivered[p]) << "producer " << p << ": lost, duplicated or reordered records";
  for (std::uint32_t h = 0; h < host_producers; ++h) EXPECT_EQ(host_next[100 + h], per_host);
  EXPECT_EQ(lost_reported, total_refused) << "every refused record is reported, none twice";
  EXPECT_EQ(stats.records_lost, total_refused);
  EXPECT_EQ(stats.device_records, total_delivered);
  EXPECT_EQ(stats.host_records, host_producers * per_host);
  EXPECT_EQ(stats.sink_failures, 0u) << stats.last_failure;
  EXPECT_TRUE(stats.closed);
  EXPECT_TRUE(stats.complete);

  // The bounded memory sink kept the newest 1000 and counted the rest.
  EXPECT_EQ(memory->written(), stats.entries);
  EXPECT_EQ(memory->evicted(), stats.entries - 1'000);
  EXPECT_EQ(memory->entries().back().record.event, audit_event::audit_closed);

  const rk::audit_verify_result v = rk::verify_audit_log(dir.file("audit.jsonl"));
  EXPECT_TRUE(v.intact()) << "line " << v.bad_line << ": " << v.reason;
  EXPECT_EQ(v.entries, stats.entries);
  EXPECT_EQ(v.head, stats.head);
  EXPECT_TRUE(v.closed);
  RecordProperty("records_delivered", std::to_string(total_delivered));
  RecordProperty("records_lost", std::to_string(total_refused));
}

TEST(AuditDrain, FullRingIsReportedAsAuditOverflowWithTheLostCount) {
  test_ring t(4);
  for (std::uint64_t i = 0; i < 10; ++i)
    (void)rk::emit_audit(t.channel, make_record(audit_event::descriptor_violation, i));
  ASSERT_EQ(rk::audit_overflow_count(t.overflow), 6u);

  auto memory = std::make_shared<rk::audit_memory_sink>(100);
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {memory});
  ASSERT_EQ(drain.flush(), rk::wait_result::ready);
  std::vector<audit_entry> got = memory->entries();
  ASSERT_EQ(got.size(), 5u);
  for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(got[i].record.value, i);
  const audit_record& overflow = got[4].record;
  EXPECT_EQ(overflow.event, audit_event::audit_overflow);
  EXPECT_EQ(overflow.level, audit_level::error);
  EXPECT_EQ(overflow.origin, audit_origin::drain);
  EXPECT_EQ(overflow.detail, static_cast<std::uint32_t>(status::queue_full));
  EXPECT_EQ(overflow.value, 6u) << "the number of records the full ring refused";

  // The drain emptied the ring: it accepts records again, and the old loss is not reported twice.
  for (std::uint64_t i = 0; i < 3; ++i)
    ASSERT_EQ(rk::emit_audit(t.channel, make_record(audit_event::descriptor_violation, 100 + i)),
              status::delivered);
  const rk::audit_drain_stats s = drain.stop();
  got = memory->entries();
  EXPECT_EQ(count_event(got, audit_event::audit_overflow), 1u);
  EXPECT_EQ(count_event(got, audit_event::descriptor_violation), 7u);
  EXPECT_EQ(s.records_lost, 6u);
  EXPECT_EQ(s.overflow_reports, 1u);
}

TEST(AuditDrain, OverflowCounterIsPolledWhileRunning) {
  test_ring t(8);
  std::atomic<std::uint64_t> lost{0}; // stands in for the device counter the runtime copies back
  auto memory = std::make_shared<rk::audit_memory_sink>(100);
  rk::audit_drain_options options;
  options.overflow_check_interval = 1ms;
  rk::audit_drain drain(
      t.ring.view(), [&] { return lost.load(); }, {memory}, options);

  auto overflow_values = [&] {
    std::vector<std::uint64_t> v;
    for (const auto& e : memory->entries())
      if (e.record.event == audit_event::audit_overflow) v.push_back(e.record.value);
    return v;
  };
  lost.store(3);
  ASSERT_TRUE(eventually([&] { return overflow_values().size() == 1; }))
      << "no flush: the drain polls by itself";
  EXPECT_EQ(overflow_values(), std::vector<std::uint64_t>{3});
  lost.store(10);
  ASSERT_TRUE(eventually([&] { return overflow_values().size() == 2; }));
  EXPECT_EQ(overflow_values(), (std::vector<std::uint64_t>{3, 7}))
      << "each report carries the growth since the last";
  const rk::audit_drain_stats s = drain.stop();
  EXPECT_EQ(overflow_values().size(), 2u) << "nothing new to report at stop";
  EXPECT_EQ(s.records_lost, 10u);
}

TEST(AuditDrain, StopReportsTheFinalOverflowBeforeClosing) {
  test_ring t(8);
  std::atomic<std::uint64_t> lost{0};
  auto memory = std::make_shared<rk::audit_memory_sink>(100);
  rk::audit_drain_options options;
  options.overflow_check_interval = std::chrono::hours(1); // only flush() and stop() look
  rk::audit_drain drain(
      t.ring.view(), [&] { return lost.load(); }, {memory}, options);
  ASSERT_EQ(drain.record_host(make_record(audit_event::actor_stop, 1)), status::enqueued);
  lost.store(4);
  const rk::audit_drain_stats s = drain.stop();
  const std::vector<audit_entry> got = memory->entries();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].record.event, audit_event::actor_stop);
  EXPECT_EQ(got[1].record.event, audit_event::audit_overflow);
  EXPECT_EQ(got[1].record.value, 4u);
  EXPECT_EQ(got[2].record.event, audit_event::audit_closed);
  EXPECT_EQ(got[2].record.value, 2u) << "the closing entry counts the entries before it";
  EXPECT_EQ(s.records_lost, 4u);
}

TEST(AuditDrain, FlushDeliversEverythingInTheRingAndQueuedOnTheHost) {
  test_ring t(64);
  auto memory = std::make_shared<rk::audit_memory_sink>(1'000);
  rk::audit_drain_options options;
  options.idle_sleep_max_ns = 50'000'000; // a sleepy drain: flush() must not depend on its polling
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {memory}, options);
  for (std::uint32_t round = 0; round < 5; ++round) {
    for (std::uint64_t i = 0; i < 50; ++i)
      ASSERT_EQ(rk::emit_audit(t.channel, make_record(audit_event::quota_exceeded, round * 100 + i)),
                status::delivered);
    for (std::uint64_t i = 0; i < 5; ++i)
      ASSERT_EQ(drain.record_host(make_record(audit_event::actor_spawn, i)), status::enqueued);
    ASSERT_EQ(drain.flush(), rk::wait_result::ready);
    const std::vector<audit_entry> got = memory->entries();
    ASSERT_EQ(got.size(), 55u * (round + 1)) << "round " << round;
    EXPECT_EQ(count_event(got, audit_event::quota_exceeded), 50u * (round + 1));
  }
  const rk::audit_drain_stats s = drain.stop();
  EXPECT_EQ(s.entries, 5u * 55 + 1);
}

TEST(AuditDrain, FlushWaitsForClaimedRecordsWhenItCanSeeTheClaimCounter) {
  test_ring t(8);
  auto memory = std::make_shared<rk::audit_memory_sink>(100);
  rk::audit_drain_options options;
  options.read_claimed = t.claimed_reader();
  options.stop_timeout = 100ms;
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {memory}, options);

  // A producer that has claimed a slot but not yet published it.
  const rk::audit_ring ring(t.ring.view());
  const rk::ring_claim claim = ring.try_claim(1);
  ASSERT_TRUE(claim.ok);
  EXPECT_EQ(drain.flush(50ms), rk::wait_result::timed_out);
  // The drain gives up at the same deadline as the caller; it records that it could not finish.
  EXPECT_TRUE(eventually([&] { return !drain.stats().complete; }));

  rk::envelope header;
  header.type_id = rk::audit_envelope_type;
  header.payload_length = sizeof(audit_record);
  const audit_record r = make_record(audit_event::actor_fault, 77);
  rk::audit_ring::write_slot(ring.slot_at(claim.position), header, &r);
  ring.publish(claim.position);
  ASSERT_EQ(drain.flush(), rk::wait_result::ready);
  const std::vector<audit_entry> got = memory->entries();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].record.value, 77u);
  drain.stop();
}

TEST(AuditDrain, StopIsIdempotentAndLateCallsAreRefused) {
  scratch_dir dir;
  test_ring t(8);
  auto file = std::make_shared<rk::audit_file_sink>(dir.file("log.jsonl"));
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {file});
  ASSERT_EQ(rk::emit_audit(t.channel, make_record(audit_event::actor_fault, 1)), status::delivered);
  const rk::audit_drain_stats first = drain.stop();
  const rk::audit_drain_stats second = drain.stop();
  EXPECT_EQ(first.entries, 2u);
  EXPECT_EQ(second.entries, first.entries);
  EXPECT_EQ(second.head, first.head);
  EXPECT_EQ(drain.record_host(make_record(audit_event::actor_stop, 2)), status::not_running);
  EXPECT_EQ(drain.flush(), rk::wait_result::aborted);
  EXPECT_EQ(read_lines(dir.file("log.jsonl")).size(), 2u)
      << "one closing entry, however often stop() is called";
}

TEST(AuditDrain, DestructorStopsFlushesAndCloses) {
  scratch_dir dir;
  test_ring t(8);
  {
    auto file = std::make_shared<rk::audit_file_sink>(dir.file("log.jsonl"));
    rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {file});
    for (std::uint64_t i = 0; i < 6; ++i)
      ASSERT_EQ(rk::emit_audit(t.channel, make_record(audit_event::actor_spawn, i)), status::delivered);
    ASSERT_EQ(drain.record_host(make_record(audit_event::actor_stop, 9)), status::enqueued);
  }
  const rk::audit_verify_result v = rk::verify_audit_log(dir.file("log.jsonl"));
  EXPECT_TRUE(v.intact()) << v.reason;
  EXPECT_EQ(v.entries, 8u);
  EXPECT_TRUE(v.closed);
}

TEST(AuditDrain, SinkFailuresAreCountedAndOtherSinksStillGetEverything) {
  struct failing_sink final : rk::audit_sink {
    void write(const audit_entry&) override { throw std::runtime_error("disk on fire"); }
  };
  test_ring t(8);
  auto memory = std::make_shared<rk::audit_memory_sink>(100);
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {std::make_shared<failing_sink>(), memory});
  for (std::uint64_t i = 0; i < 4; ++i)
    ASSERT_EQ(drain.record_host(make_record(audit_event::actor_spawn, i)), status::enqueued);
  const rk::audit_drain_stats s = drain.stop();
  EXPECT_EQ(memory->entries().size(), 5u);
  EXPECT_EQ(s.sink_failures, 5u);
  EXPECT_NE(s.last_failure.find("disk on fire"), std::string::npos) << s.last_failure;
}

TEST(AuditDrain, CallsFromASinkDoNotDeadlock) {
  test_ring t(8);
  rk::audit_drain* self = nullptr;
  std::atomic<int> flush_result{-1};
  auto reentrant = std::make_shared<rk::audit_callback_sink>([&](const audit_entry& e) {
    if (e.record.event == audit_event::actor_spawn)
      flush_result.store(static_cast<int>(self->flush(1s)), std::memory_order_relaxed);
  });
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {reentrant});
  self = &drain;
  ASSERT_EQ(drain.record_host(make_record(audit_event::actor_spawn, 1)), status::enqueued);
  ASSERT_EQ(drain.flush(), rk::wait_result::ready);
  EXPECT_EQ(flush_result.load(), static_cast<int>(rk::wait_result::aborted));
  drain.stop();
}

TEST(AuditDrain, HostRecordsAreStampedWithTheHostOriginAndATime) {
  test_ring t(8);
  auto memory = std::make_shared<rk::audit_memory_sink>(100);
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {memory});
  audit_record untimed = make_record(audit_event::actor_spawn, 1);
  untimed.time = {};
  untimed.origin = audit_origin::device; // a host caller cannot pass its record off as a device one
  ASSERT_EQ(drain.record_host(untimed), status::enqueued);
  ASSERT_EQ(drain.record_host(make_record(audit_event::actor_stop, 2)), status::enqueued);
  drain.stop();
  const std::vector<audit_entry> got = memory->entries();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].record.origin, audit_origin::host);
  EXPECT_NE(got[0].record.time.physical_ns, 0u) << "an unset time gets the drain's HLC time";
  EXPECT_EQ(got[1].record.origin, audit_origin::host);
  EXPECT_EQ(got[1].record.time.physical_ns, 1'002u) << "a time the caller set is kept";
  EXPECT_LT(got[0].record.time, got[2].record.time) << "the closing entry is later than what it closes";
}

TEST(AuditDrain, ReaderFailuresAreCountedAndTheDrainGoesOn) {
  test_ring t(8);
  auto memory = std::make_shared<rk::audit_memory_sink>(100);
  std::atomic<int> mode{0}; // 0: throw, 1: report 5, 2: go backwards
  rk::audit_drain_options options;
  options.overflow_check_interval = std::chrono::hours(1);
  rk::audit_drain drain(
      t.ring.view(),
      [&]() -> std::uint64_t {
        if (mode.load() == 0) throw std::runtime_error("copy failed");
        return mode.load() == 1 ? 5 : 2;
      },
      {memory}, options);
  ASSERT_EQ(rk::emit_audit(t.channel, make_record(audit_event::actor_fault, 1)), status::delivered);
  ASSERT_EQ(drain.flush(), rk::wait_result::ready);
  rk::audit_drain_stats s = drain.stats();
  EXPECT_EQ(s.reader_failures, 1u);
  EXPECT_NE(s.last_failure.find("copy failed"), std::string::npos) << s.last_failure;
  EXPECT_EQ(memory->entries().size(), 1u) << "the record still arrived";
  mode.store(1);
  ASSERT_EQ(drain.flush(), rk::wait_result::ready);
  mode.store(2);
  s = drain.stop();
  EXPECT_EQ(s.reader_failures, 2u) << "a counter that goes backwards is a failure, not a report";
  EXPECT_EQ(s.records_lost, 5u);
  EXPECT_EQ(count_event(memory->entries(), audit_event::audit_overflow), 1u);
}

TEST(AuditDrain, MalformedSlotIsReportedNotDropped) {
  test_ring t(8);
  auto memory = std::make_shared<rk::audit_memory_sink>(100);
  const rk::audit_ring ring(t.ring.view());
  rk::envelope stray;
  stray.type_id = 1234;
  stray.source = 5;
  stray.payload_length = 8;
  const std::uint64_t payload = 0;
  ASSERT_EQ(ring.try_send(stray, &payload), status::delivered);
  ASSERT_EQ(rk::emit_audit(t.channel, make_record(audit_event::actor_fault, 3)), status::delivered);
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {memory});
  const rk::audit_drain_stats s = drain.stop();
  const std::vector<audit_entry> got = memory->entries();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].record.event, audit_event::audit_malformed);
  EXPECT_EQ(got[0].record.level, audit_level::critical);
  EXPECT_EQ(got[0].record.detail, 1234u);
  EXPECT_EQ(got[0].record.actor, 5u);
  EXPECT_EQ(got[1].record.value, 3u);
  EXPECT_EQ(s.malformed, 1u);
}

} // namespace
