// samples/pingpong: host -> actor A -> actor B -> host, N round trips.
//
// Latency: one message in flight; the host times send() to receive() with steady_clock, so this is the
// full host round trip (ingress ring, gateway, A's mailbox, K2K to B, egress ring), not a device-only
// number. Throughput: `--window` round trips in flight; msgs_per_s counts completed round trips per second.
//
//   pingpong [--rounds N] [--warmup N] [--window N] [--backend auto|cpu|cuda] [--busy-poll] [--json]
//   --busy-poll: host waits spin instead of sleeping (runtime_options::host_busy_poll)

#include <ringkernel/ringkernel.hpp>

#include "../common/sample_util.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

// [readme-example-begin]
// Actor A: forwards every request to actor `next` on the device (K2K).
struct relay {
  struct state {
    rk::actor_index next = 0;
    std::uint64_t failed = 0; // sends the device refused (e.g. queue_full)
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const rk::status st = ctx.send(s.next, m.type(), m.payload(), {.correlation_id = m.correlation_id()});
    if (st == rk::status::queue_full) {
      ctx.defer(); // B's mailbox is full: keep this request and try again on A's next turn
      return;
    }
    if (st != rk::status::delivered) ++s.failed;
  }
};

// Actor B: answers the host with the same payload.
struct pong {
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    (void)ctx.send_host(m.type(), m.payload(), {.correlation_id = m.correlation_id()});
  }
};

// Host side: spawn A and B, start, and make one round trip.
rk::actor_index start_pingpong(rk::runtime& rt) {
  const rk::actor_options roomy{.mailbox = {256, 256}}; // room for the throughput test's window
  const rk::actor_index b = rt.spawn<pong>("B", roomy);
  const rk::actor_index a = rt.spawn<relay>("A", roomy, relay::state{b});
  rt.start(); // one persistent kernel per handler type (CUDA) or worker threads (CPU)
  return a;
}

bool hello(rk::runtime& rt, rk::actor_index a) {
  const std::uint64_t question = 42;
  if (rt.send(a, /*type*/ 1, rk::as_bytes(question), {.correlation_id = 7}) != rk::status::enqueued)
    return false;
  const std::optional<rk::received_message> reply = rt.receive(std::chrono::seconds(5));
  return reply && reply->correlation_id() == 7 && reply->as<std::uint64_t>() == 42;
}
// [readme-example-end]

namespace {

using rk::samples::percentile_us;

constexpr std::uint32_t ping_type = 1;
constexpr auto reply_timeout = std::chrono::seconds(10);

//! One round trip; returns false (after reporting) if the reply is missing or wrong.
bool round_trip(rk::runtime& rt, rk::actor_index a, std::uint64_t i) {
  rk::backoff retry;
  rk::status s;
  while ((s = rt.send(a, ping_type, rk::as_bytes(i), {.correlation_id = i})) == rk::status::queue_full)
    retry.pause();
  if (s != rk::status::enqueued) {
    std::fprintf(stderr, "pingpong: send %llu returned %s\n", static_cast<unsigned long long>(i),
                 rk::to_string(s));
    return false;
  }
  const auto reply = rt.receive(reply_timeout);
  if (!reply || reply->correlation_id() != i || reply->as<std::uint64_t>() != i) {
    std::fprintf(stderr, "pingpong: round trip %llu: %s\n", static_cast<unsigned long long>(i),
                 reply ? "wrong reply" : "no reply within 10 s");
    return false;
  }
  return true;
}

} // namespace

int main(int argc, char** argv) {
  std::uint64_t rounds = 10'000, warmup = 1'000, window = 64;
  bool json = false;
  rk::runtime_options options;
  rk::samples::flags cli(
      "pingpong", "[--rounds N] [--warmup N] [--window N] [--backend auto|cpu|cuda] [--busy-poll] [--json]");
  cli.count("--rounds", rounds, 100'000'000, 1)->description("round trips measured (default 10000)");
  cli.count("--warmup", warmup, 100'000'000) // 1 + warmup + 2 rounds fits
      ->description("round trips before measuring (default 1000)");
  cli.count("--window", window, 200, 1)
      ->description("round trips in flight for the throughput run (default 64)");
  cli.backend(options.backend);
  cli.toggle("--json", json)->description("print the results as one JSON object");
  cli.toggle("--busy-poll", options.host_busy_poll)
      ->description("host waits spin instead of sleeping (runtime_options::host_busy_poll)");
  cli.parse(argc, argv);
  try {
    rk::runtime rt(options);
    const rk::actor_index a = start_pingpong(rt);
    const rk::actor_index b = rt.find("B");
    if (!hello(rt, a)) {
      std::fprintf(stderr, "pingpong: the first round trip failed\n");
      return 1;
    }

    for (std::uint64_t i = 0; i < warmup; ++i)
      if (!round_trip(rt, a, i)) return 1;

    // Latency: one round trip at a time.
    std::vector<double> latencies_ns;
    latencies_ns.reserve(rounds);
    for (std::uint64_t i = 0; i < rounds; ++i) {
      const auto begin = std::chrono::steady_clock::now();
      if (!round_trip(rt, a, warmup + i)) return 1;
      latencies_ns.push_back(
          std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - begin).count());
    }
    std::sort(latencies_ns.begin(), latencies_ns.end());

    // Throughput: keep `window` round trips in flight.
    const std::uint64_t base = warmup + rounds;
    std::uint64_t sent = 0, received = 0;
    const auto begin = std::chrono::steady_clock::now();
    while (received < rounds) {
      while (sent < rounds && sent - received < window) {
        const std::uint64_t id = base + sent;
        const rk::status s = rt.send(a, ping_type, rk::as_bytes(id), {.correlation_id = id});
        if (s == rk::status::queue_full) break;
        if (s != rk::status::enqueued) {
          std::fprintf(stderr, "pingpong: send returned %s\n", rk::to_string(s));
          return 1;
        }
        ++sent;
      }
      if (!rt.receive(reply_timeout)) {
        std::fprintf(stderr, "pingpong: a pipelined reply did not arrive within 10 s\n");
        return 1;
      }
      ++received;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    const double msgs_per_s = static_cast<double>(rounds) / seconds;
    const std::uint64_t in_flight = std::min(window, rounds); // at most: fewer while the host ring is full

    const rk::shutdown_report report = rt.shutdown();
    const rk::runtime_stats stats = rt.stats();
    const std::uint64_t expected = 1 + warmup + 2 * rounds; // + hello()
    const bool balanced = stats.actors[a].handled == expected && stats.actors[b].handled == expected &&
                          rt.state<relay>(a).failed == 0 && report.drained;
    if (!balanced) {
      std::fprintf(stderr,
                   "pingpong: counters do not balance (A handled %llu, B handled %llu, expected %llu)\n",
                   static_cast<unsigned long long>(stats.actors[a].handled),
                   static_cast<unsigned long long>(stats.actors[b].handled),
                   static_cast<unsigned long long>(expected));
      return 1;
    }

    const std::string backend(rk::to_string(rt.backend()));
    const double p50 = percentile_us(latencies_ns, 0.50);
    const double p99 = percentile_us(latencies_ns, 0.99);
    const double max = latencies_ns.back() / 1'000.0;
    if (json) {
      const nlohmann::ordered_json doc = {{"backend", backend},
                                          {"device", rt.backend_description()},
                                          {"rounds", rounds},
                                          {"p50_us", p50},
                                          {"p99_us", p99},
                                          {"max_us", max},
                                          {"msgs_per_s", msgs_per_s},
                                          {"window", window},
                                          {"in_flight", in_flight}};
      std::printf("%s\n", doc.dump().c_str());
    } else {
      std::printf("pingpong: host -> A -> B -> host on the %s backend (%s)\n", backend.c_str(),
                  rt.backend_description().c_str());
      std::printf("  round trip over %llu rounds: p50 %.2f us   p99 %.2f us   max %.2f us\n",
                  static_cast<unsigned long long>(rounds), p50, p99, max);
      std::printf("  throughput with up to %llu in flight: %.0f round trips/s\n",
                  static_cast<unsigned long long>(in_flight), msgs_per_s);
      std::printf("  counters: A handled %llu, B handled %llu, nothing lost\n",
                  static_cast<unsigned long long>(stats.actors[a].handled),
                  static_cast<unsigned long long>(stats.actors[b].handled));
    }
    return 0;
  } catch (const rk::error& e) {
    std::fprintf(stderr, "pingpong: %s\n", e.what());
    return 1;
  }
}
