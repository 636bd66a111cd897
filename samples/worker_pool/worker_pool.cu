// samples/worker_pool: a load-balanced group of N workers.
//
// The host sends jobs to the group `worker`; the device picks a live member round-robin for each job and
// the member answers the host with its id. Halfway through, one worker is stopped: it leaves the rotation
// and receives nothing afterwards, and the others share its load. The sample checks both claims itself
// and exits non-zero if either fails.
//
//   worker_pool [--workers N] [--jobs N] [--backend auto|cpu|cuda] [--json]

#include <ringkernel/ringkernel.hpp>

#include "../common/sample_util.hpp"

#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr std::uint32_t job_type = 1;

struct job {
  std::uint64_t id;
  std::uint64_t work; //!< input of the (tiny) computation
};

struct answer {
  std::uint64_t job;
  std::uint64_t worker;
  std::uint64_t result;
};

//! The job's (tiny) computation; the host repeats it to check each answer.
RK_HOST_DEVICE inline std::uint64_t checksum(std::uint64_t work) {
  for (int i = 0; i < 16; ++i) work = work * 6364136223846793005ull + 1442695040888963407ull;
  return work;
}

//! A pool member: computes a checksum of the job and answers the host with its own id.
struct worker {
  static constexpr const char* name = "worker";
  struct state {
    std::uint64_t jobs = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const job* j = m.as<job>();
    if (j == nullptr) return;
    ++s.jobs;
    const answer a{j->id, ctx.self(), checksum(j->work)};
    (void)ctx.send_host(job_type, rk::as_bytes(a), {.correlation_id = m.correlation_id()});
  }
};

std::uint64_t work_of(std::uint64_t job_index) {
  return job_index * 31 + 7;
}

//! Sends `jobs` jobs to `pool` with up to `window` in flight and counts answers per worker id; each job
//! must be answered once, with its checksum, by a worker of the pool.
bool run_jobs(rk::runtime& rt, rk::address pool, std::uint64_t first_job, std::uint64_t jobs,
              std::vector<std::uint64_t>& per_worker) {
  constexpr std::uint64_t window = 64;
  std::uint64_t sent = 0, answered = 0;
  std::vector<bool> done(jobs, false);
  while (answered < jobs) {
    while (sent < jobs && sent - answered < window) {
      const job j{first_job + sent, work_of(sent)};
      if (rk::samples::send_retrying(rt, pool, job_type, rk::as_bytes(j)) != rk::status::enqueued)
        return false;
      ++sent;
    }
    const auto reply = rt.receive(std::chrono::seconds(10));
    if (!reply) {
      std::fprintf(stderr, "worker_pool: an answer did not arrive within 10 s\n");
      return false;
    }
    const answer a = reply->as<answer>();
    const std::uint64_t k = a.job - first_job; // wraps past `jobs` for a job id below first_job
    if (a.worker >= per_worker.size() || k >= jobs || done[k] || a.result != checksum(work_of(k))) {
      std::fprintf(stderr, "worker_pool: a wrong answer: job %llu from actor %llu, result %llu\n",
                   static_cast<unsigned long long>(a.job), static_cast<unsigned long long>(a.worker),
                   static_cast<unsigned long long>(a.result));
      return false;
    }
    done[k] = true;
    ++per_worker[a.worker];
    ++answered;
  }
  return true;
}

} // namespace

int main(int argc, char** argv) {
  std::uint64_t workers = 8, jobs = 8'000;
  bool json = false;
  rk::runtime_options options;
  rk::samples::flags cli("worker_pool", "[--workers N] [--jobs N] [--backend auto|cpu|cuda] [--json]");
  cli.count("--workers", workers, 512, 2)->description("workers in the group (default 8)");
  cli.count("--jobs", jobs, 100'000'000, 1) // per phase; job ids run to 2 x jobs
      ->description("jobs before and again after one worker is stopped (default 8000)");
  cli.backend(options.backend);
  cli.toggle("--json", json)->description("print the results as one JSON object");
  cli.parse(argc, argv);
  if (jobs < workers) cli.fail("--jobs must be at least --workers");

  try {
    options.max_actors = static_cast<std::uint32_t>(workers) + 1;
    rk::runtime rt(options);
    rk::actor_options pool_options;
    pool_options.instances = static_cast<std::uint32_t>(workers);
    // Room for a phase's burst: a host message that finds its member's mailbox full waits in the
    // gateway and is then given to whichever member is next, which would blur the strict rotation
    // this sample checks.
    pool_options.mailbox = {256, 256};
    const rk::address pool = rt.spawn<worker>("worker", pool_options);
    const std::vector<rk::actor_index> members = rt.members(pool);
    rt.start();

    // Phase 1: every worker live.
    std::vector<std::uint64_t> before(workers, 0);
    if (!run_jobs(rt, pool, 0, jobs, before)) return 1;

    // Phase 2: stop one worker; the rest share its load.
    const rk::actor_index stopped = members[workers / 2];
    if (!rt.stop(stopped)) {
      std::fprintf(stderr, "worker_pool: worker %u did not stop within 5 s\n", stopped);
      return 1;
    }
    std::vector<std::uint64_t> after(workers, 0);
    if (!run_jobs(rt, pool, jobs, jobs, after)) return 1;

    const rk::shutdown_report report = rt.shutdown();
    const rk::runtime_stats stats = rt.stats();

    const auto [min_it, max_it] = std::minmax_element(before.begin(), before.end());
    const bool even = *max_it - *min_it <= 1; // one sender, all live: strict round-robin
    std::uint64_t live_min = ~0ull, live_max = 0;
    for (std::uint64_t w = 0; w < workers; ++w) {
      if (members[w] == stopped) continue;
      live_min = std::min(live_min, after[w]);
      live_max = std::max(live_max, after[w]);
    }
    const bool stopped_silent = after[stopped] == 0 && stats.actors[stopped].handled == before[stopped];
    const bool ok = even && stopped_silent && live_max - live_min <= 1 && report.drained;

    const std::string backend(rk::to_string(rt.backend()));
    if (json) {
      nlohmann::ordered_json doc = {{"backend", backend},
                                    {"device", rt.backend_description()},
                                    {"workers", workers},
                                    {"jobs_per_phase", jobs}};
      doc["per_worker"] = before;
      doc["stopped_worker"] = stopped;
      doc["per_worker_after_stop"] = after;
      doc["received_after_stop"] = after[stopped];
      doc["even"] = ok;
      std::printf("%s\n", doc.dump().c_str());
    } else {
      std::printf("worker_pool: %llu workers in group 'worker' on the %s backend (%s)\n",
                  static_cast<unsigned long long>(workers), backend.c_str(),
                  rt.backend_description().c_str());
      std::printf("  %-10s %12s %22s\n", "worker", "jobs", "jobs after stop");
      for (std::uint64_t w = 0; w < workers; ++w)
        std::printf("  %-10s %12llu %22llu%s\n", rt.name_of(members[w]).c_str(),
                    static_cast<unsigned long long>(before[w]), static_cast<unsigned long long>(after[w]),
                    members[w] == stopped ? "   (stopped)" : "");
      std::printf("  spread: %s; the stopped worker received %llu jobs after it stopped\n",
                  even ? "even" : "UNEVEN", static_cast<unsigned long long>(after[stopped]));
    }
    if (!ok) {
      std::fprintf(stderr, "worker_pool: expected an even spread and nothing for the stopped worker\n");
      return 1;
    }
    return 0;
  } catch (const rk::error& e) {
    std::fprintf(stderr, "worker_pool: %s\n", e.what());
    return 1;
  }
}
