// samples/pingpong: host -> actor A -> actor B -> host, N round trips.
//
// Latency: one message in flight; the host times send() to receive() with steady_clock, so this is the
// full host round trip (ingress ring, gateway, A's mailbox, K2K to B, egress ring), not a device-only
// number. Throughput: `--window` round trips in flight; msgs_per_s counts completed round trips per second.
//
//   pingpong [--rounds N] [--warmup N] [--window N] [--backend auto|cpu|cuda] [--json]

#include <ringkernel/ringkernel.hpp>

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
  const rk::actor_index b = rt.spawn<pong>("B");
  const rk::actor_index a = rt.spawn<relay>("A", {}, relay::state{b});
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

struct arguments {
  std::uint64_t rounds = 10'000;
  std::uint64_t warmup = 1'000;
  std::uint32_t window = 64;
  rk::backend backend = rk::backend::automatic;
  bool json = false;
};

[[noreturn]] void usage(const char* problem) {
  std::fprintf(
      stderr,
      "pingpong: %s\nusage: pingpong [--rounds N] [--warmup N] [--window N] [--backend auto|cpu|cuda] "
      "[--json]\n",
      problem);
  std::exit(2);
}

std::uint64_t parse_count(const char* text, const char* flag) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0') usage((std::string("invalid number for ") + flag).c_str());
  return v;
}

arguments parse(int argc, char** argv) {
  arguments a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage((arg + " needs a value").c_str());
      return argv[++i];
    };
    if (arg == "--rounds") {
      a.rounds = parse_count(value(), "--rounds");
    } else if (arg == "--warmup") {
      a.warmup = parse_count(value(), "--warmup");
    } else if (arg == "--window") {
      a.window = static_cast<std::uint32_t>(parse_count(value(), "--window"));
    } else if (arg == "--backend") {
      const std::string b = value();
      if (b == "auto") {
        a.backend = rk::backend::automatic;
      } else if (b == "cpu") {
        a.backend = rk::backend::cpu;
      } else if (b == "cuda") {
        a.backend = rk::backend::cuda;
      } else {
        usage("--backend must be auto, cpu or cuda");
      }
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "--help" || arg == "-h") {
      usage("host -> A -> B -> host round trips");
    } else {
      usage(("unknown argument " + arg).c_str());
    }
  }
  if (a.rounds == 0) usage("--rounds must be at least 1");
  if (a.window == 0 || a.window > 200) usage("--window must be between 1 and 200");
  return a;
}

double percentile_us(const std::vector<double>& sorted_ns, double p) {
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted_ns.size() - 1) + 0.5);
  return sorted_ns[std::min(rank, sorted_ns.size() - 1)] / 1'000.0;
}

std::string json_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}

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
  const arguments args = parse(argc, argv);
  try {
    rk::runtime_options options;
    options.backend = args.backend;
    rk::runtime rt(options);
    const rk::actor_index a = start_pingpong(rt);
    const rk::actor_index b = rt.find("B");
    if (!hello(rt, a)) {
      std::fprintf(stderr, "pingpong: the first round trip failed\n");
      return 1;
    }

    for (std::uint64_t i = 0; i < args.warmup; ++i)
      if (!round_trip(rt, a, i)) return 1;

    // Latency: one round trip at a time.
    std::vector<double> latencies_ns;
    latencies_ns.reserve(args.rounds);
    for (std::uint64_t i = 0; i < args.rounds; ++i) {
      const auto begin = std::chrono::steady_clock::now();
      if (!round_trip(rt, a, args.warmup + i)) return 1;
      latencies_ns.push_back(
          std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - begin).count());
    }
    std::sort(latencies_ns.begin(), latencies_ns.end());

    // Throughput: keep `window` round trips in flight.
    const std::uint64_t base = args.warmup + args.rounds;
    std::uint64_t sent = 0, received = 0;
    const auto begin = std::chrono::steady_clock::now();
    while (received < args.rounds) {
      while (sent < args.rounds && sent - received < args.window) {
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
    const double msgs_per_s = static_cast<double>(args.rounds) / seconds;

    const rk::shutdown_report report = rt.shutdown();
    const rk::runtime_stats stats = rt.stats();
    const std::uint64_t expected = 1 + args.warmup + 2 * args.rounds; // + hello()
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
    if (args.json) {
      std::printf(
          "{\"backend\": \"%s\", \"device\": \"%s\", \"rounds\": %llu, \"p50_us\": %.3f, \"p99_us\": %.3f, "
          "\"max_us\": %.3f, \"msgs_per_s\": %.1f, \"window\": %u}\n",
          backend.c_str(), json_escape(rt.backend_description()).c_str(),
          static_cast<unsigned long long>(args.rounds), p50, p99, max, msgs_per_s, args.window);
    } else {
      std::printf("pingpong: host -> A -> B -> host on the %s backend (%s)\n", backend.c_str(),
                  rt.backend_description().c_str());
      std::printf("  round trip over %llu rounds: p50 %.2f us   p99 %.2f us   max %.2f us\n",
                  static_cast<unsigned long long>(args.rounds), p50, p99, max);
      std::printf("  throughput with %u in flight: %.0f round trips/s\n", args.window, msgs_per_s);
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
