// The sampled message trace (runtime_options::trace, trace.hpp) on the CPU backend, as a user reads it:
// which calls are recorded (every call, every N-th per actor), what a record says, that every sampled call
// is either kept or counted (device ring full, host eviction), the Chrome trace JSON parsed back, and the
// refusals of bad options. Both worker modes (scheduled and dedicated).
#include "../runtime/test_handlers.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using namespace rk_cases;

rk::runtime_options traced(std::uint32_t sample_every) {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.trace.sample_every = sample_every;
  return o;
}

rk::actor_options mode(bool dedicated) {
  rk::actor_options a;
  a.dedicated_worker = dedicated;
  a.mailbox = {256, 256}; // room for every message a test sends: nothing is refused as queue_full
  return a;
}

void send_pings(rk::runtime& rt, rk::actor_index to, std::uint64_t count) {
  for (std::uint64_t i = 0; i < count; ++i) {
    const ping_payload p{i, i};
    ASSERT_EQ(
        rt.send_blocking(to, msg_ping, rk::as_bytes(p), std::chrono::seconds(30), {.correlation_id = i}),
        rk::status::enqueued);
  }
}

//! Host -> a (forwarder) -> b (counter): two traced calls per message.
class TraceModes : public ::testing::TestWithParam<bool> {};

TEST_P(TraceModes, EveryCallIsRecordedWithWhoWhatAndWhen) {
  constexpr std::uint64_t n = 100;
  const auto test_begin = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                         std::chrono::system_clock::now().time_since_epoch())
                                                         .count());
  rk::runtime rt(traced(1));
  const rk::actor_index b = rt.spawn<counter>("b", mode(GetParam()));
  const rk::actor_index a = rt.spawn<forwarder>("a", mode(GetParam()), forwarder::state{b, 0, 0});
  rt.start();
  send_pings(rt, a, n);
  ASSERT_TRUE(rt.shutdown().drained);
  ASSERT_EQ(rt.state<counter>(b).count, n);

  const std::vector<rk::trace_record> records = rt.trace_records();
  ASSERT_EQ(records.size(), 2 * n);
  std::map<rk::actor_index, std::set<std::uint64_t>> correlations;
  for (const rk::trace_record& r : records) {
    EXPECT_EQ(r.message.type_id, msg_ping);
    EXPECT_EQ(r.call.outcome, rk::trace_outcome::handled);
    EXPECT_EQ(r.message.source, r.call.actor == a ? rk::host_actor : a);
    EXPECT_TRUE(r.call.actor == a || r.call.actor == b);
    EXPECT_LE(r.call.begin_ns, r.call.end_ns);
    // One clock (system_clock) on the CPU backend: sent, then handled, all after the test began (50 ms of
    // slack for a clock step).
    EXPECT_LE(r.message.timestamp.physical_ns, r.call.begin_ns + 50'000'000);
    EXPECT_GE(r.message.timestamp.physical_ns + 50'000'000, test_begin);
    correlations[r.call.actor].insert(r.message.correlation_id);
  }
  EXPECT_EQ(correlations[a].size(), n);
  EXPECT_EQ(correlations[b].size(), n);
  EXPECT_EQ(*correlations[b].rbegin(), n - 1);

  const rk::trace_stats s = rt.stats().trace;
  EXPECT_EQ(s.sample_every, 1u);
  EXPECT_EQ(s.collected, 2 * n);
  EXPECT_EQ(s.ring_full, 0u);
  EXPECT_EQ(s.evicted, 0u);
  EXPECT_EQ(s.kept, 2 * n);
}

//! Writes a forged tenant, source and type into its delivered (const) slot, deferring every other call.
struct identity_forger {
  static constexpr const char* name = "identity_forger";
  struct state {
    bool deferred = false;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    auto& header = const_cast<rk::envelope&>(m.header());
    header.tenant = 99;
    header.source = 12'345;
    header.type_id = msg_trap;
    s.deferred = !s.deferred;
    if (s.deferred) ctx.defer();
  }
};

// A record is the envelope as delivered: what a handler writes into its const slot (before it defers, or
// before it returns) is not recorded as who sent it (the copy was taken after the call: a forged tenant and
// source, also on the retry of a deferred message).
TEST_P(TraceModes, AHandlerCannotForgeWhatItsRecordsSay) {
  rk::runtime rt(traced(1));
  const rk::actor_index a = rt.spawn<identity_forger>("a", mode(GetParam()));
  rt.start();
  send_pings(rt, a, 10);
  ASSERT_TRUE(rt.shutdown().drained);
  const std::vector<rk::trace_record> records = rt.trace_records();
  ASSERT_EQ(records.size(), 20u) << "each message deferred once, then handled";
  std::uint64_t deferred = 0;
  for (const rk::trace_record& r : records) {
    EXPECT_EQ(r.message.tenant, 0u);
    EXPECT_EQ(r.message.source, rk::host_actor);
    EXPECT_EQ(r.message.type_id, msg_ping);
    deferred += r.call.outcome == rk::trace_outcome::deferred ? 1 : 0;
  }
  EXPECT_EQ(deferred, 10u);
}

TEST_P(TraceModes, EveryNthCallOfEachActor) {
  rk::runtime rt(traced(10));
  const rk::actor_index c = rt.spawn<counter>("c", mode(GetParam()));
  rt.start();
  send_pings(rt, c, 1000);
  ASSERT_TRUE(rt.shutdown().drained);
  const auto records = rt.trace_records();
  ASSERT_EQ(records.size(), 100u);
  // One host sender, one actor: calls come in order, and the 10th, 20th, ... are the ones recorded.
  for (std::size_t k = 0; k < records.size(); ++k) EXPECT_EQ(records[k].message.correlation_id, 10 * k + 9);
}

INSTANTIATE_TEST_SUITE_P(Both, TraceModes, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "dedicated" : "scheduled"; });

TEST(Trace, OffRecordsNothing) {
  rk::runtime rt(traced(0));
  const rk::actor_index c = rt.spawn<counter>("c");
  rt.start();
  send_pings(rt, c, 20);
  ASSERT_TRUE(rt.shutdown().drained);
  EXPECT_TRUE(rt.trace_records().empty());
  const rk::trace_stats s = rt.stats().trace;
  EXPECT_EQ(s.sample_every, 0u);
  EXPECT_EQ(s.collected + s.ring_full + s.evicted + s.kept, 0u);
  const auto doc = nlohmann::json::parse(rt.trace_json());
  for (const auto& e : doc["traceEvents"]) EXPECT_EQ(e["ph"], "M");
}

TEST(Trace, AFullRingIsCountedNotHidden) {
  rk::runtime_options o = traced(1);
  o.trace.ring_slots = 2;
  o.trace.collect_interval = std::chrono::seconds(10); // the collector stays out of the burst
  rk::runtime rt(o);
  const rk::actor_index c = rt.spawn<counter>("c", mode(false));
  rt.start();
  constexpr std::uint64_t n = 500;
  send_pings(rt, c, n);
  ASSERT_TRUE(rt.shutdown().drained);
  const rk::trace_stats s = rt.stats().trace;
  EXPECT_EQ(s.collected + s.ring_full, n);
  EXPECT_GE(s.ring_full, n / 2);
  EXPECT_EQ(s.kept, s.collected);
  EXPECT_EQ(rt.trace_records().size(), s.kept);
}

TEST(Trace, TheHostKeepsTheMostRecent) {
  rk::runtime_options o = traced(1);
  o.trace.max_records = 50;
  o.trace.collect_interval = std::chrono::milliseconds(1);
  rk::runtime rt(o);
  const rk::actor_index c = rt.spawn<counter>("c", mode(false));
  rt.start();
  send_pings(rt, c, 200);
  ASSERT_TRUE(rt.shutdown().drained);
  const auto records = rt.trace_records();
  ASSERT_EQ(records.size(), 50u);
  for (std::size_t k = 0; k < records.size(); ++k) EXPECT_EQ(records[k].message.correlation_id, 150 + k);
  const rk::trace_stats s = rt.stats().trace;
  EXPECT_EQ(s.collected, 200u);
  EXPECT_EQ(s.evicted, 150u);
  EXPECT_EQ(s.kept, 50u);
  EXPECT_EQ(s.ring_full, 0u);
}

TEST(Trace, AFaultingCallIsRecordedAsFaulted) {
  rk::runtime rt(traced(1));
  const rk::actor_index t = rt.spawn<trapper>("t");
  rt.start();
  const ping_payload p{1, 1};
  ASSERT_EQ(rt.send(t, msg_ping, rk::as_bytes(p), {.correlation_id = 1}), rk::status::enqueued);
  ASSERT_TRUE(rt.receive(std::chrono::seconds(30)).has_value());
  ASSERT_EQ(rt.send(t, msg_trap, rk::as_bytes(p), {.correlation_id = 2}), rk::status::enqueued);
  ASSERT_TRUE(rt.shutdown().drained);
  const auto records = rt.trace_records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].call.outcome, rk::trace_outcome::handled);
  EXPECT_EQ(records[1].call.outcome, rk::trace_outcome::faulted);
  EXPECT_EQ(records[1].message.type_id, msg_trap);
}

std::atomic<bool> release_held_call{false};

//! Host-only: each call runs until the test lets it return.
struct held_handler {
  template <class Ctx>
  void operator()(Ctx&, rk::no_state&, const rk::message&) {
    rk::backoff idle;
    while (!release_held_call.load()) idle.pause();
  }
};

TEST(Trace, ACallThatOutlivesShutdownIsFlaggedAndCollectedWhenItReturns) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP()
      << "the worker that outlives shutdown is never joined, which ThreadSanitizer reports as a leak";
#endif
#if defined(__SANITIZE_ADDRESS__)
  __lsan::ScopedDisabler leaks_on_purpose; // the runtime keeps its memory for the worker that may still run
#endif
  release_held_call = false;
  rk::runtime_options o = traced(1);
  o.stop_timeout = std::chrono::milliseconds(100);
  o.drain_timeout = std::chrono::milliseconds(50);
  rk::runtime rt(o);
  const rk::actor_index a = rt.spawn<held_handler>("held", mode(false));
  rt.start();
  ASSERT_EQ(rt.send(a, msg_ping, {}), rk::status::enqueued);
  ASSERT_EQ(rk::wait_until([&] { return rt.stats().actors[a].received == 1; }, [] { return false; },
                           10'000'000'000ull),
            rk::wait_result::ready);
  const rk::shutdown_report r = rt.shutdown();
  ASSERT_FALSE(r.workers_stopped) << "the call outlives stop_timeout";
  EXPECT_FALSE(rt.stats().trace.complete) << "the trace says a call may be missing";
  // The call returns while the runtime still exists: its record is collected, not lost uncounted.
  release_held_call = true;
  EXPECT_EQ(rk::wait_until(
                [&] {
                  const rk::trace_stats s = rt.stats().trace;
                  return s.collected + s.ring_full == 1;
                },
                [] { return false; }, 10'000'000'000ull),
            rk::wait_result::ready)
      << "a sampled call is either collected or counted";
  const auto records = rt.trace_records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].call.actor, a);
  EXPECT_EQ(nlohmann::json::parse(rt.trace_json())["otherData"]["complete"], false);
}

TEST(Trace, ChromeTraceJsonParsesBack) {
  constexpr std::uint64_t n = 40;
  rk::runtime rt(traced(1));
  rt.register_message_type({msg_ping, "ping", true, ""});
  const rk::actor_index b = rt.spawn<counter>("sink", mode(false));
  const rk::actor_index a = rt.spawn<forwarder>("relay", mode(false), forwarder::state{b, 0, 0});
  rt.start();
  send_pings(rt, a, n);
  ASSERT_TRUE(rt.shutdown().drained);

  const std::string text = rt.trace_json();
  const auto doc = nlohmann::json::parse(text);
  ASSERT_TRUE(doc["traceEvents"].is_array());
  EXPECT_EQ(doc["otherData"]["collected"], 2 * n);
  EXPECT_EQ(doc["otherData"]["sample_every"], 1);
  const std::string metrics = rt.metrics_text();
  EXPECT_NE(metrics.find("\nringkernel_trace_records_collected_total " + std::to_string(2 * n) + "\n"),
            std::string::npos)
      << metrics;
  std::map<std::uint64_t, std::string> threads;
  std::map<std::string, std::pair<double, double>> spans; // async id -> (begin, end)
  std::size_t complete = 0;
  for (const auto& e : doc["traceEvents"]) {
    const std::string ph = e["ph"];
    EXPECT_EQ(e["pid"], 1);
    if (ph == "M") {
      if (e["name"] == "thread_name") threads[e["tid"].get<std::uint64_t>()] = e["args"]["name"];
    } else if (ph == "X") {
      ++complete;
      EXPECT_EQ(e["name"], "ping");
      EXPECT_EQ(e["cat"], "handler");
      EXPECT_GE(e["ts"].get<double>(), 0.0);
      EXPECT_GE(e["dur"].get<double>(), 0.0);
      const auto tid = e["tid"].get<std::uint64_t>();
      EXPECT_TRUE(tid == a + 1 || tid == b + 1) << tid;
      EXPECT_EQ(e["args"]["actor"].get<std::uint64_t>() + 1, tid);
      EXPECT_EQ(e["args"]["source"], tid == a + 1 ? "host" : std::to_string(a));
      EXPECT_EQ(e["args"]["outcome"], "handled");
    } else if (ph == "b" || ph == "e") {
      EXPECT_EQ(e["cat"], "queue");
      auto& span = spans[e["id"].get<std::string>()];
      (ph == "b" ? span.first : span.second) = e["ts"].get<double>();
    } else {
      ADD_FAILURE() << "unexpected event phase " << ph;
    }
  }
  EXPECT_EQ(complete, 2 * n);
  EXPECT_EQ(spans.size(), 2 * n);
  for (const auto& [id, span] : spans) EXPECT_LE(span.first, span.second) << id;
  EXPECT_EQ(threads[0], "host");
  EXPECT_EQ(threads[a + 1], "actor 'relay' (id " + std::to_string(a) + ")");
  EXPECT_EQ(threads[b + 1], "actor 'sink' (id " + std::to_string(b) + ")");

  const auto path =
      std::filesystem::temp_directory_path() / ("rk_trace_" + std::to_string(::getpid()) + ".json");
  rt.write_trace(path);
  std::ifstream in(path);
  std::stringstream read;
  read << in.rdbuf();
  EXPECT_EQ(read.str(), text);
  {
    // A full disk: the write fails, saying so, and the trace written before is left whole.
    const rk::test::file_size_limit full_disk(100);
    try {
      rt.write_trace(path);
      ADD_FAILURE() << "a write beyond the file size limit succeeded";
    } catch (const rk::error& e) {
      EXPECT_NE(std::string(e.what()).find("left as it was"), std::string::npos) << e.what();
    }
  }
  std::ifstream again(path);
  std::stringstream reread;
  reread << again.rdbuf();
  EXPECT_EQ(reread.str(), text);
  EXPECT_EQ(rk::test::partial_files_beside(path), 0u);
  std::filesystem::remove(path);
  EXPECT_THROW(rt.write_trace("/nonexistent-directory/trace.json"), rk::error);
  // A name as long as the file system allows (255 bytes) still has room for its temporary beside it.
  const auto longest = std::filesystem::temp_directory_path() /
                       ("rk_trace_" + std::to_string(::getpid()) + std::string(255, 'n')).substr(0, 255);
  rt.write_trace(longest);
  EXPECT_EQ(std::filesystem::file_size(longest), text.size());
  EXPECT_EQ(rk::test::partial_files_beside(longest), 0u);
  // The permissions of a plain create: 0666 less the umask (a file replaced keeps its own: see
  // Snapshot.AReplacedFileKeepsItsPermissions).
  std::filesystem::remove(longest);
  const mode_t umask_before = ::umask(027);
  rt.write_trace(longest);
  ::umask(umask_before);
  struct stat written {};
  ASSERT_EQ(::stat(longest.c_str(), &written), 0);
  EXPECT_EQ(written.st_mode & 0777, 0640u);
  std::filesystem::remove(longest);
}

TEST(Trace, BadOptionsAreRefusedWithTheirName) {
  const auto refused = [](auto change, const std::string& field) {
    rk::runtime_options o = traced(1);
    change(o.trace);
    try {
      rk::runtime rt(o);
      ADD_FAILURE() << field << " was accepted";
    } catch (const rk::error& e) {
      EXPECT_NE(std::string(e.what()).find("trace." + field), std::string::npos) << e.what();
    }
  };
  refused([](rk::trace_options& t) { t.ring_slots = 3; }, "ring_slots");
  refused([](rk::trace_options& t) { t.ring_slots = 0; }, "ring_slots");
  refused([](rk::trace_options& t) { t.max_records = 0; }, "max_records");
  refused([](rk::trace_options& t) { t.max_records = ~std::size_t{0}; }, "max_records");
  try { // the message sizes the cost right: a kept record is a whole trace_record
    rk::runtime_options o = traced(1);
    o.trace.max_records = 0;
    rk::runtime rt(o);
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("costs " + std::to_string(sizeof(rk::trace_record)) + " bytes"),
              std::string::npos)
        << e.what();
  }
  refused([](rk::trace_options& t) { t.collect_interval = std::chrono::milliseconds(0); },
          "collect_interval");
  refused([](rk::trace_options& t) { t.collect_interval = std::chrono::hours(1); }, "collect_interval");
  // Off: the other fields are not looked at.
  rk::runtime_options off = traced(0);
  off.trace.ring_slots = 3;
  EXPECT_NO_THROW(rk::runtime{off});
}

} // namespace
