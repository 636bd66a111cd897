#pragma once
//! \file
//! Collectives among actors of an rk::cluster: reduce/allreduce of values contributed by actors on every
//! rank, and broadcast to a group on every rank.
//!
//! Reduction. Each rank spawns one reducer actor (make_reduction, the same call on every rank) and tells
//! its contributing actors its address. In round r every contributor sends one
//! `contribution<T>{r, value}` to its rank's reducer (ctx.send, message type `contribute_type`). The
//! reducer, an ordinary actor, combines them where it runs (on the device with the CUDA backend) and,
//! once it has `local_contributors` of them, hands the rank's partial result to its host. allreduce()
//! (collective: every rank, in the same order) waits for that partial and combines the ranks' partials
//! over MPI point-to-point among the ranks still alive (a rank declared gone is left out, and
//! cluster::gone_ranks() names it); every rank returns the same value, also when a rank fails during the
//! exchange (docs/cluster.md, "Collectives and shutdown's last step agree"). reduce() is the same with the
//! value kept at one rank.
//! Rounds are numbered from 0 by the calls; a contribution for the next round may arrive before the
//! current one completes (it is kept); one for any other round is counted as stale and not used.
//!
//! Broadcast. broadcast() (collective) takes `payload` from the root rank and sends it, on every rank,
//! to every member of that rank's group `group` (runtime::create_group, the same name on every rank),
//! each send decided by that rank's device like any host send.
//!
//! Types: T is an arithmetic type of at most 8 bytes; ops sum, min, max. An integer sum wraps modulo
//! 2^bits (signed ones too), unchecked: choose T wide enough. The partial results reach the
//! host as messages of type `reply_type` from this rank's reducer: cluster::receive() keeps those for
//! allreduce and never returns them (one read with runtime::receive directly is lost to the reduction).
//! A message of that type from any other actor (of any tenant, on any rank) is no partial: receive()
//! returns it like any other. A partial that comes after its round ended (timed out) is dropped
//! (cluster_stats::stale_partials).
//!
//! Every rank makes the same collective calls in the same order. A rank whose call differs from another's
//! (another collective, reduction kind or root) gets an rk::error, and so does every other rank, from the
//! same exchange; such a call changes nothing (its round is the next call's), so the ranks stay in step.
//! Not yet: combining across ranks with NCCL on GPU ranks (the partials cross over MPI on host memory).

#include <ringkernel/cluster/cluster.hpp>

#include <array>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace rk {

enum class reduce_op : std::uint32_t { sum = 0, min = 1, max = 2 };

template <class T>
struct contribution {
  std::uint64_t round = 0;
  T value{};
};

template <class T>
struct partial_result {
  std::uint64_t round = 0;
  std::uint64_t contributors = 0;
  T value{};
};

template <class T, reduce_op Op>
RK_HOST_DEVICE constexpr T combine(T a, T b) noexcept {
  if constexpr (Op == reduce_op::sum && std::is_integral_v<T>) {
    // Wraps modulo 2^bits for signed types too (their overflow would be undefined).
    using bits = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<bits>(static_cast<bits>(a) + static_cast<bits>(b)));
  } else if constexpr (Op == reduce_op::sum) {
    return static_cast<T>(a + b);
  } else if constexpr (Op == reduce_op::min) {
    return b < a ? b : a;
  } else {
    return a < b ? b : a;
  }
}

//! The reducer actor: combines one rank's contributions round by round (see the file comment).
template <class T, reduce_op Op>
struct reducer {
  static_assert(std::is_arithmetic_v<T> && sizeof(T) <= 8, "reducer<T>: T is a number of at most 8 bytes");
  // No `name`: its C++ type names it, so that each reducer<T, Op> a program uses is a handler type of its
  // own.
  struct state {
    std::uint32_t expected = 0;   //!< contributions per round on this rank
    std::uint32_t reply_type = 0; //!< the message type of the partial results sent to the host
    std::uint64_t round = 0;      //!< the round being combined
    std::uint64_t got = 0;
    T partial{};
    std::uint64_t next_got = 0; //!< contributions for round + 1 that came early
    T next_partial{};
    //! Contributions for another round, or payloads shorter than a contribution<T>. The message type is
    //! the only tag: a payload of that size is read as a contribution<T>, so send a reducer nothing else.
    std::uint64_t stale = 0;
    std::uint64_t unsent = 0; //!< partial results the host refused (not for want of room)
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const message& m) {
    const auto* c = m.as<contribution<T>>();
    if (c == nullptr || (c->round != s.round && c->round != s.round + 1)) {
      ++s.stale;
      return;
    }
    if (c->round == s.round + 1) {
      s.next_partial = s.next_got == 0 ? c->value : combine<T, Op>(s.next_partial, c->value);
      ++s.next_got;
      return;
    }
    const T value = s.got == 0 ? c->value : combine<T, Op>(s.partial, c->value);
    if (s.got + 1 < s.expected) {
      s.partial = value;
      ++s.got;
      return;
    }
    const partial_result<T> done{s.round, s.got + 1, value};
    const status sent = ctx.send_host(s.reply_type, as_bytes(done));
    if (sent == status::queue_full) {
      ctx.defer(); // the host ring is full: this contribution comes back and completes the round then
      return;
    }
    if (sent != status::delivered) ++s.unsent; // the host cannot take it at all: its allreduce times out
    ++s.round;
    s.got = s.next_got;
    s.partial = s.next_partial;
    s.next_got = 0;
    s.next_partial = T{};
  }
};

template <class T, reduce_op Op>
class reduction;
namespace detail {
template <class T, reduce_op Op>
std::optional<T> reduce_round(cluster& c, reduction<T, Op>& r, std::uint64_t root,
                              std::chrono::milliseconds timeout, const char* who);
} // namespace detail

//! One reduction: this rank's reducer and the rounds completed so far. Made by make_reduction().
template <class T, reduce_op Op>
class reduction {
public:
  //! The reducer's id on this rank: where this rank's contributors send their contributions.
  actor_index address() const noexcept { return reducer_; }
  std::uint64_t next_round() const noexcept { return round_; }

private:
  template <class U, reduce_op O>
  friend reduction<U, O> make_reduction(cluster&, std::string, std::uint32_t, std::uint32_t,
                                        const actor_options&);
  template <class U, reduce_op O>
  friend std::optional<U> detail::reduce_round(cluster&, reduction<U, O>&, std::uint64_t,
                                               std::chrono::milliseconds, const char*);
  actor_index reducer_ = host_actor;
  std::uint32_t local_contributors_ = 0;
  std::uint32_t reply_type_ = 0;
  std::uint64_t round_ = 0;
};

//! Spawns this rank's reducer (the same call on every rank; before start(), or after it for a reducer<T, Op>
//! prepared before start() with `c.local().prepare<rk::reducer<T, Op>>()`). `local_contributors`
//! contributions per round on this rank (0: this rank contributes nothing); `reply_type`: a message type
//! of this reduction's own (throws rk::error when another reduction has it: whose partial a message is
//! would depend on the order of calls), best one the application's own messages to the host do not use.
template <class T, reduce_op Op>
reduction<T, Op> make_reduction(cluster& c, std::string name, std::uint32_t local_contributors,
                                std::uint32_t reply_type, const actor_options& options = {}) {
  if (c.keeps_for_collectives(reply_type))
    throw error("rk::make_reduction('" + name + "'): message type " + std::to_string(reply_type) +
                " is the reply type of another reduction already; give each reduction a reply type of its "
                "own (the same on every rank)");
  typename reducer<T, Op>::state initial{};
  initial.expected = local_contributors;
  initial.reply_type = reply_type;
  reduction<T, Op> r;
  if (local_contributors > 0) r.reducer_ = c.local().spawn<reducer<T, Op>>(std::move(name), options, initial);
  r.local_contributors_ = local_contributors;
  r.reply_type_ = reply_type;
  c.keep_for_collectives(reply_type, r.reducer_);
  return r;
}

//! What a reduction combines, as exchanged with its partials: ranks reducing different types or operations
//! in one round would otherwise combine bits of one type as another, each rank to a different answer.
template <class T, reduce_op Op>
constexpr std::uint64_t reduction_kind() noexcept {
  return (std::uint64_t{sizeof(T)} << 16) | (std::is_floating_point_v<T> ? 0x100u : 0u) |
         (std::is_signed_v<T> ? 0x200u : 0u) | static_cast<std::uint64_t>(Op);
}

namespace detail {
inline constexpr std::uint64_t every_rank = ~std::uint64_t{0}; //!< allreduce's "root"

//! One round of `r` (collective): the value for `root` (every_rank: for all). Every rank checks what every
//! other rank asked for, so a mistake made on one rank is an rk::error on all of them, not a rank that
//! throws while the others wait for it. A call that throws takes no round: its partial is kept for the next.
template <class T, reduce_op Op>
std::optional<T> reduce_round(cluster& c, reduction<T, Op>& r, std::uint64_t root,
                              std::chrono::milliseconds timeout, const char* who) {
  if (!c.running()) throw error(std::string(who) + ": collectives run between start() and shutdown()");
  const std::uint64_t round = r.round_;
  // Row: [round, contributors (~0: failed), value bits, what is reduced, root, which reduction].
  std::array<std::uint64_t, 6> row{round, 0, 0, reduction_kind<T, Op>(), root, r.reply_type_};
  const bool root_in_range = root == every_rank || root < c.size();
  std::optional<received_message> m;
  if (!root_in_range) {
    row[1] = ~std::uint64_t{0}; // this round fails anyway: no waiting for the partial
  } else if (r.local_contributors_ > 0) {
    m = c.take_kept(r.reply_type_, round, timeout);
    if (m && m->payload.size() >= sizeof(partial_result<T>)) {
      const auto p = m->template as<partial_result<T>>();
      row[1] = p.contributors;
      std::memcpy(&row[2], &p.value, sizeof(T));
    } else {
      row[1] = ~std::uint64_t{0};
    }
  }
  const auto refuse = [&](const std::string& why) {
    if (m) c.put_back_kept(std::move(*m));
    return error(std::string(who) + why);
  };
  const auto call =
      root == every_rank ? cluster::collective_call::allreduce : cluster::collective_call::reduce;
  std::vector<std::vector<std::uint64_t>> rows;
  try {
    rows = c.begin_collective(call, row, who);
  } catch (...) {
    if (m) c.put_back_kept(std::move(*m));
    throw;
  }
  bool failed = false, any = false, mismatched = false, other_root = false, other_reduction = false;
  T total{};
  for (const std::vector<std::uint64_t>& theirs : rows) {
    if (theirs.empty()) continue; // a rank that is gone
    other_root = other_root || theirs[4] != root;
    if (theirs[3] != row[3]) {
      mismatched = true;
      continue;
    }
    if (theirs[5] != row[5]) { // another reduction of the same kind: its partial is another sum
      other_reduction = true;
      continue;
    }
    if (theirs[0] != round || theirs[1] == ~std::uint64_t{0}) {
      failed = true;
      continue;
    }
    if (theirs[1] == 0) continue;
    T value;
    std::memcpy(&value, &theirs[2], sizeof(T));
    total = any ? combine<T, Op>(total, value) : value;
    any = true;
  }
  if (mismatched)
    throw refuse(": the ranks reduce different types or operations in round " + std::to_string(round) +
                 "; make the same make_reduction<T, Op> call on every rank");
  if (other_reduction)
    throw refuse(": the ranks run different reductions (reply types) of one kind in this call; call "
                 "allreduce() and reduce() for the same reduction on every rank, in the same order");
  if (other_root)
    throw refuse(": the ranks name different roots in round " + std::to_string(round) +
                 "; pass the same root on every rank");
  if (!root_in_range)
    throw refuse(": root rank " + std::to_string(root) + " is out of range (the cluster has " +
                 std::to_string(c.size()) + " ranks)");
  r.round_ = round + 1;
  if (failed || !any) return std::nullopt;
  if (root != every_rank && root != c.rank()) return std::nullopt;
  return total;
}
} // namespace detail

//! The next round's value combined over every contribution of every rank still alive (collective).
//! Nothing when this rank's partial did not come within `timeout`, or another rank's did not within its
//! own. `timeout` bounds the wait for the partial only (0: a partial already at the host is still taken):
//! the exchange then waits for every live rank to call allreduce() (or reduce()) for this round, as any
//! collective does; throws
//! rk::error before start() or after shutdown(), and on every rank when ranks reduce different types or
//! operations (make_reduction<T, Op> must be the same call on every rank) or when another rank called
//! another collective (reduce(), cluster::broadcast()) instead; a call that throws takes no round.
template <class T, reduce_op Op>
std::optional<T> allreduce(cluster& c, reduction<T, Op>& r, std::chrono::milliseconds timeout) {
  return detail::reduce_round(c, r, detail::every_rank, timeout, "rk::allreduce()");
}

//! allreduce() whose value only `root` keeps (collective); nothing on the other ranks. A root out of range,
//! or different roots on different ranks, throw rk::error on every rank (after the round's exchange, so no
//! rank is left waiting).
template <class T, reduce_op Op>
std::optional<T> reduce(cluster& c, reduction<T, Op>& r, std::uint32_t root,
                        std::chrono::milliseconds timeout) {
  return detail::reduce_round(c, r, root, timeout, "rk::reduce()");
}

} // namespace rk
