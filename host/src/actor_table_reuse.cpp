// The actor table's slot reuse (see actor_table.hpp): forget() retires an actor, collect() lets go of the
// ones whose workers have acknowledged, and reclaim() returns a slot once no sender can still be reading it
// (after a grace period), folding its counters into the forgotten sums.

#include "actor_table.hpp"

#include "support.hpp"

namespace rk::detail {

void actor_table::set_host_state(std::uint32_t s, host_state state) {
  const std::uint32_t word = host_word_of_state(epoch_of(routes_[s].host_word), state);
  routes_[s].host_word = word;
  backend_.copy_to_device(&d_routes_.as<route_entry>()[s].host_word, &word, sizeof word);
}

void actor_table::retire(actor_index id, grace_periods& grace) {
  std::uint32_t s;
  bool wait_for_worker;
  {
    std::lock_guard lock(mutex_);
    actor_record& r = record(id, "forget()");
    s = slot(id);
    by_name_.erase(r.name);
    r.stage = stage_kind::retiring;
    wait_for_worker = !r.alias && r.launched && grace.workers_running();
    set_host_state(s, wait_for_worker ? host_state::retired : host_state::empty);
    if (wait_for_worker) retiring_.push_back(s);
  }
  if (wait_for_worker) wake_if_scheduled(id); // a scheduled actor's worker acknowledges once woken
  if (!wait_for_worker) grace.defer([this, s] { reclaim(s); });
}

give_up_plan actor_table::plan_give_up(actor_index id) const {
  std::lock_guard lock(mutex_);
  const actor_memory* m = record(id, "forget()").memory.get();
  if (m == nullptr) return {};
  return m->live > 1 ? give_up_plan{true, 0} : give_up_plan{false, m->pinned};
}

void actor_table::give_up(actor_index id, std::uint64_t bytes, std::uint64_t tenant,
                          std::uint64_t incarnation) noexcept {
  std::lock_guard lock(mutex_);
  actor_memory* m = records_[slot(id)].memory.get();
  if (m == nullptr) return;
  if (m->given_up == 0) {
    m->tenant = tenant;
    m->incarnation = incarnation;
  }
  m->given_up += bytes;
  m->live -= std::min(m->live, 1u);
  m->pinned = m->live > 0 ? m->pinned + bytes : 0; // the last one's plan moved them to held
}

void actor_table::collect(grace_periods& grace) {
  std::vector<std::uint32_t> released;
  {
    std::lock_guard lock(mutex_);
    for (auto it = retiring_.begin(); it != retiring_.end();) {
      std::uint32_t dw = 0;
      backend_.copy_from_device(&dw, &d_routes_.as<route_entry>()[*it].device_word, sizeof dw);
      const bool let_go = !grace.workers_running() ||
                          current_device_state(routes_[*it].host_word, dw) == device_state::retired;
      if (let_go) {
        // Unpublished before the grace period starts, as retire() does when no worker holds the actor: a
        // sender that found the entry still `retired` after the period began could otherwise read the
        // fields reclaim() rewrites (next_hop 0 is actor 0: the message went there, `delivered`).
        try {
          set_host_state(*it, host_state::empty);
          released.push_back(*it);
        } catch (...) { // the device is gone (a CUDA fault): the slot stays out of use
        }
        it = retiring_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (std::uint32_t s : released) grace.defer([this, s] { reclaim(s); });
}

void actor_table::reclaim(std::uint32_t s) noexcept {
  actor_memory freed;
  if (!reclaim_locked(s, freed)) return; // the device is gone: the slot stays out of use
  // Outside mutex_: it takes the tenant table's lock.
  if (freed.given_up != 0 && refund_) refund_(freed.tenant, freed.incarnation, freed.given_up);
}

bool actor_table::reclaim_locked(std::uint32_t s, actor_memory& freed) noexcept {
  std::lock_guard lock(mutex_);
  actor_record& r = records_[s];
  try {
    if (!r.alias) {
      actor_counters c;
      backend_.copy_from_device(&c, &d_counters_.as<actor_counters>()[s], sizeof c);
      add_forgotten(forgotten_, c);
      add_forgotten(forgotten_group(forgotten_groups_, r), c);
      if (!r.tenant_removed) {
        tenant_history& h = history_[r.tenant];
        h.passed += c.passed;
        h.handler_ns += c.handler_ns;
      }
      const actor_counters zero_counters{};
      const actor_private zero_private{};
      backend_.copy_to_device(&d_counters_.as<actor_counters>()[s], &zero_counters, sizeof zero_counters);
      backend_.copy_to_device(&d_privates_.as<actor_private>()[s], &zero_private, sizeof zero_private);
    }
    routes_[s] = route_entry{};
    write_entry(s);
  } catch (...) { // the device is gone (a CUDA fault): the slot stays out of use
    return false;
  }
  // Every holder of the block is a record of this table, under mutex_: the count says who is last. (A
  // refund at each slot's reclaim let a tenant keep memory 13 times its max_device_bytes uncharged, by
  // forgetting all but one of each spawn_many batch.)
  if (r.memory != nullptr && r.memory.use_count() == 1) {
    freed.given_up = r.memory->given_up;
    freed.tenant = r.memory->tenant;
    freed.incarnation = r.memory->incarnation;
  }
  r = actor_record{}; // the last holder frees the block
  slots_.release(s);
  return true;
}

std::size_t actor_table::retiring() const {
  std::lock_guard lock(mutex_);
  return retiring_.size();
}

void actor_table::forget_history(std::uint64_t tenant) {
  std::lock_guard lock(mutex_);
  history_.erase(tenant);
  // Actors of the tenant still retiring (forgotten, within their grace period) would add theirs later.
  for (actor_record& r : records_)
    if (r.stage != stage_kind::free && !r.alias && r.tenant == tenant) r.tenant_removed = true;
  // The forgotten actors' counts stay in their handler types' sums, no longer in the tenant's: the same id
  // added again starts its series from zero, all of them (its usage does).
  for (auto it = forgotten_groups_.begin(); it != forgotten_groups_.end();) {
    const auto [kind, of_tenant, removed] = it->first;
    if (of_tenant != tenant || removed) {
      ++it;
      continue;
    }
    add_counts(forgotten_group(forgotten_groups_, kind, tenant, true), it->second);
    it = forgotten_groups_.erase(it);
  }
}

} // namespace rk::detail
