// samples/tenants: two tenants sharing one GPU, isolated on the device.
//
//   acme (tenant 1)   : a client and a group of 2 workers; traffic stays inside the tenant
//   globex (tenant 2) : the same, with a rate quota of 200 messages/s (burst 20)
// Then, deliberately: an acme client sends to a globex worker (cross-tenant), hands out a descriptor of
// globex's private region (forged descriptor), and globex exhausts its rate quota. Every refusal is
// decided on the device, counted, and audited; the sample prints per-tenant counters and the drained,
// hash-chained audit records, verifies the chain, and exits non-zero if any claim does not hold.
//
//   tenants [--messages N] [--backend auto|cpu|cuda] [--json] [--audit-log FILE]

#include <ringkernel/ringkernel.hpp>

#include "../common/sample_util.hpp"

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

namespace {

constexpr std::uint32_t job_type = 1;
constexpr std::uint64_t acme = 1, globex = 2;

//! What the host asks a client to do.
struct order {
  rk::address target;
  std::uint32_t count;    //!< messages to send (mode 0)
  std::uint32_t mode;     //!< 0: `count` jobs to `target`; 1: one descriptor to `target`
  std::uint32_t reserved; //!< keeps the descriptor 8-byte aligned
  rk::region_descriptor descriptor;
};

//! Sends what it is told; the device decides each send (the host reads the outcomes from the counters).
//! An order may ask for more jobs than the workers' mailboxes hold: when a send finds them full
//! (queue_full) the client defers the order and carries on from where it stopped on its next turn, so
//! every job is sent once and none is dropped.
struct client {
  static constexpr const char* name = "client";
  struct state {
    std::uint32_t sent = 0; //!< jobs of the current order sent so far (0 between orders)
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, state& s, const rk::message& m) {
    const order* o = m.as<order>();
    if (o == nullptr) return;
    if (o->mode == 1) {
      (void)ctx.send_descriptor(o->target, job_type, o->descriptor);
      return;
    }
    for (; s.sent < o->count; ++s.sent) {
      if (ctx.send(o->target, job_type, rk::as_bytes(s.sent)) == rk::status::queue_full) {
        ctx.defer();
        return;
      }
    }
    s.sent = 0;
  }
};

//! Does the work: counts jobs.
struct worker {
  static constexpr const char* name = "worker";
  struct state {
    std::uint64_t jobs = 0;
  };
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx&, state& s, const rk::message&) {
    ++s.jobs;
  }
};

std::uint64_t sent(const rk::runtime_stats& s, rk::actor_index a, rk::status st) {
  return s.actors[a].sent[static_cast<std::size_t>(st)];
}

//! The temporary audit log (no --audit-log) goes on every way out: a scope guard for returns and
//! exceptions, and SIGINT/SIGTERM/SIGHUP handlers that unlink it and then die of the signal as before.
//! (SIGKILL and crashes still leave it behind, in the temporary directory.)
char temporary_log[4096] = {};

extern "C" void remove_temporary_log(int signal) {
  ::unlink(temporary_log); // async-signal-safe; the handler was reset to the default (SA_RESETHAND)
  std::raise(signal);      // delivered on return: the process ends as the signal would have ended it
}

class temporary_file {
public:
  explicit temporary_file(const std::filesystem::path& path) {
    const std::string text = path.string();
    if (text.size() >= sizeof temporary_log) return; // cannot happen for temp_directory_path()/name
    std::memcpy(temporary_log, text.c_str(), text.size() + 1);
    struct sigaction sa {};
    sa.sa_handler = remove_temporary_log;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (const int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);
  }
  ~temporary_file() {
    if (temporary_log[0] != '\0') ::unlink(temporary_log);
  }
  temporary_file(const temporary_file&) = delete;
  temporary_file& operator=(const temporary_file&) = delete;
};

} // namespace

int main(int argc, char** argv) {
  std::uint64_t messages = 200;
  bool json = false;
  std::string audit_log;
  rk::runtime_options options;
  rk::samples::flags cli("tenants", "[--messages N] [--backend auto|cpu|cuda] [--json] [--audit-log FILE]");
  cli.count("--messages", messages, 100'000, 1)
      ->description("messages each tenant's client sends (default 200)");
  cli.backend(options.backend);
  cli.toggle("--json", json)->description("print the results as one JSON object");
  cli.file("--audit-log", audit_log)
      ->description("keep the hash-chained audit log in FILE (default: a temporary file, removed)");
  cli.parse(argc, argv);
  const std::filesystem::path log_path =
      audit_log.empty()
          ? std::filesystem::temp_directory_path() /
                std::string("ringkernel_tenants_audit_").append(std::to_string(::getpid())).append(".jsonl")
          : std::filesystem::path(audit_log);
  std::optional<temporary_file> remove_log;
  if (audit_log.empty()) remove_log.emplace(log_path);

  try {
    options.audit_sinks.push_back(std::make_shared<rk::audit_file_sink>(log_path));
    rk::runtime rt(options);
    rt.tenants().add(acme, rk::tenant_quota::standard());
    rk::tenant_quota limited = rk::tenant_quota::standard();
    limited.max_messages_per_second = 200;
    limited.burst = 20;
    rt.tenants().add(globex, limited);

    rk::actor_options acme_actor, globex_actor;
    acme_actor.tenant = acme;
    globex_actor.tenant = globex;
    rk::actor_options acme_pool = acme_actor, globex_pool = globex_actor;
    acme_pool.instances = globex_pool.instances = 2;
    acme_pool.mailbox = globex_pool.mailbox = {1024, 128};
    const rk::address acme_workers = rt.spawn<worker>("acme-worker", acme_pool);
    const rk::address globex_workers = rt.spawn<worker>("globex-worker", globex_pool);
    const rk::actor_index acme_client = rt.spawn<client>("acme-client", acme_actor);
    const rk::actor_index globex_client = rt.spawn<client>("globex-client", globex_actor);
    std::vector<std::uint8_t> secret(4096, 0x5a);
    const rk::region_handle globex_private =
        rt.create_region({secret.data(), static_cast<std::uint32_t>(secret.size())}, secret.size(),
                         {rk::region_policy::immutable, globex, {}});
    rt.start();

    auto order_for = [&](rk::actor_index c, std::uint64_t tenant, const order& o, std::uint64_t& handled) {
      rk::send_options as;
      as.tenant = tenant;
      if (rk::samples::send_retrying(rt, c, job_type, rk::as_bytes(o), as) != rk::status::enqueued)
        throw rk::error("could not send an order");
      ++handled;
      const rk::wait_result r = rk::wait_until([&] { return rt.stats().actors[c].handled >= handled; },
                                               [] { return false; }, 10'000'000'000ull);
      if (r != rk::wait_result::ready) throw rk::error("a client did not handle its order within 10 s");
    };
    std::uint64_t acme_handled = 0, globex_handled = 0;
    const auto count = static_cast<std::uint32_t>(messages);
    // Traffic inside each tenant (globex stays under its rate: 10 messages).
    order_for(acme_client, acme, {acme_workers, count, 0, 0, {}}, acme_handled);
    order_for(globex_client, globex, {globex_workers, 10, 0, 0, {}}, globex_handled);
    // Deliberate violations.
    order_for(acme_client, acme, {rt.members(globex_workers)[0], 1, 0, 0, {}}, acme_handled); // cross-tenant
    order_for(acme_client, acme, {acme_workers, 0, 1, 0, globex_private.describe(0, 64)},
              acme_handled);                                                           // forged
    order_for(globex_client, globex, {globex_workers, 500, 0, 0, {}}, globex_handled); // over the rate

    const rk::shutdown_report report = rt.shutdown(); // drains, stops, flushes the audit log
    const rk::runtime_stats stats = rt.stats();
    const std::vector<rk::audit_entry> audit = rt.audit_records();
    const rk::audit_verify_result verified = rk::verify_audit_log(log_path);

    const std::uint64_t mismatches = sent(stats, acme_client, rk::status::tenant_mismatch);
    const std::uint64_t forged = sent(stats, acme_client, rk::status::invalid_descriptor);
    const std::uint64_t over_rate = sent(stats, globex_client, rk::status::quota_exceeded);
    std::uint64_t acme_jobs = 0, globex_jobs = 0;
    for (rk::actor_index w : rt.members(acme_workers)) acme_jobs += rt.state<worker>(w).jobs;
    for (rk::actor_index w : rt.members(globex_workers)) globex_jobs += rt.state<worker>(w).jobs;
    const std::uint64_t globex_delivered = sent(stats, globex_client, rk::status::delivered);
    std::size_t audited[16] = {};
    for (const auto& e : audit)
      if (static_cast<std::size_t>(e.record.event) < 16) ++audited[static_cast<std::size_t>(e.record.event)];
    const auto count_of = [&](rk::audit_event e) { return audited[static_cast<std::size_t>(e)]; };

    // Every claim the sample makes, each with what it found when it does not hold.
    const rk::audit_drain_stats drain = rt.audit_stats();
    const bool log_written = drain.sink_failures == 0;
    const bool chain_intact = verified.verdict == rk::audit_verdict::intact;
    std::vector<std::string> problems;
    const auto expect = [&problems](bool holds, const std::string& what) {
      if (!holds) problems.push_back(what);
    };
    const auto num = [](std::uint64_t v) { return std::to_string(v); };
    expect(report.drained, "shutdown did not drain every message");
    expect(mismatches == 1, "the cross-tenant send was refused " + num(mismatches) +
                                " times (tenant_mismatch), expected once");
    expect(forged == 1,
           "the forged descriptor was refused " + num(forged) + " times (invalid_descriptor), expected once");
    expect(over_rate > 0, "globex's rate quota refused none of its 500 sends (quota_exceeded)");
    expect(acme_jobs == messages,
           "acme's workers did " + num(acme_jobs) + " jobs, expected " + num(messages));
    expect(globex_jobs == globex_delivered, "globex's workers did " + num(globex_jobs) + " jobs, but " +
                                                num(globex_delivered) + " were delivered to them");
    const auto audited_as = [&](rk::audit_event e, std::uint64_t refusals, const char* what) {
      expect(count_of(e) == refusals, "the audit log holds " + num(count_of(e)) + " " +
                                          rk::audit_event_name(e) + " records for " + num(refusals) + " " +
                                          what);
    };
    audited_as(rk::audit_event::cross_tenant_attempt, mismatches, "cross-tenant refusals");
    audited_as(rk::audit_event::descriptor_violation, forged, "forged-descriptor refusals");
    audited_as(rk::audit_event::quota_exceeded, over_rate, "quota refusals");
    if (!log_written)
      problems.push_back("writing the audit log " + log_path.string() + " failed (" +
                         num(drain.sink_failures) + " failed writes; last: " + drain.last_failure +
                         "): choose a writable --audit-log FILE");
    else if (!chain_intact)
      problems.push_back("the audit log " + log_path.string() + " does not verify: " + verified.reason);
    const bool ok = problems.empty();

    const std::string backend(rk::to_string(rt.backend()));
    if (json) {
      nlohmann::ordered_json doc = {{"backend", backend}, {"device", rt.backend_description()}};
      nlohmann::ordered_json tenant_rows = nlohmann::ordered_json::array();
      for (std::uint64_t t : {acme, globex}) {
        const rk::tenant_usage u = rt.tenants().usage(t);
        tenant_rows.push_back({{"tenant", t},
                               {"actors", u.actors},
                               {"messages_sent", u.messages_sent},
                               {"rate_rejections", u.rate_rejections},
                               {"jobs_done", t == acme ? acme_jobs : globex_jobs}});
      }
      doc["tenants"] = std::move(tenant_rows);
      doc["tenant_mismatch"] = mismatches;
      doc["invalid_descriptor"] = forged;
      doc["quota_exceeded"] = over_rate;
      doc["audit_log"] = log_path.string();
      doc["audit_written"] = log_written;
      doc["audit_verified"] = chain_intact;
      nlohmann::ordered_json records = nlohmann::ordered_json::array();
      for (const auto& e : audit) records.push_back(nlohmann::ordered_json::parse(e.json)); // canonical text
      doc["audit_records"] = std::move(records);
      doc["ok"] = ok;
      std::printf("%s\n", doc.dump().c_str());
    } else {
      std::printf("tenants: two tenants on the %s backend (%s)\n", backend.c_str(),
                  rt.backend_description().c_str());
      std::printf("  %-8s %7s %14s %16s %10s\n", "tenant", "actors", "messages sent", "rate rejections",
                  "jobs done");
      for (std::uint64_t t : {acme, globex}) {
        const rk::tenant_usage u = rt.tenants().usage(t);
        std::printf("  %-8s %7llu %14llu %16llu %10llu\n", t == acme ? "acme" : "globex",
                    static_cast<unsigned long long>(u.actors),
                    static_cast<unsigned long long>(u.messages_sent),
                    static_cast<unsigned long long>(u.rate_rejections),
                    static_cast<unsigned long long>(t == acme ? acme_jobs : globex_jobs));
      }
      std::printf(
          "  refused on the device: %llu tenant_mismatch, %llu invalid_descriptor, %llu quota_exceeded\n",
          static_cast<unsigned long long>(mismatches), static_cast<unsigned long long>(forged),
          static_cast<unsigned long long>(over_rate));
      std::printf("  audit log (%zu records, hash chain %s, %s):\n", audit.size(),
                  !log_written   ? "NOT WRITTEN: the file could not be written"
                  : chain_intact ? "verified"
                                 : "BROKEN",
                  log_path.string().c_str());
      std::size_t quota_shown = 0;
      for (const auto& e : audit) {
        const bool refusal = e.record.event == rk::audit_event::cross_tenant_attempt ||
                             e.record.event == rk::audit_event::descriptor_violation ||
                             e.record.event == rk::audit_event::quota_exceeded;
        if (e.record.event == rk::audit_event::quota_exceeded && quota_shown++ >= 2) continue; // the burst
        const char* name = rk::audit_event_name(e.record.event);
        const std::string actor = e.record.actor == rk::host_actor ? "host" : rt.name_of(e.record.actor);
        std::printf("    #%-4llu %-22s tenant %llu", static_cast<unsigned long long>(e.sequence),
                    name ? name : "event", static_cast<unsigned long long>(e.record.tenant));
        if (refusal)
          std::printf(" -> %llu  %-14s %s", static_cast<unsigned long long>(e.record.other_tenant),
                      actor.c_str(), rk::to_string(static_cast<rk::status>(e.record.detail)));
        else if (e.record.actor != rk::host_actor)
          std::printf("  %s", actor.c_str());
        std::printf("\n");
      }
      if (quota_shown > 2) std::printf("    ... and %zu more quota_exceeded records\n", quota_shown - 2);
    }
    for (const std::string& p : problems) std::fprintf(stderr, "tenants: check failed: %s\n", p.c_str());
    return ok ? 0 : 1;
  } catch (const std::exception& e) { // rk::error, and std::filesystem errors around the audit log
    std::fprintf(stderr, "tenants: %s\n", e.what());
    return 1;
  }
}
