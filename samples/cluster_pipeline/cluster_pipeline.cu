// samples/cluster_pipeline: a pipeline whose stages live on different ranks of an rk::cluster.
//
//   host(0) -> stage0 -> stage1 -> ... -> stage<S-1> -> to_host0 -> host(0)
//
// Stage k runs on rank k % size (any number of ranks works; designed for 4 ranks and 4 stages). Each stage
// mixes its number into the event's value and forwards it with ctx.send to the next stage's address on
// its own rank (the stage itself or a remote entry from cluster::address_of). The last stage sends to
// `to_host0`, an actor on rank 0 that hands everything to rank 0's host (cluster::host_address(0) would
// reach that host directly; the relay also shows a named actor in the pipeline). Every rank has such a
// relay: the other ranks tell rank 0 through it that their stages know their successors, and rank 0 tells
// them through theirs when it is done, so every rank reaches the collective shutdown() at the same time.
//
// Self-checking: rank 0 keeps `--window` events in flight and checks that every event came back exactly
// once with the value a sequential reference computes and every stage's mark; then every rank's stages
// contribute their event counts to an allreduce (rk/cluster/collectives.hpp: a reducer actor per rank,
// combined across ranks over MPI) that must give events x stages. Any mismatch, refused send or
// undrained shutdown exits 1 (bad arguments exit 2).
//
//   mpiexec -np 4 cluster_pipeline [--events N] [--window N] [--stages N] [--workers N]
//                                  [--backend auto|cpu|cuda] [--timeout SECONDS] [--json]
//
// (Open MPI as root in a container: add --allow-run-as-root, and set
// OMPI_MCA_btl_vader_single_copy_mechanism=none.) --json prints one JSON line on rank 0.

#include <ringkernel/cluster/cluster.hpp>
#include <ringkernel/cluster/collectives.hpp>
#include <ringkernel/ringkernel.hpp>

#include "../common/sample_util.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t msg_event = 1;      //!< an event on its way (event)
constexpr std::uint32_t msg_next = 2;       //!< host -> its stage: your successor (rk::address)
constexpr std::uint32_t msg_ready = 3;      //!< rank r's host -> rank 0's host: r's stages are wired (rank)
constexpr std::uint32_t msg_done = 4;       //!< rank 0's host -> every other host: shut down
constexpr std::uint32_t msg_count = 5;      //!< host -> its stage: contribute your event count (reducer id)
constexpr std::uint32_t msg_contribute = 6; //!< stage -> its rank's reducer (rk::contribution)
constexpr std::uint32_t msg_partial = 7;    //!< reducer -> its host (kept by the cluster for allreduce)

struct event {
  std::uint64_t id;
  std::uint64_t value;
  std::uint64_t visited; //!< bit k: stage k handled it
};

//! Stage k's transformation; order matters, so a skipped or repeated stage changes the result.
RK_HOST_DEVICE constexpr std::uint64_t stage_step(std::uint64_t v, std::uint32_t k) {
  v ^= (std::uint64_t{k} + 1) * 0x9E37'79B9'7F4A'7C15ull;
  v *= 0xFF51'AFD7'ED55'8CCDull;
  return v ^ (v >> 33);
}

//! What the pipeline must produce for event `id`, computed sequentially.
std::uint64_t reference(std::uint64_t id, std::uint32_t stages) {
  std::uint64_t v = id;
  for (std::uint32_t k = 0; k < stages; ++k) v = stage_step(v, k);
  return v;
}

//! Pipeline stage `number`. Its successor (an id on this rank) arrives in a msg_next from its host before
//! any event does. A full successor (queue_full) defers the event, which comes back on the next turn.
struct stage {
  static constexpr const char* name = "stage";
  struct state {
    rk::address next = rk::host_actor;
    std::uint32_t number = 0;
    std::uint32_t wired = 0; //!< 1 once msg_next came
    std::uint64_t events = 0;
    std::uint64_t refused = 0; //!< sends refused for another reason than queue_full, or events before wiring
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    if (m.type() == msg_next) {
      if (const auto* next = m.as<rk::address>()) {
        s.next = *next;
        s.wired = 1;
      }
      return;
    }
    if (m.type() == msg_count) { // the reducer's id: add this stage's count to the cluster-wide sum
      const auto* reducer = m.as<rk::address>();
      const rk::contribution<std::uint64_t> mine{0, s.events};
      if (reducer == nullptr ||
          ctx.send(*reducer, msg_contribute, rk::as_bytes(mine)) != rk::status::delivered)
        ++s.refused;
      return;
    }
    const event* in = m.as<event>();
    if (in == nullptr || s.wired == 0) {
      ++s.refused;
      return;
    }
    event out = *in;
    out.value = stage_step(out.value, s.number);
    out.visited |= std::uint64_t{1} << s.number;
    const rk::status st =
        ctx.send(s.next, msg_event, rk::as_bytes(out), {.correlation_id = m.correlation_id()});
    if (st == rk::status::queue_full) {
      ctx.defer();
      return;
    }
    ++s.events;
    if (st != rk::status::delivered) ++s.refused;
  }
};

//! `to_host<r>`: hands every message to its rank's host, type and correlation id unchanged.
struct to_host {
  static constexpr const char* name = "to_host";
  struct state {
    std::uint64_t forwarded = 0;
    std::uint64_t refused = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const rk::status st = ctx.send_host(m.type(), m.payload(), {.correlation_id = m.correlation_id()});
    if (st == rk::status::queue_full) { // the host ring is full: the host is behind, wait for it
      ctx.defer();
      return;
    }
    ++s.forwarded;
    if (st != rk::status::delivered) ++s.refused;
  }
};

std::string stage_name(std::uint32_t k) {
  return "stage" + std::to_string(k);
}
std::string relay_name(std::uint32_t rank) {
  return "to_host" + std::to_string(rank);
}

//! This process's index among the ranks of its node (Open MPI, Slurm, MPICH), for choosing a GPU.
int local_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return 0;
}

struct verdict {
  std::uint64_t received = 0, missing = 0, duplicates = 0, wrong = 0, unexpected = 0;
  bool ok() const { return missing == 0 && duplicates == 0 && wrong == 0 && unexpected == 0; }
};

//! Rank 0: keeps `window` events in flight from its host to stage 0 and checks every one that returns.
verdict run_events(rk::cluster& c, rk::address head, std::uint64_t events, std::uint64_t window,
                   std::uint32_t stages, std::chrono::seconds timeout) {
  verdict v;
  std::vector<std::uint8_t> seen(events, 0);
  const std::uint64_t all_stages = stages == 64 ? ~0ull : (std::uint64_t{1} << stages) - 1;
  std::uint64_t sent = 0;
  while (v.received < events) {
    while (sent < events && sent - v.received < window) {
      const event e{sent, sent, 0};
      if (c.local().send(head, msg_event, rk::as_bytes(e), {.correlation_id = sent}) != rk::status::enqueued)
        break; // no room in the host ring now: take a result first
      ++sent;
    }
    const auto m = c.receive(timeout);
    if (!m) {
      std::fprintf(stderr, "cluster_pipeline: no event came back within %lld s\n",
                   static_cast<long long>(timeout.count()));
      break;
    }
    ++v.received;
    if (m->type() != msg_event) {
      ++v.unexpected;
      continue;
    }
    const event e = m->as<event>();
    if (e.id >= events) {
      ++v.unexpected;
      continue;
    }
    if (seen[e.id] != 0) {
      ++v.duplicates;
      continue;
    }
    seen[e.id] = 1;
    if (e.value != reference(e.id, stages) || e.visited != all_stages || m->correlation_id() != e.id)
      ++v.wrong;
  }
  for (const std::uint8_t s : seen) v.missing += s == 0 ? 1 : 0;
  return v;
}

//! --workers at most: each handler type here (stage, to_host, the reduction's reducer) gets a pool of that
//! many scheduled workers at start(), and a runtime holds 8192 scheduled workers plus one per actor
//! (runtime_options::max_actors, 1024 by default): 3 x 3072 = 9216.
constexpr std::uint64_t max_workers = 3072;

} // namespace

int main(int argc, char** argv) {
  std::uint64_t events = 10'000, window = 256, stages64 = 4, workers = 1, timeout_s = 60;
  bool json = false;
  rk::backend backend = rk::backend::automatic;
  rk::samples::flags cli("cluster_pipeline", "[--events N] [--window N] [--stages N] [--workers N] "
                                             "[--backend auto|cpu|cuda] [--timeout SECONDS] [--json]");
  cli.count("--events", events, 100'000'000, 1)
      ->description("events sent through the pipeline (default 10000)");
  cli.count("--window", window, 1024, 1)->description("events in flight at once (default 256)");
  cli.count("--stages", stages64, 64, 1)->description("pipeline stages, spread over the ranks (default 4)");
  cli.count("--workers", workers, max_workers)
      ->description("scheduled workers per rank (default 1; 0: the runtime's default)");
  cli.count("--timeout", timeout_s, 3600, 1)
      ->description("seconds before the run is declared stuck (default 60)");
  cli.backend(backend);
  cli.toggle("--json", json)->description("print the results as one JSON object");
  cli.parse(argc, argv);
  const auto stages = static_cast<std::uint32_t>(stages64);
  const std::chrono::seconds timeout(timeout_s);

  try {
    rk::cluster_options options;
    options.runtime.backend = backend;
    options.runtime.announce_backend = false;
    options.runtime.scheduled_workers = static_cast<std::uint32_t>(workers); // several ranks share a node
    int devices = 0;
    if (backend != rk::backend::cpu && cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0)
      options.runtime.cuda_device = local_rank() % devices; // one GPU per rank where there are enough
    (void)cudaGetLastError();
    rk::cluster c(options);
    const std::uint32_t rank = c.rank(), size = c.size();

    rk::actor_options mailbox;
    mailbox.mailbox = {512, 256};
    std::vector<std::pair<std::uint32_t, rk::actor_index>> mine; // (stage number, id) of this rank's stages
    for (std::uint32_t k = rank; k < stages; k += size)
      mine.emplace_back(
          k, c.spawn<stage>(stage_name(k), mailbox, stage::state{rk::host_actor, k, 0, 0, 0}).actor);
    const rk::actor_index relay = c.spawn<to_host>(relay_name(rank), mailbox).actor;
    // Afterwards every stage contributes how many events it forwarded: an allreduce over all ranks, each
    // rank's counts combined by its reducer actor (on the GPU with the CUDA backend), must give events x
    // stages.
    auto handled = rk::make_reduction<std::uint64_t, rk::reduce_op::sum>(
        c, "events_handled", static_cast<std::uint32_t>(mine.size()), msg_partial, mailbox);
    c.start();

    // Wire this rank's stages: stage k -> stage k+1 (here or a remote entry), the last one -> to_host0.
    for (const auto& [k, id] : mine) {
      const rk::address next = c.address_of(c.find(k + 1 < stages ? stage_name(k + 1) : relay_name(0)));
      if (c.local().send_wait(id, msg_next, rk::as_bytes(next), 10s) != rk::status::delivered)
        throw rk::error("could not wire " + stage_name(k));
    }

    int rc = 0;
    if (rank != 0) {
      // Tell rank 0 this rank is wired, then wait (sleeping in receive) until it says it is done.
      if (c.send_blocking(c.find(relay_name(0)), msg_ready, rk::as_bytes(rank), 10s) != rk::status::enqueued)
        throw rk::error("could not tell rank 0 that rank " + std::to_string(rank) + " is ready");
      // --timeout bounds a wait without progress, not the run: while this rank's stages keep handling
      // events, rank 0 is still at work.
      const auto handled_here = [&] {
        std::uint64_t n = 0;
        for (const auto& a : c.local().stats().actors) n += a.handled;
        return n;
      };
      std::uint64_t seen = handled_here();
      for (;;) {
        const auto m = c.receive(timeout);
        if (!m) {
          const std::uint64_t now = handled_here();
          if (now != seen) {
            seen = now;
            continue;
          }
          std::fprintf(stderr,
                       "cluster_pipeline: rank %u heard nothing from rank 0, and its stages handled nothing, "
                       "for %llu s\n",
                       rank, static_cast<unsigned long long>(timeout_s));
          rc = 1;
          break;
        }
        if (m->type() == msg_done) break;
      }
    }

    verdict v;
    double seconds = 0;
    if (rank == 0) {
      for (std::uint32_t ready = 1; ready < size; ++ready) {
        const auto m = c.receive(timeout);
        if (!m || m->type() != msg_ready) throw rk::error("a rank did not report ready in time");
      }
      const rk::address head = c.address_of(c.find(stage_name(0))); // stage 0 lives on rank 0
      const auto begin = std::chrono::steady_clock::now();
      v = run_events(c, head, events, window, stages, timeout);
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      for (std::uint32_t r = 1; r < size; ++r) {
        const std::uint64_t word = 0;
        if (c.send_blocking(c.find(relay_name(r)), msg_done, rk::as_bytes(word), 10s) != rk::status::enqueued)
          rc = 1;
      }
      if (!v.ok()) rc = 1;
    }

    for (const auto& [k, id] : mine)
      if (c.local().send_blocking(id, msg_count, rk::as_bytes(handled.address()), 10s) !=
          rk::status::enqueued)
        rc = 1;
    const std::optional<std::uint64_t> total = rk::allreduce(c, handled, timeout);
    if (!total || *total != events * stages) {
      std::fprintf(stderr, "cluster_pipeline: rank %u: the allreduce of stage counts gave %s\n", rank,
                   total ? std::to_string(*total).c_str() : "nothing");
      rc = 1;
    }

    const rk::cluster_report report = c.shutdown();
    std::uint64_t refused = c.local().state<to_host>(relay).refused;
    for (const auto& [k, id] : mine) refused += c.local().state<stage>(id).refused;
    if (!report.drained || refused != 0) {
      std::fprintf(stderr, "cluster_pipeline: rank %u: %llu sends refused, shutdown %s\n", rank,
                   static_cast<unsigned long long>(refused), report.drained ? "drained" : "did not drain");
      rc = 1;
    }
    if (rank != 0) return rc;

    // Hops per event: host -> stage0, stage k -> stage k+1, last -> to_host0, to_host0 -> host.
    const std::uint64_t per_event = stages + 2;
    std::uint64_t cross_rank = 0;
    for (std::uint32_t k = 0; k < stages; ++k)
      cross_rank += k % size != (k + 1 < stages ? (k + 1) % size : 0);
    const double events_per_s = static_cast<double>(v.received) / seconds;
    const std::string backend_name(rk::to_string(c.local().backend()));
    const char* checked = rc == 0 ? "ok" : "failed";
    if (json) {
      nlohmann::ordered_json doc = {{"sample", "cluster_pipeline"},
                                    {"backend", backend_name},
                                    {"device", c.local().backend_description()},
                                    {"ranks", size},
                                    {"stages", stages},
                                    {"placement", "stage k on rank k % ranks"},
                                    {"events", events},
                                    {"window", window},
                                    {"elapsed_s", seconds},
                                    {"events_per_s", events_per_s},
                                    {"messages_per_event", per_event},
                                    {"cross_rank_messages_per_event", cross_rank},
                                    {"messages_per_s", events_per_s * static_cast<double>(per_event)},
                                    {"allreduce_stage_events", total.value_or(0)},
                                    {"checked", checked}};
      if (rc != 0)
        doc["errors"] = {{"missing", v.missing}, {"duplicates", v.duplicates},
                         {"wrong", v.wrong},     {"unexpected", v.unexpected},
                         {"refused", refused},   {"drained", report.drained}};
      std::printf("%s\n", doc.dump().c_str());
    } else {
      std::printf(
          "cluster_pipeline: host -> %u stages on %u rank%s (stage k on rank k %% %u) -> host, rank 0 on "
          "the %s backend (%s)\n",
          stages, size, size == 1 ? "" : "s", size, backend_name.c_str(),
          c.local().backend_description().c_str());
      std::printf(
          "  %llu events, %llu in flight: %.3f s, %.0f events/s, %.0f messages/s (%llu hops per event, "
          "%llu of them between ranks)\n",
          static_cast<unsigned long long>(events), static_cast<unsigned long long>(window), seconds,
          events_per_s, events_per_s * static_cast<double>(per_event),
          static_cast<unsigned long long>(per_event), static_cast<unsigned long long>(cross_rank));
      std::printf("  allreduce of the stages' counts: %llu (expected %llu)\n",
                  static_cast<unsigned long long>(total.value_or(0)),
                  static_cast<unsigned long long>(events * stages));
      std::printf("  check: %s (%llu missing, %llu duplicated, %llu wrong, %llu unexpected)\n", checked,
                  static_cast<unsigned long long>(v.missing), static_cast<unsigned long long>(v.duplicates),
                  static_cast<unsigned long long>(v.wrong), static_cast<unsigned long long>(v.unexpected));
    }
    return rc;
  } catch (const rk::error& e) {
    std::fprintf(stderr, "cluster_pipeline: %s\n", e.what());
    return 1;
  }
}
