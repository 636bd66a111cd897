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
  actor_index destination;
  std::uint32_t count;
  std::uint16_t flags;
};

struct burst_report {
  std::uint64_t delivered;
  std::uint64_t not_found;
  std::uint64_t dropped;
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
    burst_report report{0, 0, 0, 0};
    for (std::uint32_t i = 0; i < req->count; ++i) {
      const ping_payload p{i, i + 1};
      rk::send_options o;
      o.flags = req->flags;
      switch (ctx.send(req->destination, msg_count, rk::as_bytes(p), o)) {
      case status::delivered:
        ++report.delivered;
        break;
      case status::not_found:
        ++report.not_found;
        break;
      case status::dropped:
        ++report.dropped;
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

//! Traps on msg_trap, echoes otherwise.
struct trapper {
  static constexpr const char* name = "trapper";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    if (m.type() == msg_trap) ctx.trap(42);
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
