// Memory has one owner: a runtime refused at any step of its construction, a setup call that fails, and
// a start() that fails give back everything they took. Each refusal is repeated 1,000 times (fewer under
// the sanitizers) and resident memory must not grow; in the ASan build LeakSanitizer checks the same at
// exit. Before the host controller was split by facility, a late refusal leaked about 2.6 MB each time.
#include <ringkernel/ringkernel.hpp>

#include "memory.hpp" // rk::detail::testing::fail_allocation_after
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include <unistd.h>

// A non-routable type above the default max_message_types: a runtime built with the default refuses it,
// but only after its tables were allocated (the message type registry is checked last).
RK_REGISTER_MESSAGE_TYPE(ownership_test_secret, 5000, false, "test");

namespace {

using namespace std::chrono_literals;

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool measure_rss = false; // ASan's quarantine holds freed memory; LeakSanitizer checks instead
#else
constexpr bool measure_rss = true;
#endif

rk::runtime_options base() {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.max_message_types = 8192; // room for ownership_test_secret
  return o;
}

struct counter {
  struct state {
    std::uint64_t n = 0;
  };
  template <class Ctx>
  void operator()(Ctx&, state& s, const rk::message&) {
    ++s.n;
  }
};

//! Runs `attempt` `rounds` times after a warm-up and checks that resident memory stayed put.
void expect_no_growth(const char* what, std::uint64_t rounds, const std::function<void()>& attempt) {
  SCOPED_TRACE(what);
  for (int i = 0; i < 20; ++i) attempt(); // allocator caches and thread stacks settle
  const std::size_t before = resident_bytes();
  for (std::uint64_t i = 0; i < rounds; ++i) attempt();
  const std::size_t after = resident_bytes();
  if (measure_rss) {
    EXPECT_LT(after, before + (std::size_t{8} << 20))
        << rounds << " attempts grew resident memory from " << before << " to " << after << " bytes";
  }
}

void expect_refused(const std::function<void()>& call, const std::string& needle) {
  try {
    call();
    ADD_FAILURE() << "expected rk::error containing '" << needle << "'";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

struct failing_allocation {
  explicit failing_allocation(std::uint64_t n) { rk::detail::testing::fail_allocation_after(n); }
  ~failing_allocation() { rk::detail::testing::fail_allocation_after(0); }
};

} // namespace

TEST(MemoryOwnership, RuntimesRefusedAtEachValidationStepFreeEverything) {
  struct refusal {
    const char* what;
    std::function<void(rk::runtime_options&)> spoil;
    const char* needle;
  };
  const std::vector<refusal> refusals{
      {"max_actors 0", [](auto& o) { o.max_actors = 0; }, "max_actors"},
      {"max_actors too large", [](auto& o) { o.max_actors = (1u << 24) + 1; }, "max_actors"},
      {"host ring",
       [](auto& o) {
         o.host_ring = {1000, 256};
       },
       "host_ring"},
      {"max_groups", [](auto& o) { o.max_groups = (1u << 20) + 1; }, "max_groups"},
      {"max_group_members", [](auto& o) { o.max_group_members = (1u << 24) + 1; }, "max_group_members"},
      {"max_hops", [](auto& o) { o.max_hops = 256; }, "max_hops"},
      {"starvation_limit", [](auto& o) { o.starvation_limit = 0; }, "starvation_limit"},
      {"max_message_types", [](auto& o) { o.max_message_types = (1u << 24) + 1; }, "max_message_types"},
      {"audit_ring_slots", [](auto& o) { o.audit_ring_slots = 3; }, "audit_ring_slots"},
      // Refused after every table was allocated: the registry's non-routable type does not fit.
      {"message type above max_message_types", [](auto& o) { o.max_message_types = 4096; },
       "ownership_test_secret"},
  };
  for (const refusal& r : refusals)
    expect_no_growth(r.what, rk::test::scaled(1'000), [&] {
      rk::runtime_options o = base();
      r.spoil(o);
      expect_refused([&] { rk::runtime rt(o); }, r.needle);
    });
}

TEST(MemoryOwnership, AConstructionFailingAtAnyAllocationFreesEverything) {
  // Find how many allocations a construction makes, then fail each of them in turn.
  std::uint64_t allocations = 0;
  for (std::uint64_t n = 1;; ++n) {
    failing_allocation fail(n);
    try {
      rk::runtime rt(base());
      allocations = n - 1;
      break;
    } catch (const rk::error& e) {
      ASSERT_NE(std::string(e.what()).find("injected"), std::string::npos) << e.what();
    }
  }
  ASSERT_GE(allocations, 10u) << "tables, rings and counters are separate allocations";
  const std::uint64_t rounds = rk::test::scaled(1'000) / allocations + 1;
  expect_no_growth("each allocation of a construction failing", rounds, [&] {
    for (std::uint64_t step = 1; step <= allocations; ++step) {
      failing_allocation fail(step);
      expect_refused([&] { rk::runtime rt(base()); }, "injected");
    }
  });
}

TEST(MemoryOwnership, FailedSpawnsAndFailedStartsFreeEverything) {
  for (const bool dedicated : {false, true})
    expect_no_growth(
        dedicated ? "refused spawns before and after start, dedicated workers"
                  : "refused spawns before and after start, scheduled actors",
        rk::test::scaled(150), [&] {
          rk::runtime_options o = base();
          o.dedicated_workers = dedicated;
          o.max_actors = 4;
          o.running_arena_bytes = 1 << 20;
          rk::runtime rt(o);
          rt.spawn<counter>("a");
          expect_refused([&] { rt.spawn<counter>("bad", {.mailbox = {100, 256}}); }, "power of two");
          {
            failing_allocation fail(1);
            expect_refused([&] { rt.spawn<counter>("b"); }, "injected");
          }
          rt.start();
          // The mailbox; a dedicated actor's launch then takes two worker lists (a scheduled one only
          // registers).
          for (std::uint64_t step = 1; step <= (dedicated ? 3u : 1u); ++step) {
            failing_allocation fail(step);
            expect_refused([&] { rt.spawn<counter>("late"); }, "injected");
          }
          expect_refused([&] { rt.spawn<counter>("g", {.instances = 4}); }, "actor table is full");
        });
  expect_no_growth("a start() that fails", rk::test::scaled(300), [&] {
    rk::runtime_options o = base();
    o.running_arena_bytes = 1 << 20;
    rk::runtime rt(o);
    rt.spawn<counter>("a");
    failing_allocation fail(3); // the worker lists, then the running arena
    expect_refused([&] { rt.start(); }, "injected");
    EXPECT_FALSE(rt.running());
  });
}

// A runtime's device blocks together stay within the backend's memory: each of four mailboxes of 16 GiB
// fitted a 23 GiB machine on its own, so all four were reserved (on the CPU backend pages are committed
// only as messages arrive, so they ran out later, with the process).
TEST(MemoryOwnership, MailboxesThatTogetherExceedTheMachineAreRefused) {
  const std::size_t physical =
      static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  rk::actor_options huge; // more than half of the machine each (a power of two at most twice the half)
  huge.priority_lanes = true;
  huge.mailbox.slot_bytes = 64 * 1024;
  std::uint32_t slots = 1;
  while (std::size_t{slots} * huge.mailbox.slot_bytes * rk::priority_levels < physical / 2) slots *= 2;
  huge.mailbox.capacity = slots;
  rk::runtime rt(base());
  const std::size_t before = resident_bytes();
  rt.spawn<counter>("first", huge);
  expect_refused([&] { rt.spawn<counter>("second", huge); }, "this backend has");
  EXPECT_EQ(rt.stats().actors.size(), 1u);
  rt.forget(rt.spawn<counter>("small")); // what is left is still there for others
  if (measure_rss) {
    EXPECT_LT(resident_bytes(), before + (std::size_t{64} << 20)) << "nothing was touched";
  }
}
