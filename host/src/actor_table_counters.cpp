// The actor table's counters (see actor_table.hpp, "counters"): reading them back, the sums shutdown's
// drain and tenant usage need, and the counters of forgotten actors, kept per handler type and tenant so
// that no sum goes down when an actor is forgotten.

#include "actor_table.hpp"

#include <algorithm>

namespace rk::detail {

void actor_table::add_forgotten(actor_stats& into, const actor_counters& c) noexcept {
  for (std::size_t k = 0; k < status_count; ++k) into.sent[k] += sent_count(c, k);
  into.received += c.received;
  into.handled += c.handled;
  // Interrupted calls stay interrupted (shutdown reports them as lost to a fault); what is still queued
  // is never handled: count it as discarded.
  const std::uint64_t interrupted = std::min(c.interrupted, c.received - std::min(c.received, c.handled));
  into.interrupted += interrupted;
  into.discarded += c.received - std::min(c.received, c.handled + interrupted);
  into.deferred += c.deferred;
  into.reservations += c.reservations;
  into.handler_ns += c.handler_ns;
  for (std::size_t k = 0; k < handler_time_bucket_count; ++k) into.handler_time[k] += c.handler_time[k];
}

actor_stats& actor_table::forgotten_group(forgotten_map& groups, std::uint32_t kind, std::uint64_t tenant,
                                          bool tenant_removed) const {
  if (tenant_removed) tenant = 0;
  actor_stats& g = groups[{kind, tenant, tenant_removed}];
  if (g.name.empty()) {
    g.id = host_actor;
    g.name = forgotten_.name;
    g.lifecycle = actor_lifecycle::stopped;
    g.handler = kinds_[kind].ops.name;
    g.tenant = tenant;
    g.tenant_removed = tenant_removed;
  }
  return g;
}

std::vector<actor_counters> actor_table::read_counters() const {
  std::vector<actor_counters> c(records_.size());
  if (!c.empty()) backend_.copy_from_device(c.data(), d_counters_.get(), sizeof(actor_counters) * c.size());
  return c;
}

void actor_table::collect_stats(runtime_stats& out) const {
  std::lock_guard lock(mutex_);
  const std::vector<actor_counters> counters = read_counters();
  std::vector<route_entry> entries(records_.size());
  if (!entries.empty())
    backend_.copy_from_device(entries.data(), d_routes_.get(), sizeof(route_entry) * entries.size());
  out.forgotten = forgotten_;
  forgotten_map groups = forgotten_groups_;
  for (std::size_t s = 0; s < records_.size(); ++s) {
    const actor_record& r = records_[s];
    const actor_counters& c = counters[s];
    if (r.stage == stage_kind::retiring && !r.alias) {
      add_forgotten(out.forgotten, c);
      add_forgotten(forgotten_group(groups, r), c);
    }
    if (r.stage != stage_kind::active) continue;
    actor_stats a;
    a.id = r.id;
    a.name = r.name;
    a.lifecycle = lifecycle_of(r, entries[s].device_word);
    a.tenant = r.tenant;
    if (!r.alias) a.handler = kinds_[r.kind].ops.name;
    for (std::size_t k = 0; k < status_count; ++k) a.sent[k] = sent_count(c, k);
    a.received = c.received;
    a.handled = c.handled;
    a.discarded = c.discarded;
    a.interrupted = c.interrupted;
    a.deferred = c.deferred;
    a.reservations = c.reservations;
    a.fault_code = c.fault_code;
    a.handler_ns = c.handler_ns;
    std::copy(std::begin(c.handler_time), std::end(c.handler_time), a.handler_time.begin());
    out.actors.push_back(std::move(a));
  }
  out.forgotten_by_handler_and_tenant.clear();
  for (auto& [key, g] : groups) out.forgotten_by_handler_and_tenant.push_back(std::move(g));
}

void actor_table::drain_sums(std::uint64_t& finished, std::uint64_t& received) const {
  std::lock_guard lock(mutex_);
  // Finished first, then received: both only grow and a delivery is counted before it is published, so
  // equal sums prove that nothing was queued or inside a handler when `received` was read.
  const std::vector<actor_counters> first = read_counters();
  const std::vector<actor_counters> second = read_counters();
  finished = received = 0;
  for (std::size_t s = 0; s < records_.size(); ++s) {
    if (records_[s].stage == stage_kind::free || records_[s].alias) continue;
    finished += records_[s].stage == stage_kind::retiring
                    ? first[s].received
                    : first[s].handled + first[s].discarded + first[s].interrupted;
    received += records_[s].stage == stage_kind::retiring ? first[s].received : second[s].received;
  }
}

std::uint64_t actor_table::backlog() const {
  std::lock_guard lock(mutex_);
  const std::vector<actor_counters> now = read_counters();
  std::uint64_t queued = 0;
  for (std::size_t s = 0; s < records_.size(); ++s) {
    if (records_[s].stage == stage_kind::free || records_[s].alias ||
        records_[s].stage == stage_kind::retiring)
      continue;
    const std::uint64_t finished = now[s].handled + now[s].discarded + now[s].interrupted;
    queued += now[s].received - std::min(now[s].received, finished);
  }
  return queued;
}

tenant_history actor_table::tenant_sums(std::uint64_t tenant) const {
  std::lock_guard lock(mutex_);
  const std::vector<actor_counters> counters = read_counters();
  tenant_history sums;
  if (const auto it = history_.find(tenant); it != history_.end()) sums = it->second;
  for (std::size_t s = 0; s < records_.size(); ++s) {
    const actor_record& r = records_[s];
    if (r.stage == stage_kind::free || r.alias || r.tenant != tenant || r.tenant_removed) continue;
    sums.passed += counters[s].passed;
    sums.handler_ns += counters[s].handler_ns;
  }
  return sums;
}

std::vector<std::pair<mailbox_state, actor_lifecycle>> actor_table::nonempty_mailboxes() const {
  std::lock_guard lock(mutex_);
  const std::vector<actor_counters> counters = read_counters();
  std::vector<route_entry> entries(records_.size());
  if (!entries.empty())
    backend_.copy_from_device(entries.data(), d_routes_.get(), sizeof(route_entry) * entries.size());
  std::vector<std::pair<mailbox_state, actor_lifecycle>> out;
  for (std::size_t s = 0; s < records_.size(); ++s) {
    const actor_record& r = records_[s];
    if (r.stage != stage_kind::active || r.alias) continue;
    const actor_counters& c = counters[s];
    const std::uint64_t finished = c.handled + c.discarded + c.interrupted;
    if (c.received <= finished) continue;
    mailbox_state m;
    m.actor = r.id;
    m.name = r.name;
    m.handler = kinds_[r.kind].ops.name;
    m.tenant = r.tenant;
    m.queued = c.received - finished;
    m.host_word = routes_[s].host_word;
    m.device_word = entries[s].device_word;
    const route_entry& e = routes_[s];
    m.lane_count = e.lanes;
    for (std::uint32_t lane = 0; lane < e.lanes && lane < priority_levels; ++lane) {
      const ring_view v = lane_view(e, lane);
      std::uint64_t cursors[2] = {}; // tail (next claim), then head (next read)
      backend_.copy_from_device(&cursors[0], v.tail, sizeof cursors[0]);
      backend_.copy_from_device(&cursors[1], v.head, sizeof cursors[1]);
      m.lanes[lane] = cursors[0] > cursors[1] ? cursors[0] - cursors[1] : 0;
    }
    out.emplace_back(std::move(m), lifecycle_of(r, entries[s].device_word));
  }
  return out;
}

std::uint64_t actor_table::actor_count() const {
  std::lock_guard lock(mutex_);
  std::uint64_t n = 0;
  for (const actor_record& r : records_) n += r.stage == stage_kind::active && !r.alias ? 1 : 0;
  return n;
}

} // namespace rk::detail
