// Host memory running out inside the runtime, on the CPU backend: this binary replaces operator new so
// that the N-th allocation of the calling thread throws std::bad_alloc, and sweeps N over spawn(),
// start(), shutdown() and the audit drain's host queue. Whatever N, a call fails with an exception or
// succeeds: the process never ends in std::terminate, and a shutdown that reports its workers stopped has
// really joined them (one that failed part way used to report them stopped while they ran, and the
// runtime freed their memory). Not built into the sanitizer runs: they bring their own operator new.

#include <ringkernel/host/audit.hpp>
#include <ringkernel/host/runtime.hpp>

#include "../host/audit_test_support.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <stdexcept>
#include <string>

namespace {

//! Allocations left on this thread before the one that fails (0: no failure armed).
thread_local std::uint64_t allocations_before_failure = 0;
//! Every allocation of this thread fails from now on.
thread_local bool out_of_memory_for_good = false;

void* allocate(std::size_t bytes, std::size_t alignment) {
  if (out_of_memory_for_good) throw std::bad_alloc();
  if (allocations_before_failure != 0 && --allocations_before_failure == 0) throw std::bad_alloc();
  if (bytes == 0) bytes = 1;
  void* p = alignment <= alignof(std::max_align_t)
                ? std::malloc(bytes)
                : std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

//! Arms the N-th allocation of this thread to fail; disarms on destruction. fired(): it did fail.
class failing_allocation {
public:
  explicit failing_allocation(std::uint64_t n) { allocations_before_failure = n; }
  ~failing_allocation() { allocations_before_failure = 0; }
  bool fired() const noexcept { return allocations_before_failure == 0; }
  failing_allocation(const failing_allocation&) = delete;
  failing_allocation& operator=(const failing_allocation&) = delete;
};

} // namespace

// Not inlined: GCC would otherwise pair an inlined free() with the new-expression it sees and warn
// (-Wmismatched-new-delete, as std::ifstream's buffer did here), though both sides sit on malloc and free.
[[gnu::noinline]] void* operator new(std::size_t bytes) {
  return allocate(bytes, 0);
}
[[gnu::noinline]] void* operator new[](std::size_t bytes) {
  return allocate(bytes, 0);
}
[[gnu::noinline]] void* operator new(std::size_t bytes, std::align_val_t a) {
  return allocate(bytes, static_cast<std::size_t>(a));
}
[[gnu::noinline]] void* operator new[](std::size_t bytes, std::align_val_t a) {
  return allocate(bytes, static_cast<std::size_t>(a));
}
[[gnu::noinline]] void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept {
  try {
    return allocate(bytes, 0);
  } catch (...) {
    return nullptr;
  }
}
[[gnu::noinline]] void* operator new[](std::size_t bytes, const std::nothrow_t&) noexcept {
  try {
    return allocate(bytes, 0);
  } catch (...) {
    return nullptr;
  }
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

namespace {

using namespace std::chrono_literals;

//! Runs `call` with this thread's n-th allocation failing; whether it failed (false: the call made fewer
//! allocations, the sweep is over). The call may end in std::bad_alloc or rk::error, nothing else.
template <class Call>
bool fails_at(std::uint64_t n, Call&& call) {
  failing_allocation fail(n);
  try {
    call();
  } catch (const std::bad_alloc&) {
  } catch (const rk::error&) {
  }
  return fail.fired();
}

std::size_t threads_in_process() {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                                                std::filesystem::directory_iterator{}));
}

//! The names of the process's threads, for a failure message.
std::string thread_names() {
  std::string names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names += (names.empty() ? "" : ", ") + name;
  }
  return names;
}

//! Whether the process is back to `expected` threads within 5 s. A joined thread can still be listed in
//! /proc for a moment: the kernel wakes pthread_join before it unlists the thread (CI once counted one
//! after a shutdown that had joined every thread). A thread still running stays listed and fails this.
bool back_to_threads(std::size_t expected) {
  return rk::wait_until([&] { return threads_in_process() == expected; }, [] { return false; },
                        5'000'000'000ull) == rk::wait_result::ready;
}

struct counter {
  struct state {
    std::uint64_t seen = 0;
  };
  template <class Ctx>
  void operator()(Ctx&, state& s, const rk::message&) {
    ++s.seen;
  }
};

rk::runtime_options options() {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.audit_sinks.push_back(std::make_shared<rk::audit_memory_sink>(1024));
  return o;
}

//! A started runtime with a scheduled and a dedicated actor, a group and some traffic.
void populate(rk::runtime& rt) {
  const rk::actor_index a = rt.spawn<counter>("a");
  rk::actor_options own;
  own.dedicated_worker = true;
  const rk::actor_index b = rt.spawn<counter>("b", own);
  const rk::actor_index members[] = {a, b};
  (void)rt.create_group("g", members);
}

constexpr std::uint64_t sweep_limit = 5'000; // far more allocations than any call below makes

TEST(OutOfMemory, ShutdownThatRunsOutStillStopsItsWorkersOrSaysItDidNot) {
  const std::size_t before = threads_in_process();
  std::uint64_t n = 1;
  for (; n < sweep_limit; ++n) {
    std::optional<rk::runtime> rt;
    rt.emplace(options());
    populate(*rt);
    rt->start();
    for (int i = 0; i < 16; ++i) (void)rt->send(rt->group("g"), 1, {});
    rk::shutdown_report report;
    const bool fired = fails_at(n, [&] { report = rt->shutdown(); });
    if (report.workers_stopped) {
      EXPECT_TRUE(back_to_threads(before))
          << "allocation " << n << ": reported stopped, threads still run: " << thread_names();
    }
    rt.reset(); // frees the workers' memory when they stopped, leaks it otherwise: either way, no crash
    if (!fired) break;
  }
  std::printf("shutdown: %llu allocations swept\n", static_cast<unsigned long long>(n));
  EXPECT_GT(n, 10u) << "the sweep must reach into shutdown";
  EXPECT_LT(n, sweep_limit);
}

TEST(OutOfMemory, SpawnAndStartThatRunOutThrowAndLeaveNoThreads) {
  const std::size_t before = threads_in_process();
  std::uint64_t spawn_n = 1;
  for (; spawn_n < sweep_limit; ++spawn_n) {
    rk::runtime rt(options());
    if (!fails_at(spawn_n, [&] { populate(rt); })) break;
  }
  EXPECT_GT(spawn_n, 10u);
  std::uint64_t start_n = 1;
  for (; start_n < sweep_limit; ++start_n) {
    bool fired = false;
    {
      rk::runtime rt(options());
      populate(rt);
      // A thread created, then stored out of memory, was destroyed joinable: std::terminate.
      fired = fails_at(start_n, [&] { rt.start(); });
    }
    EXPECT_TRUE(back_to_threads(before))
        << "allocation " << start_n << ": a thread outlived its runtime: " << thread_names();
    if (!fired) break;
  }
  std::printf("spawn: %llu, start: %llu allocations swept\n", static_cast<unsigned long long>(spawn_n),
              static_cast<unsigned long long>(start_n));
  EXPECT_GT(start_n, 10u);
  EXPECT_LT(start_n, sweep_limit);
}

//! Host-only: leaves its worker thread without memory for good, then throws.
struct exhausting {
  template <class Ctx>
  void operator()(Ctx&, rk::no_state&, const rk::message&) {
    out_of_memory_for_good = true;
    throw std::runtime_error("this worker thread has no memory left"); // bad_alloc, in fact
  }
};

TEST(OutOfMemory, AWorkerThreadWithoutMemoryFaultsTheRuntimeInsteadOfEndingTheProcess) {
  // The worker's failure handling allocates (the fault's text): out of memory there, the exception left
  // the thread's function and ended the process (std::terminate).
  for (const bool dedicated : {false, true}) {
    rk::runtime_options o = options();
    o.dedicated_workers = dedicated;
    rk::runtime rt(o);
    const rk::actor_index a = rt.spawn<exhausting>("exhausting");
    rt.start();
    ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
    const auto until = std::chrono::steady_clock::now() + 20s;
    bool faulted = false;
    while (!faulted && std::chrono::steady_clock::now() < until) {
      try {
        (void)rt.receive(10ms);
      } catch (const rk::error&) {
        faulted = true;
      }
    }
    const rk::shutdown_report report = rt.shutdown();
    EXPECT_TRUE(faulted) << "dedicated " << dedicated << ": the runtime reports the failed worker";
    EXPECT_NE(report.fault.value_or("").find("out of host memory"), std::string::npos)
        << "dedicated " << dedicated << ": " << report.fault.value_or("(no fault)");
  }
}

TEST(OutOfMemory, AHostAuditRecordWithoutMemoryIsCountedLostNotFatal) {
  audit_test::test_ring t(64);
  auto sink = std::make_shared<rk::audit_memory_sink>(1024);
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {sink});
  std::uint64_t lost = 0, queued = 0;
  for (std::uint64_t i = 0; i < 64; ++i) { // the queue allocates a block every few records
    failing_allocation fail(1);
    const rk::status s = drain.record_host(audit_test::make_record(rk::audit_event::actor_spawn, i));
    if (s == rk::status::queue_full) {
      ++lost;
      EXPECT_TRUE(fail.fired());
    } else {
      ASSERT_EQ(s, rk::status::enqueued);
      ++queued;
    }
  }
  std::printf("record_host: %llu of 64 ran out of memory\n", static_cast<unsigned long long>(lost));
  EXPECT_GT(lost, 0u) << "no record_host call ran out of memory: the test tests nothing";
  ASSERT_EQ(drain.flush(20s), rk::wait_result::ready);
  const rk::audit_drain_stats stats = drain.stop();
  EXPECT_EQ(stats.host_records, queued);
  EXPECT_EQ(stats.records_lost, lost) << "every lost record is reported in an audit_overflow entry";
  EXPECT_GE(stats.overflow_reports, 1u);
}

} // namespace
