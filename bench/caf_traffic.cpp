// CAF side of bench_traffic (see traffic_common.hpp): the same three workloads as traffic.cu, written the
// way a CAF user would (event-based stateful actors, 64-byte message payloads, CAF's default scheduler
// with as many threads as ringkernel's pool). Compiled by the host compiler, only when CAF is found.

#include "traffic_common.hpp"

#include <caf/all.hpp>

#include <array>
#include <chrono>
#include <memory>

namespace rk::bench::caf_side {
//! The 64-byte payload every workload carries (the same size as ringkernel's).
struct payload {
  std::uint64_t stamp = 0; //!< ping-pong: send time; random: hops left
  std::uint64_t filler[7] = {};
};
static_assert(sizeof(payload) == 64);
} // namespace rk::bench::caf_side

// A plain struct that never leaves the process: no serialization needed.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(rk::bench::caf_side::payload)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<rk::bench::latency_histogram>)

namespace rk::bench {
namespace {

using clock_type = std::chrono::steady_clock;
using caf_side::payload;

using go_atom = caf::atom_constant<caf::atom("go")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using peer_atom = caf::atom_constant<caf::atom("peer")>;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count());
}

std::uint64_t xorshift(std::uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

caf::actor_system_config make_config(unsigned threads) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", static_cast<std::size_t>(threads));
  return cfg;
}

// --- ping-pong ----------------------------------------------------------------------------------------

struct pinger_state {
  caf::actor peer, reporter;
  std::uint64_t warmup = 0, left = 0;
  std::shared_ptr<latency_histogram> histogram;
};

caf::behavior pinger(caf::stateful_actor<pinger_state>* self, std::shared_ptr<latency_histogram> histogram) {
  self->state.histogram = std::move(histogram);
  return {
      [=](go_atom, caf::actor peer, std::uint64_t warmup, std::uint64_t round_trips) {
        self->state.reporter = caf::actor_cast<caf::actor>(self->current_sender());
        self->state.peer = std::move(peer);
        self->state.warmup = warmup;
        self->state.left = warmup + round_trips;
        payload p;
        p.stamp = now_ns();
        self->send(self->state.peer, p);
      },
      [=](const payload& back) {
        auto& s = self->state;
        if (s.warmup > 0)
          --s.warmup;
        else
          s.histogram->add(now_ns() - back.stamp);
        if (--s.left == 0) {
          self->send(s.reporter, done_atom::value);
          return;
        }
        payload p;
        p.stamp = now_ns();
        self->send(s.peer, p);
      },
  };
}

caf::behavior ponger(caf::event_based_actor*) {
  return {[=](const payload& p) { return p; }};
}

// --- fan-in -------------------------------------------------------------------------------------------

struct sink_state {
  std::uint64_t expected = 0, received = 0;
  caf::actor reporter;
};

caf::behavior sink(caf::stateful_actor<sink_state>* self) {
  return {
      [=](go_atom, std::uint64_t expected) {
        self->state.expected = expected;
        self->state.reporter = caf::actor_cast<caf::actor>(self->current_sender());
      },
      [=](const payload&) {
        if (++self->state.received == self->state.expected)
          self->send(self->state.reporter, done_atom::value);
      },
  };
}

//! Sends its messages in bursts of 64 and continues by messaging itself, so the scheduler interleaves it
//! with the sink as it does ringkernel's turns.
caf::behavior sender(caf::event_based_actor* self, caf::actor target, std::uint64_t count) {
  auto left = std::make_shared<std::uint64_t>(count);
  return {[=](go_atom) {
    for (int i = 0; i < 64 && *left > 0; ++i, --*left) self->send(target, payload{});
    if (*left > 0) self->send(self, go_atom::value);
  }};
}

// --- random traffic -----------------------------------------------------------------------------------

struct walker_state {
  std::shared_ptr<std::vector<caf::actor>> all;
  std::uint32_t index = 0;
  std::uint64_t rng = 0;
  caf::actor reporter;
};

caf::behavior walker(caf::stateful_actor<walker_state>* self, std::shared_ptr<std::vector<caf::actor>> all,
                     std::uint32_t index, caf::actor reporter) {
  self->state.all = std::move(all);
  self->state.index = index;
  self->state.rng = 0x9e3779b97f4a7c15ull * (index + 1);
  self->state.reporter = std::move(reporter);
  return {[=](payload p) {
    auto& s = self->state;
    if (p.stamp == 0) {
      self->send(s.reporter, done_atom::value);
      return;
    }
    --p.stamp;
    const auto n = static_cast<std::uint32_t>(s.all->size());
    std::uint32_t to = static_cast<std::uint32_t>(xorshift(s.rng) % (n - 1));
    if (to >= s.index) ++to; // any actor but itself
    self->send((*s.all)[to], p);
  }};
}

} // namespace

pingpong_result caf_pingpong(std::uint64_t warmup, std::uint64_t round_trips, unsigned threads) {
  caf::actor_system_config cfg = make_config(threads);
  caf::actor_system system{cfg};
  caf::scoped_actor host{system};
  const auto histogram = std::make_shared<latency_histogram>();
  const caf::actor a = system.spawn(pinger, histogram);
  const caf::actor b = system.spawn(ponger);
  host->send(a, go_atom::value, b, warmup, round_trips);
  host->receive([](done_atom) {}); // sent after the last sample: the histogram is complete
  pingpong_result r;
  r.round_trips = histogram->total();
  r.p50_ns = histogram->percentile(0.50);
  r.p99_ns = histogram->percentile(0.99);
  r.max_ns = histogram->percentile(1.0);
  host->send_exit(a, caf::exit_reason::user_shutdown);
  host->send_exit(b, caf::exit_reason::user_shutdown);
  return r;
}

rate_result caf_fan_in(std::uint32_t senders, std::uint64_t per_sender, unsigned threads) {
  caf::actor_system_config cfg = make_config(threads);
  caf::actor_system system{cfg};
  caf::scoped_actor host{system};
  const caf::actor target = system.spawn(sink);
  const std::uint64_t total = senders * per_sender;
  host->send(target, go_atom::value, total);
  std::vector<caf::actor> all;
  for (std::uint32_t i = 0; i < senders; ++i) all.push_back(system.spawn(sender, target, per_sender));
  const auto t0 = clock_type::now();
  for (const caf::actor& s : all) host->send(s, go_atom::value);
  host->receive([](done_atom) {});
  const double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  for (const caf::actor& s : all) host->send_exit(s, caf::exit_reason::user_shutdown);
  host->send_exit(target, caf::exit_reason::user_shutdown);
  return {static_cast<double>(total) / seconds, total};
}

rate_result caf_random(std::uint32_t actors, std::uint32_t tokens, std::uint64_t hops, unsigned threads) {
  caf::actor_system_config cfg = make_config(threads);
  caf::actor_system system{cfg};
  caf::scoped_actor host{system};
  const caf::actor reporter = caf::actor_cast<caf::actor>(host);
  auto all = std::make_shared<std::vector<caf::actor>>();
  for (std::uint32_t i = 0; i < actors; ++i) all->push_back(system.spawn(walker, all, i, reporter));
  const auto t0 = clock_type::now();
  for (std::uint32_t t = 0; t < tokens; ++t) {
    payload p;
    p.stamp = hops;
    host->send((*all)[t % actors], p);
  }
  for (std::uint32_t t = 0; t < tokens; ++t) host->receive([](done_atom) {});
  const double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  for (const caf::actor& a : *all) host->send_exit(a, caf::exit_reason::user_shutdown);
  all->clear(); // the walkers hold the list: break the cycle
  return {static_cast<double>(tokens) * static_cast<double>(hops) / seconds, tokens * hops};
}

} // namespace rk::bench
