// Mailbox MPSC throughput on the CPU backend: 1, 2 and 4 producer threads into one mailbox drained by one
// consumer thread, 64-byte payloads in 128-byte slots. Baseline in the same run: the same bounded ring of
// slots guarded by a std::mutex (what a straightforward host implementation would do).
// These are CPU numbers (host memory, host threads); they say nothing about the GPU.
//
//   bench_mailbox_throughput [--json] [--smoke] [--repetitions N]

#include <ringkernel/device/backoff.cuh>
#include <ringkernel/device/mailbox.cuh>

#include "common/bench_util.hpp"

#include <atomic>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

namespace {

constexpr std::uint32_t capacity = 1024;
constexpr std::uint32_t slot_bytes = 128;
constexpr std::uint32_t payload_bytes = 64;

struct payload {
  std::uint64_t words[payload_bytes / 8];
};

class ringkernel_queue {
public:
  ringkernel_queue() : memory_(static_cast<std::byte*>(std::aligned_alloc(256, geometry().total_bytes()))) {
    rk::init_ring_image(memory_.get(), geometry());
    view_ = rk::make_ring_view(memory_.get(), geometry());
  }
  static rk::ring_geometry geometry() { return {capacity, slot_bytes}; }
  bool try_push(const rk::envelope& h, const payload& p) {
    return rk::mailbox(view_).try_send(h, &p) == rk::status::delivered;
  }
  bool try_pop(std::uint64_t& checksum) {
    const rk::mailbox mb(view_);
    const std::byte* slot = mb.try_peek();
    if (!slot) return false;
    payload p;
    std::memcpy(&p, slot + rk::envelope_bytes, sizeof p);
    checksum += p.words[0];
    mb.pop();
    return true;
  }

private:
  struct free_deleter {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte, free_deleter> memory_;
  rk::ring_view view_{};
};

//! Baseline: identical slot layout and copies, one mutex around the ring.
class mutex_queue {
public:
  mutex_queue() : slots_(std::size_t{capacity} * slot_bytes) {}
  bool try_push(const rk::envelope& h, const payload& p) {
    std::lock_guard lock(mutex_);
    if (tail_ - head_ == capacity) return false;
    std::byte* slot = &slots_[(tail_ % capacity) * slot_bytes];
    std::memcpy(slot, &h, sizeof h);
    std::memcpy(slot + rk::envelope_bytes, &p, sizeof p);
    ++tail_;
    return true;
  }
  bool try_pop(std::uint64_t& checksum) {
    std::lock_guard lock(mutex_);
    if (head_ == tail_) return false;
    payload p;
    std::memcpy(&p, &slots_[(head_ % capacity) * slot_bytes + rk::envelope_bytes], sizeof p);
    checksum += p.words[0];
    ++head_;
    return true;
  }

private:
  std::mutex mutex_;
  std::vector<std::byte> slots_;
  std::uint64_t head_ = 0, tail_ = 0;
};

//! Messages per second for one run; aborts the program if anything was lost or duplicated.
template <class Queue>
double run_once(std::uint32_t producers, std::uint64_t total_messages) {
  Queue q;
  const std::uint64_t per_producer = total_messages / producers;
  const std::uint64_t total = per_producer * producers;
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      rk::envelope h;
      h.payload_length = payload_bytes;
      payload body{};
      rk::backoff retry;
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (std::uint64_t i = 0; i < per_producer; ++i) {
        body.words[0] = (std::uint64_t{p} << 48) | i;
        while (!q.try_push(h, body)) retry.pause();
        retry.reset();
      }
    });
  }
  std::uint64_t checksum = 0, received = 0;
  rk::backoff idle;
  const auto begin = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  while (received < total) {
    if (q.try_pop(checksum)) {
      ++received;
      idle.reset();
    } else {
      idle.pause();
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  for (auto& t : threads) t.join();
  std::uint64_t expected = 0;
  for (std::uint32_t p = 0; p < producers; ++p)
    for (std::uint64_t i = 0; i < per_producer; ++i) expected += (std::uint64_t{p} << 48) | i;
  if (checksum != expected) {
    std::fprintf(stderr, "bench_mailbox_throughput: checksum mismatch: messages lost or duplicated\n");
    std::exit(1);
  }
  return static_cast<double>(total) / seconds;
}

template <class Queue>
rk::bench::summary measure(std::uint32_t producers, std::uint64_t messages, int repetitions) {
  run_once<Queue>(producers, messages / 10); // warm-up
  std::vector<double> samples;
  for (int r = 0; r < repetitions; ++r) samples.push_back(run_once<Queue>(producers, messages));
  return rk::bench::summarize(samples);
}

} // namespace

int main(int argc, char** argv) {
  const rk::bench::common_args args = rk::bench::parse_common(argc, argv, "bench_mailbox_throughput");
  const std::uint64_t messages = args.smoke ? 20'000 : 2'000'000;
  const std::string cpu = rk::bench::cpu_description();

  struct row {
    std::uint32_t producers;
    rk::bench::summary ours, baseline;
  };
  std::vector<row> rows;
  for (std::uint32_t producers : {1u, 2u, 4u})
    rows.push_back({producers, measure<ringkernel_queue>(producers, messages, args.repetitions),
                    measure<mutex_queue>(producers, messages, args.repetitions)});

  if (args.json) {
    std::printf("{\"benchmark\": \"mailbox_throughput\", \"backend\": \"cpu\", \"machine\": \"%s\", "
                "\"messages_per_run\": %llu, \"repetitions\": %d, \"payload_bytes\": %u, \"results\": [",
                rk::bench::json_escape(cpu).c_str(), static_cast<unsigned long long>(messages),
                args.repetitions, payload_bytes);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const row& r = rows[i];
      std::printf(
          "%s{\"producers\": %u, \"ringkernel_msgs_per_s\": {\"median\": %.0f, \"min\": %.0f, \"max\": "
          "%.0f}, "
          "\"mutex_ring_msgs_per_s\": {\"median\": %.0f, \"min\": %.0f, \"max\": %.0f}, \"ratio\": %.2f}",
          i ? ", " : "", r.producers, r.ours.median, r.ours.min, r.ours.max, r.baseline.median,
          r.baseline.min, r.baseline.max, r.ours.median / r.baseline.median);
    }
    std::printf("]}\n");
  } else {
    std::printf("Mailbox MPSC throughput, CPU backend (host memory) on %s\n", cpu.c_str());
    std::printf("%llu messages per run, %u-byte payloads, median of %d runs [min - max]\n",
                static_cast<unsigned long long>(messages), payload_bytes, args.repetitions);
    std::printf("%-10s %-36s %-36s %s\n", "producers", "ringkernel mailbox (msgs/s)",
                "mutex ring baseline (msgs/s)", "ratio");
    for (const row& r : rows) {
      char ours[64], base[64];
      std::snprintf(ours, sizeof ours, "%.2fM [%.2f - %.2f]", r.ours.median / 1e6, r.ours.min / 1e6,
                    r.ours.max / 1e6);
      std::snprintf(base, sizeof base, "%.2fM [%.2f - %.2f]", r.baseline.median / 1e6, r.baseline.min / 1e6,
                    r.baseline.max / 1e6);
      std::printf("%-10u %-36s %-36s %.2fx\n", r.producers, ours, base, r.ours.median / r.baseline.median);
    }
  }
  return 0;
}
