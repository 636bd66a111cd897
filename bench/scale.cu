// Many scheduled actors on one runtime (issue 11): what a million actors cost and how an idle runtime
// behaves.
//
//   1. spawn: `spawn_many` of N actors at default actor options (wall time), and the memory it took:
//      resident set (CPU backend: mailboxes, states and tables are host memory) or device memory
//      (cudaMemGetInfo, CUDA backend) from before the runtime was constructed to after the spawn,
//      divided by N. max_actors is N, so the per-slot tables count too. On the CPU backend mailbox slots
//      are mapped on first use, so it also reports the address space the spawn mapped per actor and the
//      resident set per actor after the fan-out/in (every actor has received a message by then).
//   2. idle: after start(), the process's CPU time (getrusage: every worker, the gateway and the host
//      threads) over `--idle-seconds` of wall time in which nothing is sent, as a share of one core.
//   3. wake-up: a message from the host to a random idle actor, which answers the host at once; the host
//      times send() to receive() (steady_clock) with a pause between samples so the pool is idle again.
//      A host round trip: it includes the ingress ring, the gateway and the egress ring, not only the
//      scheduler's wake-up.
//   4. ring: a token passed `--ring-hops` times around all N actors (Erlang's ring), each hop a K2K send
//      to the next actor, which is idle until then; reported as hops per second and ns per hop.
//   5. fan-out / fan-in: an aggregator asks all N actors (K2K, one message each) and counts their answers;
//      wall time from the host's start message until the aggregator reports all N answers.
//      On the CPU backend it pays the first touch of the mailbox slots of actors the ring did not reach
//      (about 0.9 s per 10^6 actors on a 2-core VM), so compare it only between runs with the same
//      --ring-hops.
// With `--backend cpu` and CAF found at build time (Debian's libcaf-dev), the same five measurements run
// for CAF in the same process right after (same N, as many CAF scheduler threads as ringkernel's pool),
// and the ratios are printed: caf_baseline.cpp.
//
// A ring or fan phase that does not complete within `--phase-timeout` seconds (default 600) is reported as
// null (with "incomplete" naming it) and the figures measured before it are still printed; the fan phase
// is skipped after an incomplete ring (its token still circulates).
//
// The aggregator's mailbox holds min(N rounded up to a power of two, 65,536) answers by default: with more
// members than that, members that find it full defer and retry (`deferred_calls` counts those handler calls,
// ring and fan together), which is the runtime's backpressure at work rather than the cost of an answer.
// `--aggregator-slots N` (a power of two, 2 .. 2^24) sizes it, e.g. to N to measure the fan-in without it.
//
//   bench_scale [--json] [--smoke] [--backend cuda|cpu] [--actors N] [--idle-seconds S]
//               [--wakeups N] [--ring-hops N] [--phase-timeout S] [--aggregator-slots N]
// Without a usable device `--backend cuda` (the default) reports "skipped".

#include "common/cuda_bench.cuh"

#if RK_BENCH_HAVE_CAF
#include "caf_baseline.hpp"
#endif

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <malloc.h>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using rk::bench::target;
using clock_type = std::chrono::steady_clock;

constexpr std::uint32_t msg_wake = 1;
constexpr std::uint32_t msg_token = 2;
constexpr std::uint32_t msg_answer = 3;
constexpr std::uint32_t msg_fan_start = 4; //!< host -> aggregator: ask every member
constexpr std::uint32_t msg_fan_ask = 5;   //!< aggregator -> member
constexpr std::uint32_t msg_fan_reply = 6; //!< member -> aggregator

//! Fan-out / fan-in: the aggregator asks `count` members (ids from `first`), each answers it once.
struct fan_request {
  rk::actor_index first = 0;
  std::uint32_t count = 0;
  rk::actor_index aggregator = 0;
};

//! The ring: ids are consecutive from `first` (a fresh runtime's spawn_many; checked by the benchmark),
//! so the next actor is computed rather than stored.
struct token {
  std::uint64_t hops_left = 0;
  rk::actor_index first = 0;
  std::uint32_t count = 0;
};

//! Answers a wake-up message to the host; passes a token on to the next actor until its hops run out.
struct ring_member {
  static constexpr const char* name = "ring_member";
  struct state {
    std::uint64_t tokens = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == msg_wake) {
      (void)ctx.send_host(msg_answer, m.payload());
      return;
    }
    if (m.type() == msg_fan_ask) {
      const fan_request* f = m.as<fan_request>();
      if (f != nullptr && ctx.send(f->aggregator, msg_fan_reply, {}) == rk::status::queue_full) ctx.defer();
      return;
    }
    const token* t = m.as<token>();
    if (t == nullptr) return;
    ++s.tokens;
    if (t->hops_left == 0) {
      (void)ctx.send_host(msg_answer, m.payload());
      return;
    }
    const token next{t->hops_left - 1, t->first, t->count};
    const rk::actor_index to = t->first + (ctx.self() - t->first + 1) % t->count;
    if (ctx.send(to, msg_token, rk::as_bytes(next)) == rk::status::queue_full) ctx.defer();
  }
};

//! Asks every member once and tells the host when all have answered.
struct aggregator {
  static constexpr const char* name = "aggregator";
  struct state {
    std::uint64_t answers = 0;
    std::uint64_t expected = 0;
    std::uint64_t asked = 0; //!< members asked so far (a full member mailbox: deferred, resumed here)
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == msg_fan_start) {
      const fan_request* f = m.as<fan_request>();
      if (f == nullptr) return;
      s.expected = f->count;
      const fan_request ask{f->first, f->count, ctx.self()};
      for (; s.asked < f->count; ++s.asked) {
        if (ctx.send(f->first + static_cast<rk::actor_index>(s.asked), msg_fan_ask, rk::as_bytes(ask)) ==
            rk::status::queue_full) {
          ctx.defer(); // this start message comes back; `asked` says where to go on
          return;
        }
      }
      return;
    }
    if (m.type() == msg_fan_reply && ++s.answers == s.expected) (void)ctx.send_host(msg_answer, {});
  }
};

struct settings {
  rk::bench::common_args common;
  target backend = target::cuda;
  std::uint32_t actors = 0;
  double idle_seconds = 0;
  std::uint64_t wakeups = 0;
  std::uint64_t ring_hops = 0;
  double phase_timeout_s = 600;
  std::optional<std::uint32_t> aggregator_slots; //!< default: see the file comment
};

std::uint64_t device_bytes_in_use() {
  std::size_t free_bytes = 0, total = 0;
  if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) return 0;
  return total - free_bytes;
}

struct result {
  double spawn_s = 0;
  double bytes_per_actor = 0;
  const char* memory_kind = "";
  //! CPU backend: address space the spawn mapped (allocated, touched or not) per actor, and the resident
  //! set per actor once every actor has received and sent a message (the fan-out/in): mailbox slots are
  //! mapped on first use, so the resident set right after the spawn leaves them out.
  double mapped_bytes_per_actor = 0;
  double resident_after_fan_bytes_per_actor = 0;
  double idle_core_share = 0;
  rk::bench::summary wakeup_us;
  // NaN (JSON null) when the phase did not complete within the phase timeout (see `incomplete`), and the
  // ring's figures when --ring-hops is 0.
  double ring_ns_per_hop = 0;
  double fan_s = 0; //!< fan-out to all N and fan-in of their answers, wall time
  double ring_hops_per_s = 0;
  std::uint64_t deferred_calls = 0; //!< handler calls that deferred (a full mailbox), all phases
  std::uint32_t aggregator_slots = 0;
  std::string incomplete; //!< "", "ring" or "fan": the phase that ran out of time
  bool drained = true;    //!< shutdown drained (not expected after an incomplete phase)
};

result measure(const settings& cfg) {
  result out;
  const bool cuda = cfg.backend == target::cuda;
  rk::runtime_options o;
  o.backend = cuda ? rk::backend::cuda : rk::backend::cpu;
  o.announce_backend = false;
  o.max_actors = cfg.actors + 1; // and the aggregator
  o.audit_ring_slots = 1024;
  if (cuda) (void)cudaFree(nullptr); // the context exists before the baseline is taken
  const std::uint64_t before = cuda ? device_bytes_in_use() : rk::bench::resident_bytes();
  const std::uint64_t mapped_before = rk::bench::mapped_bytes();
  rk::runtime rt(o);
  const auto t0 = clock_type::now();
  const std::vector<rk::actor_index> ids = rt.spawn_many<ring_member>("a", cfg.actors);
  out.spawn_s = std::chrono::duration<double>(clock_type::now() - t0).count();
  const std::uint64_t after = cuda ? device_bytes_in_use() : rk::bench::resident_bytes();
  out.bytes_per_actor = static_cast<double>(after - std::min(after, before)) / cfg.actors;
  out.memory_kind = cuda ? "device memory (cudaMemGetInfo)" : "resident set";
  const std::uint64_t mapped_after = rk::bench::mapped_bytes();
  if (!cuda)
    out.mapped_bytes_per_actor =
        static_cast<double>(mapped_after - std::min(mapped_after, mapped_before)) / cfg.actors;
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] != ids[0] + i) throw rk::error("bench_scale: spawn_many gave non-consecutive ids");
  // Room for many answers at once, so members rarely find the aggregator's mailbox full (they defer then).
  out.aggregator_slots =
      cfg.aggregator_slots.value_or(std::clamp<std::uint32_t>(std::bit_ceil(cfg.actors), 1024, 65536));
  const rk::actor_index agg = rt.spawn<aggregator>("aggregator", {.mailbox = {out.aggregator_slots, 128}});
  rt.start();

  // Idle.
  const double cpu0 = rk::bench::process_cpu_seconds();
  const auto w0 = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(cfg.idle_seconds));
  const double wall = std::chrono::duration<double>(clock_type::now() - w0).count();
  // --idle-seconds is at least 0.1 s, so the wall time is never ~0; NaN (JSON null) only if the clock
  // did not move at all.
  out.idle_core_share = wall > 0 ? (rk::bench::process_cpu_seconds() - cpu0) / wall : std::nan("");

  // Wake-ups of random idle actors.
  std::mt19937_64 pick(42);
  std::vector<double> samples;
  for (std::uint64_t i = 0; i < cfg.wakeups; ++i) {
    const rk::actor_index a = ids[pick() % ids.size()];
    std::this_thread::sleep_for(std::chrono::milliseconds(1)); // the pool goes idle between samples
    const auto s0 = clock_type::now();
    if (rt.send(a, msg_wake, {}) != rk::status::enqueued) throw rk::error("wake-up send refused");
    if (!rt.receive(std::chrono::seconds(10))) throw rk::error("no answer from a woken actor");
    samples.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - s0).count());
  }
  out.wakeup_us = rk::bench::summarize(std::move(samples));

  // The ring (--ring-hops 0: none, and its figures are NaN, JSON null, rather than a measured 0).
  if (cfg.ring_hops == 0) out.ring_ns_per_hop = out.ring_hops_per_s = std::nan("");
  if (cfg.ring_hops > 0) {
    const token first{cfg.ring_hops - 1, ids[0], cfg.actors};
    const auto r0 = clock_type::now();
    if (rt.send(ids[0], msg_token, rk::as_bytes(first)) != rk::status::enqueued)
      throw rk::error("bench_scale: the ring's first send was refused");
    if (rt.receive(std::chrono::duration<double>(cfg.phase_timeout_s))) {
      const double seconds = std::chrono::duration<double>(clock_type::now() - r0).count();
      out.ring_ns_per_hop = seconds * 1e9 / static_cast<double>(cfg.ring_hops);
      out.ring_hops_per_s = static_cast<double>(cfg.ring_hops) / seconds;
    } else {
      out.ring_ns_per_hop = out.ring_hops_per_s = std::nan("");
      out.incomplete = "ring";
    }
  }
  // Fan-out / fan-in.
  if (!out.incomplete.empty()) {
    out.fan_s = std::nan("");
  } else {
    const fan_request start{ids[0], cfg.actors, agg};
    const auto f0 = clock_type::now();
    if (rt.send(agg, msg_fan_start, rk::as_bytes(start)) != rk::status::enqueued)
      throw rk::error("bench_scale: the fan-out's start was refused");
    if (rt.receive(std::chrono::duration<double>(cfg.phase_timeout_s))) {
      out.fan_s = std::chrono::duration<double>(clock_type::now() - f0).count();
    } else {
      out.fan_s = std::nan("");
      out.incomplete = "fan";
    }
  }
  if (!cuda) {
    const std::uint64_t resident = rk::bench::resident_bytes();
    out.resident_after_fan_bytes_per_actor =
        static_cast<double>(resident - std::min(resident, before)) / cfg.actors;
  }
  for (const auto& a : rt.stats().actors) out.deferred_calls += a.deferred;
  const rk::shutdown_report r = rt.shutdown();
  out.drained = r.drained;
  if (!r.drained && out.incomplete.empty()) throw rk::error("bench_scale: shutdown did not drain");
  return out;
}

} // namespace

int main(int argc, char** argv) {
  settings cfg;
  std::optional<std::uint64_t> actors, wakeups, hops;
  std::optional<double> idle;
  cfg.common = rk::bench::parse_common(
      argc, argv, "bench_scale",
      "[--backend cuda|cpu] [--actors N] [--idle-seconds S] [--wakeups N] [--ring-hops N] [--phase-timeout "
      "S] [--aggregator-slots N]",
      [&](CLI::App& app) {
        // CLI::Range lets NaN through (every comparison with it is false).
        const CLI::Validator not_nan(
            [](const std::string& v) {
              return v.find_first_of("nN") != std::string::npos ? "not a number" : "";
            },
            "");
        rk::bench::add_target_flag(app, cfg.backend);
        // max_actors is the actors and the aggregator, at most 2^24.
        rk::cli::add_count(app, "--actors", actors, "actors to spawn (2 .. 16777215)", (1u << 24) - 1, 2);
        // At least 0.1 s: a shorter window divides a few ms of CPU time by almost nothing.
        app.add_option_function<double>(
               "--idle-seconds", [&idle](double v) { idle = v; },
               "seconds the idle runtime is measured (0.1 .. 3600)")
            ->check(CLI::Range(0.1, 3600.0) & not_nan);
        rk::cli::add_count(app, "--wakeups", wakeups, "idle-actor wake-ups timed (1 .. 10^8)", 100'000'000,
                           1);
        rk::cli::add_count(app, "--ring-hops", hops, "hops of the token ring (0: no ring)");
        app.add_option("--phase-timeout", cfg.phase_timeout_s,
                       "seconds the ring and the fan phase may take before they count as incomplete")
            ->check(CLI::Range(1.0, 3600.0) & not_nan);
        rk::cli::add_count(app, "--aggregator-slots", cfg.aggregator_slots,
                           "the aggregator's mailbox slots (a power of two, 2 .. 16777216)");
      });
  // One run per invocation (up to millions of actors spawned, CAF twice beside them): repeat the command
  // for more samples rather than multiply its time here.
  if (cfg.common.repetitions_given && cfg.common.repetitions != 1)
    rk::bench::usage_error(cfg.common, "--repetitions: bench_scale measures one run per invocation (only "
                                       "--repetitions 1 is accepted); run it again for more samples");
  if (cfg.aggregator_slots && rk::ring_geometry{*cfg.aggregator_slots, 128}.validate() != nullptr)
    rk::bench::usage_error(cfg.common, "--aggregator-slots must be a power of two from 2 to 16777216 (got " +
                                           std::to_string(*cfg.aggregator_slots) + ")");
  const bool cpu = cfg.backend == target::cpu;
  cfg.actors =
      static_cast<std::uint32_t>(actors.value_or(cfg.common.smoke ? 2'000 : (cpu ? 100'000 : 1'000'000)));
  cfg.idle_seconds = idle.value_or(cfg.common.smoke ? 0.2 : 3.0);
  cfg.wakeups = wakeups.value_or(cfg.common.smoke ? 20 : 1'000);
  cfg.ring_hops = hops.value_or(cfg.common.smoke ? 10'000 : 10'000'000);
  try {
    std::string machine = rk::bench::cpu_description();
    if (!cpu) {
      const rk::device_probe probe = rk::probe_cuda_device();
      if (!probe.usable) {
        rk::bench::print_skipped(cfg.common, "scale", probe.description);
        return 0;
      }
      machine = rk::bench::gpu_description();
    }
    const result r = measure(cfg);
    malloc_trim(0); // give freed heap back, so the next resident-set delta starts clean
#if RK_BENCH_HAVE_CAF
    // CAF twice: its default work-stealing scheduler and its "sharing" policy (neither wins everywhere).
    std::optional<rk::bench::caf_scale_result> caf_runs[2];
    rk::bench::summary caf_wakeups[2];
    if (cpu && r.incomplete.empty()) { // no comparison with a phase that ran out of time
      const unsigned threads = std::max(1u, std::thread::hardware_concurrency()); // ringkernel's default pool
      for (int sharing = 0; sharing < 2; ++sharing) {
        caf_runs[sharing] = rk::bench::measure_caf_scale(cfg.actors, cfg.idle_seconds, cfg.wakeups,
                                                         cfg.ring_hops, threads, sharing != 0);
        caf_wakeups[sharing] = rk::bench::summarize(caf_runs[sharing]->wakeup_us);
        malloc_trim(0);
      }
    }
#endif
    // CAF's figures and ringkernel / CAF ratios (time ratios < 1 and hop-rate ratios > 1 favour ringkernel).
    const auto caf_json = [&]() -> std::string {
#if RK_BENCH_HAVE_CAF
      if (caf_runs[0]) {
        std::vector<std::string> runs;
        for (int i = 0; i < 2; ++i) {
          const rk::bench::caf_scale_result& c = *caf_runs[i];
          rk::bench::json_object o;
          o.text("version", "CAF 0.17 (libcaf-dev)")
              .text("scheduler", i ? "sharing" : "work stealing (default)")
              .number("spawn_s", c.spawn_s, 3)
              .number("bytes_per_actor", c.bytes_per_actor, 0)
              .number("idle_core_share", c.idle_core_share, 4)
              .raw("wakeup_round_trip_us", rk::bench::summary_json(caf_wakeups[i], 1))
              .number("ring_ns_per_hop", cfg.ring_hops ? c.ring_ns_per_hop : std::nan(""), 1)
              .number("spawn_time_ratio", r.spawn_s / c.spawn_s, 3)
              .number("memory_ratio", r.bytes_per_actor / c.bytes_per_actor, 3)
              .number("wakeup_median_ratio", r.wakeup_us.median / caf_wakeups[i].median, 3)
              .number("ring_time_ratio", r.ring_ns_per_hop / c.ring_ns_per_hop, 3);
          if (c.fan_s >= 0) {
            o.number("fan_s", c.fan_s, 3).number("fan_time_ratio", r.fan_s / c.fan_s, 3);
          } else {
            o.null("fan_s");
          }
          runs.push_back(o.str());
        }
        return rk::bench::json_array(runs);
      }
#endif
      return "null";
    };
    if (cfg.common.json) {
      rk::bench::json_object doc;
      doc.text("benchmark", "scale")
          .text("backend", rk::bench::target_name(cfg.backend))
          .text("machine", machine)
          .integer("actors", cfg.actors)
          .number("spawn_s", r.spawn_s, 3)
          .number("bytes_per_actor", r.bytes_per_actor, 0)
          .text("memory_measured", r.memory_kind)
          .number("mapped_bytes_per_actor", r.mapped_bytes_per_actor, 0)
          .number("resident_after_fan_bytes_per_actor", r.resident_after_fan_bytes_per_actor, 0)
          .number("idle_seconds", cfg.idle_seconds, 1)
          .number("idle_core_share", r.idle_core_share, 4)
          .raw("wakeup_round_trip_us", rk::bench::summary_json(r.wakeup_us, 1))
          .integer("ring_hops", cfg.ring_hops)
          .number("ring_ns_per_hop", r.ring_ns_per_hop, 1)
          .number("ring_hops_per_s", r.ring_hops_per_s, 0)
          .number("fan_out_in_s", r.fan_s, 3)
          .integer("aggregator_slots", r.aggregator_slots)
          .integer("deferred_calls", r.deferred_calls);
      if (r.incomplete.empty()) {
        doc.null("incomplete");
      } else {
        doc.text("incomplete", r.incomplete);
      }
      doc.boolean("drained", r.drained).raw("caf", caf_json());
      std::printf("%s\n", doc.str().c_str());
    } else {
      std::printf("scale (%s backend, %s): %u actors\n", cpu ? "CPU" : "CUDA", machine.c_str(), cfg.actors);
      std::printf("  spawn_many:  %.3f s, %.0f bytes per actor (%s, tables included)\n", r.spawn_s,
                  r.bytes_per_actor, r.memory_kind);
      if (cpu)
        std::printf("  memory:      %.0f bytes per actor mapped by the spawn; %.0f resident once every actor "
                    "has received a message\n",
                    r.mapped_bytes_per_actor, r.resident_after_fan_bytes_per_actor);
      std::printf("  idle:        %.2f%% of one core over %.1f s (whole process)\n", r.idle_core_share * 100,
                  cfg.idle_seconds);
      std::printf("  wake-up:     host round trip to a random idle actor: median %.1f us, p99 %.1f us "
                  "(%zu samples)\n",
                  r.wakeup_us.median, r.wakeup_us.p99, r.wakeup_us.count);
      if (cfg.ring_hops)
        std::printf("  ring:        %.0f hops/s, %.1f ns per hop (%llu hops)\n", r.ring_hops_per_s,
                    r.ring_ns_per_hop, static_cast<unsigned long long>(cfg.ring_hops));
      std::printf("  fan-out/in:  %.3f s for %u answers (aggregator mailbox %u slots; %llu handler calls "
                  "deferred on a full mailbox)\n",
                  r.fan_s, cfg.actors, r.aggregator_slots, static_cast<unsigned long long>(r.deferred_calls));
      if (!r.incomplete.empty())
        std::printf("  INCOMPLETE:  the %s phase did not finish within %.0f s (shutdown %s)\n",
                    r.incomplete.c_str(), cfg.phase_timeout_s, r.drained ? "drained" : "did not drain");
#if RK_BENCH_HAVE_CAF
      for (int i = 0; i < 2 && caf_runs[i]; ++i) {
        const rk::bench::caf_scale_result& c = *caf_runs[i];
        std::printf("CAF 0.17 (%s scheduler) in the same process, same N, %u threads:\n",
                    i ? "sharing" : "work-stealing", std::max(1u, std::thread::hardware_concurrency()));
        std::printf("  spawn:       %.3f s (ringkernel / CAF %.2f), %.0f bytes per actor (ratio %.2f)\n",
                    c.spawn_s, r.spawn_s / c.spawn_s, c.bytes_per_actor,
                    r.bytes_per_actor / c.bytes_per_actor);
        std::printf("  idle:        %.2f%% of one core\n", c.idle_core_share * 100);
        std::printf("  wake-up:     median %.1f us, p99 %.1f us (ringkernel / CAF median %.2f)\n",
                    caf_wakeups[i].median, caf_wakeups[i].p99, r.wakeup_us.median / caf_wakeups[i].median);
        if (cfg.ring_hops)
          std::printf("  ring:        %.1f ns per hop (ringkernel / CAF %.2f)\n", c.ring_ns_per_hop,
                      r.ring_ns_per_hop / c.ring_ns_per_hop);
        if (c.fan_s >= 0) {
          std::printf("  fan-out/in:  %.3f s (ringkernel / CAF %.2f)\n", c.fan_s, r.fan_s / c.fan_s);
        } else {
          std::printf("  fan-out/in:  not measured above %u actors with work stealing\n",
                      rk::bench::stealing_fan_limit);
        }
      }
#endif
    }
    return 0;
  } catch (const rk::error& e) {
    std::fprintf(stderr, "bench_scale: %s\n", e.what());
    return 1;
  }
}
