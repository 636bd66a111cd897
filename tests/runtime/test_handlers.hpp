#pragma once
// Handler types and payloads shared by the runtime test suites (CPU and CUDA backends).

#include <ringkernel/ringkernel.hpp>

namespace rk_cases {

using rk::actor_index;
using rk::status;

// --- message types and payloads ---------------------------------------------------------------------

inline constexpr std::uint32_t msg_ping = 1;
inline constexpr std::uint32_t msg_count = 2;
inline constexpr std::uint32_t msg_burst = 3;
inline constexpr std::uint32_t msg_report = 4;
inline constexpr std::uint32_t msg_trap = 99;

struct ping_payload {
  std::uint64_t sequence;
  std::uint64_t value;
};

struct burst_request {
  rk::address destination;
  std::uint32_t count;
  std::uint16_t flags;
  std::uint32_t type; //!< 0: msg_count
};

struct burst_report {
  std::uint64_t delivered;
  std::uint64_t not_found;
  std::uint64_t dropped;
  std::uint64_t not_routable;
  std::uint64_t tenant_mismatch;
  std::uint64_t quota_exceeded;
  std::uint64_t other;
};

struct stamped_reply {
  rk::hlc_timestamp request_time; //!< timestamp on the message the replier received
  std::uint64_t sequence;
};

// --- handlers -----------------------------------------------------------------------------------------

//! Replies to whoever sent the message with the same payload.
struct echo {
  static constexpr const char* name = "echo";
  struct state {
    std::uint64_t seen = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    ++s.seen;
    (void)ctx.reply(m, m.payload());
  }
};

//! Forwards every message to `next` (K2K), keeping type, payload and correlation id.
struct forwarder {
  static constexpr const char* name = "forwarder";
  struct state {
    actor_index next = 0;
    std::uint64_t forwarded = 0;
    std::uint64_t failed = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    rk::send_options o;
    o.correlation_id = m.correlation_id();
    if (ctx.send(s.next, m.type(), m.payload(), o) == status::delivered) {
      ++s.forwarded;
    } else {
      ++s.failed;
    }
  }
};

//! Sends a stamped_reply to the host for every message: proves the HLC grew along the path.
struct stamper {
  static constexpr const char* name = "stamper";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    const ping_payload* p = m.as<ping_payload>();
    stamped_reply r{m.timestamp(), p ? p->sequence : 0};
    rk::send_options o;
    o.correlation_id = m.correlation_id();
    (void)ctx.send_host(m.type(), rk::as_bytes(r), o);
  }
};

//! Counts messages and sums their values.
struct counter {
  static constexpr const char* name = "counter";
  struct state {
    std::uint64_t count = 0;
    std::uint64_t sum = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx&, state& s, const rk::message& m) {
    ++s.count;
    if (const ping_payload* p = m.as<ping_payload>()) s.sum += p->value;
  }
};

//! On a burst_request from the host: sends `count` K2K messages to `destination`, then reports the
//! outcomes to the host.
struct burster {
  static constexpr const char* name = "burster";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    const burst_request* req = m.as<burst_request>();
    if (req == nullptr) return;
    burst_report report{0, 0, 0, 0, 0, 0, 0};
    for (std::uint32_t i = 0; i < req->count; ++i) {
      const ping_payload p{i, i + 1};
      rk::send_options o;
      o.flags = req->flags;
      switch (ctx.send(req->destination, req->type ? req->type : msg_count, rk::as_bytes(p), o)) {
      case status::delivered:
        ++report.delivered;
        break;
      case status::not_found:
        ++report.not_found;
        break;
      case status::dropped:
        ++report.dropped;
        break;
      case status::not_routable:
        ++report.not_routable;
        break;
      case status::tenant_mismatch:
        ++report.tenant_mismatch;
        break;
      case status::quota_exceeded:
        ++report.quota_exceeded;
        break;
      default:
        ++report.other;
        break;
      }
    }
    (void)ctx.send_host(msg_report, rk::as_bytes(report));
  }
};

//! Two of these with each other as `next` bounce a message forever (used to test the drain timeout).
struct bouncer {
  static constexpr const char* name = "bouncer";
  struct state {
    actor_index next = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    (void)ctx.send(s.next, m.type(), m.payload());
  }
};

//! Traps on msg_trap after asking for a ctx.defer() (the trap cancels it: the call is counted as
//! interrupted, not deferred), echoes otherwise.
struct trapper {
  static constexpr const char* name = "trapper";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    if (m.type() == msg_trap) {
      ctx.defer();
      ctx.trap(42);
    }
    (void)ctx.reply(m, m.payload());
  }
};

//! Uses 64 threads cooperatively: each thread adds its share of the payload words.
struct cooperative_summer {
  static constexpr const char* name = "cooperative_summer";
  static constexpr std::uint32_t threads_per_worker = 64;
  struct state {
    std::uint64_t total = 0;
    std::uint64_t partial[64] = {};
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const auto* words = static_cast<const std::uint32_t*>(m.payload().data);
    const std::uint32_t n = m.size() / 4;
    s.partial[ctx.thread_rank()] = 0;
    ctx.parallel_for(n, [&](std::uint32_t i) { s.partial[ctx.thread_rank()] += words[i]; });
    ctx.sync();
    if (ctx.is_leader()) {
      std::uint64_t sum = 0;
      for (std::uint32_t t = 0; t < ctx.thread_count(); ++t) sum += s.partial[t];
      s.total += sum;
      (void)ctx.reply(m, rk::as_bytes(sum));
    }
  }
};

} // namespace rk_cases

namespace rk_cases {

inline constexpr std::uint32_t msg_tag = 10;
inline constexpr std::uint32_t msg_forward = 11;
inline constexpr std::uint32_t msg_random = 12;
inline constexpr std::uint32_t msg_aggregate = 13;
inline constexpr std::uint32_t msg_sequence = 14;
inline constexpr std::uint32_t msg_secret = 77; //!< registered as not routable by the routing tests

//! Replies to the host with its own id and the request's sequence number (who got the message?).
struct tagger {
  static constexpr const char* name = "tagger";
  struct state {
    std::uint64_t seen = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    ++s.seen;
    const ping_payload* p = m.as<ping_payload>();
    const ping_payload reply{p ? p->sequence : 0, ctx.self()};
    (void)ctx.send_host(msg_tag, rk::as_bytes(reply), {.correlation_id = m.correlation_id()});
  }
};

//! Like tagger, but faults itself (ctx.fault(7)) on msg_trap.
struct fragile {
  static constexpr const char* name = "fragile";
  struct state {
    std::uint64_t seen = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == msg_trap) {
      ctx.fault(7);
      return;
    }
    ++s.seen;
    const ping_payload* p = m.as<ping_payload>();
    const ping_payload reply{p ? p->sequence : 0, ctx.self()};
    (void)ctx.send_host(msg_tag, rk::as_bytes(reply), {.correlation_id = m.correlation_id()});
  }
};

//! Forwards every message to `next` with ctx.forward (one more hop each time); when a forward is
//! refused, reports the status and the hop count to the host.
struct hop_forwarder {
  static constexpr const char* name = "hop_forwarder";
  struct state {
    actor_index next = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const status st = ctx.forward(m, s.next);
    if (st != status::delivered) {
      const ping_payload report{static_cast<std::uint64_t>(st), m.hops()};
      (void)ctx.send_host(msg_forward, rk::as_bytes(report));
    }
  }
};

//! Records the order in which it handles messages (sequence numbers and priorities).
struct order_recorder {
  static constexpr const char* name = "order_recorder";
  struct state {
    std::uint32_t count = 0;
    std::uint32_t sequence[256] = {};
    std::uint8_t priority[256] = {};
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx&, state& s, const rk::message& m) {
    if (s.count < 256) {
      const ping_payload* p = m.as<ping_payload>();
      s.sequence[s.count] = p ? static_cast<std::uint32_t>(p->sequence) : 0xffffffffu;
      s.priority[s.count] = static_cast<std::uint8_t>(m.priority());
    }
    ++s.count;
  }
};

//! Random traffic for the counter-balance test: sends `count` messages to targets drawn from the
//! request, some with a non-routable type and some with drop semantics, and tallies every status.
struct random_request {
  std::uint64_t seed;
  std::uint32_t count;
  std::uint32_t target_count;
  rk::address targets[8];
};
struct random_sender {
  static constexpr const char* name = "random_sender";
  struct state {
    std::uint64_t attempts = 0;
    std::uint64_t by_status[rk::status_count] = {};
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const random_request* req = m.as<random_request>();
    if (req == nullptr || req->target_count == 0) return;
    std::uint64_t x = req->seed | 1;
    for (std::uint32_t i = 0; i < req->count; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const rk::address target = req->targets[x % req->target_count];
      const std::uint32_t type = (x >> 8) % 10 == 0 ? msg_secret : msg_count;
      rk::send_options o;
      o.flags = (x >> 16) % 4 == 0 ? rk::envelope_flags::drop_if_unroutable : rk::envelope_flags::none;
      o.priority = static_cast<rk::priority>((x >> 24) % 4);
      const ping_payload p{i, 1};
      const status st = ctx.send(target, type, rk::as_bytes(p), o);
      ++s.attempts;
      ++s.by_status[static_cast<std::uint32_t>(st)];
    }
  }
};

//! Checks per-sender FIFO: payload {sender thread, index}; counts messages and order violations.
struct sequence_checker {
  static constexpr const char* name = "sequence_checker";
  struct state {
    std::uint32_t count = 0;
    std::uint32_t violations = 0;
    std::uint32_t next[64] = {};
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx&, state& s, const rk::message& m) {
    const ping_payload* p = m.as<ping_payload>();
    if (p == nullptr || p->sequence >= 64) {
      ++s.violations;
      return;
    }
    if (p->value != s.next[p->sequence]) ++s.violations;
    s.next[p->sequence] = static_cast<std::uint32_t>(p->value) + 1;
    ++s.count;
  }
};

//! 64 "threads" (64 CUDA threads, or 64 loop iterations on the CPU backend) each send 1 + i % 3
//! messages to destinations[i % 4] with one send_aggregated call, then the leader tells the host.
struct aggregate_request {
  rk::address destinations[4];
  std::uint16_t flags = 0; //!< send_options::flags of every batch
};
struct aggregator {
  static constexpr const char* name = "aggregator";
  static constexpr std::uint32_t threads_per_worker = 64;
  struct state {
    std::uint32_t failures = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const aggregate_request* req = m.as<aggregate_request>();
    if (req == nullptr) return;
    ctx.parallel_for(64, [&](std::uint32_t i) {
      ping_payload bodies[3];
      rk::byte_view views[3];
      const std::uint32_t n = 1 + i % 3;
      for (std::uint32_t j = 0; j < n; ++j) {
        bodies[j] = ping_payload{i, j};
        views[j] = rk::as_bytes(bodies[j]);
      }
      rk::send_options o;
      o.flags = req->flags;
      const status st = ctx.send_aggregated(req->destinations[i % 4], msg_sequence, views, n, o);
      if (st != status::delivered)
        cuda::atomic_ref<std::uint32_t, cuda::thread_scope_block>(s.failures).fetch_add(1);
    });
    ctx.sync();
    if (ctx.is_leader()) (void)ctx.send_host(msg_report, {}); // "done": the host may look now
  }
};

} // namespace rk_cases

namespace rk_cases {

inline constexpr std::uint32_t msg_region = 20;
inline constexpr std::uint32_t msg_region_request = 21;
inline constexpr std::uint32_t msg_status = 22;

//! Reads the bytes a descriptor names (zero-copy) and answers the host with their sum and length.
struct region_reader {
  static constexpr const char* name = "region_reader";
  struct state {
    std::uint64_t read = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const rk::byte_view bytes = ctx.region_bytes(m);
    std::uint64_t sum = 0;
    for (std::uint32_t i = 0; i < bytes.size; ++i) sum += static_cast<std::uint8_t>(bytes.bytes()[i]);
    ++s.read;
    const ping_payload reply{sum, bytes.size};
    (void)ctx.send_host(msg_region, rk::as_bytes(reply));
  }
};

//! On request {destination, descriptor}: sends the descriptor K2K and tells the host the status.
struct region_request {
  rk::address destination;
  std::uint32_t reserved;
  rk::region_descriptor descriptor;
};
struct descriptor_sender {
  static constexpr const char* name = "descriptor_sender";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    const region_request* req = m.as<region_request>();
    if (req == nullptr) return;
    const status st = ctx.send_descriptor(req->destination, msg_region, req->descriptor);
    const ping_payload reply{static_cast<std::uint64_t>(st), 0};
    (void)ctx.send_host(msg_status, rk::as_bytes(reply));
  }
};

//! Tries to pass itself off as another tenant (send_options::tenant is for the host only) and reports the
//! status of a send to `destination`.
struct forger {
  static constexpr const char* name = "forger";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    const burst_request* req = m.as<burst_request>();
    if (req == nullptr) return;
    rk::send_options o;
    o.tenant = req->count; // the tenant it pretends to be
    const ping_payload p{1, 1};
    const status st = ctx.send(req->destination, msg_count, rk::as_bytes(p), o);
    const ping_payload reply{static_cast<std::uint64_t>(st), ctx.tenant()};
    (void)ctx.send_host(msg_status, rk::as_bytes(reply));
  }
};

//! Spends about `spin_ns` of handler time, then sends one message to `destination` and reports its status.
struct busy_sender {
  static constexpr const char* name = "busy_sender";
  struct state {
    rk::address destination = 0;
    std::uint64_t spin_ns = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message&) {
    const std::uint64_t begin = rk::physical_clock_ns();
    while (rk::physical_clock_ns() - begin < s.spin_ns) {
    }
    const ping_payload p{0, 1};
    const status st = ctx.send(s.destination, msg_count, rk::as_bytes(p));
    const ping_payload reply{static_cast<std::uint64_t>(st), 0};
    (void)ctx.send_host(msg_status, rk::as_bytes(reply));
  }
};

} // namespace rk_cases

namespace rk_cases {

//! Tells the host who the runtime says sent the message: {source actor, tenant}.
struct envelope_reporter {
  static constexpr const char* name = "envelope_reporter";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    const ping_payload reply{m.source(), m.tenant()};
    (void)ctx.send_host(msg_report, rk::as_bytes(reply));
  }
};

} // namespace rk_cases
