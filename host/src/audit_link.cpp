// The runtime's end of the audit log (see audit_link.hpp).

#include "audit_link.hpp"

#include "service_thread.hpp"

#include <algorithm>
#include <new>

namespace rk::detail {

namespace {
//! An application's sink, called with its runtime marked as the callback's (see service_thread.hpp).
class runtime_callback_sink final : public audit_sink {
public:
  runtime_callback_sink(std::shared_ptr<audit_sink> sink, const void* runtime_id)
      : sink_(std::move(sink)), id_(runtime_id) {}
  void write(const audit_entry& entry) override {
    const callback_scope scope(id_);
    sink_->write(entry);
  }
  void flush() override {
    const callback_scope scope(id_);
    sink_->flush();
  }

private:
  std::shared_ptr<audit_sink> sink_;
  const void* id_;
};
} // namespace

audit_link::audit_link(memory_pool& memory, backend_impl& backend, const runtime_options& options,
                       const void* runtime_id)
    : backend_(backend) {
  // validated with the options
  ring_ = allocate_device_to_host_ring(memory, audit_ring_geometry(options.audit_ring_slots),
                                       "the audit ring (runtime_options::audit_ring_slots)");
  channel_.ring = ring_.device_view;
  channel_.overflow = ring_.refused;

  memory_sink_ = std::make_shared<audit_memory_sink>(std::max<std::size_t>(1, options.audit_memory_records));
  std::vector<std::shared_ptr<audit_sink>> sinks{memory_sink_};
  for (const auto& sink : options.audit_sinks)
    if (sink) sinks.push_back(std::make_shared<runtime_callback_sink>(sink, runtime_id));
  audit_drain_options o;
  o.key = options.audit_key;
  const std::uint64_t* tail = channel_.ring.tail;
  const std::uint64_t* overflow = channel_.overflow;
  o.read_claimed = [this, tail] { return read_device_u64(tail); };
  drain_ = std::make_unique<audit_drain>(
      ring_.host_view, [this, overflow] { return read_device_u64(overflow); }, std::move(sinks), o);
}

std::uint64_t audit_link::read_device_u64(const std::uint64_t* word) const {
  std::uint64_t v = 0;
  backend_.copy_from_device(&v, word, sizeof v);
  return v;
}

void audit_link::record(audit_event event, audit_level level, actor_index actor, std::uint64_t tenant,
                        std::uint32_t detail, std::uint64_t value) noexcept {
  audit_record r;
  r.event = event;
  r.level = level;
  r.actor = actor;
  r.tenant = tenant;
  r.detail = detail;
  r.value = value;
  record_as(r);
}

std::map<actor_index, audit_link::identity_run>::iterator audit_link::run_of(actor_index a) {
  auto it = identities_.upper_bound(a);
  if (it == identities_.begin()) return identities_.end();
  --it;
  return a - it->first < it->second.count ? it : identities_.end();
}

void audit_link::record_as(audit_record r) noexcept {
  if (!drain_) return;
  {
    std::lock_guard lock(identities_mutex_);
    if (const auto it = run_of(r.actor); it != identities_.end()) {
      r.tenant = it->second.tenant;
      r.tag = it->second.tag;
    }
  }
  (void)drain_->record_host(r); // not_running only after stop()
}

void audit_link::record_spawned(std::span<const actor_index> ids, std::uint64_t tenant, const audit_tag& tag,
                                std::uint32_t kind, bool one_record_each) {
  // Runs of consecutive ids, in the order given (spawn_many hands ids out in name order).
  std::vector<std::pair<actor_index, std::uint32_t>> runs;
  for (actor_index id : ids) {
    if (!runs.empty() && runs.back().first + runs.back().second == id)
      ++runs.back().second;
    else
      runs.emplace_back(id, 1);
  }
  std::map<actor_index, identity_run> added; // allocated here, spliced in below without allocating
  for (const auto& [first, count] : runs) added.emplace(first, identity_run{count, tenant, tag});
  {
    std::lock_guard lock(identities_mutex_);
    identities_.merge(added); // new ids: never a key already there (a forgotten id's run was split off)
  }
  audit_record r;
  r.event = audit_event::actor_spawn;
  r.level = audit_level::info;
  r.tenant = tenant;
  r.tag = tag;
  r.value = kind;
  if (!drain_) return;
  [&]() noexcept { // like record(): a spawn is never half audited and then undone
    for (const auto& [first, count] : runs) {
      if (one_record_each) {
        for (std::uint32_t i = 0; i < count; ++i) {
          r.actor = first + i;
          (void)drain_->record_host(r);
        }
      } else { // detail 1 would read as a respawn: a run of one is written like spawn()'s record
        r.actor = first;
        r.detail = count == 1 ? 0 : count;
        (void)drain_->record_host(r);
      }
    }
  }();
}

void audit_link::record_restored(std::span<const restored_actor> actors) {
  std::map<actor_index, identity_run> added; // allocated here, spliced in below without allocating
  auto last = added.end();                   // the run being extended: consecutive ids, one tenant
  for (const restored_actor& a : actors) {
    if (last != added.end() && last->first + last->second.count == a.id && last->second.tenant == a.tenant)
      ++last->second.count;
    else
      last = added.emplace(a.id, identity_run{1, a.tenant, audit_tag{}}).first;
  }
  {
    std::lock_guard lock(identities_mutex_);
    identities_.merge(added); // new ids: never a key already there
  }
  if (!drain_) return;
  [&]() noexcept {
    audit_record r;
    r.event = audit_event::actor_spawn;
    r.level = audit_level::info;
    for (const restored_actor& a : actors) {
      r.actor = a.id;
      r.tenant = a.tenant;
      r.value = a.kind;
      (void)drain_->record_host(r);
    }
  }();
}

void audit_link::record_forgotten(actor_index a, std::uint64_t tenant) noexcept {
  record(audit_event::actor_stop, audit_level::info, a, tenant, 1); // detail 1: forgotten
  std::lock_guard lock(identities_mutex_);
  const auto it = run_of(a);
  if (it == identities_.end()) return;
  identity_run& run = it->second;
  const std::uint32_t before = a - it->first;         // ids of the run before `a`
  const std::uint32_t after = run.count - before - 1; // and after it
  if (before == 0) { // the run's node moves on to the next id: nothing to allocate
    auto node = identities_.extract(it);
    if (after == 0) return;
    node.key() = a + 1;
    node.mapped().count = after;
    identities_.insert(std::move(node));
    return;
  }
  run.count = before;
  if (after == 0) return;
  try {
    identities_.emplace(a + 1, identity_run{after, run.tenant, run.tag});
  } catch (const std::bad_alloc&) {
    // Out of memory splitting a run: its actors after `a` then record with the tenant their callers pass
    // and no tag. Their records are still written; forget() cannot fail here.
  }
}

void audit_link::stop() noexcept {
  if (drain_) (void)drain_->stop();
}

void audit_link::note_workers_running() noexcept {
  if (drain_) drain_->note_producers_running();
}

} // namespace rk::detail
