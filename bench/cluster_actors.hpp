#pragma once
// bench_cluster's actors and messages (bench/cluster.cpp): an echo, a ping-pong driver, a streamer and a
// sink for cross-rank measurements, and a relay to a rank's host. Payloads up to max_payload bytes.

#include <ringkernel/ringkernel.hpp>

#include <array>
#include <cstdint>
#include <cstring>

namespace rk_bench_cluster {

constexpr std::uint32_t msg_ball = 1, msg_ping_go = 2, msg_stream_go = 3, msg_data = 4, msg_ack = 5,
                        msg_done = 6, msg_finish = 7;
constexpr std::uint32_t max_payload = 4096;
constexpr std::uint32_t slot_bytes = max_payload + 64; //!< envelope + the largest payload
constexpr std::array<std::uint32_t, 2> sizes{64, max_payload};

//! Host -> pinger or streamer: what to do.
struct go {
  rk::address peer;    //!< the echo or the sink, as this rank addresses it (a remote entry)
  std::uint32_t size;  //!< payload bytes of every message
  std::uint64_t count; //!< round trips, or messages
  std::uint64_t run;   //!< a new number for every measurement
};
struct data_header { //!< the start of every streamed message
  std::uint64_t run, seq, count;
};
struct ack {
  std::uint64_t run, received, violations;
};

//! Replies to whoever sent the message (an actor or a host, on any rank) with the same payload.
struct echo {
  static constexpr const char* name = "echo";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    if (ctx.reply(m, m.payload()) == rk::status::queue_full) ctx.defer();
  }
};

//! Bounces a ball of go::size bytes with the echo go::count times, then tells its host.
struct pinger {
  static constexpr const char* name = "pinger";
  struct state {
    go job{};
    std::uint64_t left = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (const go* g = m.type() == msg_ping_go ? m.as<go>() : nullptr) {
      std::byte ball[max_payload]{};
      if (ctx.send(g->peer, msg_ball, {ball, g->size}) == rk::status::queue_full) return ctx.defer();
      s.job = *g;
      s.left = g->count;
    } else if (m.type() == msg_ball && s.left > 1) {
      if (ctx.send(s.job.peer, msg_ball, m.payload()) == rk::status::queue_full) return ctx.defer();
      --s.left;
    } else if (m.type() == msg_ball && s.left == 1) {
      if (ctx.send_host(msg_done, rk::as_bytes(s.job.run)) == rk::status::queue_full) return ctx.defer();
      s.left = 0;
    }
  }
};

//! Streams go::count messages of go::size bytes to go::peer, then passes the sink's ack to its host.
struct streamer {
  static constexpr const char* name = "streamer";
  struct state {
    go job{};
    std::uint64_t sent = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == msg_ack) {
      if (ctx.send_host(msg_done, m.payload()) == rk::status::queue_full) ctx.defer();
      return;
    }
    const go* g = m.as<go>();
    if (g == nullptr) return;
    if (s.job.run != g->run) {
      s.job = *g;
      s.sent = 0;
    }
    std::byte out[max_payload]{};
    for (int budget = 0; budget < 256 && s.sent < s.job.count; ++budget) {
      const data_header h{s.job.run, s.sent, s.job.count};
      std::memcpy(out, &h, sizeof h);
      const rk::status st = ctx.send(s.job.peer, msg_data, {out, s.job.size});
      if (st == rk::status::queue_full) break; // the outbound ring is full: go on next turn
      ++s.sent;                                // a refusal leaves a gap the sink reports
    }
    if (s.sent < s.job.count) ctx.defer(); // this go message again on the next turn
  }
};

//! Counts a stream, checks its order, and acknowledges its last message to the sender.
struct sink {
  static constexpr const char* name = "sink";
  struct state {
    ack seen{};
    std::uint64_t next = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const data_header* h = m.as<data_header>();
    if (h == nullptr) return;
    state n = s;
    if (n.seen.run != h->run) n = state{{h->run, 0, 0}, 0};
    n.seen.violations += h->seq != n.next ? 1 : 0;
    n.next = h->seq + 1;
    ++n.seen.received;
    if (h->seq + 1 == h->count && ctx.reply(m, msg_ack, rk::as_bytes(n.seen)) == rk::status::queue_full)
      return ctx.defer(); // nothing changed yet: the whole call repeats
    s = n;
  }
};

//! Passes anything to its host (how rank 0 reaches rank 1's host).
struct to_host {
  static constexpr const char* name = "to_host";
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    if (ctx.send_host(m.type(), m.payload()) == rk::status::queue_full) ctx.defer();
  }
};

} // namespace rk_bench_cluster
