// shutdown() out of host memory, after the workers stopped: it reads the actors' final states and the
// final counters back, and running out of memory for one of them keeps the other, the drain's verdict and
// the stopped workers, and says in the report which was lost. (Before, a failure in either lost both and
// reported "shutdown failed: std::bad_alloc"; state<H>() then asked for a shutdown() that had run.)
//
// This binary replaces the global operator new so that, on the thread that armed it, allocations within a
// range of sizes throw std::bad_alloc: shutdown() reads back on the calling thread, and nothing else (the
// runtime's own threads, the test's other allocations) is touched.
#include <ringkernel/ringkernel.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <new>
#include <string>

namespace {

//! Sizes [first, last] fail on the thread that set them (last 0: nothing fails).
thread_local std::size_t failing_first = 0;
thread_local std::size_t failing_last = 0;

class failing_sizes {
public:
  failing_sizes(std::size_t first, std::size_t last) {
    failing_first = first;
    failing_last = last;
  }
  ~failing_sizes() { failing_first = failing_last = 0; }
  failing_sizes(const failing_sizes&) = delete;
  failing_sizes& operator=(const failing_sizes&) = delete;
};

} // namespace

// Not inlined: GCC would otherwise pair an inlined free() with the new-expression it sees and warn
// (-Wmismatched-new-delete), though both replacements sit on malloc and free.
[[gnu::noinline]] void* operator new(std::size_t bytes) {
  if (failing_last != 0 && bytes >= failing_first && bytes <= failing_last) throw std::bad_alloc();
  if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using namespace std::chrono_literals;

//! A state of a size nothing else in a shutdown allocates, so that only its copy can be made to fail.
struct odd_sized {
  struct state {
    std::array<char, 4001> bytes{};
    std::uint64_t handled = 0;
  };
  template <class Ctx>
  void operator()(Ctx&, state& s, const rk::message&) {
    ++s.handled;
    s.bytes[0] = 'x';
  }
};

rk::runtime_options options() {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.cpu_workers = 2;
  o.max_actors = 4096;
  return o;
}

//! Starts `count` odd_sized actors, sends each one message, and waits until all were handled.
std::vector<rk::actor_index> run_and_settle(rk::runtime& rt, std::uint32_t count) {
  const std::vector<rk::actor_index> ids = rt.spawn_many<odd_sized>("a", count);
  rt.start();
  for (rk::actor_index a : ids) EXPECT_EQ(rt.send_wait(a, 1, {}, 10s), rk::status::delivered);
  return ids;
}

TEST(ShutdownOutOfMemory, StatesThatCannotBeCopiedLeaveTheCountersAndTheDrain) {
  rk::runtime rt(options());
  const auto ids = run_and_settle(rt, 8);
  rk::shutdown_report report;
  {
    const failing_sizes no_room_for_states(sizeof(odd_sized::state), sizeof(odd_sized::state));
    report = rt.shutdown();
  }
  EXPECT_TRUE(report.drained);
  EXPECT_TRUE(report.workers_stopped);
  ASSERT_TRUE(report.fault.has_value());
  EXPECT_NE(report.fault->find("could not read back the actors' final states"), std::string::npos)
      << *report.fault;
  const rk::runtime_stats s = rt.stats();
  EXPECT_FALSE(s.stale);
  ASSERT_EQ(s.actors.size(), ids.size());
  for (const rk::actor_stats& a : s.actors) {
    EXPECT_EQ(a.received, 1u) << a.name;
    EXPECT_EQ(a.handled, 1u) << a.name;
  }
  try {
    (void)rt.state<odd_sized>(ids.front());
    ADD_FAILURE() << "a state that was never copied was returned";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("could not copy the final state of actor 'a/0'"), std::string::npos)
        << e.what();
  }
}

TEST(ShutdownOutOfMemory, CountersThatCannotBeReadLeaveTheStatesAndTheDrain) {
  constexpr std::uint32_t actors = 2048;
  rk::runtime rt(options());
  const auto ids = run_and_settle(rt, actors);
  rk::shutdown_report report;
  {
    // The final counters take one actor_stats per actor; states and everything else are far smaller.
    const failing_sizes no_room_for_counters(actors / 2 * sizeof(rk::actor_stats), SIZE_MAX);
    report = rt.shutdown();
  }
  EXPECT_TRUE(report.drained);
  EXPECT_TRUE(report.workers_stopped);
  ASSERT_TRUE(report.fault.has_value());
  EXPECT_NE(report.fault->find("could not read back the final counters"), std::string::npos) << *report.fault;
  for (rk::actor_index a : ids) ASSERT_EQ(rt.state<odd_sized>(a).handled, 1u) << "actor " << a;
  // With memory again, stats() reads the counters that shutdown() could not.
  const rk::runtime_stats s = rt.stats();
  EXPECT_FALSE(s.stale);
  ASSERT_EQ(s.actors.size(), ids.size());
  std::uint64_t handled = 0;
  for (const rk::actor_stats& a : s.actors) handled += a.handled;
  EXPECT_EQ(handled, actors);
}

} // namespace
