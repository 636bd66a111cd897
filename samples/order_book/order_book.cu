// samples/order_book: an exchange simulation, the flagship sample.
//
// 10,000 instrument books in a keyed group, 100,000 trader actors, one trades aggregator (see exchange.cuh
// for the market model and the actors). Each round the host tells every trader to trade, waits until all
// have sent their orders, rings the auction bell on every instrument member and collects each book's
// clearing and the aggregator's round totals. Every clearing, the round totals and every trader's final
// position, cash and fill count are checked against a sequential reference; any difference, any refused
// send, any order a book could not file, or an unclean shutdown exits non-zero.
//
//   order_book [--instruments N] [--traders N] [--rounds N] [--orders N] [--backend auto|cpu|cuda] [--json]
//
// Up to 10^6 instruments and 4 x 10^6 traders. On the CPU backend a size that needs more memory than is
// available (about 35 KB per instrument, 4.5 KB per trader) is refused before anything is allocated.

#include <ringkernel/ringkernel.hpp>

#include "../common/sample_util.hpp"
#include "exchange.cuh"
#include "reference.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

using namespace order_book;

//! What the host collected during the run.
struct observed {
  std::vector<std::uint64_t> traders_done;
  std::vector<std::vector<clearing>> clearings;
  std::vector<round_summary> summaries;
  std::uint64_t unexpected = 0;
};

class exchange_host {
public:
  exchange_host(rk::runtime& rt, std::uint32_t rounds) : rt_(rt) {
    seen_.traders_done.assign(rounds, 0);
    seen_.clearings.resize(rounds);
  }

  //! Sends `type` to every actor of `to`; while the host rings are full it takes answers instead.
  bool send_to_all(const std::vector<rk::actor_index>& to, std::uint32_t type, rk::byte_view payload) {
    for (const rk::actor_index a : to) {
      for (;;) {
        const rk::status st = rt_.send(a, type, payload);
        if (st == rk::status::enqueued) break;
        if (st != rk::status::queue_full)
          return fail(std::string("a host send was refused: ").append(rk::to_string(st)));
        take(std::chrono::milliseconds(1));
      }
    }
    return true;
  }

  //! Takes answers until `done()` holds; false if nothing arrives for 30 s.
  template <class Done>
  bool wait_for(Done&& done, const char* what) {
    while (!done())
      if (!take(std::chrono::seconds(30)))
        return fail(std::string("no progress for 30 s waiting for ") + what);
    return true;
  }

  const observed& seen() const { return seen_; }

private:
  template <class Timeout>
  bool take(Timeout timeout) {
    const std::optional<rk::received_message> m = rt_.receive(timeout);
    if (!m) return false;
    switch (m->type()) {
    case trader_done_type: {
      const trader_done d = m->as<trader_done>();
      if (d.round < seen_.traders_done.size())
        ++seen_.traders_done[d.round];
      else
        ++seen_.unexpected;
      break;
    }
    case clearing_type: {
      const clearing c = m->as<clearing>();
      if (c.round < seen_.clearings.size())
        seen_.clearings[c.round].push_back(c);
      else
        ++seen_.unexpected;
      break;
    }
    case round_type:
      seen_.summaries.push_back(m->as<round_summary>());
      break;
    default:
      ++seen_.unexpected;
    }
    return true;
  }

  bool fail(const std::string& why) const {
    std::fprintf(stderr, "order_book: %s\n", why.c_str());
    return false;
  }

  rk::runtime& rt_;
  observed seen_;
};

//! Compares the run with the reference; prints the first few differences.
std::uint64_t count_mismatches(const reference& ref, const observed& seen, const rk::runtime& rt,
                               const std::vector<rk::actor_index>& trader_ids) {
  std::uint64_t bad = 0;
  const auto report = [&bad](const std::string& what) {
    if (++bad <= 10) std::fprintf(stderr, "order_book: mismatch: %s\n", what.c_str());
  };
  for (std::size_t r = 0; r < ref.rounds.size(); ++r) {
    const expected_round& want = ref.rounds[r];
    if (seen.clearings[r].size() != want.by_instrument.size())
      report("round " + std::to_string(r) + ": " + std::to_string(seen.clearings[r].size()) +
             " clearings, expected " + std::to_string(want.by_instrument.size()));
    std::unordered_set<std::uint32_t> instruments; // a duplicate beside a missing one keeps the count
    for (const clearing& got : seen.clearings[r]) {
      if (!instruments.insert(got.instrument).second)
        report("round " + std::to_string(r) + " instrument " + std::to_string(got.instrument) +
               ": cleared twice");
      const auto it = want.by_instrument.find(got.instrument);
      if (it == want.by_instrument.end() || it->second.price != got.price ||
          it->second.volume != got.volume || it->second.trades != got.trades ||
          it->second.orders != got.orders)
        report("round " + std::to_string(r) + " instrument " + std::to_string(got.instrument) + ": price " +
               std::to_string(got.price) + " volume " + std::to_string(got.volume) + " trades " +
               std::to_string(got.trades) + " orders " + std::to_string(got.orders));
    }
    if (r >= seen.summaries.size()) {
      report("round " + std::to_string(r) + ": no summary from the aggregator");
      continue;
    }
    const round_summary& s = seen.summaries[r];
    if (s.round != r || s.trades != want.trades || s.volume != want.volume || s.notional != want.notional ||
        s.checksum != want.checksum || s.overflowed != 0)
      report("round " + std::to_string(r) + " totals: trades " + std::to_string(s.trades) + " (expected " +
             std::to_string(want.trades) + "), volume " + std::to_string(s.volume) + " (expected " +
             std::to_string(want.volume) + "), orders no book could file " + std::to_string(s.overflowed));
  }
  for (std::size_t t = 0; t < trader_ids.size(); ++t) {
    const trader::state st = rt.state<trader>(trader_ids[t]);
    const expected_trader& want = ref.traders[t];
    if (st.position != want.position || st.cash != want.cash || st.fills != want.fills || st.refused != 0)
      report("trader " + std::to_string(t) + ": position " + std::to_string(st.position) + " cash " +
             std::to_string(st.cash) + " fills " + std::to_string(st.fills) + ", expected " +
             std::to_string(want.position) + " / " + std::to_string(want.cash) + " / " +
             std::to_string(want.fills));
  }
  if (seen.unexpected != 0) report(std::to_string(seen.unexpected) + " unexpected host messages");
  return bad;
}

} // namespace

int main(int argc, char** argv) {
  std::uint64_t instruments = 10'000, traders = 100'000, rounds = 3, orders = 4;
  bool json = false;
  rk::runtime_options options;
  rk::samples::flags cli("order_book", "[--instruments N] [--traders N] [--rounds N] [--orders N] "
                                       "[--backend auto|cpu|cuda] [--json]");
  cli.count("--instruments", instruments, 1'000'000, 1)->description("instrument books (default 10000)");
  cli.count("--traders", traders, 4'000'000, 1)->description("trader actors (default 100000)");
  cli.count("--rounds", rounds, 1'000, 1)->description("auction rounds (default 3)");
  cli.count("--orders", orders, max_orders_per_round, 1)
      ->description("orders per trader and round, 1 to " + std::to_string(max_orders_per_round) +
                    " (default 4)");
  cli.backend(options.backend);
  cli.toggle("--json", json)->description("print the results as one JSON object");
  cli.parse(argc, argv);
  // A book holds at most this many orders a round; a member holds a few books (consistent hashing).
  if ((traders * orders + instruments - 1) / instruments > 64)
    cli.fail("at most 64 orders per instrument and round: raise --instruments or lower --traders/--orders");

  const market mkt{static_cast<std::uint32_t>(instruments), static_cast<std::uint32_t>(traders),
                   static_cast<std::uint32_t>(orders)};
  try {
    options.max_actors = static_cast<std::uint32_t>(instruments + traders + 1);
    // Refused up front rather than killed by the kernel's out-of-memory killer half-way through setup:
    // resident memory grows by about 35 KB per instrument (its book state, twice: the runtime's and the
    // final copy the check reads, and its 64-slot mailbox) and 4.5 KB per trader on the CPU backend
    // (measured: 100,000 more instruments added 3.4 GB, 100,000 more traders 0.4 GB).
    const bool on_cpu = options.backend == rk::backend::cpu ||
                        (options.backend == rk::backend::automatic && !rk::probe_cuda_device().usable);
    if (on_cpu) {
      const std::uint64_t needed = instruments * 35'000 + traders * 4'500;
      const std::uint64_t available = rk::samples::available_host_memory();
      if (available != 0 && needed > available)
        cli.fail("about " + std::to_string(needed >> 20) + " MiB are needed for " +
                 std::to_string(instruments) + " instruments and " + std::to_string(traders) +
                 " traders on the CPU backend, and " + std::to_string(available >> 20) +
                 " MiB are available: lower --instruments or --traders");
    }
    rk::runtime rt(options);
    const auto setup_begin = std::chrono::steady_clock::now();
    // The aggregator takes a trade from every crossing member: a deep mailbox keeps members from deferring.
    const rk::actor_index agg =
        rt.spawn<aggregator>("aggregator", {.mailbox = {65'536, 128}},
                             aggregator::state{static_cast<std::uint32_t>(instruments), {}, 0});
    instrument::state book_template{};
    book_template.aggregator = agg;
    const std::vector<rk::actor_index> members =
        rt.spawn_many<instrument>("instrument", static_cast<std::uint32_t>(instruments),
                                  {.mailbox = {64, 128}}, std::span(&book_template, 1));
    const rk::address group = rt.create_group("instruments", members);
    std::vector<trader::state> trader_states(traders);
    for (std::uint32_t t = 0; t < traders; ++t) {
      trader_states[t].mkt = mkt;
      trader_states[t].instruments = group;
      trader_states[t].ordinal = t;
    }
    const std::vector<rk::actor_index> trader_ids = rt.spawn_many<trader>(
        "trader", static_cast<std::uint32_t>(traders), {.mailbox = {8, 128}}, trader_states);
    trader_states = {};
    rt.start();
    const double setup_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_begin).count();

    const auto run_begin = std::chrono::steady_clock::now();
    exchange_host host(rt, static_cast<std::uint32_t>(rounds));
    bool ok = true;
    for (std::uint32_t r = 0; ok && r < rounds; ++r) {
      const go g{r};
      const cross c{r};
      ok = host.send_to_all(trader_ids, go_type, rk::as_bytes(g)) &&
           host.wait_for([&] { return host.seen().traders_done[r] == traders; }, "every trader's orders") &&
           host.send_to_all(members, cross_type, rk::as_bytes(c)) &&
           host.wait_for([&] { return host.seen().summaries.size() == r + 1; }, "the round's totals");
    }
    const double run_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_begin).count();
    const rk::shutdown_report report = rt.shutdown();
    if (!ok) return 1;

    const auto check_begin = std::chrono::steady_clock::now();
    const reference ref = run_reference(mkt, static_cast<std::uint32_t>(rounds), trader_ids);
    std::uint64_t mismatches = count_mismatches(ref, host.seen(), rt, trader_ids);
    std::uint32_t refused = 0;
    for (const rk::actor_index m : members) refused += rt.state<instrument>(m).refused;
    if (refused != 0) std::fprintf(stderr, "order_book: %u instrument sends were refused\n", refused);
    if (rt.state<aggregator>(agg).rounds != rounds) {
      std::fprintf(stderr, "order_book: the aggregator reported %llu of %llu rounds\n",
                   static_cast<unsigned long long>(rt.state<aggregator>(agg).rounds),
                   static_cast<unsigned long long>(rounds));
      ++mismatches;
    }
    const double check_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - check_begin).count();

    std::uint64_t trades = 0, volume = 0, handled = 0;
    for (const round_summary& s : host.seen().summaries) trades += s.trades, volume += s.volume;
    const rk::runtime_stats stats = rt.stats();
    for (const rk::actor_stats& a : stats.actors) handled += a.handled;
    const bool passed = mismatches == 0 && refused == 0 && report.drained && report.undelivered == 0;
    const std::uint64_t order_count = traders * orders * rounds;
    const std::string backend(rk::to_string(rt.backend()));
    if (json) {
      const nlohmann::ordered_json doc = {{"backend", backend},
                                          {"device", rt.backend_description()},
                                          {"instruments", instruments},
                                          {"traders", traders},
                                          {"rounds", rounds},
                                          {"orders", order_count},
                                          {"trades", trades},
                                          {"volume", volume},
                                          {"messages_handled", handled},
                                          {"setup_s", setup_s},
                                          {"run_s", run_s},
                                          {"orders_per_s", static_cast<double>(order_count) / run_s},
                                          {"messages_per_s", static_cast<double>(handled) / run_s},
                                          {"reference_check_s", check_s},
                                          {"matches_reference", passed}};
      std::printf("%s\n", doc.dump().c_str());
    } else {
      std::printf(
          "order_book: %llu instruments (keyed group), %llu traders, %llu rounds on the %s backend (%s)\n",
          static_cast<unsigned long long>(instruments), static_cast<unsigned long long>(traders),
          static_cast<unsigned long long>(rounds), backend.c_str(), rt.backend_description().c_str());
      std::printf("  setup (spawn + start)   %8.3f s\n", setup_s);
      std::printf("  trading                 %8.3f s   %llu orders, %llu trades, volume %llu\n", run_s,
                  static_cast<unsigned long long>(order_count), static_cast<unsigned long long>(trades),
                  static_cast<unsigned long long>(volume));
      std::printf("  throughput              %8.0f orders/s, %.0f messages handled/s\n",
                  static_cast<double>(order_count) / run_s, static_cast<double>(handled) / run_s);
      std::printf("  sequential reference    %s (checked in %.3f s)\n", passed ? "matches" : "DIFFERS",
                  check_s);
    }
    return passed ? 0 : 1;
  } catch (const rk::error& e) {
    std::fprintf(stderr, "order_book: %s\n", e.what());
    return 1;
  }
}
