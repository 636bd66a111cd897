// Diagnostic: what one memory operation of the kind the runtime's hot path uses costs on this GPU, when
// each depends on the one before (as the scheduled worker's leader thread issues them: one thread, each
// load's value or ordering needed before the next step).
//
// A handled message costs a worker about 9 us on an H200 (bench/RESULTS.md, 2026-12-04) against a CUDA
// Graph hop of 0.6 us. The leading explanation is a chain of a few dozen device-scope loads, atomics and
// release fences per message, each a round trip to L2 (strong operations bypass L1). This benchmark prices
// each kind, so that a per-phase profile (bench_k2k_phases) divided by these prices says how many round
// trips a phase takes, and a change to the hot path can be judged by the round trips it removes.
//
// One thread of one block runs `ops` operations of a kind back to back and reads clock64() and
// %globaltimer around them; per operation: SM cycles and nanoseconds. Kinds (scopes as in config.cuh:
// peer_scope = device, pcie_scope = system):
//   clock64 read; %globaltimer read; weak load chase, L1 hit; relaxed / acquire load chase (device scope)
//   over `--lines` cache lines of device memory; relaxed load chase over mapped pinned host memory;
//   fetch_add / exchange (acq_rel) / compare_exchange with dependent addresses; release store; device-scope
//   acq_rel and seq_cst fences alone; a relaxed store then an acq_rel fence, to device memory and to mapped
//   host memory; a relaxed fetch_add whose result is unused (a reduction, fire-and-forget), then one fence.
// With `--pollers N` (default: every other SM) the loads and atomics run again while N other blocks spin on
// another word (as idle scheduled workers poll their run queue), so contention for L2 shows as a ratio.
//
// Baselines: the kinds are each other's baselines (a weak L1 hit and a clock read bound them below). No
// ringkernel code runs; without a usable CUDA device the benchmark prints "skipped" and exits 0.
//
//   bench_device_primitives [--json] [--smoke] [--repetitions N] [--ops N] [--lines N] [--pollers N]

#include "common/cuda_bench.cuh"

#include <cuda/atomic>

#include <numeric>
#include <random>
#include <vector>

namespace {

using rk::bench::device_buffer;

enum class kind : int {
  clock_read,
  globaltimer_read,
  weak_load_l1,
  relaxed_load_device,
  acquire_load_device,
  relaxed_load_mapped,
  fetch_add_device,
  exchange_acq_rel_device,
  compare_exchange_device,
  release_store_device,
  fence_acq_rel_device,
  fence_seq_cst_device,
  store_then_fence_device,
  store_mapped_then_fence,
  reduction_then_fence,
  count
};

constexpr const char* kind_names[] = {"clock64_read",
                                      "globaltimer_read",
                                      "weak_load_l1_hit",
                                      "relaxed_load_device",
                                      "acquire_load_device",
                                      "relaxed_load_mapped_host",
                                      "fetch_add_device",
                                      "exchange_acq_rel_device",
                                      "compare_exchange_device",
                                      "release_store_device",
                                      "fence_acq_rel_device",
                                      "fence_seq_cst_device",
                                      "store_then_fence_device",
                                      "store_mapped_then_fence",
                                      "reduction_then_fence"};
static_assert(sizeof(kind_names) / sizeof(kind_names[0]) == static_cast<int>(kind::count));

//! Whether a kind touches memory that other blocks can contend for (it is rerun with pollers).
constexpr bool contended_kind(kind k) {
  return k == kind::relaxed_load_device || k == kind::acquire_load_device || k == kind::fetch_add_device ||
         k == kind::exchange_acq_rel_device || k == kind::release_store_device ||
         k == kind::store_then_fence_device;
}

// One line per chain step: `next` is the index of the next line (a random cycle through all of them), so
// every load's address depends on the previous load's value and the hardware cannot overlap them.
constexpr std::uint32_t line_words = 32; // 128-byte lines of 32-bit words
//! Word of line 0 that no chain step or atomic kind uses: 0 for ever in device memory (the L1 chase reads
//! it); in mapped memory the store kind writes it.
constexpr std::uint32_t unused_word = 7;

struct timing {
  unsigned long long cycles = 0;
  unsigned long long ns = 0;
  std::uint32_t sink = 0; // keeps every chain's result alive
};

template <cuda::thread_scope Scope>
__device__ std::uint32_t load(std::uint32_t* p, cuda::std::memory_order order) {
  return cuda::atomic_ref<std::uint32_t, Scope>(*p).load(order);
}

__device__ std::uint64_t globaltimer() {
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

//! Runs `ops` operations of kind `k` in thread 0 of block 0; the other blocks (if any) are pollers that
//! spin on `poll_word` until block 0 sets `stop`.
__global__ void primitive_kernel(kind k, std::uint32_t ops, std::uint32_t* chain, std::uint32_t* mapped_chain,
                                 std::uint32_t lines, std::uint32_t* mapped_word, std::uint32_t* poll_word,
                                 std::uint32_t* stop, std::uint32_t* started, timing* out) {
  using cuda::std::memory_order_acq_rel;
  using cuda::std::memory_order_acquire;
  using cuda::std::memory_order_relaxed;
  using cuda::std::memory_order_release;
  using cuda::std::memory_order_seq_cst;
  constexpr auto dev = cuda::thread_scope_device;
  constexpr auto sys = cuda::thread_scope_system;
  if (threadIdx.x != 0) return;
  if (blockIdx.x != 0) { // a poller: as an idle worker polls its run queue, without backing off
    cuda::atomic_ref<std::uint32_t, dev>(*started).fetch_add(1, memory_order_relaxed);
    std::uint32_t seen = 0;
    while (load<dev>(stop, memory_order_relaxed) == 0) seen += load<dev>(poll_word, memory_order_acquire);
    if (seen == 0xFFFF'FFFFu) out->sink = seen;
    return;
  }
  // Wait until every poller runs (all blocks are resident: the host launches at most one per SM).
  while (load<dev>(started, memory_order_acquire) + 1 < gridDim.x) {
  }
  std::uint32_t i = 0;
  std::uint32_t acc = 0;
  const long long c0 = clock64();
  const std::uint64_t t0 = globaltimer();
  switch (k) {
  case kind::clock_read:
    for (std::uint32_t n = 0; n < ops; ++n) acc += static_cast<std::uint32_t>(clock64());
    break;
  case kind::globaltimer_read:
    for (std::uint32_t n = 0; n < ops; ++n) acc += static_cast<std::uint32_t>(globaltimer());
    break;
  case kind::weak_load_l1: // the same line every time: after the first, an L1 hit
    for (std::uint32_t n = 0; n < ops; ++n) i = __ldca(&chain[unused_word + i]); // the word holds 0
    acc = i;
    break;
  case kind::relaxed_load_device:
    for (std::uint32_t n = 0; n < ops; ++n) i = load<dev>(&chain[i * line_words], memory_order_relaxed);
    acc = i;
    break;
  case kind::acquire_load_device:
    for (std::uint32_t n = 0; n < ops; ++n) i = load<dev>(&chain[i * line_words], memory_order_acquire);
    acc = i;
    break;
  case kind::relaxed_load_mapped:
    for (std::uint32_t n = 0; n < ops; ++n)
      i = load<sys>(&mapped_chain[i * line_words], memory_order_relaxed);
    acc = i;
    break;
  case kind::fetch_add_device: // the next address depends on the value returned
    for (std::uint32_t n = 0; n < ops; ++n)
      i = cuda::atomic_ref<std::uint32_t, dev>(chain[(i % lines) * line_words + 1])
              .fetch_add(1, memory_order_relaxed);
    acc = i;
    break;
  case kind::exchange_acq_rel_device:
    for (std::uint32_t n = 0; n < ops; ++n)
      i = cuda::atomic_ref<std::uint32_t, dev>(chain[(i % lines) * line_words + 2])
              .exchange(n, memory_order_acq_rel);
    acc = i;
    break;
  case kind::compare_exchange_device:
    for (std::uint32_t n = 0; n < ops; ++n) {
      std::uint32_t expected = i;
      cuda::atomic_ref<std::uint32_t, dev>(chain[(n % lines) * line_words + 3])
          .compare_exchange_strong(expected, n, memory_order_relaxed, memory_order_relaxed);
      i = expected & 0u;
      acc += expected;
    }
    break;
  case kind::release_store_device: // each release waits for the store before it
    for (std::uint32_t n = 0; n < ops; ++n)
      cuda::atomic_ref<std::uint32_t, dev>(chain[(n % lines) * line_words + 4])
          .store(n, memory_order_release);
    break;
  case kind::fence_acq_rel_device:
    for (std::uint32_t n = 0; n < ops; ++n) cuda::atomic_thread_fence(memory_order_acq_rel, dev);
    break;
  case kind::fence_seq_cst_device:
    for (std::uint32_t n = 0; n < ops; ++n) cuda::atomic_thread_fence(memory_order_seq_cst, dev);
    break;
  case kind::store_then_fence_device:
    for (std::uint32_t n = 0; n < ops; ++n) {
      cuda::atomic_ref<std::uint32_t, dev>(chain[(n % lines) * line_words + 5])
          .store(n, memory_order_relaxed);
      cuda::atomic_thread_fence(memory_order_acq_rel, dev);
    }
    break;
  case kind::store_mapped_then_fence: // as a worker's busy-word store to mapped memory, then a release
    for (std::uint32_t n = 0; n < ops; ++n) {
      cuda::atomic_ref<std::uint32_t, sys>(*mapped_word).store(n, memory_order_relaxed);
      cuda::atomic_thread_fence(memory_order_acq_rel, dev);
    }
    break;
  case kind::reduction_then_fence: // counters: adds whose result nobody waits for, then one fence
    for (std::uint32_t n = 0; n < ops; ++n)
      cuda::atomic_ref<std::uint32_t, dev>(chain[(n % lines) * line_words + 6])
          .fetch_add(1, memory_order_relaxed);
    cuda::atomic_thread_fence(memory_order_acq_rel, dev);
    break;
  default:
    break;
  }
  const std::uint64_t t1 = globaltimer();
  const long long c1 = clock64();
  out->cycles = static_cast<unsigned long long>(c1 - c0);
  out->ns = t1 - t0;
  out->sink = acc;
  cuda::atomic_ref<std::uint32_t, dev>(*stop).store(1u, memory_order_release);
}

struct measured {
  kind k;
  std::uint32_t pollers = 0;
  std::vector<double> cycles_per_op;
  std::vector<double> ns_per_op;
};

struct settings {
  rk::bench::common_args common;
  std::uint32_t ops = 20'000;
  std::uint32_t lines = 65'536; // 8 MiB: beyond L1, within L2 (50-60 MiB on H100/H200)
  std::optional<std::uint32_t> pollers;
};

//! A random cyclic permutation of `lines` lines written as each line's first word (`next`).
std::vector<std::uint32_t> chain_image(std::uint32_t lines) {
  std::vector<std::uint32_t> order(lines);
  std::iota(order.begin(), order.end(), 0u);
  std::mt19937 rng(12345);
  std::shuffle(order.begin() + 1, order.end(), rng);
  std::vector<std::uint32_t> image(std::size_t{lines} * line_words, 0);
  for (std::uint32_t j = 0; j < lines; ++j)
    image[std::size_t{order[j]} * line_words] = order[(j + 1) % lines];
  return image;
}

class rig {
public:
  explicit rig(const settings& cfg)
      : cfg_(cfg), chain_(std::size_t{cfg.lines} * line_words), words_(4), out_(1),
        mapped_lines_(std::min<std::uint32_t>(cfg.lines, 4096)) {
    const auto image = chain_image(cfg.lines);
    RK_CUDA_CHECK(
        cudaMemcpy(chain_.get(), image.data(), image.size() * sizeof(std::uint32_t), cudaMemcpyHostToDevice));
    const auto mapped_image = chain_image(mapped_lines_);
    RK_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&mapped_),
                                mapped_image.size() * sizeof(std::uint32_t), cudaHostAllocMapped));
    std::copy(mapped_image.begin(), mapped_image.end(), mapped_);
    RK_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&mapped_device_), mapped_, 0));
  }
  ~rig() { RK_CUDA_WARN(cudaFreeHost(mapped_)); }
  rig(const rig&) = delete;
  rig& operator=(const rig&) = delete;

  //! Cycles and nanoseconds per operation of one run of `k` beside `pollers` spinning blocks.
  std::pair<double, double> run(kind k, std::uint32_t pollers) {
    // A PCIe round trip is ~1 us: fewer operations keep the mapped chain's run short.
    const std::uint32_t ops = k == kind::relaxed_load_mapped || k == kind::store_mapped_then_fence
                                  ? std::max(1u, cfg_.ops / 20)
                                  : cfg_.ops;
    RK_CUDA_CHECK(cudaMemset(words_.get(), 0, 4 * sizeof(std::uint32_t)));
    primitive_kernel<<<1 + pollers, 32>>>(k, ops, chain_.get(), mapped_device_, cfg_.lines,
                                          mapped_device_ + unused_word, words_.get() + 0, words_.get() + 1,
                                          words_.get() + 2, out_.get());
    RK_BENCH_CHECK_LAUNCH();
    RK_CUDA_CHECK(cudaDeviceSynchronize());
    timing t;
    RK_CUDA_CHECK(cudaMemcpy(&t, out_.get(), sizeof t, cudaMemcpyDeviceToHost));
    return {static_cast<double>(t.cycles) / ops, static_cast<double>(t.ns) / ops};
  }

private:
  const settings& cfg_;
  device_buffer<std::uint32_t> chain_;
  device_buffer<std::uint32_t> words_; // poll word, stop, started
  device_buffer<timing> out_;
  std::uint32_t mapped_lines_;
  std::uint32_t* mapped_ = nullptr;
  std::uint32_t* mapped_device_ = nullptr;
};

std::string json_of(const measured& m) {
  const auto c = rk::bench::summarize(m.cycles_per_op);
  const auto n = rk::bench::summarize(m.ns_per_op);
  return rk::bench::json_object()
      .text("kind", kind_names[static_cast<int>(m.k)])
      .integer("pollers", m.pollers)
      .number("cycles_per_op", c.median, 1)
      .number("ns_per_op", n.median, 1)
      .number("ns_per_op_min", n.min, 1)
      .number("ns_per_op_max", n.max, 1)
      .str();
}

} // namespace

int main(int argc, char** argv) {
  settings cfg;
  std::optional<std::uint32_t> ops_flag, lines_flag;
  cfg.common = rk::bench::parse_common(
      argc, argv, "bench_device_primitives", "[--ops N] [--lines N] [--pollers N]", [&](CLI::App& app) {
        rk::cli::add_count(app, "--ops", ops_flag,
                           "dependent operations per kind and repetition (default 20000; 500 with --smoke)",
                           std::numeric_limits<std::uint32_t>::max(), 1);
        rk::cli::add_count(app, "--lines", lines_flag, "128-byte lines the load chains walk (2 .. 1048576)",
                           1u << 20, 2);
        rk::cli::add_count(app, "--pollers", cfg.pollers,
                           "spinning blocks for the contended rerun (0: none; default: SMs / 2)");
      });
  if (cfg.common.smoke) cfg.ops = 500;
  if (ops_flag) cfg.ops = *ops_flag; // an explicit --ops wins over --smoke's
  if (lines_flag) cfg.lines = *lines_flag;
  try {
    const rk::device_probe probe = rk::probe_cuda_device();
    if (!probe.usable) {
      rk::bench::print_skipped(cfg.common, "device_primitives", probe.description);
      return 0;
    }
    int sms = 0;
    RK_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    // Pollers share the device with the measuring block, one block per SM at most, so all are resident.
    const std::uint32_t max_pollers = sms > 1 ? static_cast<std::uint32_t>(sms - 1) : 0u;
    const std::uint32_t pollers =
        std::min(cfg.pollers.value_or(static_cast<std::uint32_t>(sms / 2)), max_pollers);
    rig r(cfg);
    std::vector<measured> results;
    for (int k = 0; k < static_cast<int>(kind::count); ++k) {
      results.push_back({static_cast<kind>(k), 0, {}, {}});
      if (pollers > 0 && contended_kind(static_cast<kind>(k)))
        results.push_back({static_cast<kind>(k), pollers, {}, {}});
    }
    (void)r.run(kind::relaxed_load_device, 0); // warm-up: first launch, L2 filled with the chain
    for (int rep = 0; rep < cfg.common.repetitions; ++rep) {
      for (auto& m : results) { // kinds alternate within a repetition
        const auto [cycles, ns] = r.run(m.k, m.pollers);
        m.cycles_per_op.push_back(cycles);
        m.ns_per_op.push_back(ns);
      }
    }
    const std::string gpu = rk::bench::gpu_description();
    if (cfg.common.json) {
      std::string list = "[";
      for (std::size_t i = 0; i < results.size(); ++i) list += (i ? "," : "") + json_of(results[i]);
      list += "]";
      std::printf("%s\n", rk::bench::json_object()
                              .text("benchmark", "device_primitives")
                              .text("backend", "cuda")
                              .text("machine", gpu)
                              .integer("ops", cfg.ops)
                              .integer("lines", cfg.lines)
                              .integer("repetitions", static_cast<std::uint64_t>(cfg.common.repetitions))
                              .raw("results", list)
                              .str()
                              .c_str());
    } else {
      std::printf("device primitives on %s (%u dependent ops, %u lines, %d repetitions; medians)\n",
                  gpu.c_str(), cfg.ops, cfg.lines, cfg.common.repetitions);
      std::printf("%-28s %8s %12s %10s\n", "kind", "pollers", "cycles/op", "ns/op");
      for (const auto& m : results) {
        std::printf("%-28s %8u %12.1f %10.1f\n", kind_names[static_cast<int>(m.k)], m.pollers,
                    rk::bench::summarize(m.cycles_per_op).median, rk::bench::summarize(m.ns_per_op).median);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_device_primitives: %s\n", e.what());
    return 1;
  }
}
