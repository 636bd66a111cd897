// bench_cluster: messages between two ranks through rk::cluster, beside raw MPI in the same run.
//
//   mpiexec -np 2 bench_cluster [--json] [--smoke] [--repetitions N] [--round-trips N] [--messages N]
//                               [--workers N]
//
// (Open MPI as root in a container: add --allow-run-as-root, and set
// OMPI_MCA_btl_vader_single_copy_mechanism=none.) Exactly two ranks. For payloads of 64 B and 4 KiB:
//   rk, host -> actor:  rank 0's host sends to an echo actor on rank 1 and waits in receive(timeout) for
//                       its reply (one in flight); one-way = round trip / 2, p50 and p99 over all samples.
//   rk, actor <-> actor: an actor on rank 0 and the echo on rank 1 bounce one message --round-trips times
//                       by handler sends; one-way = the whole exchange / (2 x round trips), a mean per run.
//   rk, streams:        --messages messages rank 0 -> a sink actor on rank 1, which checks their order and
//                       acknowledges the last; from an actor on rank 0 (handler sends, deferred while the
//                       outbound ring is full) and from rank 0's host (send_blocking). Messages/s from the
//                       host's clock, start to acknowledgement.
//   raw MPI:            MPI_Send/MPI_Recv ping-pong and a stream of MPI_Sends with a final ack, same
//                       sizes, on a communicator of its own, measured before the cluster exists and after
//                       it is gone (so no runtime thread competes with it); pooled.
// Ratios are rk / raw: above 1 for latency and below 1 for throughput mean rk is slower. rk carries many
// messages in one MPI message (batches); raw MPI sends each message on its own.
// This file is built without nvcc, so every rank runs the CPU backend: the figures say nothing about GPUs.

#include "cluster_actors.hpp"
#include "common/bench_util.hpp"

#include <ringkernel/cluster/cluster.hpp>
#include <ringkernel/ringkernel.hpp>

#include <mpi.h>

#include <array>
#include <cstring>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using namespace rk_bench_cluster;

double ns_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::nano>(clock_type::now() - t).count();
}

struct settings {
  rk::bench::common_args common;
  std::uint64_t round_trips = 0, messages = 0, warmup = 0;
  std::uint32_t workers = 1;
};

struct figures { //!< per payload size; latencies in ns (one way), throughput in messages/s
  std::vector<std::vector<double>> raw_one_way, rk_host_one_way;
  std::vector<double> raw_stream, rk_actor_one_way, rk_actor_stream, rk_host_stream;
  double raw_before_p50 = 0, raw_after_p50 = 0;
  std::uint64_t violations = 0;
};

// --- raw MPI -------------------------------------------------------------------------------------------

//! Ping-pong of `size` bytes; rank 0 returns the one-way samples (round trip / 2) after `warmup`.
std::vector<double> raw_ping_pong(MPI_Comm comm, int rank, std::uint32_t size, std::uint64_t n,
                                  std::uint64_t warmup) {
  std::vector<std::byte> buf(size);
  std::vector<double> out;
  MPI_Barrier(comm);
  for (std::uint64_t i = 0; i < warmup + n; ++i) {
    if (rank == 0) {
      const auto t = clock_type::now();
      MPI_Send(buf.data(), static_cast<int>(size), MPI_BYTE, 1, 0, comm);
      MPI_Recv(buf.data(), static_cast<int>(size), MPI_BYTE, 1, 0, comm, MPI_STATUS_IGNORE);
      if (i >= warmup) out.push_back(ns_since(t) / 2);
    } else {
      MPI_Recv(buf.data(), static_cast<int>(size), MPI_BYTE, 0, 0, comm, MPI_STATUS_IGNORE);
      MPI_Send(buf.data(), static_cast<int>(size), MPI_BYTE, 0, 0, comm);
    }
  }
  return out;
}

//! `n` MPI_Sends of `size` bytes 0 -> 1 and an ack back; rank 0 returns messages/s, rank 1 counts
//! messages out of order into `violations`.
double raw_stream(MPI_Comm comm, int rank, std::uint32_t size, std::uint64_t n, std::uint64_t& violations) {
  std::vector<std::byte> buf(size);
  std::uint64_t ackword = 0;
  MPI_Barrier(comm);
  const auto t = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    if (rank == 0) {
      std::memcpy(buf.data(), &i, sizeof i);
      MPI_Send(buf.data(), static_cast<int>(size), MPI_BYTE, 1, 1, comm);
    } else {
      MPI_Recv(buf.data(), static_cast<int>(size), MPI_BYTE, 0, 1, comm, MPI_STATUS_IGNORE);
      std::uint64_t seq = 0;
      std::memcpy(&seq, buf.data(), sizeof seq);
      violations += seq != i ? 1 : 0;
    }
  }
  if (rank == 0)
    MPI_Recv(&ackword, 1, MPI_UINT64_T, 1, 2, comm, MPI_STATUS_IGNORE);
  else
    MPI_Send(&ackword, 1, MPI_UINT64_T, 0, 2, comm);
  return static_cast<double>(n) / (ns_since(t) * 1e-9);
}

void measure_raw(MPI_Comm comm, int rank, const settings& cfg, std::vector<figures>& out, bool before) {
  for (int r = 0; r < cfg.common.repetitions; ++r) {
    for (std::size_t s = 0; s < sizes.size(); ++s) {
      auto samples = raw_ping_pong(comm, rank, sizes[s], cfg.round_trips, r == 0 ? cfg.warmup : 0);
      out[s].raw_stream.push_back(raw_stream(comm, rank, sizes[s], cfg.messages, out[s].violations));
      std::sort(samples.begin(), samples.end());
      (before ? out[s].raw_before_p50 : out[s].raw_after_p50) += rk::bench::percentile_sorted(samples, 0.5);
      out[s].raw_one_way.push_back(std::move(samples));
    }
  }
  for (auto& f : out) (before ? f.raw_before_p50 : f.raw_after_p50) /= cfg.common.repetitions;
}

// --- rk::cluster ---------------------------------------------------------------------------------------

rk::cluster_options cluster_options(const settings& cfg) {
  rk::cluster_options o;
  o.runtime.backend = rk::backend::cpu;
  o.runtime.announce_backend = false;
  o.runtime.scheduled_workers = cfg.workers;
  o.runtime.host_ring = {1024, slot_bytes}; // host sends and arrivals from other ranks go through it
  o.runtime.host_parking_slots = 1024;
  o.outbound = {1024, slot_bytes};
  o.announce = false;
  return o;
}

class rank0_driver {
public:
  explicit rank0_driver(rk::cluster& c)
      : c_(c), echo_(c.address_of(c.find("echo1"))), sink_(c.address_of(c.find("sink1"))),
        pinger_(c.address_of(c.find("pinger0"))), streamer_(c.address_of(c.find("streamer0"))) {}

  double host_round_trip(std::uint32_t size) {
    const auto t = clock_type::now();
    check(c_.local().send_blocking(echo_, msg_ball, {zeros_.data(), size}, 10s, {.correlation_id = ++run_}));
    const auto reply = wait();
    if (reply.correlation_id() != run_ || reply.payload.size() != size)
      throw rk::error("bench_cluster: a wrong reply from the echo");
    return ns_since(t) / 2;
  }
  //! Mean one-way time of `n` actor-to-actor round trips.
  double actor_ping_pong(std::uint32_t size, std::uint64_t n) {
    const go g{echo_, size, n, ++run_};
    return timed(pinger_, msg_ping_go, g) / static_cast<double>(2 * n);
  }
  double actor_stream(std::uint32_t size, std::uint64_t n) {
    const go g{sink_, size, n, ++run_};
    return static_cast<double>(n) / (timed(streamer_, msg_stream_go, g) * 1e-9);
  }
  double host_stream(std::uint32_t size, std::uint64_t n) {
    const std::uint64_t run = ++run_;
    std::vector<std::byte> out(size);
    const auto t = clock_type::now();
    for (std::uint64_t i = 0; i < n; ++i) {
      const data_header h{run, i, n};
      std::memcpy(out.data(), &h, sizeof h);
      check(c_.local().send_blocking(sink_, msg_data, {out.data(), size}, 10s));
    }
    check_ack(wait(), run, n);
    return static_cast<double>(n) / (ns_since(t) * 1e-9);
  }
  void finish() { check(c_.send_blocking(c_.find("to_host1"), msg_finish, rk::as_bytes(run_), 10s)); }

private:
  static void check(rk::status s) {
    if (s != rk::status::enqueued)
      throw rk::error(std::string("bench_cluster: a host send returned ") + rk::to_string(s));
  }
  rk::received_message wait() {
    auto m = c_.receive(30s);
    if (!m) throw rk::error("bench_cluster: nothing came back within 30 s");
    return *m;
  }
  void check_ack(const rk::received_message& m, std::uint64_t run, std::uint64_t n) {
    const ack a = m.as<ack>();
    if (a.run != run || a.received != n || a.violations != 0)
      throw rk::error("bench_cluster: the sink saw " + std::to_string(a.received) + " of " +
                      std::to_string(n) + " messages, " + std::to_string(a.violations) + " out of order");
  }
  //! Sends `g` to `actor` and waits for its msg_done (a stream's carries the sink's ack); returns the ns
  //! in between.
  double timed(rk::actor_index actor, std::uint32_t type, const go& g) {
    const auto t = clock_type::now();
    check(c_.local().send_blocking(actor, type, rk::as_bytes(g), 10s));
    const rk::received_message m = wait();
    const double ns = ns_since(t);
    if (type == msg_stream_go) check_ack(m, g.run, g.count);
    return ns;
  }

  rk::cluster& c_;
  rk::actor_index echo_, sink_, pinger_, streamer_;
  std::array<std::byte, max_payload> zeros_{};
  std::uint64_t run_ = 0;
};

//! Rank 0's measurements through the cluster, every path warmed up first.
void drive(rk::cluster& c, const settings& cfg, std::vector<figures>& out) {
  rank0_driver d(c);
  for (const std::uint32_t size : sizes) { // warm-up of every path
    for (std::uint64_t i = 0; i < cfg.warmup; ++i) (void)d.host_round_trip(size);
    (void)d.actor_ping_pong(size, cfg.warmup);
    (void)d.actor_stream(size, cfg.warmup);
    (void)d.host_stream(size, cfg.warmup);
  }
  for (int r = 0; r < cfg.common.repetitions; ++r) {
    for (std::size_t s = 0; s < sizes.size(); ++s) {
      std::vector<double> samples;
      for (std::uint64_t i = 0; i < cfg.round_trips; ++i) samples.push_back(d.host_round_trip(sizes[s]));
      out[s].rk_host_one_way.push_back(std::move(samples));
      out[s].rk_actor_one_way.push_back(d.actor_ping_pong(sizes[s], cfg.round_trips));
      out[s].rk_actor_stream.push_back(d.actor_stream(sizes[s], cfg.messages));
      out[s].rk_host_stream.push_back(d.host_stream(sizes[s], cfg.messages));
    }
  }
  d.finish();
}

rk::cluster_stats measure_cluster(const settings& cfg, std::vector<figures>& out) {
  rk::cluster c(cluster_options(cfg));
  rk::actor_options big;
  big.mailbox = {256, slot_bytes};
  if (c.rank() == 0) {
    (void)c.spawn<pinger>("pinger0", big);
    (void)c.spawn<streamer>("streamer0", big);
  } else {
    (void)c.spawn<echo>("echo1", big);
    (void)c.spawn<sink>("sink1", big);
    (void)c.spawn<to_host>("to_host1");
  }
  c.start();
  if (c.rank() == 0) {
    try {
      drive(c, cfg, out);
    } catch (const rk::error& e) {
      // Ends the job now: unwinding would run the cluster's collective shutdown while rank 1 still waits.
      std::fprintf(stderr, "bench_cluster: rank 0: %s\n", e.what());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  } else {
    // Rank 1's host sleeps in receive until rank 0 is done, so both reach shutdown() together.
    for (;;) {
      const auto m = c.receive(600s);
      if (!m) throw rk::error("bench_cluster: rank 1 heard nothing from rank 0 for 10 minutes");
      if (m->type() == msg_finish) break;
    }
  }
  const rk::cluster_report report = c.shutdown();
  if (!report.drained) throw rk::error("bench_cluster: the cluster did not drain at shutdown");
  return c.stats();
}

std::string mpi_library() {
  char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(version, &length);
  const std::string s(version, static_cast<std::size_t>(length));
  return s.substr(0, s.find_first_of(",\n"));
}

void report(const settings& cfg, const std::vector<figures>& all, const rk::cluster_stats& stats) {
  namespace b = rk::bench;
  using json = nlohmann::ordered_json;
  const auto parse = [](const std::string& text) { return json::parse(text); };
  const auto ratio = [](double rk, double raw) { return std::round(rk / raw * 1000) / 1000; };
  const double per_mpi_message =
      static_cast<double>(stats.sent) / static_cast<double>(std::max<std::uint64_t>(1, stats.sent_batches));
  const std::string note = "CPU backend on every rank (this benchmark is built without nvcc); rank 0's host "
                           "waits in receive(timeout); raw MPI measured with no runtime running";
  json doc = {{"benchmark", "cluster"},
              {"backend", "cpu"},
              {"machine", b::cpu_description()},
              {"mpi", mpi_library()},
              {"note", note},
              {"ranks", 2},
              {"repetitions", cfg.common.repetitions},
              {"round_trips", cfg.round_trips},
              {"stream_messages", cfg.messages},
              {"scheduled_workers_per_rank", cfg.workers},
              {"rk_messages_per_mpi_message", std::round(per_mpi_message * 100) / 100},
              {"results", json::array()}};
  if (!cfg.common.json)
    std::printf("bench_cluster: 2 ranks, %s, %s\n%s\n%d repetitions, %llu round trips, %llu messages per "
                "stream; rk sent %.1f messages per MPI message\n",
                b::cpu_description().c_str(), mpi_library().c_str(), note.c_str(), cfg.common.repetitions,
                static_cast<unsigned long long>(cfg.round_trips),
                static_cast<unsigned long long>(cfg.messages), per_mpi_message);
  for (std::size_t s = 0; s < sizes.size(); ++s) {
    const figures& f = all[s];
    const auto raw = b::summarize_repetitions(f.raw_one_way);
    std::vector<double> run_means; // raw MPI's analogue of the actor ping-pong: the mean of each run
    for (const auto& run : f.raw_one_way) run_means.push_back(b::summarize(run).mean);
    const auto raw_mean = b::summarize(run_means), raw_stream = b::summarize(f.raw_stream);
    const auto host = b::summarize_repetitions(f.rk_host_one_way);
    const auto actor = b::summarize(f.rk_actor_one_way), actor_stream = b::summarize(f.rk_actor_stream),
               host_stream = b::summarize(f.rk_host_stream);
    doc["results"].push_back({{"payload_bytes", sizes[s]},
                              {"rk_host_to_actor_one_way_ns", parse(b::latency_json(host))},
                              {"rk_actor_to_actor_one_way_mean_ns", parse(b::summary_json(actor))},
                              {"rk_actor_stream_msgs_per_s", parse(b::summary_json(actor_stream, 0))},
                              {"rk_host_stream_msgs_per_s", parse(b::summary_json(host_stream, 0))},
                              {"raw_mpi_one_way_ns", parse(b::latency_json(raw))},
                              {"raw_mpi_one_way_mean_per_run_ns", parse(b::summary_json(raw_mean))},
                              {"raw_mpi_one_way_p50_before_ns", f.raw_before_p50},
                              {"raw_mpi_one_way_p50_after_ns", f.raw_after_p50},
                              {"raw_mpi_stream_msgs_per_s", parse(b::summary_json(raw_stream, 0))},
                              {"ratio_rk_over_raw",
                               {{"host_one_way_p50", ratio(host.pooled.median, raw.pooled.median)},
                                {"host_one_way_p99", ratio(host.pooled.p99, raw.pooled.p99)},
                                {"actor_one_way_mean", ratio(actor.median, raw_mean.median)},
                                {"actor_stream", ratio(actor_stream.median, raw_stream.median)},
                                {"host_stream", ratio(host_stream.median, raw_stream.median)}}}});
    if (cfg.common.json) continue;
    std::printf("\n%u-byte payload                        p50 / median       p99\n", sizes[s]);
    std::printf("  one way, raw MPI ping-pong       %10.2f us %9.2f us  (p50 before %.2f, after %.2f)\n",
                raw.pooled.median / 1e3, raw.pooled.p99 / 1e3, f.raw_before_p50 / 1e3, f.raw_after_p50 / 1e3);
    std::printf("  one way, rk host -> actor (rt/2) %10.2f us %9.2f us  (%.1fx, %.1fx raw)\n",
                host.pooled.median / 1e3, host.pooled.p99 / 1e3, host.pooled.median / raw.pooled.median,
                host.pooled.p99 / raw.pooled.p99);
    std::printf("  one way, rk actor <-> actor mean %10.2f us             (%.1fx raw's mean %.2f us)\n",
                actor.median / 1e3, actor.median / raw_mean.median, raw_mean.median / 1e3);
    std::printf("  stream, raw MPI_Send             %10.0f msg/s\n", raw_stream.median);
    std::printf("  stream, rk actor -> actor        %10.0f msg/s     (%.2fx raw)\n", actor_stream.median,
                actor_stream.median / raw_stream.median);
    std::printf("  stream, rk host -> actor         %10.0f msg/s     (%.2fx raw)\n", host_stream.median,
                host_stream.median / raw_stream.median);
  }
  if (cfg.common.json) std::printf("%s\n", doc.dump().c_str());
}

} // namespace

int main(int argc, char** argv) {
  settings cfg;
  std::optional<std::uint64_t> round_trips, messages;
  cfg.common = rk::bench::parse_common(
      argc, argv, "bench_cluster", "[--round-trips N] [--messages N] [--workers N]", [&](CLI::App& app) {
        rk::cli::add_count(app, "--round-trips", round_trips, "ping-pong round trips per size and repetition",
                           std::numeric_limits<std::uint64_t>::max(), 1);
        rk::cli::add_count(app, "--messages", messages, "messages per stream, size and repetition",
                           std::numeric_limits<std::uint64_t>::max(), 1);
        rk::cli::add_count(app, "--workers", cfg.workers, "scheduled workers per rank (0: runtime default)");
      });
  cfg.round_trips = round_trips.value_or(cfg.common.smoke ? 100 : 1'000);
  cfg.messages = messages.value_or(cfg.common.smoke ? 2'000 : 20'000);
  cfg.warmup = cfg.common.smoke ? 10 : 100;

  int provided = 0, rank = 0, size = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int rc = 0;
  if (size != 2 || provided < MPI_THREAD_MULTIPLE) {
    if (rank == 0)
      std::fprintf(stderr,
                   "bench_cluster: run with mpiexec -np 2 and an MPI with MPI_THREAD_MULTIPLE "
                   "(got %d ranks, thread level %d)\n",
                   size, provided);
    rc = 2;
  } else {
    MPI_Comm raw = MPI_COMM_NULL;
    MPI_Comm_dup(MPI_COMM_WORLD, &raw);
    try {
      std::vector<figures> all(sizes.size());
      measure_raw(raw, rank, cfg, all, true);
      const rk::cluster_stats stats = measure_cluster(cfg, all);
      measure_raw(raw, rank, cfg, all, false);
      if (rank == 1 && all[0].violations + all[1].violations != 0)
        throw rk::error("bench_cluster: raw MPI delivered messages out of order");
      if (rank == 0) report(cfg, all, stats);
    } catch (const rk::error& e) {
      std::fprintf(stderr, "bench_cluster: rank %d: %s\n", rank, e.what());
      MPI_Abort(MPI_COMM_WORLD, 1); // the other rank may be waiting in a collective call
    }
    MPI_Comm_free(&raw);
  }
  MPI_Finalize();
  return rc;
}
