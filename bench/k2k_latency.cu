// (a) K2K one-way hop latency between two actors on one GPU, on device clocks.
//
// ringkernel: two actors bounce one 64-byte message K2K. The sender stamps rk::physical_clock_ns()
// (%globaltimer on the device) into the payload right before ctx.send(); the receiver's handler reads the
// clock first thing and stores (now - sent) for that hop into a sample buffer whose pointer is in its state
// (cudaMalloc'ed for the CUDA backend). So a sample covers deliver() (route check, claim, write, publish),
// the receiver's poll and wake-up, the HLC merge and the handler dispatch. The sender also records how long
// its ctx.send() call took (clock read after it returned), which splits a hop into the sending side
// (routing, checks, claim, write, publish, wake) and the rest (the receiver finding and starting it).
// Baselines in the same run, on the same clock and the same 64-byte message in device memory:
//   - launch + sync chain: one kernel per hop, cudaStreamSynchronize after each; kernel k stamps the clock
//     on entry and subtracts the stamp kernel k-1 wrote on exit (host sync + next launch);
//   - CUDA Graph chain: the same kernels captured as a graph of `graph_hops` nodes and replayed (no host
//     round trip between hops; the first hop of each replay is not counted).
// Reported: median, p99, min, max over all hops pooled, the spread of the per-repetition medians, and a
// host-timed mean (chain wall time / hops) that does not depend on the device clock's resolution.
//
// `--backend cpu` runs the ringkernel side on the CPU backend (steady_clock, worker threads), labelled CPU.
//
// Built a second time as bench_k2k_phases with RK_DEVICE_PHASE_PROFILE (a diagnostic): on CUDA it also
// reports where the scheduled workers' time went during the measured hops, by phase (phase_profile.cuh).
//
//   bench_k2k_latency [--json] [--smoke] [--repetitions N] [--backend cuda|cpu] [--hops N]
//                     [--idle-sleep-ns N]

#include "common/cuda_bench.cuh"

#include <chrono>
#include <optional>
#include <vector>

namespace {

using rk::bench::target;

constexpr std::uint32_t msg_hop = 1;
constexpr std::uint32_t msg_done = 2;
constexpr std::uint32_t msg_failed = 3;
constexpr std::uint64_t no_sample = ~std::uint64_t{0};

// The diagnostic twin names itself in --help, errors and its JSON "benchmark" field.
#if defined(RK_DEVICE_PHASE_PROFILE)
constexpr const char* benchmark_name = "k2k_phases";
constexpr const char* program_name = "bench_k2k_phases";
#else
constexpr const char* benchmark_name = "k2k_latency";
constexpr const char* program_name = "bench_k2k_latency";
#endif

struct hop_payload {
  std::uint64_t sent_ns = 0;  //!< sender's physical clock right before the send
  std::uint64_t hop = 0;      //!< 0: the host's seed; k >= 1: the k-th K2K hop
  std::uint64_t last_hop = 0; //!< the receiver of this hop reports to the host instead of sending on
  std::uint64_t filler[5] = {};
};
static_assert(sizeof(hop_payload) == 64);

//! One of the two bouncing actors.
struct hop_bouncer {
  static constexpr const char* name = "hop_bouncer";
  struct state {
    std::uint32_t peer = 0;              // actor id (ids are std::uint32_t)
    std::uint64_t* samples = nullptr;    //!< samples[k - 1]: latency of hop k in ns (device memory on CUDA)
    std::uint64_t* send_calls = nullptr; //!< send_calls[k - 1]: how long hop k's ctx.send() took, in ns
    std::uint64_t capacity = 0;          //!< entries in `samples`
    std::uint64_t failed = 0;            //!< sends the runtime refused (the chain then stops)
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const std::uint64_t now = rk::physical_clock_ns();
    const hop_payload* in = m.as<hop_payload>();
    if (in == nullptr) return;
    if (in->hop > 0 && in->hop <= s.capacity) s.samples[in->hop - 1] = now - in->sent_ns;
    hop_payload out = *in;
    if (in->hop == in->last_hop) {
      (void)ctx.send_host(msg_done, rk::as_bytes(out));
      return;
    }
    out.hop = in->hop + 1;
    out.sent_ns = rk::physical_clock_ns();
    const rk::status sent = ctx.send(s.peer, msg_hop, rk::as_bytes(out));
    if (out.hop <= s.capacity) s.send_calls[out.hop - 1] = rk::physical_clock_ns() - out.sent_ns;
    if (sent != rk::status::delivered) {
      ++s.failed;
      (void)ctx.send_host(msg_failed, rk::as_bytes(out));
    }
  }
};

struct settings {
  rk::bench::common_args common;
  target backend = target::cuda;
  std::uint64_t hops = 0;
  std::uint64_t warmup_hops = 0;
  std::uint32_t idle_sleep_ns = 100;
  std::uint32_t graph_hops = 1000;
};

struct method_result {
  std::string key;  //!< JSON name
  std::string name; //!< table name
  rk::bench::latency_summary latency;
  double host_timed_mean_ns = 0;
  std::optional<rk::bench::latency_summary> send_call; //!< ringkernel: the sender's ctx.send() alone
  std::string phases_json; //!< bench_k2k_phases on CUDA: per-phase worker time, else empty
};

#if defined(RK_DEVICE_PHASE_PROFILE)
//! The scheduled workers' phase counters (phase_profile.cuh), read or cleared on a stream of our own so
//! that the copies never wait behind the persistent kernels.
class phase_counters {
public:
  phase_counters() { RK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~phase_counters() { RK_CUDA_WARN(cudaStreamDestroy(stream_)); }
  phase_counters(const phase_counters&) = delete;
  phase_counters& operator=(const phase_counters&) = delete;
  void clear() {
    const unsigned long long zeros[rk::detail::phase_count] = {};
    RK_CUDA_CHECK(cudaMemcpyToSymbolAsync(rk::detail::phase_cycles, zeros, sizeof zeros, 0,
                                          cudaMemcpyHostToDevice, stream_));
    RK_CUDA_CHECK(cudaMemcpyToSymbolAsync(rk::detail::phase_events, zeros, sizeof zeros, 0,
                                          cudaMemcpyHostToDevice, stream_));
    RK_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  //! {"take": {"events": n, "cycles_per_event": c, "ns_per_event_at_max_clock": t}, ...}
  std::string json() {
    unsigned long long cycles[rk::detail::phase_count] = {}, events[rk::detail::phase_count] = {};
    RK_CUDA_CHECK(cudaMemcpyFromSymbolAsync(cycles, rk::detail::phase_cycles, sizeof cycles, 0,
                                            cudaMemcpyDeviceToHost, stream_));
    RK_CUDA_CHECK(cudaMemcpyFromSymbolAsync(events, rk::detail::phase_events, sizeof events, 0,
                                            cudaMemcpyDeviceToHost, stream_));
    RK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    int khz = 0;
    RK_CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0));
    rk::bench::json_object o;
    for (int p = 0; p < rk::detail::phase_count; ++p) {
      const double per = events[p] ? static_cast<double>(cycles[p]) / static_cast<double>(events[p]) : 0.0;
      o.raw(rk::detail::phase_names[p],
            rk::bench::json_object()
                .integer("events", events[p])
                .number("cycles_per_event", per, 0)
                .number("ns_per_event_at_max_clock", khz ? per * 1e6 / khz : 0.0, 0)
                .str());
    }
    return o.str();
  }

private:
  cudaStream_t stream_ = nullptr;
};
#endif

//! Where the ringkernel side keeps its samples: device memory (CUDA) or host memory (CPU backend).
class sample_store {
public:
  sample_store(target t, std::size_t count) : target_(t), host_(count) {
    if (t == target::cuda) {
      RK_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&device_), count * sizeof(std::uint64_t)));
      RK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    }
  }
  ~sample_store() {
    if (device_ != nullptr) RK_CUDA_WARN(cudaFree(device_));
    if (stream_ != nullptr) RK_CUDA_WARN(cudaStreamDestroy(stream_));
  }
  sample_store(const sample_store&) = delete;
  sample_store& operator=(const sample_store&) = delete;

  std::uint64_t* handler_pointer() { return target_ == target::cuda ? device_ : host_.data(); }
  //! Fills the buffer with no_sample (before a chain starts: no actor is writing).
  void clear() {
    std::fill(host_.begin(), host_.end(), no_sample);
    if (target_ == target::cuda) {
      // A copy on our own non-blocking stream: it never waits behind the persistent actor kernels.
      RK_CUDA_CHECK(cudaMemcpyAsync(device_, host_.data(), host_.size() * sizeof(std::uint64_t),
                                    cudaMemcpyHostToDevice, stream_));
      RK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }
  //! The first `count` samples, after the chain reported done (every write happened before that report).
  std::vector<double> read(std::size_t count) {
    if (target_ == target::cuda) {
      RK_CUDA_CHECK(cudaMemcpyAsync(host_.data(), device_, count * sizeof(std::uint64_t),
                                    cudaMemcpyDeviceToHost, stream_));
      RK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    std::vector<double> out;
    out.reserve(count);
    for (std::size_t i = 0; i < count; ++i)
      if (host_[i] != no_sample) out.push_back(static_cast<double>(host_[i]));
    return out;
  }

private:
  target target_;
  std::vector<std::uint64_t> host_;
  std::uint64_t* device_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

//! Runs one chain of `hops` K2K hops and returns the host-measured wall time in ns. Throws on failure.
double run_chain(rk::runtime& rt, std::uint32_t first, std::uint64_t hops) {
  hop_payload seed;
  seed.last_hop = hops;
  const auto begin = std::chrono::steady_clock::now();
  const rk::status s = rt.send(first, msg_hop, rk::as_bytes(seed));
  if (s != rk::status::enqueued)
    throw rk::error(std::string("k2k_latency: seeding the chain: ") + rk::to_string(s));
  // Bounded wait: a chain of 1e6 hops at 100 us each would take 100 s.
  const auto reply = rt.receive(std::chrono::seconds(120));
  const auto end = std::chrono::steady_clock::now();
  if (!reply) throw rk::error("k2k_latency: the chain did not finish within 120 s");
  if (reply->type() != msg_done)
    throw rk::error("k2k_latency: a K2K send failed at hop " + std::to_string(reply->as<hop_payload>().hop));
  if (reply->as<hop_payload>().hop != hops) throw rk::error("k2k_latency: the chain ended at the wrong hop");
  return std::chrono::duration<double, std::nano>(end - begin).count();
}

method_result measure_ringkernel(const settings& cfg) {
  const std::uint64_t capacity = std::max(cfg.hops, cfg.warmup_hops);
  sample_store samples(cfg.backend, capacity);
  sample_store send_calls(cfg.backend, capacity);
  rk::runtime_options options;
  options.running_arena_bytes = 0; // nothing is spawned after start(): keep memory figures per actor
  options.backend = cfg.backend == target::cuda ? rk::backend::cuda : rk::backend::cpu;
  options.announce_backend = false;
  options.device_idle_sleep_max_ns = cfg.idle_sleep_ns;
  rk::runtime rt(options);
  const auto a = rt.spawn<hop_bouncer>(
      "A", {}, {1, samples.handler_pointer(), send_calls.handler_pointer(), capacity, 0});
  const auto b = rt.spawn<hop_bouncer>(
      "B", {}, {a, samples.handler_pointer(), send_calls.handler_pointer(), capacity, 0});
  if (a != 0 || b != 1) throw rk::error("k2k_latency: expected actor ids 0 and 1");
  rt.start();

  samples.clear();
  run_chain(rt, a, cfg.warmup_hops);
  std::vector<std::vector<double>> repetitions, send_repetitions;
  double wall_ns = 0;
#if defined(RK_DEVICE_PHASE_PROFILE)
  std::optional<phase_counters> phases; // the measured hops only, not the warm-up
  if (cfg.backend == target::cuda) phases.emplace().clear();
#endif
  for (int r = 0; r < cfg.common.repetitions; ++r) {
    samples.clear();
    send_calls.clear();
    wall_ns += run_chain(rt, a, cfg.hops);
    repetitions.push_back(samples.read(cfg.hops));
    send_repetitions.push_back(send_calls.read(cfg.hops));
    if (repetitions.back().size() != cfg.hops)
      throw rk::error("k2k_latency: " + std::to_string(repetitions.back().size()) + " of " +
                      std::to_string(cfg.hops) + " hops recorded a sample");
  }
#if defined(RK_DEVICE_PHASE_PROFILE)
  const std::string phases_json = phases ? phases->json() : std::string();
#else
  const std::string phases_json;
#endif
  const rk::shutdown_report report = rt.shutdown();
  if (!report.drained || report.fault) throw rk::error("k2k_latency: shutdown did not drain cleanly");
  if (rt.state<hop_bouncer>(a).failed + rt.state<hop_bouncer>(b).failed != 0)
    throw rk::error("k2k_latency: K2K sends failed");

  method_result m{"ringkernel_k2k", "ringkernel K2K (2 actors)", {}, 0, std::nullopt, {}};
  m.latency = rk::bench::summarize_repetitions(repetitions);
  m.send_call = rk::bench::summarize_repetitions(send_repetitions);
  m.phases_json = phases_json;
  m.host_timed_mean_ns =
      wall_ns / static_cast<double>(cfg.hops * static_cast<std::uint64_t>(cfg.common.repetitions));
  return m;
}

// --- CUDA baselines -------------------------------------------------------------------------------------

struct chain_message {
  std::uint64_t sent_ns; //!< stamp of the previous hop's exit; 0 = no previous hop (not counted)
  std::uint64_t hop;     //!< kernels run so far; the sample index
  std::uint64_t filler[6];
};
static_assert(sizeof(chain_message) == 64);

//! One hop: stamp on entry, record (entry - previous exit), stamp on exit.
__global__ void chain_hop_kernel(chain_message* msg, std::uint64_t* samples, std::uint64_t capacity) {
  const std::uint64_t now = rk::physical_clock_ns();
  if (threadIdx.x != 0) return;
  const std::uint64_t hop = msg->hop;
  if (msg->sent_ns != 0 && hop < capacity) samples[hop] = now - msg->sent_ns;
  msg->hop = hop + 1;
  msg->sent_ns = rk::physical_clock_ns();
}

constexpr unsigned chain_threads = 32;

class chain_baseline {
public:
  explicit chain_baseline(std::uint64_t capacity) : samples_(capacity), message_(1) {
    RK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~chain_baseline() {
    if (graph_exec_ != nullptr) RK_CUDA_WARN(cudaGraphExecDestroy(graph_exec_));
    if (graph_ != nullptr) RK_CUDA_WARN(cudaGraphDestroy(graph_));
    RK_CUDA_WARN(cudaStreamDestroy(stream_));
  }
  chain_baseline(const chain_baseline&) = delete;
  chain_baseline& operator=(const chain_baseline&) = delete;

  //! `hops` launches, each followed by cudaStreamSynchronize. Returns the host wall time in ns.
  double run_sync_chain(std::uint64_t hops) {
    reset();
    const auto begin = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i <= hops; ++i) { // hops + 1 kernels make `hops` hops
      chain_hop_kernel<<<1, chain_threads, 0, stream_>>>(message_.get(), samples_.get(), samples_.size());
      RK_BENCH_CHECK_LAUNCH();
      RK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - begin).count();
  }

  //! Replays a captured chain of `graph_hops` kernels until at least `hops` hops were counted. Returns the
  //! host wall time in ns and sets `counted_hops`.
  double run_graph_chain(std::uint64_t hops, std::uint32_t graph_hops, std::uint64_t& counted_hops) {
    if (graph_exec_ == nullptr) capture(graph_hops);
    reset();
    const std::uint64_t per_replay = graph_hops_ - 1; // the first kernel of a replay has no predecessor
    const std::uint64_t replays = (hops + per_replay - 1) / per_replay;
    const auto begin = std::chrono::steady_clock::now();
    for (std::uint64_t r = 0; r < replays; ++r) RK_CUDA_CHECK(cudaGraphLaunch(graph_exec_, stream_));
    RK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    counted_hops = replays * per_replay;
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - begin).count();
  }

  std::vector<double> read_samples() {
    std::vector<std::uint64_t> host(samples_.size());
    RK_CUDA_CHECK(cudaMemcpyAsync(host.data(), samples_.get(), host.size() * sizeof(std::uint64_t),
                                  cudaMemcpyDeviceToHost, stream_));
    RK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<double> out;
    for (const std::uint64_t v : host)
      if (v != no_sample) out.push_back(static_cast<double>(v));
    return out;
  }

private:
  void reset() {
    RK_CUDA_CHECK(cudaMemsetAsync(samples_.get(), 0xFF, samples_.size() * sizeof(std::uint64_t), stream_));
    RK_CUDA_CHECK(cudaMemsetAsync(message_.get(), 0, sizeof(chain_message), stream_));
    RK_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void capture(std::uint32_t graph_hops) {
    graph_hops_ = graph_hops;
    RK_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    // Each replay starts without a predecessor stamp, so the gap between replays is not counted.
    RK_CUDA_CHECK(cudaMemsetAsync(&message_.get()->sent_ns, 0, sizeof(std::uint64_t), stream_));
    for (std::uint32_t i = 0; i < graph_hops; ++i) {
      chain_hop_kernel<<<1, chain_threads, 0, stream_>>>(message_.get(), samples_.get(), samples_.size());
      RK_BENCH_CHECK_LAUNCH();
    }
    RK_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph_));
    RK_CUDA_CHECK(cudaGraphInstantiate(&graph_exec_, graph_, 0));
  }

  rk::bench::device_buffer<std::uint64_t> samples_;
  rk::bench::device_buffer<chain_message> message_;
  cudaStream_t stream_ = nullptr;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t graph_exec_ = nullptr;
  std::uint32_t graph_hops_ = 0;
};

std::vector<method_result> measure_baselines(const settings& cfg) {
  const std::uint64_t per_replay = cfg.graph_hops - 1;
  const std::uint64_t graph_kernels = ((cfg.hops + per_replay - 1) / per_replay) * cfg.graph_hops;
  chain_baseline chain(std::max({cfg.hops, cfg.warmup_hops, graph_kernels}) + 1);

  method_result sync{"launch_sync_chain", "launch + sync chain", {}, 0, std::nullopt, {}};
  method_result graph{"cuda_graph_chain", "CUDA Graph chain", {}, 0, std::nullopt, {}};
  std::vector<std::vector<double>> sync_reps, graph_reps;
  double sync_ns = 0, graph_ns = 0;
  std::uint64_t graph_hops_total = 0;

  chain.run_sync_chain(cfg.warmup_hops); // warm-up (module load, clocks)
  std::uint64_t counted = 0;
  chain.run_graph_chain(cfg.warmup_hops, cfg.graph_hops, counted); // warm-up, also instantiates the graph
  for (int r = 0; r < cfg.common.repetitions; ++r) {
    sync_ns += chain.run_sync_chain(cfg.hops);
    sync_reps.push_back(chain.read_samples());
    if (sync_reps.back().size() != cfg.hops) throw rk::error("k2k_latency: launch chain lost samples");
    graph_ns += chain.run_graph_chain(cfg.hops, cfg.graph_hops, counted);
    graph_reps.push_back(chain.read_samples());
    if (graph_reps.back().size() != counted) throw rk::error("k2k_latency: graph chain lost samples");
    graph_hops_total += counted;
  }
  sync.latency = rk::bench::summarize_repetitions(sync_reps);
  sync.host_timed_mean_ns =
      sync_ns / static_cast<double>(cfg.hops * static_cast<std::uint64_t>(cfg.common.repetitions));
  graph.latency = rk::bench::summarize_repetitions(graph_reps);
  // The graph's wall time includes the uncounted first hop of each replay; divide by all kernels.
  graph.host_timed_mean_ns = graph_ns / static_cast<double>(graph_hops_total + graph_hops_total / per_replay);
  return {sync, graph};
}

void print(const settings& cfg, const std::string& machine, const std::string& host_cpu,
           std::optional<std::uint64_t> clock_resolution_ns, const std::vector<method_result>& results) {
  const bool gpu = cfg.backend == target::cuda;
  const method_result& ours = results.front();
  if (cfg.common.json) {
    std::vector<std::string> rows;
    for (const auto& r : results) {
      rk::bench::json_object row;
      row.text("method", r.key)
          .raw("latency_ns", rk::bench::latency_json(r.latency))
          .number("host_timed_mean_ns", r.host_timed_mean_ns, 1);
      if (r.send_call) row.raw("send_call_ns", rk::bench::latency_json(*r.send_call));
      if (!r.phases_json.empty()) row.raw("worker_phases", r.phases_json);
      rows.push_back(row.str());
    }
    rk::bench::json_object speedup_median, speedup_p99;
    for (std::size_t i = 1; i < results.size(); ++i) {
      speedup_median.number(results[i].key, results[i].latency.pooled.median / ours.latency.pooled.median, 3);
      speedup_p99.number(results[i].key, results[i].latency.pooled.p99 / ours.latency.pooled.p99, 3);
    }
    rk::bench::json_object o;
    o.text("benchmark", benchmark_name)
        .text("backend", rk::bench::target_name(cfg.backend))
        .text("machine", machine)
        .text("host_cpu", host_cpu)
        .text("clock", gpu ? "globaltimer" : "steady_clock");
    if (clock_resolution_ns) {
      o.integer("clock_resolution_ns", *clock_resolution_ns);
    } else {
      o.null("clock_resolution_ns");
    }
    o.integer("repetitions", static_cast<std::uint64_t>(cfg.common.repetitions))
        .integer("hops_per_repetition", cfg.hops)
        .integer("warmup_hops", cfg.warmup_hops)
        .integer("payload_bytes", sizeof(hop_payload));
    if (gpu) {
      o.integer("device_idle_sleep_max_ns", cfg.idle_sleep_ns).integer("graph_hops", cfg.graph_hops);
    } else {
      o.text("baselines", "not run: the launch and CUDA Graph baselines need a GPU");
    }
    o.raw("results", rk::bench::json_array(rows));
    // speedup = baseline / ringkernel (> 1: ringkernel's hop is shorter).
    o.raw("speedup_median", speedup_median.str()).raw("speedup_p99", speedup_p99.str());
    std::printf("%s\n", o.str().c_str());
    return;
  }
  std::printf("K2K one-way hop latency, %s backend on %s\n", gpu ? "CUDA" : "CPU", machine.c_str());
  if (gpu) std::printf("host CPU: %s\n", host_cpu.c_str());
  std::printf("%llu hops x %d repetitions after %llu warm-up hops, %zu-byte payload, clock %s",
              static_cast<unsigned long long>(cfg.hops), cfg.common.repetitions,
              static_cast<unsigned long long>(cfg.warmup_hops), sizeof(hop_payload),
              gpu ? "%globaltimer" : "steady_clock");
  if (clock_resolution_ns)
    std::printf(" (resolution %llu ns)", static_cast<unsigned long long>(*clock_resolution_ns));
  if (gpu) std::printf(", device idle sleep cap %u ns", cfg.idle_sleep_ns);
  std::printf("\n%-28s %10s %10s %10s %10s %22s %16s\n", "method (ns)", "median", "p99", "min", "max",
              "rep. medians [min-max]", "host-timed mean");
  for (const auto& r : results) {
    char spread[48];
    std::snprintf(spread, sizeof spread, "[%.0f - %.0f]", r.latency.repetition_median_min,
                  r.latency.repetition_median_max);
    std::printf("%-28s %10.0f %10.0f %10.0f %10.0f %22s %16.0f\n", r.name.c_str(), r.latency.pooled.median,
                r.latency.pooled.p99, r.latency.pooled.min, r.latency.pooled.max, spread,
                r.host_timed_mean_ns);
    if (r.send_call)
      std::printf("%-28s %10.0f %10.0f %10.0f %10.0f\n", "  of which the ctx.send() call",
                  r.send_call->pooled.median, r.send_call->pooled.p99, r.send_call->pooled.min,
                  r.send_call->pooled.max);
    if (!r.phases_json.empty()) std::printf("  worker phases: %s\n", r.phases_json.c_str());
  }
  if (gpu) {
    std::printf("speedup = baseline / ringkernel:");
    for (std::size_t i = 1; i < results.size(); ++i)
      std::printf("  %s median %.2fx, p99 %.2fx", results[i].name.c_str(),
                  results[i].latency.pooled.median / ours.latency.pooled.median,
                  results[i].latency.pooled.p99 / ours.latency.pooled.p99);
    std::printf("\n");
  } else {
    std::printf("baselines not run: the launch and CUDA Graph baselines need a GPU. CPU-backend figures say "
                "nothing about the GPU.\n");
  }
}

} // namespace

int main(int argc, char** argv) {
  settings cfg;
  std::optional<std::uint64_t> hops_flag;
  cfg.common = rk::bench::parse_common(
      argc, argv, program_name, "[--backend cuda|cpu] [--hops N] [--idle-sleep-ns N]", [&](CLI::App& app) {
        rk::bench::add_target_flag(app, cfg.backend);
        rk::cli::add_count(app, "--hops", hops_flag, "timed hops per repetition (1 .. 10^8)", 100'000'000, 1);
        rk::cli::add_count(app, "--idle-sleep-ns", cfg.idle_sleep_ns, "device idle backoff cap");
      });
  cfg.hops = hops_flag.value_or(cfg.common.smoke ? 300 : 100'000);
  cfg.warmup_hops = cfg.common.smoke ? 20 : 1'000;
  if (cfg.common.smoke) cfg.graph_hops = 100;

  try {
    const std::string host_cpu = rk::bench::cpu_description();
    if (cfg.backend == target::cpu) {
      print(cfg, host_cpu, host_cpu, std::nullopt, {measure_ringkernel(cfg)});
      return 0;
    }
    const rk::device_probe probe = rk::probe_cuda_device();
    if (!probe.usable) {
      rk::bench::print_skipped(cfg.common, benchmark_name, probe.description);
      return 0;
    }
    const std::string gpu = rk::bench::gpu_description();
    const std::uint64_t resolution = rk::bench::measure_globaltimer_resolution_ns();
    std::vector<method_result> results{measure_ringkernel(cfg)};
    for (auto& b : measure_baselines(cfg)) results.push_back(std::move(b));
    print(cfg, gpu, host_cpu, resolution, results);
    return 0;
  } catch (const rk::error& e) {
    std::fprintf(stderr, "%s: %s\n", program_name, e.what());
    return 1;
  }
}
