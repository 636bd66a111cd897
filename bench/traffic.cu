// Actor traffic, ringkernel beside CAF (issue 11, item 7): the message patterns actor programs are made
// of, at small and large actor counts, with CAF (Debian's libcaf-dev) run in the same process, alternating
// with ringkernel repetition by repetition.
//
//   1. ping-pong: actor A sends a 64-byte message to actor B, which sends it back; A times each round trip
//      on its own clock (steady_clock on the CPU backend, %globaltimer on CUDA) into a histogram kept in
//      its state. p50, p99 and max over `--round-trips` after a warm-up.
//   2. fan-in: 1, 2 and 4 senders each send their share of `--messages` 64-byte messages to one sink
//      (mailbox: 1,024 slots; a sender that finds it full defers and continues on its next turn; CAF's
//      senders send bursts of 64 and continue by messaging themselves). Rate: messages / time from the
//      host's start to the sink's report.
//   3. random traffic: N actors (2, 8, 64, 512, 4,096), 4 tokens per actor (at least 8), each token
//      forwarded to a uniformly random other actor until `--messages` hops are done in all (a ringkernel
//      actor that finds the destination full defers and draws again on its next turn). Rate: hops / time.
//
// Ratios are "ringkernel advantage": CAF latency / ringkernel latency, ringkernel rate / CAF rate (> 1:
// ringkernel is ahead). CAF gets as many scheduler threads as ringkernel's pool (the hardware threads).
//
//   bench_traffic [--json] [--smoke] [--repetitions N] [--backend cpu|cuda] [--round-trips N]
//                 [--messages N] [--pool-threads N] [--workload pingpong|fan_in|random|all]
//                 [--actors N]
// `--pool-threads N`: ringkernel's scheduled pool and CAF's scheduler both get N threads (default: the
// hardware threads).
// `--backend cuda` measures ringkernel on the GPU without CAF (skipped without a usable device).

#include "common/cuda_bench.cuh"
#include "traffic_common.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace {

using rk::bench::latency_histogram;
using rk::bench::pingpong_result;
using rk::bench::rate_result;
using rk::bench::target;

constexpr std::uint32_t start_type = 1;
constexpr std::uint32_t data_type = 2;
constexpr std::uint32_t done_type = 3;

struct payload {
  std::uint64_t stamp = 0; //!< ping-pong: send time; random: hops left
  std::uint64_t filler[7] = {};
};
static_assert(sizeof(payload) == 64);

struct pingpong_start {
  rk::address peer;
  std::uint32_t reserved;
  std::uint64_t warmup;
  std::uint64_t round_trips;
};

struct pinger {
  static constexpr const char* name = "traffic_pinger";
  struct state {
    rk::address peer = 0;
    std::uint64_t warmup = 0, left = 0, refused = 0;
    latency_histogram histogram;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == start_type) {
      const pingpong_start* go = m.as<pingpong_start>();
      if (go == nullptr) return;
      s.peer = go->peer;
      s.warmup = go->warmup;
      s.left = go->warmup + go->round_trips;
    } else if (const payload* back = m.as<payload>()) {
      if (s.warmup > 0)
        --s.warmup;
      else
        s.histogram.add(rk::physical_clock_ns() - back->stamp);
      if (--s.left == 0) {
        if (ctx.send_host(done_type, {}) != rk::status::delivered) ++s.refused;
        return;
      }
    }
    payload p;
    p.stamp = rk::physical_clock_ns();
    if (ctx.send(s.peer, data_type, rk::as_bytes(p)) != rk::status::delivered) ++s.refused;
  }
};

struct ponger {
  static constexpr const char* name = "traffic_ponger";
  struct state {
    std::uint64_t refused = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (ctx.send(m.source(), data_type, m.payload()) != rk::status::delivered) ++s.refused;
  }
};

struct fan_sender {
  static constexpr const char* name = "traffic_fan_sender";
  struct state {
    rk::address sink = 0;
    std::uint64_t left = 0, refused = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message&) {
    const payload p{};
    for (; s.left > 0; --s.left) {
      const rk::status st = ctx.send(s.sink, data_type, rk::as_bytes(p));
      if (st == rk::status::queue_full) return ctx.defer(); // continue on the next turn
      if (st != rk::status::delivered) ++s.refused;
    }
  }
};

struct fan_sink {
  static constexpr const char* name = "traffic_fan_sink";
  struct state {
    std::uint64_t expected = 0, received = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message&) {
    if (++s.received == s.expected && ctx.send_host(done_type, {}) == rk::status::queue_full) {
      --s.received; // try again on the next turn
      ctx.defer();
    }
  }
};

struct walker {
  static constexpr const char* name = "traffic_walker";
  struct state {
    std::uint32_t count = 0; //!< the walkers are ids self - index .. self - index + count - 1
    std::uint32_t index = 0;
    std::uint64_t rng = 0;
    std::uint64_t refused = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const payload* in = m.as<payload>();
    if (in == nullptr) return;
    if (in->stamp == 0) {
      if (ctx.send_host(done_type, {}) == rk::status::queue_full) ctx.defer();
      return;
    }
    payload out = *in;
    --out.stamp;
    s.rng ^= s.rng << 13;
    s.rng ^= s.rng >> 7;
    s.rng ^= s.rng << 17;
    std::uint32_t to = static_cast<std::uint32_t>(s.rng % (s.count - 1));
    if (to >= s.index) ++to; // any actor but itself
    const rk::status st = ctx.send(ctx.self() - s.index + to, data_type, rk::as_bytes(out));
    if (st == rk::status::queue_full) return ctx.defer(); // the next turn draws another destination
    if (st != rk::status::delivered) ++s.refused;
  }
};

unsigned pool_threads = 0; //!< --pool-threads: 0 = the hardware threads (both systems' default)

rk::runtime_options options_for(target t) {
  rk::runtime_options o;
  o.backend = t == target::cpu ? rk::backend::cpu : rk::backend::cuda;
  if (t == target::cpu) o.scheduled_workers = pool_threads;
  return o;
}

void require(bool ok, const std::string& what) {
  if (!ok) throw rk::error("bench_traffic: " + what);
}

void await_done(rk::runtime& rt, std::uint64_t count, const char* what) {
  for (std::uint64_t i = 0; i < count; ++i)
    require(rt.receive(std::chrono::seconds(60)).has_value(),
            std::string(what) + " did not finish within 60 s");
}

pingpong_result rk_pingpong(target t, std::uint64_t warmup, std::uint64_t round_trips) {
  rk::runtime_options o = options_for(t);
  o.max_actors = 2;
  rk::runtime rt(o);
  const rk::actor_index a = rt.spawn<pinger>("a");
  const rk::actor_index b = rt.spawn<ponger>("b");
  rt.start();
  const pingpong_start go{b, 0, warmup, round_trips};
  require(rt.send(a, start_type, rk::as_bytes(go)) == rk::status::enqueued, "ping-pong start not sent");
  await_done(rt, 1, "ping-pong");
  rt.shutdown();
  const pinger::state s = rt.state<pinger>(a);
  require(s.refused == 0 && rt.state<ponger>(b).refused == 0, "a ping-pong send was refused");
  return {s.histogram.percentile(0.5), s.histogram.percentile(0.99), s.histogram.percentile(1.0),
          s.histogram.total()};
}

rate_result rk_fan_in(target t, std::uint32_t senders, std::uint64_t per_sender) {
  rk::runtime_options o = options_for(t);
  o.max_actors = senders + 1;
  rk::runtime rt(o);
  const std::uint64_t total = senders * per_sender;
  const rk::actor_index sink =
      rt.spawn<fan_sink>("sink", {.mailbox = {1024, 128}}, fan_sink::state{total, 0});
  std::vector<rk::actor_index> from;
  for (std::uint32_t i = 0; i < senders; ++i)
    from.push_back(
        rt.spawn<fan_sender>("sender/" + std::to_string(i), {}, fan_sender::state{sink, per_sender, 0}));
  rt.start();
  const auto t0 = std::chrono::steady_clock::now();
  for (const rk::actor_index s : from)
    require(rt.send(s, start_type, {}) == rk::status::enqueued, "fan-in start not sent");
  await_done(rt, 1, "fan-in");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rt.shutdown();
  for (const rk::actor_index s : from)
    require(rt.state<fan_sender>(s).refused == 0, "a fan-in send was refused");
  return {static_cast<double>(total) / seconds, total};
}

rate_result rk_random(target t, std::uint32_t actors, std::uint32_t tokens, std::uint64_t hops) {
  rk::runtime_options o = options_for(t);
  o.max_actors = actors;
  rk::runtime rt(o);
  std::vector<walker::state> states(actors);
  for (std::uint32_t i = 0; i < actors; ++i) states[i] = {actors, i, 0x9e3779b97f4a7c15ull * (i + 1), 0};
  const std::vector<rk::actor_index> ids = rt.spawn_many<walker>("walker", actors, {}, states);
  for (std::uint32_t i = 0; i < actors; ++i) require(ids[i] == ids[0] + i, "walker ids are not contiguous");
  rt.start();
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint32_t k = 0; k < tokens; ++k) {
    payload p;
    p.stamp = hops;
    require(rt.send_blocking(ids[k % actors], data_type, rk::as_bytes(p), std::chrono::seconds(10)) ==
                rk::status::enqueued,
            "a token was not sent");
  }
  await_done(rt, tokens, "random traffic");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rt.shutdown();
  for (const rk::actor_index a : ids)
    require(rt.state<walker>(a).refused == 0, "a random-traffic send was refused");
  return {static_cast<double>(tokens) * static_cast<double>(hops) / seconds, std::uint64_t{tokens} * hops};
}

} // namespace

// --- driver -------------------------------------------------------------------------------------------

namespace {

struct settings {
  rk::bench::common_args common;
  target backend = target::cpu;
  std::uint64_t round_trips = 0, messages = 0;
  std::string workload = "all"; //!< --workload: pingpong, fan_in, random or all
  std::uint32_t actors = 0;     //!< --actors: only the fan-in and random runs with this many actors (0: all)
  bool with_caf = false;
};

//! One workload's samples for both systems, one per repetition.
struct comparison {
  std::string workload; //!< "pingpong", "fan_in", "random"
  std::uint32_t actors = 0;
  std::vector<double> rk_values, caf_values;            //!< rate (msg/s) or p50 (ns)
  std::vector<double> rk_p99, caf_p99, rk_max, caf_max; //!< ping-pong only
  //! Before each repetition: the cross-CPU round trip (bench_util.hpp), which tells this VM's phases apart.
  std::vector<double> rk_cross_cpu_ns, caf_cross_cpu_ns;
  bool latency = false;
};

double median_of(std::vector<double> v) {
  return rk::bench::summarize(std::move(v)).median;
}

//! `measure(caf)` once per repetition for each system, alternating which goes first; records the
//! cross-CPU round trip before each.
template <class Measure>
void alternate(const settings& cfg, comparison& c, Measure&& measure) {
  const auto run = [&](bool caf) {
    (caf ? c.caf_cross_cpu_ns : c.rk_cross_cpu_ns).push_back(rk::bench::cross_cpu_round_trip_ns());
    measure(caf);
  };
  for (int r = 0; r < cfg.common.repetitions; ++r) {
    const bool caf_first = cfg.with_caf && r % 2 == 1;
    if (caf_first) run(true);
    run(false);
    if (cfg.with_caf && !caf_first) run(true);
  }
}

std::vector<comparison> run_all(const settings& cfg) {
  const unsigned threads =
      pool_threads != 0 ? pool_threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<comparison> out;
  const auto wanted = [&](const char* name) { return cfg.workload == "all" || cfg.workload == name; };
  if (wanted("pingpong") && (cfg.actors == 0 || cfg.actors == 2)) {
    comparison c;
    c.workload = "pingpong";
    c.actors = 2;
    c.latency = true;
    const std::uint64_t warmup = std::max<std::uint64_t>(1, cfg.round_trips / 10);
    alternate(cfg, c, [&](bool caf) {
      pingpong_result r{};
#if RK_BENCH_HAVE_CAF
      if (caf) r = rk::bench::caf_pingpong(warmup, cfg.round_trips, threads);
#endif
      if (!caf) r = rk_pingpong(cfg.backend, warmup, cfg.round_trips);
      (caf ? c.caf_values : c.rk_values).push_back(r.p50_ns);
      (caf ? c.caf_p99 : c.rk_p99).push_back(r.p99_ns);
      (caf ? c.caf_max : c.rk_max).push_back(r.max_ns);
    });
    out.push_back(std::move(c));
  }
  for (const std::uint32_t senders : {1u, 2u, 4u}) {
    if (!wanted("fan_in")) break;
    if (cfg.actors != 0 && cfg.actors != senders + 1) continue;
    comparison c;
    c.workload = "fan_in";
    c.actors = senders + 1;
    const std::uint64_t per_sender = cfg.messages / senders;
    alternate(cfg, c, [&](bool caf) {
      rate_result r{};
#if RK_BENCH_HAVE_CAF
      if (caf) r = rk::bench::caf_fan_in(senders, per_sender, threads);
#endif
      if (!caf) r = rk_fan_in(cfg.backend, senders, per_sender);
      (caf ? c.caf_values : c.rk_values).push_back(r.messages_per_s);
    });
    out.push_back(std::move(c));
  }
  for (const std::uint32_t actors : {2u, 8u, 64u, 512u, 4096u}) {
    if (!wanted("random")) break;
    if (cfg.actors != 0 && cfg.actors != actors) continue;
    comparison c;
    c.workload = "random";
    c.actors = actors;
    const std::uint32_t tokens = std::max(8u, 4 * actors);
    const std::uint64_t hops = std::max<std::uint64_t>(1, cfg.messages / tokens);
    alternate(cfg, c, [&](bool caf) {
      rate_result r{};
#if RK_BENCH_HAVE_CAF
      if (caf) r = rk::bench::caf_random(actors, tokens, hops, threads);
#endif
      if (!caf) r = rk_random(cfg.backend, actors, tokens, hops);
      (caf ? c.caf_values : c.rk_values).push_back(r.messages_per_s);
    });
    out.push_back(std::move(c));
  }
  (void)threads;
  return out;
}

//! The values themselves, one per repetition, in order.
std::string numbers_json(const std::vector<double>& v) {
  std::vector<std::string> items;
  for (const double x : v) items.push_back(std::to_string(static_cast<long long>(std::llround(x))));
  return rk::bench::json_array(items);
}

//! {"median", "p99", "min", "max", "mean", "count"} over the repetitions.
std::string samples_json(const std::vector<double>& v) {
  return rk::bench::summary_json(rk::bench::summarize(v), 0);
}

//! CAF / ringkernel for latencies, ringkernel / CAF for rates: > 1 means ringkernel is ahead.
double advantage(const comparison& c, const std::vector<double>& rk_v, const std::vector<double>& caf_v) {
  if (rk_v.empty() || caf_v.empty()) return 0;
  return c.latency ? median_of(caf_v) / median_of(rk_v) : median_of(rk_v) / median_of(caf_v);
}

//! The advantage of each repetition against the CAF run next to it (min, median, max). This machine's
//! speed at cross-core traffic drifts for seconds at a time (both systems slow down together), so the
//! ratio of two medians can pair a slow ringkernel repetition with a fast CAF one; the paired ratios do
//! not.
rk::bench::summary paired_advantage(const comparison& c, const std::vector<double>& rk_v,
                                    const std::vector<double>& caf_v) {
  std::vector<double> ratios;
  for (std::size_t i = 0; i < std::min(rk_v.size(), caf_v.size()); ++i)
    if (rk_v[i] > 0 && caf_v[i] > 0) ratios.push_back(c.latency ? caf_v[i] / rk_v[i] : rk_v[i] / caf_v[i]);
  return rk::bench::summarize(std::move(ratios));
}

std::string loadavg() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (f == nullptr) return "unknown";
  char buf[128] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  std::string s(buf, n);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

} // namespace

int main(int argc, char** argv) {
  settings cfg;
  std::optional<std::uint64_t> round_trips, messages;
  cfg.common = rk::bench::parse_common(
      argc, argv, "bench_traffic",
      "[--backend cpu|cuda] [--round-trips N] [--messages N] [--pool-threads N] [--workload W] [--actors N]",
      [&](CLI::App& app) {
        rk::bench::add_target_flag(app, cfg.backend);
        rk::cli::add_count(app, "--round-trips", round_trips, "ping-pong round trips (10 .. 10^8)",
                           100'000'000, 10);
        rk::cli::add_count(app, "--pool-threads", pool_threads, "worker threads of both systems (0: all)")
            ->check(CLI::Range(0u, 64u));
        rk::cli::add_count(app, "--messages", messages, "messages per traffic pattern (10^5 .. 10^11)",
                           100'000'000'000, 100'000);
        app.add_option("--workload", cfg.workload, "only this workload")
            ->check(CLI::IsMember({"all", "pingpong", "fan_in", "random"}));
        app.add_option("--actors", cfg.actors,
                       "only the runs with this many actors: fan_in 2, 3 or 5; random 2, 8, 64, 512 or 4096")
            ->check(CLI::IsMember({2u, 3u, 5u, 8u, 64u, 512u, 4096u}));
      });
  // --actors picks runs; a combination that picks none would measure nothing.
  if (cfg.actors != 0) {
    const bool fan_in = cfg.actors == 2 || cfg.actors == 3 || cfg.actors == 5;
    const bool random =
        cfg.actors == 2 || cfg.actors == 8 || cfg.actors == 64 || cfg.actors == 512 || cfg.actors == 4096;
    const std::string got =
        " (got --workload " + cfg.workload + " --actors " + std::to_string(cfg.actors) + ")";
    if (cfg.workload == "pingpong" && cfg.actors != 2)
      rk::bench::usage_error(cfg.common, "--workload pingpong always runs 2 actors: leave out --actors or "
                                         "give --actors 2" +
                                             got);
    if (cfg.workload == "fan_in" && !fan_in)
      rk::bench::usage_error(cfg.common, "--workload fan_in runs 2, 3 or 5 actors (1, 2 or 4 senders)" + got);
    if (cfg.workload == "random" && !random)
      rk::bench::usage_error(cfg.common, "--workload random runs 2, 8, 64, 512 or 4096 actors" + got);
  }
  cfg.round_trips = round_trips.value_or(cfg.common.smoke ? 2'000 : 200'000);
  cfg.messages = messages.value_or(cfg.common.smoke ? 100'000 : 2'000'000);
  cfg.with_caf = RK_BENCH_HAVE_CAF && cfg.backend == target::cpu;
  try {
    std::string machine = rk::bench::cpu_description();
    if (cfg.backend == target::cuda) {
      const rk::device_probe probe = rk::probe_cuda_device();
      if (!probe.usable) {
        rk::bench::print_skipped(cfg.common, "traffic", probe.description);
        return 0;
      }
      machine = rk::bench::gpu_description();
    }
    const std::string load_before = loadavg();
    const std::vector<comparison> results = run_all(cfg);
    const std::string load_after = loadavg();
    if (cfg.common.json) {
      std::vector<std::string> rows;
      for (const comparison& c : results) {
        rk::bench::json_object o;
        o.text("workload", c.workload).integer("actors", c.actors);
        o.raw(c.latency ? "ringkernel_p50_ns" : "ringkernel_messages_per_s", samples_json(c.rk_values));
        o.raw("ringkernel_samples", numbers_json(c.rk_values)); // per repetition, in order
        o.raw("ringkernel_cross_cpu_ns", numbers_json(c.rk_cross_cpu_ns));
        if (cfg.with_caf)
          o.raw("caf_samples", numbers_json(c.caf_values))
              .raw("caf_cross_cpu_ns", numbers_json(c.caf_cross_cpu_ns));
        if (c.latency)
          o.raw("ringkernel_p99_ns", samples_json(c.rk_p99)).raw("ringkernel_max_ns", samples_json(c.rk_max));
        if (cfg.with_caf) {
          o.raw(c.latency ? "caf_p50_ns" : "caf_messages_per_s", samples_json(c.caf_values));
          if (c.latency)
            o.raw("caf_p99_ns", samples_json(c.caf_p99)).raw("caf_max_ns", samples_json(c.caf_max));
          o.number("advantage", advantage(c, c.rk_values, c.caf_values), 3);
          o.raw("paired_advantage",
                rk::bench::summary_json(paired_advantage(c, c.rk_values, c.caf_values), 3));
          if (c.latency) {
            o.number("advantage_p99", advantage(c, c.rk_p99, c.caf_p99), 3);
            o.raw("paired_advantage_p99",
                  rk::bench::summary_json(paired_advantage(c, c.rk_p99, c.caf_p99), 3));
          }
        }
        rows.push_back(o.str());
      }
      std::printf(
          "%s\n",
          rk::bench::json_object()
              .text("benchmark", "traffic")
              .text("backend", rk::bench::target_name(cfg.backend))
              .text("machine", machine)
              .text("baseline", cfg.with_caf ? "CAF 0.17 (libcaf-dev), same process, alternating" : "none")
              .integer("round_trips", cfg.round_trips)
              .integer("messages", cfg.messages)
              .text("loadavg_before", load_before)
              .text("loadavg_after", load_after)
              .raw("results", rk::bench::json_array(rows))
              .str()
              .c_str());
    } else {
      std::printf("bench_traffic on %s (%s backend), %d repetitions, medians; load %s -> %s\n",
                  machine.c_str(), rk::bench::target_name(cfg.backend), cfg.common.repetitions,
                  load_before.c_str(), load_after.c_str());
      std::printf("  %-10s %7s %16s %16s %10s %s\n", "workload", "actors", "ringkernel",
                  cfg.with_caf ? "CAF" : "", cfg.with_caf ? "advantage" : "",
                  cfg.with_caf ? " paired: median (min..max)" : "");
      std::printf("  (c2c: the cross-CPU round trip before each repetition; this VM moves between ~60 and "
                  "~320 ns for seconds at a time)\n");
      const auto print_paired = [&](const comparison& c, const std::vector<double>& rk_v,
                                    const std::vector<double>& caf_v) {
        const rk::bench::summary p = paired_advantage(c, rk_v, caf_v);
        std::printf("  %6.2fx (%.2f..%.2f)", p.median, p.min, p.max);
      };
      for (const comparison& c : results) {
        const char* unit = c.latency ? "ns p50" : "msg/s";
        std::printf("  %-10s %7u %12.0f %-6s", c.workload.c_str(), c.actors, median_of(c.rk_values), unit);
        if (cfg.with_caf) {
          std::printf(" %9.0f %-6s %9.2fx", median_of(c.caf_values), unit,
                      advantage(c, c.rk_values, c.caf_values));
          print_paired(c, c.rk_values, c.caf_values);
        }
        std::vector<double> cross = c.rk_cross_cpu_ns;
        cross.insert(cross.end(), c.caf_cross_cpu_ns.begin(), c.caf_cross_cpu_ns.end());
        const rk::bench::summary x = rk::bench::summarize(cross);
        std::printf("  c2c %.0f..%.0f ns\n", x.min, x.max);
        if (c.latency) {
          std::printf("  %-10s %7s %12.0f %-6s", "", "", median_of(c.rk_p99), "ns p99");
          if (cfg.with_caf) {
            std::printf(" %9.0f %-6s %9.2fx", median_of(c.caf_p99), "ns p99",
                        advantage(c, c.rk_p99, c.caf_p99));
            print_paired(c, c.rk_p99, c.caf_p99);
          }
          std::printf("\n");
        }
      }
    }
    return 0;
  } catch (const rk::error& e) {
    std::fprintf(stderr, "bench_traffic: %s\n", e.what());
    return 1;
  }
}
