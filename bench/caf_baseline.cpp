// CAF side of bench_scale (see caf_baseline.hpp).

#include "caf_baseline.hpp"

#include "common/bench_util.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <random>
#include <thread>

namespace rk::bench {
namespace {

using clock_type = std::chrono::steady_clock;
using next_atom = caf::atom_constant<caf::atom("next")>;
using wake_atom = caf::atom_constant<caf::atom("wake")>;
using ask_atom = caf::atom_constant<caf::atom("ask")>;
using answer_atom = caf::atom_constant<caf::atom("answer")>;

struct member_state {
  caf::actor next;
  caf::actor reporter;
};

//! The same member as ringkernel's: answers a wake-up, passes the token on until its hops run out.
caf::behavior ring_member(caf::stateful_actor<member_state>* self, caf::actor next, caf::actor reporter) {
  self->state.next = std::move(next);
  self->state.reporter = std::move(reporter);
  return {
      [=](next_atom, caf::actor first) { self->state.next = std::move(first); },
      [=](wake_atom) { return wake_atom::value; },
      [=](ask_atom, const caf::actor& aggregator) { self->send(aggregator, answer_atom::value); },
      [=](std::uint64_t hops_left) {
        if (hops_left == 0) {
          self->send(self->state.reporter, hops_left);
        } else {
          self->send(self->state.next, hops_left - 1);
        }
      },
  };
}

struct aggregator_state {
  std::uint64_t answers = 0;
  std::uint64_t expected = 0;
};

caf::behavior aggregator(caf::stateful_actor<aggregator_state>* self, std::vector<caf::actor>* members,
                         caf::actor reporter) {
  return {
      [=](ask_atom) {
        self->state.expected = members->size();
        const caf::actor me = caf::actor_cast<caf::actor>(self);
        for (const caf::actor& m : *members) self->send(m, ask_atom::value, me);
      },
      [=](answer_atom) {
        if (++self->state.answers == self->state.expected) self->send(reporter, answer_atom::value);
      },
  };
}

} // namespace

caf_scale_result measure_caf_scale(std::uint32_t actors, double idle_seconds, std::uint64_t wakeups,
                                   std::uint64_t ring_hops, unsigned threads, bool sharing) {
  caf_scale_result out;
  const std::uint64_t before = resident_bytes();
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", static_cast<std::size_t>(threads));
  if (sharing) cfg.set("scheduler.policy", caf::atom("sharing"));
  caf::actor_system system{cfg};
  caf::scoped_actor host{system};
  const caf::actor reporter = caf::actor_cast<caf::actor>(host);
  std::vector<caf::actor> members(actors);
  // Spawned last to first so each gets its successor at spawn; the last one learns the first by message.
  const auto t0 = clock_type::now();
  caf::actor next;
  for (std::uint32_t i = actors; i-- > 0;) {
    members[i] = system.spawn(ring_member, next, reporter);
    next = members[i];
  }
  out.spawn_s = std::chrono::duration<double>(clock_type::now() - t0).count();
  host->send(members[actors - 1], next_atom::value, members[0]);
  out.bytes_per_actor = static_cast<double>(resident_bytes() - std::min(resident_bytes(), before)) / actors;

  const double cpu0 = process_cpu_seconds();
  const auto w0 = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(idle_seconds));
  out.idle_core_share =
      (process_cpu_seconds() - cpu0) / std::chrono::duration<double>(clock_type::now() - w0).count();

  std::mt19937_64 pick(42);
  for (std::uint64_t i = 0; i < wakeups; ++i) {
    const caf::actor& a = members[pick() % actors];
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto s0 = clock_type::now();
    bool answered = false;
    host->request(a, std::chrono::seconds(10), wake_atom::value)
        .receive([&](wake_atom) { answered = true; }, [&](caf::error&) {});
    if (answered)
      out.wakeup_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - s0).count());
  }

  if (ring_hops > 0) {
    const auto r0 = clock_type::now();
    host->send(members[0], std::uint64_t{ring_hops - 1});
    host->receive([](std::uint64_t) {});
    out.ring_ns_per_hop =
        std::chrono::duration<double>(clock_type::now() - r0).count() * 1e9 / static_cast<double>(ring_hops);
  }
  if (sharing || actors <= stealing_fan_limit) {
    const caf::actor agg = system.spawn(aggregator, &members, reporter);
    const auto f0 = clock_type::now();
    host->send(agg, ask_atom::value);
    host->receive([](answer_atom) {});
    out.fan_s = std::chrono::duration<double>(clock_type::now() - f0).count();
    host->send_exit(agg, caf::exit_reason::user_shutdown);
  }
  // The ring holds references to itself: stop every member so the system can shut down.
  for (const caf::actor& a : members) host->send_exit(a, caf::exit_reason::user_shutdown);
  members.clear();
  next = nullptr;
  return out;
}

} // namespace rk::bench
