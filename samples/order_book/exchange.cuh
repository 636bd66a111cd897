#pragma once
// samples/order_book: the exchange's actors and messages, shared by the launcher and its reference.
//
// Market model: every instrument runs a frequent batch auction. During a round, traders send limit orders
// to the instrument by key; when the host rings the bell, the instrument crosses its book at one clearing
// price (the price that executes the most quantity; ties: the smallest imbalance, then the lowest price)
// and allocates by price, then trader id, then the trader's order number. Arrival order therefore does
// not change the outcome, which is what lets a sequential reference check every fill of the parallel run.
// Unfilled quantity expires with the round.
//
// Actors:
//   trader      (one per trader) on `go`: sends its orders of the round by key to the instrument group,
//               then tells the host it is done; on `fill`: updates its position and cash.
//   instrument  (a keyed group; consistent hashing places each instrument's key on one member, so a member
//               may hold several books) on `order`: files it; on `cross`: crosses every book it holds,
//               sending each trade to the aggregator and a fill to each side, each book's clearing to the
//               host, and finally `member_done` to the aggregator.
//   aggregator  (one) sums the trades of a round and, once every member is done, reports the round to
//               the host.
//
// Every send that finds a full mailbox defers the message being handled; progress lives in the actor's
// state (cursors), so the retried call continues where the last one stopped and nothing is sent twice.

#include <ringkernel/ringkernel.hpp>

#include <cstdint>

namespace order_book {

// --- message types ------------------------------------------------------------------------------------
inline constexpr std::uint32_t go_type = 1;          // host -> trader
inline constexpr std::uint32_t order_type = 2;       // trader -> instrument (keyed)
inline constexpr std::uint32_t cross_type = 3;       // host -> instrument member
inline constexpr std::uint32_t trade_type = 4;       // instrument -> aggregator
inline constexpr std::uint32_t fill_type = 5;        // instrument -> trader
inline constexpr std::uint32_t clearing_type = 6;    // instrument -> host
inline constexpr std::uint32_t member_done_type = 7; // instrument -> aggregator
inline constexpr std::uint32_t round_type = 8;       // aggregator -> host
inline constexpr std::uint32_t trader_done_type = 9; // trader -> host

inline constexpr std::uint32_t max_price = 127; //!< prices are ticks 1..max_price
inline constexpr std::uint32_t max_orders_per_round = 64;

struct go {
  std::uint32_t round;
};
struct order {
  std::uint32_t instrument;
  std::uint32_t round;
  std::uint32_t trader; //!< the trader's ordinal (the book keeps the stamped source actor instead)
  std::uint8_t qty;     //!< 1..100
  std::uint8_t price;   //!< 1..max_price
  std::uint8_t buy;     //!< 1 buy, 0 sell
  std::uint8_t seq;     //!< the trader's order number in the round
};
struct cross {
  std::uint32_t round;
};
struct trade {
  std::uint32_t instrument;
  std::uint32_t round;
  rk::actor_index buyer;
  rk::actor_index seller;
  std::uint32_t qty;
  std::uint32_t price;
};
struct fill {
  std::uint32_t instrument;
  std::uint32_t qty;
  std::uint32_t price;
  std::uint32_t buy;
};
struct clearing {
  std::uint32_t instrument;
  std::uint32_t round;
  std::uint32_t price; //!< 0: nothing crossed
  std::uint32_t volume;
  std::uint32_t trades;
  std::uint32_t orders;
};
struct member_done {
  std::uint32_t round;
  std::uint32_t trades;
  std::uint32_t overflowed; //!< orders this member could not file (book table or order capacity full)
};
struct round_summary {
  std::uint32_t round;
  std::uint32_t members;
  std::uint64_t trades;
  std::uint64_t volume;
  std::uint64_t notional; //!< sum of qty * price
  std::uint64_t checksum; //!< order-independent: sum of trade_hash over the round's trades
  std::uint64_t overflowed;
};
struct trader_done {
  std::uint32_t round;
  std::uint32_t trader;
};

// --- deterministic order flow (the same on the device and in the reference) ----------------------------

RK_HOST_DEVICE inline std::uint64_t mix(std::uint64_t x) noexcept { // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct market {
  std::uint32_t instruments = 0;
  std::uint32_t traders = 0;
  std::uint32_t orders_per_round = 0;

  //! Order `seq` of `trader` in `round`. Instruments are dealt round-robin over the traders' orders, so
  //! each instrument gets at most ceil(traders * orders_per_round / instruments) orders a round.
  RK_HOST_DEVICE order make_order(std::uint32_t trader, std::uint32_t round,
                                  std::uint32_t seq) const noexcept {
    order o{};
    const std::uint64_t slot = std::uint64_t{trader} * orders_per_round + seq + std::uint64_t{round} * 7919u;
    o.instrument = static_cast<std::uint32_t>(slot % instruments);
    o.round = round;
    o.trader = trader;
    o.seq = static_cast<std::uint8_t>(seq);
    const std::uint64_t fair = 40 + mix(std::uint64_t{o.instrument} << 20 ^ round) % 41; // 40..80
    const std::uint64_t r = mix(slot * 0x100000001b3ull ^ std::uint64_t{round} << 48);
    o.buy = static_cast<std::uint8_t>(r & 1u);
    o.price = static_cast<std::uint8_t>(fair - 4 + (r >> 8) % 9);
    o.qty = static_cast<std::uint8_t>(1 + (r >> 24) % 100);
    return o;
  }
};

RK_HOST_DEVICE inline std::uint64_t trade_hash(const trade& t) noexcept {
  return mix(mix(std::uint64_t{t.instrument} << 32 | t.round) ^ mix(std::uint64_t{t.buyer} << 32 | t.seller) ^
             (std::uint64_t{t.qty} << 32 | t.price));
}

// --- trader -------------------------------------------------------------------------------------------

struct trader {
  static constexpr const char* name = "trader";
  struct state {
    market mkt{};
    rk::address instruments = 0; //!< the keyed group
    std::uint32_t ordinal = 0;
    std::uint32_t next_seq = 0; //!< orders of the current round already sent
    std::int64_t position = 0;
    std::int64_t cash = 0;
    std::uint64_t fills = 0;
    std::uint64_t refused = 0; //!< sends refused for a reason other than a full mailbox (must stay 0)
  };

  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (const fill* f = m.type() == fill_type ? m.as<fill>() : nullptr) {
      const std::int64_t q = f->qty, value = std::int64_t{f->qty} * f->price;
      s.position += f->buy ? q : -q;
      s.cash += f->buy ? -value : value;
      ++s.fills;
      return;
    }
    const go* g = m.type() == go_type ? m.as<go>() : nullptr;
    if (g == nullptr) return;
    for (; s.next_seq < s.mkt.orders_per_round; ++s.next_seq) {
      const order o = s.mkt.make_order(s.ordinal, g->round, s.next_seq);
      const rk::status st = ctx.send_keyed(s.instruments, o.instrument, order_type, rk::as_bytes(o));
      if (st == rk::status::queue_full) return ctx.defer(); // resumes at next_seq on the next turn
      if (st != rk::status::delivered) ++s.refused;
    }
    const trader_done done{g->round, s.ordinal};
    if (ctx.send_host(trader_done_type, rk::as_bytes(done)) == rk::status::queue_full) return ctx.defer();
    s.next_seq = 0;
  }
};

// --- instrument member --------------------------------------------------------------------------------

struct instrument {
  static constexpr const char* name = "instrument";
  static constexpr std::uint32_t max_books = 32;
  static constexpr std::uint32_t order_capacity = 1024;

  //! One filed order, 8 bytes; `trader` is the actor the runtime stamped as its source.
  struct resting {
    rk::actor_index trader;
    std::uint8_t qty;
    std::uint8_t price;
    std::uint8_t book;
    std::uint8_t side_seq; //!< bit 7: buy; bits 0-6: the trader's order number
  };
  struct book {
    std::uint32_t instrument;
    std::uint32_t first_buy, first_sell, end; //!< ranges in the sorted order array
    std::uint32_t price, volume, trades;
  };
  struct cursor { //!< where the crossing of the current round stands
    std::uint32_t book, buy, sell, buy_used, sell_used, filled, step, trades;
  };
  struct state {
    rk::address aggregator = 0;
    std::uint32_t round = 0;
    std::uint32_t books = 0;
    std::uint32_t orders = 0;
    std::uint32_t overflowed = 0;
    std::uint32_t refused = 0;
    bool crossing = false; //!< the books are sorted and cleared; `at` tells how far the sends got
    cursor at{};
    book book_of[max_books];
    resting filed[order_capacity];
  };

  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == order_type) {
      if (const order* o = m.as<order>()) file(s, *o, m.source());
    } else if (m.type() == cross_type) {
      if (const cross* c = m.as<cross>()) run_cross(ctx, s, c->round);
    }
  }

private:
  RK_HOST_DEVICE static void file(state& s, const order& o, rk::actor_index source) {
    std::uint32_t b = 0;
    while (b < s.books && s.book_of[b].instrument != o.instrument) ++b;
    if (b == s.books) {
      if (s.books == max_books) return void(++s.overflowed);
      s.book_of[s.books++] = book{o.instrument, 0, 0, 0, 0, 0, 0};
    }
    if (s.orders == order_capacity) return void(++s.overflowed);
    s.filed[s.orders++] = resting{source, o.qty, o.price, static_cast<std::uint8_t>(b),
                                  static_cast<std::uint8_t>((o.buy ? 0x80u : 0u) | (o.seq & 0x7Fu))};
  }

  //! Sort key: book, buys before sells, best price first, then trader, then order number.
  RK_HOST_DEVICE static std::uint64_t priority(const resting& r) noexcept {
    const bool buy = (r.side_seq & 0x80u) != 0;
    const std::uint64_t price_rank = buy ? 255u - r.price : r.price;
    return std::uint64_t{r.book} << 56 | std::uint64_t{buy ? 0u : 1u} << 48 | price_rank << 40 |
           std::uint64_t{r.trader} << 7 | (r.side_seq & 0x7Fu);
  }

  //! Sorts the filed orders (insertion sort: a member holds a few dozen orders a round) and finds each
  //! book's ranges and clearing price.
  RK_HOST_DEVICE static void prepare_cross(state& s) {
    for (std::uint32_t i = 1; i < s.orders; ++i) {
      const resting r = s.filed[i];
      const std::uint64_t key = priority(r);
      std::uint32_t j = i;
      for (; j > 0 && priority(s.filed[j - 1]) > key; --j) s.filed[j] = s.filed[j - 1];
      s.filed[j] = r;
    }
    std::uint32_t i = 0;
    for (std::uint32_t b = 0; b < s.books; ++b) {
      book& bk = s.book_of[b];
      bk.first_buy = i;
      while (i < s.orders && s.filed[i].book == b && (s.filed[i].side_seq & 0x80u)) ++i;
      bk.first_sell = i;
      while (i < s.orders && s.filed[i].book == b) ++i;
      bk.end = i;
      clear_book(s, bk);
    }
  }

  //! The price executing the most quantity (ties: smallest imbalance, then lowest price).
  RK_HOST_DEVICE static void clear_book(const state& s, book& bk) {
    bk.price = 0;
    bk.volume = 0;
    std::uint64_t best_imbalance = ~0ull;
    for (std::uint32_t p = 1; p <= max_price; ++p) {
      std::uint64_t demand = 0, supply = 0;
      for (std::uint32_t i = bk.first_buy; i < bk.first_sell; ++i)
        if (s.filed[i].price >= p) demand += s.filed[i].qty;
      for (std::uint32_t i = bk.first_sell; i < bk.end; ++i)
        if (s.filed[i].price <= p) supply += s.filed[i].qty;
      const std::uint64_t volume = demand < supply ? demand : supply;
      const std::uint64_t imbalance = demand > supply ? demand - supply : supply - demand;
      if (volume > bk.volume || (volume == bk.volume && volume > 0 && imbalance < best_imbalance)) {
        bk.price = p;
        bk.volume = static_cast<std::uint32_t>(volume);
        best_imbalance = imbalance;
      }
    }
  }

  template <class Ctx>
  RK_HOST_DEVICE void run_cross(Ctx& ctx, state& s, std::uint32_t round) {
    if (!s.crossing) {
      prepare_cross(s);
      s.crossing = true;
      s.round = round;
      s.at = cursor{0, 0, 0, 0, 0, 0, 0, 0};
      if (s.books > 0) s.at.buy = s.book_of[0].first_buy, s.at.sell = s.book_of[0].first_sell;
    }
    cursor& c = s.at;
    while (c.book < s.books) {
      book& bk = s.book_of[c.book];
      if (c.filled < bk.volume) { // one trade: aggregator, buyer, seller
        const resting& b = s.filed[c.buy];
        const resting& a = s.filed[c.sell];
        std::uint32_t q = b.qty - c.buy_used;
        if (a.qty - c.sell_used < q) q = a.qty - c.sell_used;
        if (bk.volume - c.filled < q) q = bk.volume - c.filled;
        const trade t{bk.instrument, round, b.trader, a.trader, q, bk.price};
        const fill to_buyer{bk.instrument, q, bk.price, 1}, to_seller{bk.instrument, q, bk.price, 0};
        if (c.step == 0 && !sent(ctx, s, s.aggregator, trade_type, rk::as_bytes(t))) return;
        if (c.step == 0) c.step = 1;
        if (c.step == 1 && !sent(ctx, s, b.trader, fill_type, rk::as_bytes(to_buyer))) return;
        if (c.step == 1) c.step = 2;
        if (!sent(ctx, s, a.trader, fill_type, rk::as_bytes(to_seller))) return;
        c.step = 0;
        ++bk.trades;
        c.filled += q;
        c.buy_used += q;
        c.sell_used += q;
        if (c.buy_used == b.qty) ++c.buy, c.buy_used = 0;
        if (c.sell_used == a.qty) ++c.sell, c.sell_used = 0;
        continue;
      }
      const clearing cl{bk.instrument, round,     bk.volume ? bk.price : 0,
                        bk.volume,     bk.trades, bk.end - bk.first_buy};
      if (!sent(ctx, s, rk::host_actor, clearing_type, rk::as_bytes(cl))) return;
      c.trades += bk.trades;
      if (++c.book < s.books) {
        c.buy = s.book_of[c.book].first_buy, c.sell = s.book_of[c.book].first_sell;
        c.buy_used = c.sell_used = c.filled = 0;
      }
    }
    const member_done done{round, c.trades, s.overflowed};
    if (!sent(ctx, s, s.aggregator, member_done_type, rk::as_bytes(done))) return;
    s.crossing = false; // the next round starts from empty books
    s.books = s.orders = s.overflowed = 0;
  }

  //! Sends; a full destination defers the cross message (false: stop here, the turn repeats the call).
  template <class Ctx>
  RK_HOST_DEVICE static bool sent(Ctx& ctx, state& s, rk::address to, std::uint32_t type, rk::byte_view p) {
    const rk::status st = to == rk::host_actor ? ctx.send_host(type, p) : ctx.send(to, type, p);
    if (st == rk::status::queue_full) {
      ctx.defer();
      return false;
    }
    if (st != rk::status::delivered) ++s.refused;
    return true;
  }
};

// --- aggregator ---------------------------------------------------------------------------------------

struct aggregator {
  static constexpr const char* name = "aggregator";
  struct state {
    std::uint32_t members = 0; //!< instrument group size
    round_summary current{};
    std::uint64_t rounds = 0;
  };

  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (const trade* t = m.type() == trade_type ? m.as<trade>() : nullptr) {
      s.current.round = t->round;
      ++s.current.trades;
      s.current.volume += t->qty;
      s.current.notional += std::uint64_t{t->qty} * t->price;
      s.current.checksum += trade_hash(*t);
      return;
    }
    const member_done* d = m.type() == member_done_type ? m.as<member_done>() : nullptr;
    if (d == nullptr) return;
    if (s.current.members + 1 == s.members) { // the last member of the round: report it
      round_summary out = s.current;
      out.round = d->round;
      out.members = s.members;
      out.overflowed += d->overflowed;
      if (ctx.send_host(round_type, rk::as_bytes(out)) == rk::status::queue_full) return ctx.defer();
      s.current = round_summary{};
      ++s.rounds;
      return;
    }
    ++s.current.members;
    s.current.overflowed += d->overflowed;
  }
};

} // namespace order_book
