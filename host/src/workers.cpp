// The worker registry (see workers.hpp).

#include "workers.hpp"

#include "support.hpp"

#include <ringkernel/host/error.hpp>

#include <algorithm>
#include <cstring>
#include <new>

namespace rk::detail {

std::vector<worker_group> launch_record::backend_groups(const system_view& sys) const {
  std::vector<worker_group> out;
  std::uint32_t next = first;
  for (const launch_group& g : groups) {
    worker_group w;
    w.ops = g.ops;
    w.scheduled = g.scheduled;
    w.workers = g.workers();
    w.params.kind = g.kind;
    w.host_worker_actors = g.actors.data();
    w.host_states = g.states.data();
    w.params.sys = sys;
    w.params.worker_actors = g.d_actors.as<const actor_index>();
    w.params.states = g.d_states.as<void* const>();
    w.params.first_worker = next;
    w.actors_description = g.description;
    next += w.workers;
    out.push_back(std::move(w));
  }
  return out;
}

worker_registry::worker_registry(memory_pool& memory, backend_impl& backend, std::uint32_t capacity)
    : memory_(memory), backend_(backend), capacity_(capacity), entries_(capacity) {
  control_ = memory.allocate_mapped(sizeof(control_block), "the control block");
  live_control_ = memory.allocate(sizeof(device_control), "the device control words");
  status_ =
      memory.allocate_mapped(sizeof(worker_status) * (std::size_t{capacity} + 1), "worker status entries");
}

void worker_registry::describe(system_view& sys) const {
  sys.control = static_cast<control_block*>(control_.device());
  sys.live = live_control_.as<device_control>();
  sys.workers = static_cast<worker_status*>(status_.device());
}

launch_record& worker_registry::prepare(std::vector<launch_group> groups, const std::string& who) {
  std::uint32_t total = 0;
  for (const launch_group& g : groups) total += g.workers();
  auto record = std::make_unique<launch_record>();
  {
    std::lock_guard lock(mutex_);
    const std::optional<std::uint64_t> first = entries_.allocate(total);
    if (!first)
      throw out_of_room(
          who + ": no room for " + std::to_string(total) + " more workers (" +
          std::to_string(entries_.used()) + " of " + std::to_string(capacity_) +
          " worker entries hold workers that have not exited: one per actor (runtime_options::max_actors) "
          "plus 8192 for scheduled pools; lower runtime_options::scheduled_workers)");
    record->first = static_cast<std::uint32_t>(*first);
    record->reserved = total;
  }
  try {
    // The previous holders of these entries exited and were joined: nothing writes them now.
    std::fill_n(static_cast<worker_status*>(status_.host()) + record->first, total, worker_status{});
    for (launch_group& g : groups) {
      const std::size_t n = g.actors.size();
      if (n == 0) continue; // a scheduled pool: its workers find their actors in the run queue
      g.d_actors = memory_.allocate(sizeof(actor_index) * n, "worker lists");
      backend_.copy_to_device(g.d_actors.get(), g.actors.data(), sizeof(actor_index) * n);
      g.d_states = memory_.allocate(sizeof(void*) * n, "worker lists");
      backend_.copy_to_device(g.d_states.get(), g.states.data(), sizeof(void*) * n);
    }
  } catch (...) {
    std::lock_guard lock(mutex_);
    entries_.free(record->first, record->reserved);
    throw;
  }
  record->groups = std::move(groups);
  std::lock_guard lock(mutex_);
  launches_.push_back(std::move(record));
  return *launches_.back();
}

void worker_registry::started(launch_record& launch, std::uint32_t used) {
  std::lock_guard lock(mutex_);
  launch.started = true;
  launch.used = std::min(used, launch.reserved);
  if (launch.used < launch.reserved) entries_.free(launch.first + launch.used, launch.reserved - launch.used);
  launch.reserved = launch.used;
}

void worker_registry::discard(launch_record& launch) noexcept {
  std::lock_guard lock(mutex_);
  entries_.free(launch.first, launch.reserved);
  std::erase_if(launches_, [&](const auto& l) { return l.get() == &launch; });
}

void worker_registry::abandon(launch_record& launch) noexcept {
  std::lock_guard lock(mutex_);
  launch.abandoned = true;
  backend_.abandon_workers(launch.first, launch.used);
}

void worker_registry::gateway_started() noexcept {
  std::lock_guard lock(mutex_);
  gateway_started_ = true;
}

wait_result worker_registry::await_check_in(const launch_record* launch, bool gateway,
                                            std::uint64_t timeout_ns, const std::function<bool()>& abort,
                                            backoff idle) const {
  const auto all_checked_in = [&] {
    if (gateway && load_acquire(entry(capacity_).checked_in) == 0) return false;
    if (launch != nullptr)
      for (std::uint32_t w = launch->first; w < launch->first + launch->used; ++w)
        if (load_acquire(entry(w).checked_in) == 0) return false;
    return true;
  };
  return wait_until(all_checked_in, abort, timeout_ns, idle);
}

std::uint32_t worker_registry::checked_in(const launch_record& launch) const {
  std::uint32_t n = 0;
  for (std::uint32_t w = launch.first; w < launch.first + launch.used; ++w)
    n += load_acquire(entry(w).checked_in) != 0;
  return n;
}

bool worker_registry::publish_control(std::uint32_t device_control::*word, std::uint32_t value) noexcept {
  // A word-sized copy: the CPU backend stores it atomically with release order; on CUDA it is a copy on
  // the copy stream, after the table copies it must follow.
  try {
    backend_.copy_to_device(&(live_control_.as<device_control>()->*word), &value, sizeof value);
    return true;
  } catch (...) {
    return false;
  }
}

void worker_registry::request_terminate() noexcept {
  cuda::atomic_ref<std::uint32_t, pcie_scope>(host_control()->terminate)
      .store(1, cuda::std::memory_order_release);
  (void)publish_control(&device_control::terminate, 1u); // a failed copy: the device faulted, kernels gone
  backend_.wake_idle_workers();
}

void worker_registry::request_pause(bool pause) noexcept {
  cuda::atomic_ref<std::uint32_t, pcie_scope>(host_control()->pause)
      .store(pause ? 1u : 0u, cuda::std::memory_order_release);
  (void)publish_control(&device_control::pause, pause ? 1u : 0u);
  store_load_fence(); // before all_paused() reads acknowledgements: see follow_pause
  backend_.wake_idle_workers();
}

bool worker_registry::pause_requested() const noexcept {
  return cuda::atomic_ref<std::uint32_t, pcie_scope>(host_control()->pause)
             .load(cuda::std::memory_order_relaxed) != 0;
}

bool worker_registry::exited(std::uint32_t w) const {
  return load_acquire(entry(w).exited) != 0;
}

bool worker_registry::all_paused() const {
  std::lock_guard lock(mutex_);
  for (const auto& l : launches_) {
    if (!l->started || l->abandoned) continue;
    for (std::uint32_t w = l->first; w < l->first + l->used; ++w)
      if (!exited(w) && load_acquire(entry(w).paused) == 0) return false;
  }
  return true;
}

std::uint32_t worker_registry::begin_grace() {
  std::lock_guard lock(mutex_);
  ++grace_epoch_;
  // Release: the table writes that unpublished what this period protects are visible first.
  cuda::atomic_ref<std::uint32_t, pcie_scope>(host_control()->grace_epoch)
      .store(grace_epoch_, cuda::std::memory_order_release);
  // A failed copy (a device fault) leaves the period open for good: nothing it protects is reused.
  (void)publish_control(&device_control::grace_epoch, grace_epoch_);
  backend_.wake_idle_workers(); // parked CPU threads report quiescence at once
  return grace_epoch_;
}

bool worker_registry::grace_passed(std::uint32_t epoch) const {
  std::lock_guard lock(mutex_);
  const auto quiet = [&](std::uint32_t w) {
    if (exited(w)) return true;
    return load_acquire(entry(w).checked_in) != 0 && reached(load_acquire(entry(w).quiescent), epoch);
  };
  if (gateway_started_ && !quiet(capacity_)) return false;
  for (const auto& l : launches_) {
    if (!l->started || l->abandoned) continue; // an abandoned launch's workers exit on their first look
    for (std::uint32_t w = l->first; w < l->first + l->used; ++w)
      if (!quiet(w)) return false;
  }
  return true;
}

std::size_t worker_registry::collect_exits() {
  std::lock_guard lock(mutex_);
  std::size_t collected = 0;
  for (auto it = launches_.begin(); it != launches_.end();) {
    const launch_record& l = **it;
    bool over = l.started && l.used > 0;
    for (std::uint32_t w = l.first; over && w < l.first + l.used; ++w) over = exited(w);
    if (!over) {
      ++it;
      continue;
    }
    backend_.release_workers(l.first, l.used);
    entries_.free(l.first, l.reserved);
    it = launches_.erase(it);
    ++collected;
  }
  return collected;
}

void worker_registry::forget_launches() noexcept {
  std::lock_guard lock(mutex_);
  launches_.clear();
  try {
    entries_ = range_allocator(capacity_);
  } catch (const std::bad_alloc&) {
    // Out of memory (it runs in shutdown): the runtime never launches again, so the stale ranges do no harm.
  }
  gateway_started_ = false;
}

std::vector<std::uint32_t> worker_registry::busy_actors() const {
  std::lock_guard lock(mutex_);
  std::vector<std::uint32_t> busy;
  for (const auto& l : launches_)
    for (std::uint32_t w = l->first; w < l->first + l->used; ++w)
      if (const std::uint32_t a = load_acquire(entry(w).busy_actor); a != 0) busy.push_back(a);
  return busy;
}

std::vector<worker_registry::worker_sample> worker_registry::sample() const {
  std::lock_guard lock(mutex_);
  std::vector<worker_sample> out;
  for (const auto& l : launches_)
    for (std::uint32_t w = l->first; w < l->first + l->used; ++w) {
      const worker_status& e = entry(w);
      if (load_acquire(e.checked_in) == 0 || load_acquire(e.exited) != 0) continue;
      worker_sample s;
      s.entry = w;
      s.heartbeat = load_acquire(e.heartbeat);
      s.busy_actor = load_acquire(e.busy_actor);
      s.busy_type = load_acquire(e.busy_type);
      out.push_back(s);
    }
  return out;
}

bool worker_registry::in_call(std::uint32_t entry_index, std::uint32_t busy_actor,
                              std::uint64_t heartbeat) const {
  // Lock-free: the status array lives as long as the registry; an entry sampled once stays in range.
  const worker_status& e = entry(entry_index);
  return load_acquire(e.exited) == 0 && load_acquire(e.busy_actor) == busy_actor &&
         load_acquire(e.heartbeat) == heartbeat;
}

worker_registry::worker_role worker_registry::role_of(std::uint32_t w) const {
  std::lock_guard lock(mutex_);
  for (const auto& l : launches_) {
    if (w < l->first || w >= l->first + l->reserved || l->groups.empty()) continue;
    // Entries go to the groups in order; a CPU launch may use fewer (a thread serves several actors or
    // every handler type), so an entry past the groups' count reports the whole launch.
    const auto role = [](const launch_group& g) {
      return g.scheduled ? std::string("handler '").append(g.ops->name).append("' (scheduled)")
                         : std::string(g.description).append(" (dedicated)");
    };
    std::uint32_t offset = w - l->first;
    for (const launch_group& g : l->groups) {
      if (offset < g.workers()) return {role(g), g.scheduled};
      offset -= g.workers();
    }
    std::string all;
    for (const launch_group& g : l->groups) all += (all.empty() ? "" : ", ") + role(g);
    return {all, l->groups.front().scheduled};
  }
  return {"(unknown launch)", false};
}

} // namespace rk::detail
