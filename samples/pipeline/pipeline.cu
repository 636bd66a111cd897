// samples/pipeline: host -> s1 -> s2 -> s3 -> s4 -> host.
//
// Each stage adds its stage number to a running value and forwards the event K2K to the next stage; the
// last one answers the host. Latency: one event in flight, host clock, full path (4 K2K hops plus the
// host rings). Throughput: `--window` events in flight; events/s counts completed events.
//
//   pipeline [--events N] [--window N] [--backend auto|cpu|cuda] [--json] [--trace FILE [--trace-every N]]
//
// --trace FILE records every N-th handler call of each stage (default: every call) on the device clock and
// writes them as Chrome trace JSON (open in https://ui.perfetto.dev; docs/profiling.md).

#include <ringkernel/ringkernel.hpp>

#include "../common/sample_util.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr std::uint32_t event_type = 1;
constexpr std::uint32_t stages = 4;

struct event {
  std::uint64_t id;
  std::uint64_t value;
  std::uint32_t visited; //!< bit per stage
  std::uint32_t reserved;
};

//! One stage: transforms the event and passes it on (next == host_actor: back to the host). A full
//! successor costs no event: the stage defers it and gets it again on its next turn.
struct stage {
  static constexpr const char* name = "stage";
  struct state {
    rk::address next = rk::host_actor;
    std::uint32_t number = 0;
    std::uint64_t events = 0;
    std::uint64_t refused = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const event* in = m.as<event>();
    if (in == nullptr) return;
    event out = *in;
    out.value += s.number;
    out.visited |= 1u << s.number;
    const rk::status st =
        ctx.send(s.next, m.type(), rk::as_bytes(out), {.correlation_id = m.correlation_id()});
    if (st == rk::status::queue_full) { // the next stage (or the host ring) is full: retry on the next turn
      ctx.defer();
      return;
    }
    ++s.events;
    if (st != rk::status::delivered) ++s.refused;
  }
};

bool check(const event& e) {
  return e.value == e.id + (0 + 1 + 2 + 3) && e.visited == 0xFu;
}

} // namespace

int main(int argc, char** argv) {
  std::uint64_t events = 20'000, window = 64;
  bool json = false;
  rk::runtime_options options;
  std::string trace_path;
  std::uint64_t trace_every = 0;
  rk::samples::flags cli("pipeline", "[--events N] [--window N] [--backend auto|cpu|cuda] [--json] "
                                     "[--trace FILE [--trace-every N]]");
  cli.count("--events", events, 100'000'000, 1)
      ->description("events through the four stages (default 20000)");
  cli.count("--window", window, 200, 1)->description("events in flight for the throughput run (default 64)");
  cli.backend(options.backend);
  cli.toggle("--json", json)->description("print the results as one JSON object");
  cli.file("--trace", trace_path)
      ->description("write the stages' handler calls as Chrome trace JSON to FILE");
  cli.count("--trace-every", trace_every, 0xFFFF'FFFFu)
      ->description("with --trace: record every N-th call of each stage (default: every call)");
  cli.parse(argc, argv);
  if (trace_every != 0 && trace_path.empty()) cli.fail("--trace-every needs --trace FILE");
  if (!trace_path.empty()) {
    options.trace.sample_every = trace_every == 0 ? 1 : static_cast<std::uint32_t>(trace_every);
    options.trace.ring_slots = 1u << 16; // room for a burst between two collections
  }

  try {
    rk::runtime rt(options);
    rt.register_message_type({event_type, "event", true, ""}); // names the events in the trace
    // Spawn back to front so each stage knows its successor.
    rk::address next = rk::host_actor;
    std::vector<rk::actor_index> ids(stages);
    for (std::uint32_t i = stages; i-- > 0;) {
      ids[i] =
          rt.spawn<stage>(std::string("s").append(std::to_string(i + 1)), {}, stage::state{next, i, 0, 0});
      next = ids[i];
    }
    const rk::actor_index head = ids.front();
    rt.start();

    // Latency: one event at a time.
    std::vector<double> latencies_ns;
    latencies_ns.reserve(events);
    for (std::uint64_t i = 0; i < events; ++i) {
      const event e{i, i, 0, 0};
      const auto begin = std::chrono::steady_clock::now();
      if (const rk::status st =
              rk::samples::send_retrying(rt, head, event_type, rk::as_bytes(e), {.correlation_id = i});
          st != rk::status::enqueued) {
        std::fprintf(stderr, "pipeline: event %llu was not sent: %s\n", static_cast<unsigned long long>(i),
                     rk::to_string(st));
        return 1;
      }
      const auto reply = rt.receive(std::chrono::seconds(10));
      if (!reply || reply->correlation_id() != i || !check(reply->as<event>())) {
        std::fprintf(stderr, "pipeline: event %llu %s\n", static_cast<unsigned long long>(i),
                     reply ? "came back wrong" : "did not come back within 10 s");
        return 1;
      }
      latencies_ns.push_back(
          std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - begin).count());
    }
    std::sort(latencies_ns.begin(), latencies_ns.end());

    // Throughput: `window` events in flight.
    std::uint64_t sent = 0, done = 0;
    const auto begin = std::chrono::steady_clock::now();
    while (done < events) {
      while (sent < events && sent - done < window) {
        const std::uint64_t id = events + sent;
        const event e{id, id, 0, 0};
        if (rt.send(head, event_type, rk::as_bytes(e), {.correlation_id = id}) != rk::status::enqueued) break;
        ++sent;
      }
      const auto reply = rt.receive(std::chrono::seconds(10));
      if (!reply || !check(reply->as<event>())) {
        std::fprintf(stderr, "pipeline: a pipelined event %s\n",
                     reply ? "came back wrong" : "did not come back");
        return 1;
      }
      ++done;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    const double events_per_s = static_cast<double>(events) / seconds;
    const std::uint64_t in_flight = std::min(window, events); // at most: fewer while the head is full

    const rk::shutdown_report report = rt.shutdown();
    std::uint64_t refused = 0;
    for (rk::actor_index id : ids) refused += rt.state<stage>(id).refused;
    if (!report.drained || refused != 0) {
      std::fprintf(stderr, "pipeline: %llu sends were refused or the drain failed\n",
                   static_cast<unsigned long long>(refused));
      return 1;
    }

    if (!trace_path.empty()) rt.write_trace(trace_path);
    const rk::trace_stats trace = rt.stats().trace;

    const std::string backend(rk::to_string(rt.backend()));
    const double p50 = rk::samples::percentile_us(latencies_ns, 0.50);
    const double p99 = rk::samples::percentile_us(latencies_ns, 0.99);
    const double max = latencies_ns.back() / 1'000.0;
    if (json) {
      nlohmann::ordered_json doc = {{"backend", backend},
                                    {"device", rt.backend_description()},
                                    {"stages", stages},
                                    {"events", events},
                                    {"events_per_s", events_per_s},
                                    {"p50_us", p50},
                                    {"p99_us", p99},
                                    {"max_us", max},
                                    {"window", window},
                                    {"in_flight", in_flight}};
      if (!trace_path.empty())
        doc["trace"] = {{"file", trace_path},           {"sample_every", trace.sample_every},
                        {"collected", trace.collected}, {"ring_full", trace.ring_full},
                        {"evicted", trace.evicted},     {"kept", trace.kept}};
      std::printf("%s\n", doc.dump().c_str());
    } else {
      std::printf("pipeline: host -> s1 -> s2 -> s3 -> s4 -> host on the %s backend (%s)\n", backend.c_str(),
                  rt.backend_description().c_str());
      std::printf("  latency over %llu events: p50 %.2f us   p99 %.2f us   max %.2f us\n",
                  static_cast<unsigned long long>(events), p50, p99, max);
      std::printf("  throughput with up to %llu in flight: %.0f events/s\n",
                  static_cast<unsigned long long>(in_flight), events_per_s);
      if (!trace_path.empty())
        std::printf(
            "  trace: %llu handler calls in %s (1 in %u; %llu dropped on the device, %llu on the host)\n",
            static_cast<unsigned long long>(trace.kept), trace_path.c_str(), trace.sample_every,
            static_cast<unsigned long long>(trace.ring_full), static_cast<unsigned long long>(trace.evicted));
    }
    return 0;
  } catch (const rk::error& e) {
    std::fprintf(stderr, "pipeline: %s\n", e.what());
    return 1;
  }
}
