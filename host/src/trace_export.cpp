// Chrome trace JSON for the sampled message trace (see <ringkernel/host/trace.hpp> for the format).

#include <ringkernel/host/trace.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <set>

namespace rk {

namespace {

//! Chrome's track id of an actor: id + 1, so that the host (host_actor) is track 0.
std::uint64_t track_of(actor_index a) noexcept {
  return a == host_actor ? 0 : std::uint64_t{a} + 1;
}

std::string named(const std::function<std::string(std::uint32_t)>& lookup, std::uint32_t id,
                  const char* fallback) {
  std::string name;
  if (lookup) name = lookup(id);
  return name.empty() ? std::string(fallback).append(std::to_string(id)) : name;
}

//! Microseconds since `origin` with nanosecond resolution (values stay small, so a double keeps them exact).
double micros_since(std::uint64_t ns, std::uint64_t origin) noexcept {
  return static_cast<double>(ns - origin) / 1'000.0;
}

} // namespace

std::string chrome_trace_json(std::span<const trace_record> records, const trace_names& names,
                              const trace_stats& stats) {
  std::uint64_t origin = 0;
  if (!records.empty()) {
    origin = ~std::uint64_t{0};
    for (const trace_record& r : records)
      origin = std::min({origin, r.message.timestamp.physical_ns, r.call.begin_ns});
  }
  nlohmann::ordered_json events = nlohmann::ordered_json::array();
  events.push_back({{"ph", "M"},
                    {"name", "process_name"},
                    {"pid", 1},
                    {"tid", 0},
                    {"args", {{"name", "ringkernel runtime"}}}});
  std::set<actor_index> actors{host_actor};
  for (const trace_record& r : records) {
    actors.insert(r.call.actor);
    actors.insert(r.message.source);
  }
  for (actor_index a : actors) {
    std::string label = "host";
    if (a != host_actor) {
      std::string name;
      if (names.actor) name = names.actor(a);
      label =
          name.empty()
              ? std::string("actor ").append(std::to_string(a))
              : std::string("actor '").append(name).append("' (id ").append(std::to_string(a)).append(")");
    }
    events.push_back({{"ph", "M"},
                      {"name", "thread_name"},
                      {"pid", 1},
                      {"tid", track_of(a)},
                      {"args", {{"name", label}}}});
  }
  std::uint64_t flow = 0;
  for (const trace_record& r : records) {
    const std::string type = named(names.message_type, r.message.type_id, "type ");
    const std::uint64_t end = std::max(r.call.end_ns, r.call.begin_ns);
    const auto queued = static_cast<std::int64_t>(r.call.begin_ns - r.message.timestamp.physical_ns);
    char id[32];
    std::snprintf(id, sizeof id, "0x%llx", static_cast<unsigned long long>(++flow));
    const std::uint64_t track = track_of(r.call.actor);
    events.push_back({{"ph", "X"},
                      {"cat", "handler"},
                      {"name", type},
                      {"pid", 1},
                      {"tid", track},
                      {"ts", micros_since(r.call.begin_ns, origin)},
                      {"dur", micros_since(end, r.call.begin_ns)},
                      {"args",
                       {{"source", r.message.source == host_actor ? std::string("host")
                                                                  : std::to_string(r.message.source)},
                        {"actor", r.call.actor},
                        {"destination", r.message.destination},
                        {"type_id", r.message.type_id},
                        {"correlation_id", r.message.correlation_id},
                        {"tenant", r.message.tenant},
                        {"priority", r.message.priority},
                        {"hops", r.message.hops},
                        {"outcome", to_string(r.call.outcome)},
                        {"queued_ns", queued}}}});
    // The wait in the mailbox: an async span, so that overlapping waits need not nest.
    const std::uint64_t sent = std::min(r.message.timestamp.physical_ns, r.call.begin_ns);
    events.push_back({{"ph", "b"},
                      {"cat", "queue"},
                      {"name", type + " queued"},
                      {"id", id},
                      {"pid", 1},
                      {"tid", track},
                      {"ts", micros_since(sent, origin)}});
    events.push_back({{"ph", "e"},
                      {"cat", "queue"},
                      {"name", type + " queued"},
                      {"id", id},
                      {"pid", 1},
                      {"tid", track},
                      {"ts", micros_since(r.call.begin_ns, origin)}});
  }
  const nlohmann::ordered_json doc = {{"displayTimeUnit", "ns"},
                                      {"otherData",
                                       {{"producer", "libringkernel"},
                                        {"origin_unix_ns", std::to_string(origin)},
                                        {"sample_every", stats.sample_every},
                                        {"collected", stats.collected},
                                        {"ring_full", stats.ring_full},
                                        {"evicted", stats.evicted},
                                        {"kept", stats.kept},
                                        {"complete", stats.complete}}},
                                      {"traceEvents", std::move(events)}};
  // Names given at setup are checked to be UTF-8; other text (a handler type's own name) that is not is
  // written with U+FFFD in place of the bad bytes instead of throwing.
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace rk
