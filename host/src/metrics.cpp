// Metrics rendering (see metrics.hpp): sums per handler type and tenant, then the Prometheus text
// exposition format 0.0.4 and a JSON document (nlohmann-json) of the same values.

#include "metrics.hpp"
#include "support.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>

namespace rk::detail {

namespace {

constexpr std::array<const char*, fault_counts::kinds> fault_kind_names = {"exception", "trap", "watchdog"};

//! The actors that get their own series: the first max_actor_series non-alias actors by id.
std::vector<const actor_stats*> actor_series(const metrics_reading& r, const metrics_options& o,
                                             std::uint64_t& omitted) {
  std::vector<const actor_stats*> all;
  for (const actor_stats& a : r.stats.actors)
    if (a.lifecycle != actor_lifecycle::alias) all.push_back(&a);
  std::sort(all.begin(), all.end(), [](const actor_stats* x, const actor_stats* y) { return x->id < y->id; });
  const std::size_t kept = std::min<std::size_t>(all.size(), o.max_actor_series);
  omitted = all.size() - kept;
  all.resize(kept);
  return all;
}

std::uint64_t histogram_count(const actor_stats& a) {
  std::uint64_t n = 0;
  for (std::uint64_t b : a.handler_time) n += b;
  return n;
}

// --- Prometheus text ------------------------------------------------------------------------------------

//! A label value as the text format wants it: backslash, double quote and line feed escaped. Every other
//! byte, NUL and the other control characters included, is legal as it is (the reference parser reads them
//! back exactly: tests/host/test_metrics.cpp).
std::string escaped(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string seconds_text(double s) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%.9g", s);
  return buffer;
}

class exposition {
public:
  //! Starts a metric family: HELP and TYPE lines (`name` without the _total suffix of counters).
  void family(const std::string& name, const char* type, const char* help) {
    out_ += "# HELP " + name + ' ' + help + "\n# TYPE " + name + ' ' + type + '\n';
  }
  void sample(const std::string& name, const std::string& labels, std::uint64_t value) {
    line(name, labels, std::to_string(value));
  }
  void sample(const std::string& name, const std::string& labels, double value) {
    line(name, labels, seconds_text(value));
  }
  //! A handler-time histogram from non-cumulative buckets (ns bounds) and a sum in nanoseconds.
  void histogram(const std::string& name, const std::string& labels, const actor_stats& a) {
    std::uint64_t cumulative = 0;
    const std::string sep = labels.empty() ? "" : ",";
    for (std::size_t k = 0; k < handler_time_bucket_count; ++k) {
      cumulative += a.handler_time[k];
      const std::string le = k + 1 == handler_time_bucket_count
                                 ? "+Inf"
                                 : seconds_text(static_cast<double>(handler_time_bucket_bound_ns(k)) * 1e-9);
      sample(name + "_bucket", labels + sep + "le=\"" + le + '"', cumulative);
    }
    sample(name + "_sum", labels, static_cast<double>(a.handler_ns) * 1e-9);
    sample(name + "_count", labels, cumulative);
  }
  std::string take() { return std::move(out_); }

private:
  void line(const std::string& name, const std::string& labels, const std::string& value) {
    out_ += name;
    if (!labels.empty()) out_ += '{' + labels + '}';
    out_ += ' ' + value + '\n';
  }
  std::string out_;
};

std::string label(const char* key, std::string_view value) {
  return std::string(key).append("=\"").append(escaped(value)).append("\"");
}

std::string with(const std::string& labels, const std::string& more) {
  return labels.empty() ? more : labels + ',' + more;
}

//! The counter families every level (handler type, tenant, actor) shares, for one `level` prefix.
void counter_families(exposition& e, const std::string& prefix, const std::string& what,
                      const std::vector<std::pair<std::string, const actor_stats*>>& rows,
                      bool all_outcomes) {
  const auto each = [&](const char* suffix, const char* type, const std::string& help, auto value) {
    const std::string name = prefix + suffix;
    e.family(name, type, help.c_str());
    for (const auto& [labels, a] : rows) value(name, labels, *a);
  };
  const auto simple = [&](const char* suffix, const char* help, std::uint64_t actor_stats::*field) {
    each(suffix, "counter", std::string(help).append(" (").append(what).append(")"),
         [&](const std::string& name, const std::string& labels, const actor_stats& a) {
           e.sample(name, labels, a.*field);
         });
  };
  simple("_received_total", "Messages delivered into the mailbox", &actor_stats::received);
  simple("_handled_total", "Messages the handler finished", &actor_stats::handled);
  simple("_discarded_total", "Messages that arrived after a stop or fault, counted and not handled",
         &actor_stats::discarded);
  simple("_deferred_total", "Handler calls that ended in ctx.defer()", &actor_stats::deferred);
  simple("_interrupted_total", "Messages whose handler call faulted", &actor_stats::interrupted);
  each("_sent_total", "counter", "Sends by outcome (" + what + ")",
       [&](const std::string& name, const std::string& labels, const actor_stats& a) {
         for (std::size_t k = 0; k < status_count; ++k) {
           const auto s = static_cast<status>(k);
           if (!all_outcomes && a.sent[k] == 0 && s != status::delivered) continue;
           e.sample(name, with(labels, label("outcome", to_string(s))), a.sent[k]);
         }
       });
  each("_queued", "gauge", "Messages in mailboxes or handlers now (" + what + ")",
       [&](const std::string& name, const std::string& labels, const actor_stats& a) {
         e.sample(name, labels, a.queued());
       });
  // ringkernel_handler_time_seconds at the handler type's level, else ringkernel_L_handler_time_seconds.
  const bool handler_level = prefix == "ringkernel_handler";
  each(handler_level ? "_time_seconds" : "_handler_time_seconds", "histogram",
       "Handler call durations (" + what + ")",
       [&](const std::string& name, const std::string& labels, const actor_stats& a) {
         e.histogram(name, labels, a);
       });
}

void runtime_families(exposition& e, const metrics_reading& r) {
  e.family("ringkernel_info", "gauge", "The backend this runtime runs on and why (value 1)");
  e.sample("ringkernel_info", with(label("backend", r.backend), label("description", r.backend_description)),
           std::uint64_t{1});
  e.family("ringkernel_running", "gauge", "1 while the runtime runs (between start() and shutdown())");
  e.sample("ringkernel_running", "", std::uint64_t{r.running ? 1u : 0u});
  e.family("ringkernel_faulted", "gauge", "1 once the runtime faulted as a whole (a device fault)");
  e.sample("ringkernel_faulted", "", std::uint64_t{r.faulted ? 1u : 0u});
  e.family("ringkernel_uptime_seconds", "gauge", "Seconds since start()");
  e.sample("ringkernel_uptime_seconds", "", r.uptime_seconds);
  const auto by_outcome = [&](const char* name, const char* help, const status_counts& c) {
    e.family(name, "counter", help);
    for (std::size_t k = 0; k < status_count; ++k)
      e.sample(name, label("outcome", to_string(static_cast<status>(k))), c[k]);
  };
  by_outcome("ringkernel_host_sends_total", "What runtime::send and send_wait returned", r.stats.host_sends);
  by_outcome("ringkernel_gateway_verdicts_total", "What the device decided for each settled host message",
             r.stats.gateway_verdicts);
  const auto counter = [&](const char* name, const char* help, std::uint64_t v) {
    e.family(name, "counter", help);
    e.sample(name, "", v);
  };
  counter("ringkernel_gateway_processed_total", "Host messages settled (delivered or refused)",
          r.stats.gateway_processed);
  counter("ringkernel_gateway_parked_total", "Host messages that waited for room in the gateway",
          r.stats.gateway_parked_total);
  e.family("ringkernel_gateway_parked_now", "gauge", "Host messages waiting for room in the gateway now");
  e.sample("ringkernel_gateway_parked_now", "", r.stats.gateway_parked);
  counter("ringkernel_host_received_total", "Messages runtime::receive returned", r.stats.host_received);
  counter("ringkernel_audit_entries_total", "Audit entries chained and delivered to the sinks",
          r.audit.entries);
  counter("ringkernel_audit_records_lost_total", "Audit records the full device ring refused",
          r.audit.records_lost);
  counter("ringkernel_audit_overflow_reports_total", "audit_overflow entries written",
          r.audit.overflow_reports);
  counter("ringkernel_audit_malformed_total", "Audit ring slots that held no audit record",
          r.audit.malformed);
  counter("ringkernel_audit_sink_failures_total", "Audit sink calls that threw", r.audit.sink_failures);
  const trace_stats& t = r.stats.trace;
  counter("ringkernel_trace_records_collected_total", "Sampled handler calls taken off the device trace ring",
          t.collected);
  counter("ringkernel_trace_records_ring_full_total",
          "Sampled handler calls dropped: the trace ring was full", t.ring_full);
  counter("ringkernel_trace_records_evicted_total", "Trace records evicted on the host (trace.max_records)",
          t.evicted);
  e.family("ringkernel_faults_total", "counter", "Per-actor faults by handler type and kind");
  for (const auto& [handler, kinds] : r.faults.by_handler)
    for (std::size_t k = 0; k < fault_counts::kinds; ++k)
      e.sample("ringkernel_faults_total", with(label("handler", handler), label("kind", fault_kind_names[k])),
               kinds[k]);
}

//! Tenant usage (tenants().all_usage()) and the sums of the tenants' actors, for every current tenant.
void tenant_families(exposition& e, const metrics_reading& r, const grouped& g) {
  const auto each = [&](const char* name, const char* type, const char* help, auto value) {
    e.family(name, type, help);
    for (const tenant_usage& u : r.tenants)
      value(std::string(name), label("tenant", std::to_string(u.tenant)), u);
  };
  each("ringkernel_tenant_actors", "gauge", "Current actors of each tenant",
       [&](const std::string& n, const std::string& l, const tenant_usage& u) { e.sample(n, l, u.actors); });
  each("ringkernel_tenant_device_bytes", "gauge", "Device memory charged to each tenant",
       [&](const std::string& n, const std::string& l, const tenant_usage& u) {
         e.sample(n, l, u.device_bytes);
       });
  each("ringkernel_tenant_messages_sent_total", "counter",
       "Messages of each tenant (host and actors) that passed every device check and were delivered",
       [&](const std::string& n, const std::string& l, const tenant_usage& u) {
         e.sample(n, l, u.messages_sent);
       });
  each("ringkernel_tenant_rate_rejections_total", "counter", "Sends refused for the tenant's message rate",
       [&](const std::string& n, const std::string& l, const tenant_usage& u) {
         e.sample(n, l, u.rate_rejections);
       });
  each("ringkernel_tenant_budget_rejections_total", "counter",
       "Sends refused for an exhausted engagement budget",
       [&](const std::string& n, const std::string& l, const tenant_usage& u) {
         e.sample(n, l, u.budget_rejections);
       });
  std::vector<std::pair<std::string, const actor_stats*>> rows;
  static const actor_stats none{};
  for (const tenant_usage& u : r.tenants) {
    const auto it = g.by_tenant.find(u.tenant);
    rows.emplace_back(label("tenant", std::to_string(u.tenant)),
                      it == g.by_tenant.end() ? &none : &it->second.sums);
  }
  counter_families(e, "ringkernel_tenant", "per tenant", rows, true);
}

} // namespace

std::string prometheus_text(const metrics_reading& r, const metrics_options& options) {
  exposition e;
  runtime_families(e, r);
  const grouped g = group(r, true);

  std::vector<std::pair<std::string, const actor_stats*>> rows;
  for (const auto& [handler, t] : g.by_handler) rows.emplace_back(label("handler", handler), &t.sums);
  e.family("ringkernel_handler_actors", "gauge", "Current actors of each handler type");
  for (const auto& [handler, t] : g.by_handler)
    e.sample("ringkernel_handler_actors", label("handler", handler), t.actors);
  counter_families(e, "ringkernel_handler", "per handler type", rows, true);

  tenant_families(e, r, g);

  std::uint64_t omitted = 0;
  const std::vector<const actor_stats*> actors = actor_series(r, options, omitted);
  rows.clear();
  for (const actor_stats* a : actors)
    rows.emplace_back(label("actor", a->name) + ',' + label("id", std::to_string(a->id)) + ',' +
                          label("handler", a->handler) + ',' + label("tenant", std::to_string(a->tenant)),
                      a);
  e.family("ringkernel_actor_series_omitted", "gauge",
           "Actors without series of their own (metrics_options::max_actor_series)");
  e.sample("ringkernel_actor_series_omitted", "", omitted);
  e.family("ringkernel_actor_lifecycle", "gauge", "1 for the lifecycle each actor is in");
  for (const auto& [labels, a] : rows)
    e.sample("ringkernel_actor_lifecycle", with(labels, label("lifecycle", to_string(a->lifecycle))),
             std::uint64_t{1});
  e.family("ringkernel_actor_faults_total", "counter", "Faults reported for each actor");
  for (const auto& [labels, a] : rows) {
    const auto it = r.faults.by_actor.find(a->id);
    e.sample("ringkernel_actor_faults_total", labels, it == r.faults.by_actor.end() ? 0 : it->second);
  }
  counter_families(e, "ringkernel_actor", "per actor", rows, false);
  return e.take();
}

// --- JSON -----------------------------------------------------------------------------------------------

namespace {

nlohmann::json outcomes(const status_counts& c, bool all) {
  nlohmann::json o = nlohmann::json::object();
  for (std::size_t k = 0; k < status_count; ++k)
    if (all || c[k] != 0) o[to_string(static_cast<status>(k))] = c[k];
  return o;
}

nlohmann::json counters(const actor_stats& a, bool all_outcomes) {
  nlohmann::json buckets = nlohmann::json::array();
  for (std::size_t k = 0; k < handler_time_bucket_count; ++k) {
    nlohmann::json b = {{"count", a.handler_time[k]}};
    b["le_ns"] = k + 1 == handler_time_bucket_count ? nlohmann::json(nullptr)
                                                    : nlohmann::json(handler_time_bucket_bound_ns(k));
    buckets.push_back(std::move(b));
  }
  return {{"received", a.received},
          {"handled", a.handled},
          {"discarded", a.discarded},
          {"deferred", a.deferred},
          {"interrupted", a.interrupted},
          {"queued", a.queued()},
          {"sent", outcomes(a.sent, all_outcomes)},
          {"handler_time",
           {{"sum_ns", a.handler_ns}, {"count", histogram_count(a)}, {"buckets", std::move(buckets)}}}};
}

} // namespace

std::string metrics_json(const metrics_reading& r, const metrics_options& options) {
  const grouped g = group(r, true);
  nlohmann::json doc;
  doc["format"] = "ringkernel-metrics/1";
  doc["backend"] = r.backend;
  doc["backend_description"] = r.backend_description;
  doc["running"] = r.running;
  doc["faulted"] = r.faulted;
  doc["uptime_seconds"] = r.uptime_seconds;
  doc["host"] = {{"sends", outcomes(r.stats.host_sends, true)}, {"received", r.stats.host_received}};
  doc["gateway"] = {{"verdicts", outcomes(r.stats.gateway_verdicts, true)},
                    {"processed", r.stats.gateway_processed},
                    {"parked_now", r.stats.gateway_parked},
                    {"parked_total", r.stats.gateway_parked_total}};
  doc["audit"] = {{"entries", r.audit.entries},
                  {"records_lost", r.audit.records_lost},
                  {"overflow_reports", r.audit.overflow_reports},
                  {"malformed", r.audit.malformed},
                  {"sink_failures", r.audit.sink_failures},
                  {"complete", r.audit.complete}};
  doc["trace"] = {{"sample_every", r.stats.trace.sample_every},
                  {"collected", r.stats.trace.collected},
                  {"ring_full", r.stats.trace.ring_full},
                  {"evicted", r.stats.trace.evicted},
                  {"kept", r.stats.trace.kept},
                  {"complete", r.stats.trace.complete}};
  nlohmann::json handlers = nlohmann::json::array();
  for (const auto& [name, t] : g.by_handler) {
    nlohmann::json h = counters(t.sums, true);
    h["handler"] = name;
    h["actors"] = t.actors;
    nlohmann::json faults = {{"exception", 0}, {"trap", 0}, {"watchdog", 0}};
    if (const auto it = r.faults.by_handler.find(name); it != r.faults.by_handler.end())
      for (std::size_t k = 0; k < fault_counts::kinds; ++k) faults[fault_kind_names[k]] = it->second[k];
    h["faults"] = std::move(faults);
    handlers.push_back(std::move(h));
  }
  doc["handler_types"] = std::move(handlers);
  nlohmann::json tenants = nlohmann::json::array();
  for (const tenant_usage& u : r.tenants) {
    const auto it = g.by_tenant.find(u.tenant);
    nlohmann::json t = counters(it == g.by_tenant.end() ? actor_stats{} : it->second.sums, true);
    t["tenant"] = u.tenant;
    t["actors"] = u.actors;
    t["device_bytes"] = u.device_bytes;
    t["messages_sent"] = u.messages_sent;
    t["rate_rejections"] = u.rate_rejections;
    t["budget_rejections"] = u.budget_rejections;
    t["handler_ns"] = u.handler_ns;
    tenants.push_back(std::move(t));
  }
  doc["tenants"] = std::move(tenants);
  std::uint64_t omitted = 0;
  nlohmann::json actors = nlohmann::json::array();
  for (const actor_stats* a : actor_series(r, options, omitted)) {
    nlohmann::json j = counters(*a, false);
    j["id"] = a->id;
    j["name"] = a->name;
    j["handler"] = a->handler;
    j["tenant"] = a->tenant;
    j["lifecycle"] = to_string(a->lifecycle);
    const auto it = r.faults.by_actor.find(a->id);
    j["faults"] = it == r.faults.by_actor.end() ? 0 : it->second;
    actors.push_back(std::move(j));
  }
  doc["actors"] = std::move(actors);
  doc["actor_series_omitted"] = omitted;
  // Names given at setup are checked to be UTF-8; other text (a handler type's own name) that is not is
  // written with U+FFFD in place of the bad bytes instead of throwing.
  return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

void totals::add(const actor_stats& a, bool current) {
  actors += current ? 1 : 0;
  add_counts(sums, a);
}

grouped group(const metrics_reading& r, bool fault_only_handlers) {
  grouped g;
  for (const actor_stats& a : r.stats.actors) {
    if (a.lifecycle == actor_lifecycle::alias) continue;
    g.by_handler[a.handler].add(a, true);
    g.by_tenant[a.tenant].add(a, true);
  }
  for (const actor_stats& f : r.stats.forgotten_by_handler_and_tenant) {
    g.by_handler[f.handler].add(f, false);
    if (!f.tenant_removed) g.by_tenant[f.tenant].add(f, false);
  }
  if (fault_only_handlers)
    for (const auto& [handler, counts] : r.faults.by_handler)
      if (!handler.empty() && handler != "(unknown)")
        g.by_handler[handler]; // a series even when all are gone
  return g;
}

} // namespace rk::detail
