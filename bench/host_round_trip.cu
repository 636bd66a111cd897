// (b) Host -> actor -> host round trip, timed on the host (steady_clock), one message in flight.
//
// ringkernel: rt.send() of a 64-byte message to an echo actor (host ingress ring, gateway, the actor's
// mailbox), the actor answers with ctx.send_host() (egress ring), and the host takes the reply two ways, each
// its own row: rt.receive(timeout), whose wait backs off (pause, then yield, then sleeps), and a host thread
// spinning on rt.receive(0) (no backoff; what a latency-critical caller would do). The reply's correlation id
// and payload are checked.
// Baselines in the same run, with the same 64-byte message in pinned host memory:
//   - copy + launch + copy: per message cudaMemcpyAsync H2D, an echo kernel, cudaMemcpyAsync D2H and
//     cudaStreamSynchronize;
//   - CUDA Graph: the same three operations captured once as a graph, one cudaGraphLaunch +
//     cudaStreamSynchronize per message.
// Reported: median, p99, min, max over all round trips pooled and the spread of the per-repetition medians.
//
// `--backend cpu` runs the ringkernel side on the CPU backend, labelled CPU.
//
//   bench_host_round_trip [--json] [--smoke] [--repetitions N] [--backend cuda|cpu] [--messages N]
//                         [--idle-sleep-ns N]

#include "common/cuda_bench.cuh"

#include <chrono>
#include <optional>
#include <vector>

namespace {

using rk::bench::target;

constexpr std::uint32_t msg_echo = 1;

struct echo_payload {
  std::uint64_t sequence = 0;
  std::uint64_t words[7] = {};
};
static_assert(sizeof(echo_payload) == 64);

struct echo_actor {
  static constexpr const char* name = "echo_actor";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    rk::send_options o;
    o.correlation_id = m.correlation_id();
    (void)ctx.send_host(m.type(), m.payload(), o);
  }
};

struct settings {
  rk::bench::common_args common;
  target backend = target::cuda;
  std::uint64_t messages = 0; //!< round trips per repetition
  std::uint64_t warmup = 0;
  std::uint32_t idle_sleep_ns = 100;
};

struct method_result {
  std::string key;
  std::string name;
  rk::bench::latency_summary latency;
};

double elapsed_ns(std::chrono::steady_clock::time_point begin) {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - begin).count();
}

echo_payload make_payload(std::uint64_t i) {
  echo_payload p;
  p.sequence = i;
  for (std::uint64_t w = 0; w < 7; ++w) p.words[w] = i * 8 + w;
  return p;
}

bool same_payload(const echo_payload& a, const echo_payload& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

//! Waits for the reply by spinning on rt.receive(0): one poll of the egress ring per call, no backoff (the
//! runtime's own receive(timeout) backs off to yields and sleeps while it waits). Gives up after `limit`.
std::optional<rk::received_message> receive_spinning(rk::runtime& rt, std::chrono::nanoseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (auto reply = rt.receive(std::chrono::nanoseconds(0))) return reply;
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
  }
}

//! Two ringkernel rows from one runtime: the reply taken with rt.receive(timeout) (the runtime's waiting,
//! with backoff), and with a host thread spinning on rt.receive(0). Repetitions alternate between the two.
std::vector<method_result> measure_ringkernel(const settings& cfg) {
  rk::runtime_options options;
  options.running_arena_bytes = 0; // nothing is spawned after start(): keep memory figures per actor
  options.backend = cfg.backend == target::cuda ? rk::backend::cuda : rk::backend::cpu;
  options.announce_backend = false;
  options.device_idle_sleep_max_ns = cfg.idle_sleep_ns;
  rk::runtime rt(options);
  const auto echo = rt.spawn<echo_actor>("echo");
  rt.start();

  std::uint64_t next = 0;
  auto round_trip = [&](bool spin) -> double {
    const std::uint64_t i = next++;
    const echo_payload sent = make_payload(i);
    const auto begin = std::chrono::steady_clock::now();
    const rk::status s = rt.send(echo, msg_echo, rk::as_bytes(sent), {.correlation_id = i});
    if (s != rk::status::enqueued)
      throw rk::error(std::string("host_round_trip: send returned ") + rk::to_string(s));
    const auto reply =
        spin ? receive_spinning(rt, std::chrono::seconds(10)) : rt.receive(std::chrono::seconds(10));
    const double ns = elapsed_ns(begin);
    if (!reply) throw rk::error("host_round_trip: no reply within 10 s");
    if (reply->correlation_id() != i || !same_payload(reply->as<echo_payload>(), sent))
      throw rk::error("host_round_trip: wrong reply for message " + std::to_string(i));
    return ns;
  };

  for (std::uint64_t i = 0; i < cfg.warmup; ++i) {
    round_trip(false);
    round_trip(true);
  }
  std::vector<std::vector<double>> waiting_reps, spinning_reps;
  for (int r = 0; r < cfg.common.repetitions; ++r) {
    for (const bool spin : {false, true}) {
      std::vector<double> samples;
      samples.reserve(cfg.messages);
      for (std::uint64_t i = 0; i < cfg.messages; ++i) samples.push_back(round_trip(spin));
      (spin ? spinning_reps : waiting_reps).push_back(std::move(samples));
    }
  }
  const rk::shutdown_report report = rt.shutdown();
  if (!report.drained || report.fault) throw rk::error("host_round_trip: shutdown did not drain cleanly");
  return {
      {"ringkernel", "ringkernel send + receive(timeout)", rk::bench::summarize_repetitions(waiting_reps)},
      {"ringkernel_spin", "ringkernel send + spin on receive(0)",
       rk::bench::summarize_repetitions(spinning_reps)}};
}

// --- CUDA baselines -------------------------------------------------------------------------------------

//! The baseline's "actor": copies the message from the input buffer to the output buffer.
__global__ void echo_kernel(const echo_payload* in, echo_payload* out) {
  const auto* src = reinterpret_cast<const std::uint64_t*>(in);
  auto* dst = reinterpret_cast<std::uint64_t*>(out);
  if (threadIdx.x < sizeof(echo_payload) / 8) dst[threadIdx.x] = src[threadIdx.x];
}

constexpr unsigned echo_threads = 32;

class copy_launch_baseline {
public:
  copy_launch_baseline() : h_in_(1), h_out_(1), d_in_(1), d_out_(1) {
    RK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~copy_launch_baseline() {
    if (exec_ != nullptr) RK_CUDA_WARN(cudaGraphExecDestroy(exec_));
    if (graph_ != nullptr) RK_CUDA_WARN(cudaGraphDestroy(graph_));
    RK_CUDA_WARN(cudaStreamDestroy(stream_));
  }
  copy_launch_baseline(const copy_launch_baseline&) = delete;
  copy_launch_baseline& operator=(const copy_launch_baseline&) = delete;

  //! H2D copy, kernel, D2H copy, synchronize. Returns the round trip in ns.
  double direct(std::uint64_t i) {
    const echo_payload sent = prepare(i);
    const auto begin = std::chrono::steady_clock::now();
    enqueue();
    RK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const double ns = elapsed_ns(begin);
    verify(sent, i);
    return ns;
  }

  //! The same operations replayed from a CUDA Graph. Returns the round trip in ns.
  double graph(std::uint64_t i) {
    if (exec_ == nullptr) {
      RK_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      enqueue();
      RK_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph_));
      RK_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
    }
    const echo_payload sent = prepare(i);
    const auto begin = std::chrono::steady_clock::now();
    RK_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
    RK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const double ns = elapsed_ns(begin);
    verify(sent, i);
    return ns;
  }

private:
  echo_payload prepare(std::uint64_t i) {
    const echo_payload p = make_payload(i);
    *h_in_.get() = p;
    *h_out_.get() = echo_payload{};
    return p;
  }
  void enqueue() {
    RK_CUDA_CHECK(
        cudaMemcpyAsync(d_in_.get(), h_in_.get(), sizeof(echo_payload), cudaMemcpyHostToDevice, stream_));
    echo_kernel<<<1, echo_threads, 0, stream_>>>(d_in_.get(), d_out_.get());
    RK_BENCH_CHECK_LAUNCH();
    RK_CUDA_CHECK(
        cudaMemcpyAsync(h_out_.get(), d_out_.get(), sizeof(echo_payload), cudaMemcpyDeviceToHost, stream_));
  }
  void verify(const echo_payload& sent, std::uint64_t i) const {
    if (!same_payload(*h_out_.get(), sent))
      throw rk::error("host_round_trip: baseline returned a wrong payload for message " + std::to_string(i));
  }

  rk::bench::pinned_buffer<echo_payload> h_in_, h_out_;
  rk::bench::device_buffer<echo_payload> d_in_, d_out_;
  cudaStream_t stream_ = nullptr;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

std::vector<method_result> measure_baselines(const settings& cfg) {
  copy_launch_baseline b;
  std::uint64_t next = 0;
  for (std::uint64_t i = 0; i < cfg.warmup; ++i) {
    b.direct(next++);
    b.graph(next++);
  }
  std::vector<std::vector<double>> direct_reps, graph_reps;
  for (int r = 0; r < cfg.common.repetitions; ++r) {
    std::vector<double> direct, graph;
    direct.reserve(cfg.messages);
    graph.reserve(cfg.messages);
    for (std::uint64_t i = 0; i < cfg.messages; ++i) direct.push_back(b.direct(next++));
    for (std::uint64_t i = 0; i < cfg.messages; ++i) graph.push_back(b.graph(next++));
    direct_reps.push_back(std::move(direct));
    graph_reps.push_back(std::move(graph));
  }
  return {{"copy_launch_copy_sync", "memcpy H2D + launch + D2H + sync",
           rk::bench::summarize_repetitions(direct_reps)},
          {"cuda_graph", "same as a CUDA Graph", rk::bench::summarize_repetitions(graph_reps)}};
}

void print(const settings& cfg, const std::string& machine, const std::string& host_cpu,
           const std::vector<method_result>& results) {
  const bool gpu = cfg.backend == target::cuda;
  // results[0], [1]: ringkernel waiting in receive(timeout) and spinning on receive(0); the rest: baselines.
  constexpr std::size_t ringkernel_rows = 2;
  if (cfg.common.json) {
    std::vector<std::string> rows;
    for (const auto& r : results)
      rows.push_back(rk::bench::json_object()
                         .text("method", r.key)
                         .raw("round_trip_ns", rk::bench::latency_json(r.latency))
                         .str());
    // speedup_<stat>[_spin] = baseline / ringkernel row 0 [row 1] (> 1: ringkernel's round trip is shorter).
    rk::bench::json_object speedup_median, speedup_p99, speedup_median_spin, speedup_p99_spin;
    for (std::size_t i = ringkernel_rows; i < results.size(); ++i) {
      const auto& b = results[i].latency.pooled;
      speedup_median.number(results[i].key, b.median / results[0].latency.pooled.median, 3);
      speedup_p99.number(results[i].key, b.p99 / results[0].latency.pooled.p99, 3);
      speedup_median_spin.number(results[i].key, b.median / results[1].latency.pooled.median, 3);
      speedup_p99_spin.number(results[i].key, b.p99 / results[1].latency.pooled.p99, 3);
    }
    rk::bench::json_object o;
    o.text("benchmark", "host_round_trip")
        .text("backend", rk::bench::target_name(cfg.backend))
        .text("machine", machine)
        .text("host_cpu", host_cpu)
        .text("clock", "host steady_clock")
        .integer("repetitions", static_cast<std::uint64_t>(cfg.common.repetitions))
        .integer("messages_per_repetition", cfg.messages)
        .integer("warmup_messages", cfg.warmup)
        .integer("payload_bytes", sizeof(echo_payload));
    if (gpu) {
      o.integer("device_idle_sleep_max_ns", cfg.idle_sleep_ns);
    } else {
      o.text("baselines", "not run: the copy + launch and CUDA Graph baselines need a GPU");
    }
    o.raw("results", rk::bench::json_array(rows))
        .raw("speedup_median", speedup_median.str())
        .raw("speedup_p99", speedup_p99.str())
        .raw("speedup_median_spin", speedup_median_spin.str())
        .raw("speedup_p99_spin", speedup_p99_spin.str());
    std::printf("%s\n", o.str().c_str());
    return;
  }
  std::printf("Host -> actor -> host round trip, %s backend on %s\n", gpu ? "CUDA" : "CPU", machine.c_str());
  if (gpu) std::printf("host CPU: %s\n", host_cpu.c_str());
  std::printf("%llu round trips x %d repetitions after %llu warm-up, %zu-byte payload, host steady_clock",
              static_cast<unsigned long long>(cfg.messages), cfg.common.repetitions,
              static_cast<unsigned long long>(cfg.warmup), sizeof(echo_payload));
  if (gpu) std::printf(", device idle sleep cap %u ns", cfg.idle_sleep_ns);
  std::printf("\n%-36s %10s %10s %10s %10s %22s\n", "method (ns)", "median", "p99", "min", "max",
              "rep. medians [min-max]");
  for (const auto& r : results) {
    char spread[48];
    std::snprintf(spread, sizeof spread, "[%.0f - %.0f]", r.latency.repetition_median_min,
                  r.latency.repetition_median_max);
    std::printf("%-36s %10.0f %10.0f %10.0f %10.0f %22s\n", r.name.c_str(), r.latency.pooled.median,
                r.latency.pooled.p99, r.latency.pooled.min, r.latency.pooled.max, spread);
  }
  if (gpu) {
    for (std::size_t r = 0; r < ringkernel_rows; ++r) {
      std::printf("speedup = baseline / %s:", results[r].name.c_str());
      for (std::size_t i = ringkernel_rows; i < results.size(); ++i)
        std::printf("  %s median %.2fx, p99 %.2fx", results[i].name.c_str(),
                    results[i].latency.pooled.median / results[r].latency.pooled.median,
                    results[i].latency.pooled.p99 / results[r].latency.pooled.p99);
      std::printf("\n");
    }
  } else {
    std::printf("baselines not run: the copy + launch and CUDA Graph baselines need a GPU. CPU-backend "
                "figures say nothing about the GPU.\n");
  }
}

} // namespace

int main(int argc, char** argv) {
  settings cfg;
  std::optional<std::uint64_t> messages_flag;
  cfg.common = rk::bench::parse_common(
      argc, argv, "bench_host_round_trip", "[--backend cuda|cpu] [--messages N] [--idle-sleep-ns N]",
      [&](CLI::App& app) {
        rk::bench::add_target_flag(app, cfg.backend);
        rk::cli::add_count(app, "--messages", messages_flag, "round trips per repetition (1 .. 10^8)",
                           100'000'000, 1);
        rk::cli::add_count(app, "--idle-sleep-ns", cfg.idle_sleep_ns, "device idle backoff cap");
      });
  cfg.messages = messages_flag.value_or(cfg.common.smoke ? 200 : 20'000);
  cfg.warmup = cfg.common.smoke ? 20 : 1'000;

  try {
    const std::string host_cpu = rk::bench::cpu_description();
    if (cfg.backend == target::cpu) {
      print(cfg, host_cpu, host_cpu, measure_ringkernel(cfg));
      return 0;
    }
    const rk::device_probe probe = rk::probe_cuda_device();
    if (!probe.usable) {
      rk::bench::print_skipped(cfg.common, "host_round_trip", probe.description);
      return 0;
    }
    const std::string gpu = rk::bench::gpu_description();
    std::vector<method_result> results = measure_ringkernel(cfg);
    for (auto& b : measure_baselines(cfg)) results.push_back(std::move(b));
    print(cfg, gpu, host_cpu, results);
    return 0;
  } catch (const rk::error& e) {
    std::fprintf(stderr, "bench_host_round_trip: %s\n", e.what());
    return 1;
  }
}
