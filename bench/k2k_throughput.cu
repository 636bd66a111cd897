// (c) K2K throughput and (d) scaling.
//
// N actors pass tokens to random destinations: each actor, seeded once by the host, creates
// `tokens_per_actor` tokens; every actor that receives a token sends it on (K2K) to a uniformly random
// other actor. So N * tokens_per_actor messages stay in flight and every handled token is one K2K message
// of `payload_bytes` (64 or 256) delivered. The host counts handled messages (rt.stats()) over
// `--repetitions` windows of `window` each, after a warm-up, on the host clock: messages/s, payload GB/s
// (messages/s * payload bytes) and slot GB/s (with the 64-byte envelope). Then it stops every actor
// (tokens are absorbed from then on), shuts down, and checks that every token was absorbed exactly once and
// that handled = seeds + stops + delivered K2K sends (nothing lost or duplicated).
//
// (c) throughput: N from 2 up to the resident-worker limit (CUDA: the occupancy limit of the actor kernel,
//     one block per actor; the gateway takes one more block), 64- and 256-byte payloads, beside a
//     device-to-device cudaMemcpy bandwidth measured in the same run (bytes copied / time, events) and
//     the ratio payload GB/s / copy GB/s.
// (d) scaling: 64-byte payloads, N = 1, 2, 4, ... up to the same limit: messages/s, per actor, and memory:
//     device memory (cudaMemGetInfo before construction and after start) or, on the CPU backend, the
//     growth of the C heap in use (mallinfo2: every "device" allocation of the CPU backend is a heap
//     allocation), divided by N; plus the mailbox bytes per actor by geometry.
//
// `--backend cpu` runs both on the CPU backend with small N, labelled CPU.
//
//   bench_k2k_throughput [--json] [--smoke] [--repetitions N] [--backend cuda|cpu] [--window-ms N]
//                        [--tokens-per-actor N] [--max-actors N] [--idle-sleep-ns N] [--scheduled-workers N]
//
// `--scheduled-workers N` sizes the pool of scheduled workers (runtime_options::scheduled_workers): on CUDA
// the default is one single-thread block per SM, so throughput across many actors is bounded by that many
// messages in progress at once; a larger pool shows how far more workers per SM take it.

#include "common/cuda_bench.cuh"

#include <chrono>
#include <optional>
#include <thread>
#include <vector>

namespace {

using rk::bench::target;

constexpr std::uint32_t msg_seed = 1;
constexpr std::uint32_t msg_token = 2;
constexpr std::uint32_t msg_stop = 3;
constexpr std::uint32_t mailbox_slots = 256;
//! Destinations a sender tries before it gives a token up (a full mailbox returns queue_full at once).
constexpr std::uint32_t send_attempts = 8;

template <std::uint32_t Bytes>
struct token {
  std::uint64_t origin;   //!< actor that created the token
  std::uint64_t sequence; //!< hops taken so far
  std::uint64_t filler[Bytes / 8 - 2];
};

template <std::uint32_t Bytes>
struct sprayer {
  static_assert(Bytes >= 16 && Bytes % 64 == 0);
  static constexpr const char* name = Bytes == 64 ? "sprayer_64B" : "sprayer_256B";
  struct state {
    std::uint32_t actors = 0;   //!< destinations are ids 0 .. actors-1 (this benchmark spawns nothing else)
    std::uint32_t tokens = 0;   //!< tokens this actor creates when the host seeds it
    std::uint64_t rng = 0;      //!< xorshift64 state, non-zero
    std::uint32_t stopping = 0; //!< set by msg_stop: absorb tokens from then on
    std::uint32_t reserved = 0;
    std::uint64_t forwarded = 0; //!< K2K token sends delivered
    std::uint64_t absorbed = 0;  //!< tokens that ended here after the stop
    std::uint64_t lost = 0;      //!< tokens given up because every tried destination was full
  };

  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == msg_stop) {
      s.stopping = 1;
    } else if (m.type() == msg_seed) {
      for (std::uint32_t i = 0; i < s.tokens; ++i) {
        token<Bytes> t{};
        t.origin = ctx.self();
        pass_on(ctx, s, t);
      }
    } else if (const token<Bytes>* in = m.as<token<Bytes>>()) {
      if (s.stopping) {
        ++s.absorbed;
        return;
      }
      token<Bytes> t = *in;
      ++t.sequence;
      pass_on(ctx, s, t);
    }
  }

private:
  template <class Ctx>
  RK_HOST_DEVICE static void pass_on(Ctx& ctx, state& s, const token<Bytes>& t) {
    for (std::uint32_t attempt = 0; attempt < send_attempts; ++attempt) {
      const rk::status st = ctx.send(pick(s, ctx.self()), msg_token, rk::as_bytes(t));
      if (st == rk::status::delivered) {
        ++s.forwarded;
        return;
      }
      if (st != rk::status::queue_full) break;
    }
    ++s.lost;
  }
  RK_HOST_DEVICE static std::uint32_t pick(state& s, std::uint32_t self) {
    s.rng ^= s.rng << 13;
    s.rng ^= s.rng >> 7;
    s.rng ^= s.rng << 17;
    if (s.actors <= 1) return self;
    const auto d = static_cast<std::uint32_t>(s.rng % (s.actors - 1)); // uniform over the others
    return d >= self ? d + 1 : d;
  }
};

struct settings {
  rk::bench::common_args common;
  target backend = target::cuda;
  std::chrono::milliseconds window{200};
  std::chrono::milliseconds warmup{100};
  std::uint32_t tokens_per_actor = 16;
  std::optional<std::uint32_t> max_actors; //!< overrides the computed resident-worker limit
  std::optional<std::uint32_t> idle_sleep_ns;
  //! runtime_options::scheduled_workers (CUDA: blocks per handler type; default one per SM)
  std::optional<std::uint32_t> scheduled_workers;
};

struct run_result {
  std::uint32_t actors = 0;
  std::uint32_t payload_bytes = 0;
  rk::bench::summary msgs_per_s;
  std::uint64_t lost_tokens = 0;
  std::uint64_t queue_full_sends = 0;
  std::uint64_t memory_bytes = 0; //!< measured (see memory_method)
  std::uint64_t mailbox_bytes_per_actor = 0;
  //! (memory(N) - memory(1)) / (N - 1) in the scaling series: what one more actor costs, without the
  //! runtime's fixed part (host rings, control block). Empty when not computed.
  std::optional<double> marginal_bytes_per_actor;
};

//! Bytes in use by this process on the measured side: device memory (CUDA) or the resident set (CPU).
std::uint64_t memory_in_use(target t) {
  if (t == target::cpu) return rk::bench::heap_bytes_in_use();
  std::size_t free_bytes = 0, total_bytes = 0;
  RK_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return total_bytes - free_bytes;
}

//! Thrown when start() refused because the actor kernels cannot all be co-resident.
struct not_resident {
  std::string what;
};

std::uint64_t total_handled(const rk::runtime_stats& s) {
  std::uint64_t sum = 0;
  for (const auto& a : s.actors) sum += a.handled;
  return sum;
}

template <std::uint32_t Bytes>
run_result run(const settings& cfg, std::uint32_t actors) {
  using H = sprayer<Bytes>;
  run_result result;
  result.actors = actors;
  result.payload_bytes = Bytes;
  const rk::ring_geometry mailbox{mailbox_slots, rk::envelope_bytes + Bytes};
  // One lane (actor_options::priority_lanes is off by default), padded to its stride.
  result.mailbox_bytes_per_actor = rk::detail::lane_stride(mailbox);

  const std::uint64_t memory_before = memory_in_use(cfg.backend);
  rk::runtime_options options;
  options.running_arena_bytes = 0; // nothing is spawned after start(): keep memory figures per actor
  options.backend = cfg.backend == target::cuda ? rk::backend::cuda : rk::backend::cpu;
  options.announce_backend = false;
  options.max_actors = actors;
  if (cfg.idle_sleep_ns) options.device_idle_sleep_max_ns = *cfg.idle_sleep_ns;
  if (cfg.scheduled_workers) options.scheduled_workers = *cfg.scheduled_workers;
  rk::runtime rt(options);
  for (std::uint32_t i = 0; i < actors; ++i) {
    typename H::state initial;
    initial.actors = actors;
    initial.tokens = cfg.tokens_per_actor;
    initial.rng = 0x9E3779B97F4A7C15ull * (i + 1);
    std::string name = "a"; // appended, not "a" + ...: GCC 12 warns falsely (-Wrestrict) about the latter
    name += std::to_string(i);
    const auto id = rt.spawn<H>(std::move(name), {.mailbox = mailbox}, initial);
    if (id != i) throw rk::error("k2k_throughput: actor ids are expected to be dense from 0");
  }
  try {
    rt.start();
  } catch (const rk::error& e) {
    if (std::string(e.what()).find("co-resident") != std::string::npos) throw not_resident{e.what()};
    throw;
  }
  const std::uint64_t memory_after = memory_in_use(cfg.backend);
  result.memory_bytes = memory_after > memory_before ? memory_after - memory_before : 0;

  // Host messages go through the ingress ring; retry while it is full, for at most 60 s per round.
  auto send_all = [&](std::uint32_t type) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    const std::uint64_t body =
        type; // the handler ignores it; a non-empty payload keeps memcpy's source valid
    for (std::uint32_t i = 0; i < actors; ++i) {
      rk::backoff retry;
      for (;;) {
        const rk::status s = rt.send(i, type, rk::as_bytes(body));
        if (s == rk::status::enqueued) break;
        if (s != rk::status::queue_full || std::chrono::steady_clock::now() > deadline)
          throw rk::error(std::string("k2k_throughput: host send returned ") + rk::to_string(s));
        retry.pause();
      }
    }
  };
  send_all(msg_seed);

  // Warm-up: every seed was taken by the gateway, then `warmup` more of steady state.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  rk::backoff idle;
  while (rt.stats().gateway_processed < actors) {
    if (std::chrono::steady_clock::now() > deadline)
      throw rk::error("k2k_throughput: the gateway did not deliver every seed within 60 s");
    idle.pause();
  }
  // The window length is what is measured, not a synchronization: the actors run on their own meanwhile.
  std::this_thread::sleep_for(cfg.warmup);

  std::vector<double> rates;
  std::uint64_t handled_before = total_handled(rt.stats());
  auto t_before = std::chrono::steady_clock::now();
  for (int w = 0; w < cfg.common.repetitions; ++w) {
    std::this_thread::sleep_for(cfg.window);
    const std::uint64_t handled_after = total_handled(rt.stats());
    const auto t_after = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(t_after - t_before).count();
    rates.push_back(static_cast<double>(handled_after - handled_before) / seconds);
    handled_before = handled_after;
    t_before = t_after;
  }
  result.msgs_per_s = rk::bench::summarize(rates);

  send_all(msg_stop);
  const rk::shutdown_report report = rt.shutdown();
  if (!report.drained || report.fault)
    throw rk::error("k2k_throughput: shutdown did not drain (" + std::to_string(report.undelivered) +
                    " undelivered)");
  const rk::runtime_stats stats = rt.stats();
  std::uint64_t absorbed = 0, forwarded = 0;
  for (std::uint32_t i = 0; i < actors; ++i) {
    const auto s = rt.state<H>(i);
    absorbed += s.absorbed;
    forwarded += s.forwarded;
    result.lost_tokens += s.lost;
  }
  result.queue_full_sends = stats.actor_sends(rk::status::queue_full);
  const std::uint64_t tokens = std::uint64_t{actors} * cfg.tokens_per_actor;
  const std::uint64_t delivered = stats.actor_sends(rk::status::delivered);
  if (absorbed + result.lost_tokens != tokens || delivered != forwarded ||
      total_handled(stats) != 2ull * actors + delivered)
    throw rk::error("k2k_throughput: counters do not balance (tokens " + std::to_string(tokens) +
                    ", absorbed " + std::to_string(absorbed) + ", lost " +
                    std::to_string(result.lost_tokens) + ", delivered " + std::to_string(delivered) +
                    ", handled " + std::to_string(total_handled(stats)) + ")");
  return result;
}

run_result run_payload(const settings& cfg, std::uint32_t actors, std::uint32_t payload_bytes) {
  return payload_bytes == 64 ? run<64>(cfg, actors) : run<256>(cfg, actors);
}

//! CUDA: the most actors whose kernels fit beside the gateway, from the occupancy API (one block of
//! threads_per_worker threads per actor). The gateway kernel's own occupancy is private to the runtime;
//! it is one one-warp block, counted here as one actor block.
template <class H>
std::uint32_t resident_actor_limit() {
  int device = 0, per_sm = 0;
  RK_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp p{};
  RK_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  RK_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &per_sm, rk::actor_kernel<H>, static_cast<int>(rk::threads_per_worker_v<H>), 0));
  const std::int64_t blocks = std::int64_t{per_sm} * p.multiProcessorCount - 1;
  return static_cast<std::uint32_t>(std::max<std::int64_t>(blocks, 1));
}

int multiprocessors() {
  int device = 0, sms = 0;
  RK_CUDA_CHECK(cudaGetDevice(&device));
  RK_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

//! Device-to-device cudaMemcpy bandwidth in GB/s (bytes copied / event time; DRAM traffic is twice that).
rk::bench::summary copy_bandwidth(std::size_t bytes, int repetitions) {
  rk::bench::device_buffer<std::byte> src(bytes), dst(bytes);
  cudaStream_t stream = nullptr;
  RK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  RK_CUDA_CHECK(cudaMemsetAsync(src.get(), 1, bytes, stream));
  rk::bench::event_timer timer;
  std::vector<double> gbps;
  for (int r = -2; r < repetitions; ++r) { // two warm-up copies
    timer.record_start(stream);
    RK_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, stream));
    timer.record_stop(stream);
    const double ms = timer.elapsed_ms();
    if (r >= 0) gbps.push_back(static_cast<double>(bytes) / (ms * 1e-3) / 1e9);
  }
  RK_CUDA_CHECK(cudaStreamDestroy(stream));
  return rk::bench::summarize(gbps);
}

//! Runs `actors`, stepping down by `step` (at most 3 times) when start() finds them not co-resident.
run_result run_fitting(const settings& cfg, std::uint32_t actors, std::uint32_t payload_bytes,
                       std::uint32_t step, std::vector<std::string>& notes) {
  for (int attempt = 0;; ++attempt) {
    try {
      return run_payload(cfg, actors, payload_bytes);
    } catch (const not_resident& e) {
      if (attempt == 3 || actors <= step) throw rk::error(e.what);
      notes.push_back(std::to_string(actors) + " actors were not co-resident; retried with " +
                      std::to_string(actors - step));
      actors -= step;
    }
  }
}

std::vector<std::uint32_t> powers_of_two_up_to(std::uint32_t limit) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t n = 1; n < limit; n *= 2) out.push_back(n);
  out.push_back(limit);
  return out;
}

std::string run_json(const run_result& r, std::optional<double> copy_gbps, const char* memory_method) {
  const double payload_gbps = r.msgs_per_s.median * r.payload_bytes / 1e9;
  rk::bench::json_object o;
  o.integer("actors", r.actors)
      .integer("payload_bytes", r.payload_bytes)
      .raw("msgs_per_s", rk::bench::summary_json(r.msgs_per_s, 0))
      .number("msgs_per_s_per_actor", r.msgs_per_s.median / r.actors, 0)
      .number("payload_gbps", payload_gbps, 4)
      .number("slot_gbps", r.msgs_per_s.median * (r.payload_bytes + rk::envelope_bytes) / 1e9, 4);
  if (copy_gbps) {
    o.number("ratio_to_copy", payload_gbps / *copy_gbps, 5);
  } else {
    o.null("ratio_to_copy");
  }
  o.integer("lost_tokens", r.lost_tokens)
      .integer("queue_full_sends", r.queue_full_sends)
      .integer("memory_bytes", r.memory_bytes)
      .integer("memory_bytes_per_actor", r.memory_bytes / r.actors)
      .integer("mailbox_bytes_per_actor", r.mailbox_bytes_per_actor);
  if (r.marginal_bytes_per_actor) {
    o.number("memory_marginal_bytes_per_actor", *r.marginal_bytes_per_actor, 0);
  } else {
    o.null("memory_marginal_bytes_per_actor");
  }
  return o.text("memory_method", memory_method).str();
}

void print_table(const char* title, const std::vector<run_result>& rows, std::optional<double> copy_gbps) {
  std::printf("%s\n%8s %8s %28s %14s %10s %10s %14s %14s %12s %6s\n", title, "actors", "payload",
              "msgs/s median [min-max]", "msgs/s/actor", "payload", "vs copy", "memory/actor", "marginal",
              "mailbox", "lost");
  for (const auto& r : rows) {
    char rate[64], ratio[32];
    std::snprintf(rate, sizeof rate, "%.3gM [%.3g - %.3g]", r.msgs_per_s.median / 1e6, r.msgs_per_s.min / 1e6,
                  r.msgs_per_s.max / 1e6);
    const double payload_gbps = r.msgs_per_s.median * r.payload_bytes / 1e9;
    if (copy_gbps) {
      std::snprintf(ratio, sizeof ratio, "%.4f", payload_gbps / *copy_gbps);
    } else {
      std::snprintf(ratio, sizeof ratio, "n/a");
    }
    char marginal[32] = "-";
    if (r.marginal_bytes_per_actor)
      std::snprintf(marginal, sizeof marginal, "%.1fKiB", *r.marginal_bytes_per_actor / 1024.0);
    std::printf("%8u %7uB %28s %14.0f %7.3fGB/s %10s %12.1fKiB %14s %9.1fKiB %6llu\n", r.actors,
                r.payload_bytes, rate, r.msgs_per_s.median / r.actors, payload_gbps, ratio,
                r.memory_bytes / r.actors / 1024.0, marginal, r.mailbox_bytes_per_actor / 1024.0,
                static_cast<unsigned long long>(r.lost_tokens));
  }
}

} // namespace

int main(int argc, char** argv) {
  settings cfg;
  std::optional<std::uint64_t> window_flag;
  cfg.common = rk::bench::parse_common(
      argc, argv, "bench_k2k_throughput",
      "[--backend cuda|cpu] [--window-ms N] [--tokens-per-actor N] [--max-actors N] [--idle-sleep-ns N] "
      "[--scheduled-workers N]",
      [&](CLI::App& app) {
        rk::bench::add_target_flag(app, cfg.backend);
        rk::cli::add_count(app, "--window-ms", window_flag, "measured window per point (1 .. 3600000)",
                           3'600'000, 1);
        // A quarter of the mailbox: room for the tokens that pile up at one actor.
        rk::cli::add_count(app, "--tokens-per-actor", cfg.tokens_per_actor,
                           "tokens each actor circulates (1 .. " + std::to_string(mailbox_slots / 4) + ")",
                           mailbox_slots / 4, 1);
        // Tokens go to another actor: the throughput runs need two.
        rk::cli::add_count(app, "--max-actors", cfg.max_actors,
                           "largest actor count measured (2 .. 16777216)", 1u << 24, 2);
        rk::cli::add_count(app, "--idle-sleep-ns", cfg.idle_sleep_ns, "device idle backoff cap");
        rk::cli::add_count(app, "--scheduled-workers", cfg.scheduled_workers,
                           "runtime_options::scheduled_workers (default: the backend's)");
      });
  if (cfg.common.smoke) {
    cfg.window = std::chrono::milliseconds(20);
    cfg.warmup = std::chrono::milliseconds(10);
  }
  if (window_flag) cfg.window = std::chrono::milliseconds(*window_flag);

  try {
    const std::string host_cpu = rk::bench::cpu_description();
    const bool gpu = cfg.backend == target::cuda;
    std::string machine = host_cpu;
    std::optional<rk::bench::summary> copy;
    std::optional<std::uint32_t> limit;
    std::uint32_t step = 1;
    std::vector<std::uint32_t> throughput_actors, scaling_actors;
    if (gpu) {
      const rk::device_probe probe = rk::probe_cuda_device();
      if (!probe.usable) {
        rk::bench::print_skipped(cfg.common, "k2k_throughput", probe.description);
        return 0;
      }
      machine = rk::bench::gpu_description();
      copy = copy_bandwidth(cfg.common.smoke ? (16u << 20) : (256u << 20), cfg.common.smoke ? 3 : 20);
      limit = std::min(resident_actor_limit<sprayer<64>>(), resident_actor_limit<sprayer<256>>());
      if (cfg.max_actors) limit = std::min(*limit, *cfg.max_actors);
      const auto sms = static_cast<std::uint32_t>(multiprocessors());
      step = sms;
      if (cfg.common.smoke) {
        throughput_actors = {2, std::min(8u, *limit)};
        scaling_actors = {1, 2, 4};
      } else {
        throughput_actors = {2, std::min(sms, *limit), *limit};
        scaling_actors = powers_of_two_up_to(*limit);
      }
    } else {
      const std::uint32_t cap = cfg.max_actors.value_or(cfg.common.smoke ? 4 : 1024);
      throughput_actors =
          cfg.common.smoke ? std::vector<std::uint32_t>{2, 4} : std::vector<std::uint32_t>{2, 8, 64};
      for (auto& n : throughput_actors) n = std::min(n, cap); // cap >= 2 (--max-actors)
      scaling_actors = powers_of_two_up_to(cap);
    }
    std::sort(throughput_actors.begin(), throughput_actors.end());
    throughput_actors.erase(std::unique(throughput_actors.begin(), throughput_actors.end()),
                            throughput_actors.end());

    std::vector<std::string> notes;
    std::vector<run_result> throughput, scaling;
    for (const std::uint32_t payload : {64u, 256u})
      for (const std::uint32_t n : throughput_actors)
        throughput.push_back(run_fitting(cfg, n, payload, step, notes));
    for (const std::uint32_t n : scaling_actors) scaling.push_back(run_fitting(cfg, n, 64, step, notes));
    if (!scaling.empty() && scaling.front().actors == 1)
      for (auto& r : scaling)
        if (r.actors > 1)
          r.marginal_bytes_per_actor =
              (static_cast<double>(r.memory_bytes) - static_cast<double>(scaling.front().memory_bytes)) /
              (r.actors - 1);

    const std::optional<double> copy_gbps = copy ? std::optional<double>(copy->median) : std::nullopt;
    const char* memory_method =
        gpu ? "device memory: cudaMemGetInfo used after start() minus before construction"
            : "host heap in use (glibc mallinfo2) after start() minus before construction";
    if (cfg.common.json) {
      std::vector<std::string> t_rows, s_rows, note_rows;
      for (const auto& r : throughput) t_rows.push_back(run_json(r, copy_gbps, memory_method));
      for (const auto& r : scaling) s_rows.push_back(run_json(r, copy_gbps, memory_method));
      for (const auto& n : notes) note_rows.push_back(rk::bench::json_string(n));
      rk::bench::json_object o;
      o.text("benchmark", "k2k_throughput")
          .text("backend", rk::bench::target_name(cfg.backend))
          .text("machine", machine)
          .text("host_cpu", host_cpu)
          .integer("repetitions", static_cast<std::uint64_t>(cfg.common.repetitions))
          .integer("window_ms", static_cast<std::uint64_t>(cfg.window.count()))
          .integer("warmup_ms", static_cast<std::uint64_t>(cfg.warmup.count()))
          .integer("tokens_per_actor", cfg.tokens_per_actor)
          .integer("mailbox_slots", mailbox_slots);
      if (cfg.scheduled_workers) {
        o.integer("scheduled_workers", *cfg.scheduled_workers);
      } else {
        o.null("scheduled_workers"); // the backend's default (CUDA: one block per SM and handler type)
      }
      if (copy) {
        o.raw("copy_gbps", rk::bench::summary_json(*copy, 1));
      } else {
        o.null("copy_gbps");
      }
      if (limit) {
        o.integer("resident_actor_limit", *limit);
      } else {
        o.null("resident_actor_limit");
      }
      o.raw("throughput", rk::bench::json_array(t_rows))
          .raw("scaling", rk::bench::json_array(s_rows))
          .raw("notes", rk::bench::json_array(note_rows));
      std::printf("%s\n", o.str().c_str());
      return 0;
    }
    std::printf("K2K throughput to random destinations, %s backend on %s\n", gpu ? "CUDA" : "CPU",
                machine.c_str());
    if (gpu) std::printf("host CPU: %s\n", host_cpu.c_str());
    std::printf(
        "%u tokens in flight per actor, %u-slot mailboxes, median of %d windows of %lld ms after %lld ms "
        "warm-up (host clock, rt.stats())\n",
        cfg.tokens_per_actor, mailbox_slots, cfg.common.repetitions,
        static_cast<long long>(cfg.window.count()), static_cast<long long>(cfg.warmup.count()));
    if (copy) {
      std::printf("device-to-device cudaMemcpy: %.1f GB/s median [%.1f - %.1f] (bytes copied / time)\n",
                  copy->median, copy->min, copy->max);
      std::printf("resident-worker limit: %u actors\n", *limit);
    } else {
      std::printf(
          "no copy-bandwidth baseline on the CPU backend; CPU-backend figures say nothing about the GPU\n");
    }
    print_table("(c) throughput ('vs copy' = payload GB/s / cudaMemcpy GB/s)", throughput, copy_gbps);
    print_table("(d) scaling, 64-byte payloads (memory: see docs/benchmarks.md)", scaling, copy_gbps);
    std::printf("memory/actor: %s, divided by the actor count; marginal: (memory(N) - memory(1)) / (N - 1)\n",
                memory_method);
    for (const auto& n : notes) std::printf("note: %s\n", n.c_str());
    return 0;
  } catch (const rk::error& e) {
    std::fprintf(stderr, "bench_k2k_throughput: %s\n", e.what());
    return 1;
  }
}
