#pragma once
// samples/order_book: the sequential reference the parallel run is checked against. Written separately
// from the actors (histograms and std::sort instead of the members' scans and insertion sort) so that a
// mistake in either shows up as a mismatch.

#include "exchange.cuh"

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace order_book {

struct expected_round {
  std::uint64_t trades = 0, volume = 0, notional = 0, checksum = 0;
  std::map<std::uint32_t, clearing> by_instrument; //!< books that received orders this round
};

struct expected_trader {
  std::int64_t position = 0, cash = 0;
  std::uint64_t fills = 0;
};

struct reference {
  std::vector<expected_round> rounds;
  std::vector<expected_trader> traders;
};

inline reference run_reference(const market& mkt, std::uint32_t round_count,
                               std::span<const rk::actor_index> trader_ids) {
  struct entry {
    rk::actor_index trader;
    std::uint32_t ordinal;
    order o;
  };
  reference out;
  out.traders.resize(mkt.traders);
  std::vector<std::vector<entry>> books(mkt.instruments);
  for (std::uint32_t round = 0; round < round_count; ++round) {
    for (auto& b : books) b.clear();
    for (std::uint32_t t = 0; t < mkt.traders; ++t)
      for (std::uint32_t seq = 0; seq < mkt.orders_per_round; ++seq) {
        const order o = mkt.make_order(t, round, seq);
        books[o.instrument].push_back({trader_ids[t], t, o});
      }
    expected_round er;
    for (std::uint32_t instrument = 0; instrument < mkt.instruments; ++instrument) {
      std::vector<entry>& book = books[instrument];
      if (book.empty()) continue;
      std::uint64_t bid_at[max_price + 2] = {}, ask_at[max_price + 2] = {};
      for (const entry& e : book) (e.o.buy ? bid_at : ask_at)[e.o.price] += e.o.qty;
      std::uint64_t demand_from[max_price + 2] = {};
      for (std::uint32_t p = max_price + 1; p-- > 1;) demand_from[p] = demand_from[p + 1] + bid_at[p];
      std::uint32_t price = 0;
      std::uint64_t volume = 0, best_imbalance = 0, supply = 0;
      for (std::uint32_t p = 1; p <= max_price; ++p) {
        supply += ask_at[p];
        const std::uint64_t v = std::min(demand_from[p], supply);
        const std::uint64_t imbalance = std::max(demand_from[p], supply) - v;
        if (v > volume || (v == volume && v > 0 && imbalance < best_imbalance))
          price = p, volume = v, best_imbalance = imbalance;
      }
      std::vector<entry> buys, sells;
      for (const entry& e : book) {
        if (e.o.buy && e.o.price >= price) buys.push_back(e);
        if (!e.o.buy && e.o.price <= price) sells.push_back(e);
      }
      const auto rank = [](const entry& e) {
        return std::make_tuple(e.o.buy ? -int{e.o.price} : int{e.o.price}, e.trader, e.o.seq);
      };
      std::sort(buys.begin(), buys.end(), [&](const entry& a, const entry& b) { return rank(a) < rank(b); });
      std::sort(sells.begin(), sells.end(),
                [&](const entry& a, const entry& b) { return rank(a) < rank(b); });
      std::uint32_t trades = 0;
      std::uint64_t left = volume;
      std::size_t bi = 0, si = 0;
      std::uint32_t b_left = buys.empty() ? 0 : buys[0].o.qty, s_left = sells.empty() ? 0 : sells[0].o.qty;
      while (left > 0) {
        const auto q = static_cast<std::uint32_t>(std::min<std::uint64_t>({b_left, s_left, left}));
        const trade t{instrument, round, buys[bi].trader, sells[si].trader, q, price};
        ++trades;
        er.trades += 1;
        er.volume += q;
        er.notional += std::uint64_t{q} * price;
        er.checksum += trade_hash(t);
        expected_trader& buyer = out.traders[buys[bi].ordinal];
        expected_trader& seller = out.traders[sells[si].ordinal];
        buyer.position += q, buyer.cash -= std::int64_t{q} * price, ++buyer.fills;
        seller.position -= q, seller.cash += std::int64_t{q} * price, ++seller.fills;
        left -= q, b_left -= q, s_left -= q;
        if (b_left == 0 && ++bi < buys.size()) b_left = buys[bi].o.qty;
        if (s_left == 0 && ++si < sells.size()) s_left = sells[si].o.qty;
      }
      er.by_instrument[instrument] = clearing{instrument,
                                              round,
                                              volume ? price : 0u,
                                              static_cast<std::uint32_t>(volume),
                                              trades,
                                              static_cast<std::uint32_t>(book.size())};
    }
    out.rounds.push_back(std::move(er));
  }
  return out;
}

} // namespace order_book
