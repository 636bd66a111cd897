#pragma once
// Shared by bench_traffic's two sides (traffic.cu: ringkernel; caf_traffic.cpp: CAF): the workload sizes
// and a fixed-size latency histogram that a handler can keep in its state on the GPU, the CPU backend
// and in a CAF actor alike.

#include <ringkernel/device/config.cuh>

#include <cuda/std/bit>

#include <cstdint>
#include <vector>

namespace rk::bench {

//! Log-linear histogram of nanosecond values: exact below 16 ns, then 16 buckets per power of two (a
//! reported percentile is within 1/16 of the true value), up to 2^40 ns.
struct latency_histogram {
  static constexpr std::uint32_t sub_buckets = 16;
  static constexpr std::uint32_t buckets = sub_buckets + 36 * sub_buckets;
  std::uint32_t count[buckets] = {};

  RK_HOST_DEVICE static std::uint32_t bucket_of(std::uint64_t ns) noexcept {
    if (ns < sub_buckets) return static_cast<std::uint32_t>(ns);
    const std::uint32_t e = static_cast<std::uint32_t>(cuda::std::bit_width(ns)) - 1; // >= 4
    if (e >= 40) return buckets - 1;
    return sub_buckets + (e - 4) * sub_buckets +
           static_cast<std::uint32_t>((ns >> (e - 4)) & (sub_buckets - 1));
  }
  //! The middle of bucket `b`, in ns.
  static double value_of(std::uint32_t b) noexcept {
    if (b < sub_buckets) return b;
    const std::uint32_t e = 4 + (b - sub_buckets) / sub_buckets, sub = (b - sub_buckets) % sub_buckets;
    const double width = static_cast<double>(std::uint64_t{1} << (e - 4));
    return (sub_buckets + sub) * width + width / 2;
  }
  RK_HOST_DEVICE void add(std::uint64_t ns) noexcept { ++count[bucket_of(ns)]; }

  std::uint64_t total() const noexcept {
    std::uint64_t n = 0;
    for (std::uint32_t c : count) n += c;
    return n;
  }
  //! The p-quantile (0..1), in ns; 0 when empty.
  double percentile(double p) const noexcept {
    const std::uint64_t n = total();
    if (n == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(p * static_cast<double>(n - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::uint32_t b = 0; b < buckets; ++b)
      if ((seen += count[b]) >= rank) return value_of(b);
    return value_of(buckets - 1);
  }
};

//! What one run of each workload measured (the same fields for both systems).
struct pingpong_result {
  double p50_ns = 0, p99_ns = 0, max_ns = 0;
  std::uint64_t round_trips = 0;
};
struct rate_result {
  double messages_per_s = 0;
  std::uint64_t messages = 0;
};

// --- CAF side (caf_traffic.cpp; built only when CAF is found) -----------------------------------------
//! Two actors bounce a 64-byte message `warmup + round_trips` times; the first times each round trip.
pingpong_result caf_pingpong(std::uint64_t warmup, std::uint64_t round_trips, unsigned threads);
//! `senders` actors each send `per_sender` 64-byte messages to one sink; rate = all / (start .. last).
rate_result caf_fan_in(std::uint32_t senders, std::uint64_t per_sender, unsigned threads);
//! `actors` actors, `tokens` tokens in all, each token forwarded `hops` times to a uniformly random other
//! actor (64 bytes each); rate = tokens * hops / time.
rate_result caf_random(std::uint32_t actors, std::uint32_t tokens, std::uint64_t hops, unsigned threads);

} // namespace rk::bench
