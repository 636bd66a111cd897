#pragma once
// Shared benchmark plumbing: repetitions with median, percentiles and spread, the machine's name, a JSON
// builder (on nlohmann-json), and a common command line on CLI11 (--json, --smoke, --repetitions N, plus
// per-benchmark flags).

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif
#if __has_include(<malloc.h>)
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>
#endif

#include <rk_cli.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace rk::bench {

struct summary {
  double median = 0;
  double min = 0;
  double max = 0;
  double p99 = 0;
  double mean = 0;
  std::size_t count = 0;
};

//! The p-quantile (0 <= p <= 1) of sorted samples, nearest rank.
inline double percentile_sorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(rank, sorted.size() - 1)];
}

inline summary summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  summary s;
  if (samples.empty()) return s;
  s.count = samples.size();
  s.min = samples.front();
  s.max = samples.back();
  const std::size_t n = samples.size();
  s.median = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
  s.p99 = percentile_sorted(samples, 0.99);
  double sum = 0;
  for (const double v : samples) sum += v;
  s.mean = sum / static_cast<double>(n);
  return s;
}

//! Latency samples of several repetitions: percentiles over all samples pooled, and the spread of the
//! per-repetition medians (how much a whole run moves from one repetition to the next).
struct latency_summary {
  summary pooled;
  double repetition_median_min = 0;
  double repetition_median_max = 0;
};

inline latency_summary summarize_repetitions(const std::vector<std::vector<double>>& repetitions) {
  latency_summary out;
  std::vector<double> all, medians;
  for (const auto& r : repetitions) {
    all.insert(all.end(), r.begin(), r.end());
    if (!r.empty()) medians.push_back(summarize(r).median);
  }
  out.pooled = summarize(std::move(all));
  if (!medians.empty()) {
    out.repetition_median_min = *std::min_element(medians.begin(), medians.end());
    out.repetition_median_max = *std::max_element(medians.begin(), medians.end());
  }
  return out;
}

//! `text` as a quoted JSON string (nlohmann-json escapes it).
inline std::string json_string(const std::string& text) {
  return nlohmann::json(text).dump();
}

//! Builds one JSON object field by field, in order, on nlohmann-json:
//! `json_object().text("a", "x").number("b", 1.5).str()`.
class json_object {
public:
  json_object& text(std::string_view key, const std::string& value) {
    doc_[std::string(key)] = value;
    return *this;
  }
  //! `value` rounded to `precision` decimals (non-finite values become null).
  json_object& number(std::string_view key, double value, int precision = 3) {
    const double scale = std::pow(10.0, precision);
    doc_[std::string(key)] = std::isfinite(value) ? nlohmann::ordered_json(std::round(value * scale) / scale)
                                                  : nlohmann::ordered_json(nullptr);
    return *this;
  }
  json_object& integer(std::string_view key, std::uint64_t value) {
    doc_[std::string(key)] = value;
    return *this;
  }
  json_object& boolean(std::string_view key, bool value) {
    doc_[std::string(key)] = value;
    return *this;
  }
  json_object& null(std::string_view key) {
    doc_[std::string(key)] = nullptr;
    return *this;
  }
  //! `value` must already be JSON text (an object, an array, a number): it is parsed, so a malformed
  //! value fails here rather than in whoever reads the output.
  json_object& raw(std::string_view key, const std::string& value) {
    doc_[std::string(key)] = nlohmann::ordered_json::parse(value);
    return *this;
  }
  std::string str() const { return doc_.dump(); }

private:
  nlohmann::ordered_json doc_ = nlohmann::ordered_json::object();
};

//! A JSON array of JSON texts.
inline std::string json_array(const std::vector<std::string>& items) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (const std::string& item : items) a.push_back(nlohmann::ordered_json::parse(item));
  return a.dump();
}

//! {"median": .., "p99": .., "min": .., "max": .., "mean": .., "count": ..}
inline std::string summary_json(const summary& s, int precision = 1) {
  return json_object()
      .number("median", s.median, precision)
      .number("p99", s.p99, precision)
      .number("min", s.min, precision)
      .number("max", s.max, precision)
      .number("mean", s.mean, precision)
      .integer("count", s.count)
      .str();
}

//! summary_json of the pooled samples plus the spread of the per-repetition medians.
inline std::string latency_json(const latency_summary& s, int precision = 1) {
  return json_object()
      .number("median", s.pooled.median, precision)
      .number("p99", s.pooled.p99, precision)
      .number("min", s.pooled.min, precision)
      .number("max", s.pooled.max, precision)
      .number("mean", s.pooled.mean, precision)
      .integer("count", s.pooled.count)
      .number("repetition_median_min", s.repetition_median_min, precision)
      .number("repetition_median_max", s.repetition_median_max, precision)
      .str();
}

//! "AMD EPYC 7B13 (2 hardware threads)" from /proc/cpuinfo.
inline std::string cpu_description() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) model = line.substr(colon + 2);
      break;
    }
  }
  return model + " (" + std::to_string(std::max(1u, std::thread::hardware_concurrency())) +
         " hardware threads)";
}

//! The time one cache line takes to go from CPU `first` to `second` and back (two threads bouncing an
//! atomic, `rounds` times), in ns; 0 when the process may not run on both. On a VM this moves: the
//! hypervisor may place the two vCPUs on one core complex (tens of ns) or far apart (hundreds), for seconds
//! at a time, and everything that crosses threads slows down with it. Benchmarks record it beside their
//! figures.
inline double cross_cpu_round_trip_ns(int first = -1, int second = -1, int rounds = 20'000) {
#if defined(__linux__)
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && (first < 0 || second < 0); ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (first < 0) {
      first = cpu;
    } else if (second < 0) {
      second = cpu;
    }
  }
  if (first < 0 || second < 0) return 0;
  const auto pin = [](int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
  };
  alignas(128) static std::atomic<std::int64_t> ball{0};
  ball.store(0);
  std::atomic<bool> pinned{true};
  std::thread echo([&] {
    pinned = pin(second) && pinned;
    for (std::int64_t i = 0; i < rounds; ++i) {
      while (ball.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      ball.store(2 * i + 2, std::memory_order_release);
    }
  });
  const pthread_t self = pthread_self();
  cpu_set_t before;
  pthread_getaffinity_np(self, sizeof before, &before);
  pinned = pin(first) && pinned;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::int64_t i = 0; i < rounds; ++i) {
    ball.store(2 * i + 1, std::memory_order_release);
    while (ball.load(std::memory_order_acquire) != 2 * i + 2) {
    }
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  echo.join();
  pthread_setaffinity_np(self, sizeof before, &before); // the caller runs where it ran before
  return pinned ? ns / rounds : 0;
#else
  (void)first;
  (void)second;
  (void)rounds;
  return 0;
#endif
}

//! Bytes the C heap has handed out and not yet taken back (glibc mallinfo2: arenas + mmapped chunks), or
//! 0 where that is unknown. Unlike the resident set it falls when memory is freed, so deltas taken around
//! one runtime's lifetime stay meaningful across several runtimes in one process.
inline std::uint64_t heap_bytes_in_use() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 m = mallinfo2();
  return static_cast<std::uint64_t>(m.uordblks) + static_cast<std::uint64_t>(m.hblkhd);
#else
  return 0;
#endif
}

//! The process's resident set in bytes (/proc/self/statm).
inline std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGE_SIZE));
}

//! The process's mapped address space in bytes (/proc/self/statm's size): what it allocated, touched or not.
inline std::uint64_t mapped_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages = 0;
  statm >> pages;
  return pages * static_cast<std::uint64_t>(sysconf(_SC_PAGE_SIZE));
}

//! User + system CPU time of the whole process (every thread), in seconds.
inline double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

struct common_args {
  bool json = false;
  bool smoke = false;
  int repetitions = 5;
  bool repetitions_given = false; //!< --repetitions was on the command line
  std::string program, usage;     //!< for usage_error
};

//! A problem found after parsing (a value that does not fit another, ...): prints "<program>: <problem>"
//! and the usage line, as a parse error does, and exits with status 2.
[[noreturn]] inline void usage_error(const common_args& args, const std::string& problem) {
  rk::cli::usage_error(args.program, args.usage, problem);
}

//! Parses the flags every benchmark takes (--json, --smoke, --repetitions N) plus the benchmark's own,
//! which `extra` adds to the CLI11 app (described in `extra_usage`). Errors exit with status 2.
inline common_args parse_common(int argc, char** argv, const char* name, const char* extra_usage = "",
                                const std::function<void(CLI::App&)>& extra = {}) {
  common_args a;
  CLI::App app("ringkernel benchmark (see docs/benchmarks.md)", name);
  app.add_flag("--json", a.json, "one JSON document on stdout");
  app.add_flag("--smoke", a.smoke, "a short run (ctest), one repetition unless --repetitions says more");
  std::optional<std::uint32_t> repetitions;
  rk::cli::add_count(app, "--repetitions", repetitions, "alternating repetitions (1 to 10^6)", 1'000'000, 1);
  if (extra) extra(app);
  a.program = name;
  a.usage =
      std::string("[--json] [--smoke] [--repetitions N]").append(*extra_usage ? " " : "").append(extra_usage);
  rk::cli::parse(app, argc, argv, a.usage);
  if (a.smoke) a.repetitions = 1;
  if (repetitions) a.repetitions = static_cast<int>(*repetitions);
  a.repetitions_given = repetitions.has_value();
  return a;
}

} // namespace rk::bench
