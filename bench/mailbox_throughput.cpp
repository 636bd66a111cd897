// Mailbox MPSC throughput on the CPU backend: 1, 2 and 4 producer threads into one queue drained by one
// consumer thread, 64-byte payloads. Every queue carries the same 128 bytes per message (the 64-byte
// envelope followed by the 64-byte payload) and is bounded to 1024 messages where the queue allows it.
// Baselines in the same run:
//   - mutex ring: the same bounded ring of slots guarded by a std::mutex (a straightforward host queue);
//   - moodycamel::ConcurrentQueue (libconcurrentqueue-dev), with a producer token per producer thread;
//   - boost::lockfree::queue with a fixed capacity of 1024 (libboost-dev).
// The last two are compiled in only when their headers were found at configure time; the output says
// which are missing. Every run checks a checksum of everything that crossed the queue, so a lost or
// duplicated message aborts the benchmark.
// These are CPU numbers (host memory, host threads); they say nothing about the GPU.
//
//   bench_mailbox_throughput [--json] [--smoke] [--repetitions N]

#include <ringkernel/device/backoff.cuh>
#include <ringkernel/device/mailbox.cuh>

#include "common/bench_util.hpp"

#if RK_BENCH_HAVE_MOODYCAMEL
#include <concurrentqueue.h>
#endif
#if RK_BENCH_HAVE_BOOST_LOCKFREE
#include <boost/lockfree/queue.hpp>
#endif

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace {

constexpr std::uint32_t capacity = 1024;
constexpr std::uint32_t slot_bytes = 128;
constexpr std::uint32_t payload_bytes = 64;

struct payload {
  std::uint64_t words[payload_bytes / 8];
};

//! What the third-party queues carry: the same bytes a mailbox slot holds.
struct message128 {
  rk::envelope header;
  payload body;
};
static_assert(sizeof(message128) == slot_bytes);

class ringkernel_queue {
public:
  static constexpr const char* name = "ringkernel mailbox";
  static constexpr const char* key = "ringkernel";
  explicit ringkernel_queue(std::uint32_t /*producers*/)
      : memory_(static_cast<std::byte*>(std::aligned_alloc(256, geometry().total_bytes()))) {
    rk::init_ring_image(memory_.get(), geometry());
    view_ = rk::make_ring_view(memory_.get(), geometry());
  }
  static rk::ring_geometry geometry() { return {capacity, slot_bytes}; }
  struct producer {
    explicit producer(ringkernel_queue&) {}
  };
  bool try_push(producer&, const rk::envelope& h, const payload& p) {
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
  static constexpr const char* name = "mutex ring";
  static constexpr const char* key = "mutex_ring";
  explicit mutex_queue(std::uint32_t /*producers*/) : slots_(std::size_t{capacity} * slot_bytes) {}
  struct producer {
    explicit producer(mutex_queue&) {}
  };
  bool try_push(producer&, const rk::envelope& h, const payload& p) {
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

#if RK_BENCH_HAVE_MOODYCAMEL
//! moodycamel::ConcurrentQueue used as its author recommends for throughput: one producer token per
//! producer thread and a consumer token, the block pool pre-sized for `capacity` messages. The queue has no
//! hard bound, so a producer treats it as full while size_approx() >= capacity and otherwise enqueues
//! (which may allocate a block; blocks are recycled once warm). Bounding it with try_enqueue instead is
//! not usable: on a pool sized for 1024 messages, a second producer token can fail to get any block for
//! good while the first holds them (seen with the Debian package, 1.0.3), and the run never ends.
class moodycamel_queue {
public:
  static constexpr const char* name = "moodycamel::ConcurrentQueue";
  static constexpr const char* key = "moodycamel";
  explicit moodycamel_queue(std::uint32_t producers) : queue_(capacity, producers, 0), consumer_(queue_) {}
  struct producer {
    explicit producer(moodycamel_queue& q) : token(q.queue_) {}
    moodycamel::ProducerToken token;
  };
  bool try_push(producer& p, const rk::envelope& h, const payload& body) {
    if (queue_.size_approx() >= capacity) return false;
    return queue_.enqueue(p.token, message128{h, body});
  }
  bool try_pop(std::uint64_t& checksum) {
    message128 m;
    if (!queue_.try_dequeue(consumer_, m)) return false;
    checksum += m.body.words[0];
    return true;
  }

private:
  moodycamel::ConcurrentQueue<message128> queue_;
  moodycamel::ConsumerToken consumer_;
};
#endif

#if RK_BENCH_HAVE_BOOST_LOCKFREE
//! boost::lockfree::queue (MPMC, node-based on a fixed-size free list): bounded to `capacity` at compile
//! time, push fails when full.
class boost_queue {
public:
  static constexpr const char* name = "boost::lockfree::queue";
  static constexpr const char* key = "boost_lockfree";
  explicit boost_queue(std::uint32_t /*producers*/) {}
  struct producer {
    explicit producer(boost_queue&) {}
  };
  bool try_push(producer&, const rk::envelope& h, const payload& body) {
    return queue_.bounded_push(message128{h, body});
  }
  bool try_pop(std::uint64_t& checksum) {
    message128 m;
    if (!queue_.pop(m)) return false;
    checksum += m.body.words[0];
    return true;
  }

private:
  boost::lockfree::queue<message128, boost::lockfree::capacity<capacity>> queue_;
};
#endif

//! No run may take longer than this; a queue that stops making progress ends the benchmark with an error.
constexpr auto run_time_limit = std::chrono::seconds(60);

//! Calls `step()` until it returns true, backing off in between. Returns false if `deadline` passed first
//! (the clock is read every 1024 failed steps).
template <class Step>
bool retry_until(Step&& step, std::chrono::steady_clock::time_point deadline) {
  rk::backoff retry;
  for (std::uint32_t failures = 1; !step(); ++failures) {
    if ((failures & 1023u) == 0 && std::chrono::steady_clock::now() > deadline) return false;
    retry.pause();
  }
  return true;
}

[[noreturn]] void stalled(const char* queue) {
  std::fprintf(stderr, "bench_mailbox_throughput: %s: no progress for %lld s, giving up\n", queue,
               static_cast<long long>(run_time_limit.count()));
  std::exit(1);
}

//! Messages per second for one run; exits the program if anything was lost or duplicated.
template <class Queue>
double run_once(std::uint32_t producers, std::uint64_t total_messages) {
  auto q = std::make_unique<Queue>(producers);
  const std::uint64_t per_producer = total_messages / producers;
  const std::uint64_t total = per_producer * producers;
  std::atomic<bool> go{false};
  std::atomic<bool> producer_stalled{false};
  const auto deadline = std::chrono::steady_clock::now() + run_time_limit;
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      typename Queue::producer token(*q);
      rk::envelope h;
      h.payload_length = payload_bytes;
      payload body{};
      if (!retry_until([&] { return go.load(std::memory_order_acquire); }, deadline)) return;
      for (std::uint64_t i = 0; i < per_producer; ++i) {
        body.words[0] = (std::uint64_t{p} << 48) | i;
        if (!retry_until([&] { return q->try_push(token, h, body); }, deadline)) {
          producer_stalled.store(true, std::memory_order_relaxed);
          return;
        }
      }
    });
  }
  std::uint64_t checksum = 0, received = 0;
  const auto begin = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  bool consumer_stalled = false;
  while (received < total && !consumer_stalled) {
    consumer_stalled = !retry_until([&] { return q->try_pop(checksum); }, deadline);
    if (!consumer_stalled) ++received;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  for (auto& t : threads) t.join();
  if (consumer_stalled || producer_stalled.load()) stalled(Queue::name);
  std::uint64_t extra = 0;
  const bool drained = !q->try_pop(extra);
  std::uint64_t expected = 0;
  for (std::uint32_t p = 0; p < producers; ++p)
    for (std::uint64_t i = 0; i < per_producer; ++i) expected += (std::uint64_t{p} << 48) | i;
  if (checksum != expected || !drained) {
    std::fprintf(stderr, "bench_mailbox_throughput: %s: checksum mismatch: messages lost or duplicated\n",
                 Queue::name);
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

struct queue_result {
  const char* name;
  const char* key;
  std::optional<rk::bench::summary> msgs_per_s; //!< empty: this baseline was not built
};

struct row {
  std::uint32_t producers;
  std::vector<queue_result> queues; //!< [0] is ringkernel
};

template <class Queue>
queue_result measure_queue(std::uint32_t producers, std::uint64_t messages, int repetitions) {
  return {Queue::name, Queue::key, measure<Queue>(producers, messages, repetitions)};
}

} // namespace

int main(int argc, char** argv) {
  const rk::bench::common_args args = rk::bench::parse_common(argc, argv, "bench_mailbox_throughput");
  const std::uint64_t messages = args.smoke ? 20'000 : 2'000'000;
  const std::string cpu = rk::bench::cpu_description();

  std::vector<std::string> missing;
#if !RK_BENCH_HAVE_MOODYCAMEL
  missing.push_back("moodycamel::ConcurrentQueue (install libconcurrentqueue-dev and reconfigure)");
#endif
#if !RK_BENCH_HAVE_BOOST_LOCKFREE
  missing.push_back("boost::lockfree::queue (install libboost-dev and reconfigure)");
#endif

  std::vector<row> rows;
  for (std::uint32_t producers : {1u, 2u, 4u}) {
    row r{producers, {}};
    r.queues.push_back(measure_queue<ringkernel_queue>(producers, messages, args.repetitions));
    r.queues.push_back(measure_queue<mutex_queue>(producers, messages, args.repetitions));
#if RK_BENCH_HAVE_MOODYCAMEL
    r.queues.push_back(measure_queue<moodycamel_queue>(producers, messages, args.repetitions));
#else
    r.queues.push_back({"moodycamel::ConcurrentQueue", "moodycamel", std::nullopt});
#endif
#if RK_BENCH_HAVE_BOOST_LOCKFREE
    r.queues.push_back(measure_queue<boost_queue>(producers, messages, args.repetitions));
#else
    r.queues.push_back({"boost::lockfree::queue", "boost_lockfree", std::nullopt});
#endif
    rows.push_back(std::move(r));
  }

  if (args.json) {
    std::vector<std::string> results;
    for (const row& r : rows) {
      rk::bench::json_object o;
      o.integer("producers", r.producers);
      const double ours = r.queues[0].msgs_per_s->median;
      for (const queue_result& q : r.queues) {
        const std::string key = std::string(q.key) + "_msgs_per_s";
        if (q.msgs_per_s) {
          o.raw(key, rk::bench::summary_json(*q.msgs_per_s, 0));
        } else {
          o.null(key);
        }
      }
      // ratio_<baseline> = ringkernel median / baseline median (> 1: the mailbox is faster).
      for (std::size_t i = 1; i < r.queues.size(); ++i) {
        const std::string key = std::string("ratio_") + r.queues[i].key;
        if (r.queues[i].msgs_per_s) {
          o.number(key, ours / r.queues[i].msgs_per_s->median, 3);
        } else {
          o.null(key);
        }
      }
      results.push_back(o.str());
    }
    std::vector<std::string> missing_json;
    for (const auto& m : missing) missing_json.push_back(rk::bench::json_string(m));
    std::printf("%s\n", rk::bench::json_object()
                            .text("benchmark", "mailbox_throughput")
                            .text("backend", "cpu")
                            .text("machine", cpu)
                            .integer("messages_per_run", messages)
                            .integer("repetitions", static_cast<std::uint64_t>(args.repetitions))
                            .integer("payload_bytes", payload_bytes)
                            .integer("bytes_per_message", slot_bytes)
                            .integer("queue_capacity", capacity)
                            .raw("missing_baselines", rk::bench::json_array(missing_json))
                            .raw("results", rk::bench::json_array(results))
                            .str()
                            .c_str());
  } else {
    std::printf("Mailbox MPSC throughput, CPU backend (host memory, host threads) on %s\n", cpu.c_str());
    std::printf("%llu messages per run, %u-byte payloads (%u bytes per message with the envelope), one "
                "consumer, median of %d runs [min - max], million messages/s\n",
                static_cast<unsigned long long>(messages), payload_bytes, slot_bytes, args.repetitions);
    std::printf("%-10s", "producers");
    for (const queue_result& q : rows[0].queues) std::printf(" %-30s", q.name);
    std::printf("\n");
    for (const row& r : rows) {
      std::printf("%-10u", r.producers);
      for (const queue_result& q : r.queues) {
        char cell[64] = "not built";
        if (q.msgs_per_s)
          std::snprintf(cell, sizeof cell, "%.2fM [%.2f - %.2f]", q.msgs_per_s->median / 1e6,
                        q.msgs_per_s->min / 1e6, q.msgs_per_s->max / 1e6);
        std::printf(" %-30s", cell);
      }
      std::printf("\n");
    }
    std::printf("ratio = ringkernel median / baseline median (> 1: the mailbox is faster)\n");
    for (const row& r : rows) {
      std::printf("  %u producer%s:", r.producers, r.producers == 1 ? " " : "s");
      for (std::size_t i = 1; i < r.queues.size(); ++i) {
        if (r.queues[i].msgs_per_s) {
          std::printf("  vs %s %.2fx", r.queues[i].name,
                      r.queues[0].msgs_per_s->median / r.queues[i].msgs_per_s->median);
        } else {
          std::printf("  vs %s n/a", r.queues[i].name);
        }
      }
      std::printf("\n");
    }
    for (const auto& m : missing) std::printf("not built: %s\n", m.c_str());
  }
  return 0;
}
