// The coordinator (see runtime_impl.hpp): options, backend choice, and the setup calls that span
// several facilities, each one a transaction.

#include "runtime_impl.hpp"

#include <cstdio>
#include <cstring>

#include "nvtx.hpp"
#include "support.hpp"
#include "undo_log.hpp"

namespace rk::detail {

runtime_impl::runtime_impl(runtime_options options)
    : options_(validated(std::move(options))), backend_(choose_backend(options_, description_)),
      memory_(*backend_), workers_(memory_, *backend_, options_.max_actors + scheduled_worker_entries),
      scheduler_(memory_, *backend_, options_), audit_(memory_, *backend_, options_, &phase_),
      trace_(memory_, *backend_, options_), actors_(memory_, *backend_, scheduler_, options_.max_actors),
      routing_(memory_, *backend_, actors_, options_), tenants_(memory_, *backend_, options_),
      regions_(memory_, *backend_, tenants_, options_.max_regions), grace_(workers_),
      faults_(*backend_, workers_, actors_, audit_),
      io_(memory_, *backend_, options_, phase_, faults_, tenants_),
      run_(options_, phase_, *backend_, memory_, workers_, scheduler_, grace_, actors_, io_, audit_,
           faults_) {
  system_view sys;
  sys.max_hops = options_.max_hops;
  sys.starvation_limit = options_.starvation_limit;
  sys.device_idle_sleep_max_ns = options_.device_idle_sleep_max_ns;
  actors_.describe(sys);
  routing_.describe(sys);
  tenants_.describe(sys);
  regions_.describe(sys);
  workers_.describe(sys);
  scheduler_.describe(sys);
  audit_.describe(sys);
  trace_.describe(sys);
  io_.describe(sys);
  run_.set_system(sys);
  actors_.on_block_freed([this](std::uint64_t tenant, std::uint64_t incarnation, std::uint64_t bytes) {
    tenants_.release_held(tenant, incarnation, bytes);
  });
  if (options_.dump_state_on_watchdog) run_.on_stuck([this] { deliver_dump(); });
}

runtime_impl::~runtime_impl() {
  {
    std::lock_guard lock(endpoint_mutex_);
    endpoint_.reset(); // joins the server thread: no scrape runs past this point
  }
  if (publisher_) publisher_->stop(); // likewise the rk-top publisher (its object goes with publisher_)
  std::lock_guard lock(setup_);
  const shutdown_report r = run_.shutdown();
  // A worker that never stopped may still use the backend: leak it with the memory (see memory.hpp).
  if (!r.workers_stopped) (void)backend_.release();
}

// --- helpers ----------------------------------------------------------------------------------------------

bool runtime_impl::collect() {
  actors_.collect(grace_);
  return grace_.collect();
}

void runtime_impl::check_cuda_code(const actor_type_ops& ops, const std::string& who) const {
  if (backend_->kind() == backend::cuda && ops.cuda_kernel == nullptr)
    throw error(who + ": handler '" + ops.name +
                "' was compiled without nvcc, so it has no CUDA kernel; compile the translation unit that "
                "calls spawn<" +
                ops.name + ">() as CUDA (a .cu file) or use backend::cpu");
}

// Refused before any name is built: a count no table could hold would otherwise cost its names' memory.
void runtime_impl::check_batch_fits(std::uint64_t count, const std::string& who) const {
  if (count > options_.max_actors)
    throw out_of_room(who + ": " + std::to_string(count) + " actors can never fit a table of max_actors = " +
                      std::to_string(options_.max_actors) + "; raise runtime_options::max_actors");
}

void runtime_impl::require_setup_phase(const std::string& who) const {
  const phase now = run_.current_phase();
  if (now != phase::created && now != phase::running)
    throw error(who + ": the runtime is stopped (shutdown() was called, or start() failed); create a new "
                      "rk::runtime");
}

// --- actors -----------------------------------------------------------------------------------------------

void runtime_impl::prepare(actor_type_ops ops) {
  std::lock_guard lock(setup_);
  const std::string who = "prepare<" + ops.name + ">()";
  if (run_.current_phase() != phase::created) throw error(who + ": prepare handler types before start()");
  check_cuda_code(ops, who);
  bool added = false;
  actors_.kind_for(ops, false, who, added);
}

address runtime_impl::spawn(actor_type_ops ops, std::string name, const actor_options& opts,
                            const void* initial) {
  RK_NVTX_RANGE("rk::runtime::spawn");
  std::lock_guard lock(setup_);
  const std::string who = "spawn('" + name + "')";
  check_user_name(name, who, "actor name");
  if (opts.instances == 0) throw error(who + ": actor_options::instances must be at least 1");
  const std::uint32_t n = opts.instances;
  check_batch_fits(n, who);
  std::vector<std::string> names;
  for (std::uint32_t i = 0; i < n; ++i) names.push_back(n == 1 ? name : name + "/" + std::to_string(i));
  const spawned s = spawn_transaction(ops, who, names, opts, static_cast<const std::byte*>(initial), 0,
                                      n > 1 ? &name : nullptr);
  return n == 1 ? s.ids.front() : s.group;
}

std::vector<actor_index> runtime_impl::spawn_many(actor_type_ops ops, std::string prefix, std::uint32_t count,
                                                  const actor_options& opts, const void* initials,
                                                  std::size_t initial_count) {
  RK_NVTX_RANGE("rk::runtime::spawn_many");
  std::lock_guard lock(setup_);
  const std::string who = "spawn_many('" + prefix + "', " + std::to_string(count) + ")";
  check_user_name(prefix, who, "name prefix");
  if (count == 0) throw error(who + ": count must be at least 1");
  if (opts.instances != 1)
    throw error(who + ": actor_options::instances must be 1 (spawn_many names its actors '" + prefix +
                "/0' .. and creates no group; use create_group for one)");
  if (initials == nullptr || (initial_count != 1 && initial_count != count))
    throw error(who + ": initial_states holds " + std::to_string(initial_count) +
                " states; pass none (default states), one (the same for all) or " + std::to_string(count));
  check_batch_fits(count, who);
  std::vector<std::string> names(count);
  prefix += '/';
  for (std::uint32_t i = 0; i < count; ++i) names[i].append(prefix).append(std::to_string(i));
  const std::size_t stride = initial_count == count && count > 1 ? ops.state_size : 0;
  return spawn_transaction(ops, who, names, opts, static_cast<const std::byte*>(initials), stride, nullptr)
      .ids;
}

runtime_impl::spawned runtime_impl::spawn_steps(const actor_type_ops& ops, const std::string& who,
                                                const std::vector<std::string>& names,
                                                const actor_options& opts, const std::byte* initials,
                                                std::size_t initial_stride, const std::string* group,
                                                undo_log& undo) {
  require_setup_phase(who);
  faults_.throw_if_faulted();
  const std::uint64_t n = names.size();
  if (const std::string* taken = actors_.first_taken(names))
    throw error((who.find("'" + *taken + "'") != std::string::npos ? who : who + ": '" + *taken + "'") +
                ": an actor with this name already exists");
  if (const char* problem = opts.mailbox.validate())
    throw error(who + ": invalid mailbox: " + problem + " (got " + geometry_text(opts.mailbox) + ")");
  check_cuda_code(ops, who);
  const bool running = run_.current_phase() == phase::running;
  const std::uint64_t actor_bytes =
      charged_device_bytes(opts.mailbox, opts.priority_lanes ? priority_levels : 1, ops.state_size);

  if (group != nullptr) routing_.check_room(*group, static_cast<std::uint32_t>(n), who);
  if (actors_.free_slots() < n)
    throw out_of_room(who + ": " + actors_.full_text(n) +
                      "; raise runtime_options::max_actors or forget actors");
  bool added_kind = false;
  spawned out;
  out.kind = actors_.kind_for(ops, running, who, added_kind);
  if (added_kind) undo.push([this] { actors_.remove_last_kind(); });
  actor_spec spec;
  spec.kind = out.kind;
  spec.tenant = opts.tenant;
  spec.tenant_slot = tenants_.slot_of(opts.tenant, who);
  spec.mailbox = opts.mailbox;
  spec.priority_lanes = opts.priority_lanes;
  spec.dedicated = opts.dedicated_worker || options_.dedicated_workers;
  if (!(opts.audit_tag == audit_tag{})) {
    bool created = false;
    spec.engagement_slot = tenants_.engagement_slot(opts.tenant, opts.audit_tag, who, created);
    if (created) undo.push([this, slot = spec.engagement_slot] { tenants_.unadd_engagement(slot); });
  }
  if (actor_bytes != 0 && n > no_limit / actor_bytes)
    throw error(who + ": " + std::to_string(n) + " actors of " + std::to_string(actor_bytes) +
                " bytes (mailbox and state) overflow");
  const std::uint64_t charge = actors_.spawn_charge(spec, n, running);
  tenants_.charge(opts.tenant, n, charge, who);
  undo.push([this, tenant = opts.tenant, n, charge] { tenants_.refund(tenant, n, charge); });

  out.ids = actors_.add_actors(spec, names, initials, initial_stride, running);
  // An id some worker may hold (an abandoned launch) is retired, never handed out again as is.
  for (actor_index id : out.ids)
    undo.push([this, id] {
      if (actors_.contains(id, actor_table::want::actor) && actors_.launched(id))
        actors_.retire(id, grace_);
      else
        actors_.unadd(id);
    });
  if (running) run_.launch_late(out.ids, who);
  if (group != nullptr) out.group = routing_.create_group(*group, out.ids);
  return out;
}

void runtime_impl::audit_spawn(const spawned& out, std::uint64_t tenant, const audit_tag& tag,
                               bool one_record_each) {
  audit_.record_spawned(out.ids, tenant, tag, out.kind, one_record_each);
}

runtime_impl::spawned runtime_impl::spawn_transaction(const actor_type_ops& ops, const std::string& who,
                                                      const std::vector<std::string>& names,
                                                      const actor_options& opts, const std::byte* initials,
                                                      std::size_t initial_stride, const std::string* group) {
  return with_room([&]() -> spawned {
    undo_log undo;
    spawned out = spawn_steps(ops, who, names, opts, initials, initial_stride, group, undo);
    audit_spawn(out, opts.tenant, opts.audit_tag, group != nullptr); // may throw bad_alloc: still undone
    undo.commit();
    return out;
  });
}

void runtime_impl::forget(actor_index a) {
  std::lock_guard lock(setup_);
  const std::string who = "forget(" + std::to_string(a) + ")";
  require_setup_phase(who);
  faults_.throw_if_faulted();
  actors_.check(a, who, actor_table::want::actor);
  if (run_.current_phase() == phase::running) {
    const auto stopped_or_faulted = [&] {
      const device_state ds = current_device_state(actors_.host_word(a), actors_.device_word(a));
      return ds == device_state::stopped || ds == device_state::faulted;
    };
    // Read again after the lifecycle the refusal names: a worker that confirmed the stop in between
    // made it say "is stopped; stop() it first".
    if (!stopped_or_faulted()) {
      const actor_lifecycle now = actors_.lifecycle(a);
      if (!stopped_or_faulted())
        throw error(who + ": actor '" + actors_.name_of(a) + "' is " + to_string(now) +
                    (now != actor_lifecycle::stopping ? "; stop() it first"
                     : run_.application_paused()
                         ? "; the runtime is paused (pause()), so its worker confirms the stop after resume()"
                         : "; its worker has not confirmed the stop: queued messages are still being "
                           "handled, or a handler keeps deferring one (see runtime::stop)"));
    }
  }
  routing_.check_unreferenced(a, who);
  record_confirmed_stop(a); // before the record that it is forgotten, as respawn() does
  const std::uint64_t tenant = actors_.tenant_of(a);
  const std::uint64_t bytes = actors_.device_bytes(a);
  routing_.drop_route_from(a);
  // Its bytes stay charged until they are freed (see region_table::unregister_region): after a grace
  // period, or with the last of the actors spawned with it (actor_memory). Given up first, as before
  // start() they are freed within retire().
  const give_up_plan plan = actors_.plan_give_up(a);
  const std::uint64_t incarnation = tenants_.give_up_actor(tenant, bytes, plan.others_live, plan.unpinned);
  actors_.give_up(a, bytes, tenant, incarnation);
  actors_.retire(a, grace_);
  tenants_.refund(tenant, 1, 0);
  audit_.record_forgotten(a, tenant);
  stops_audited_.erase(a);
  collect();
}

// --- routing ----------------------------------------------------------------------------------------------

address runtime_impl::create_group(std::string name, std::span<const actor_index> members) {
  std::lock_guard lock(setup_);
  require_setup_phase("create_group('" + name + "')");
  return with_room([&] { return routing_.create_group(name, members); });
}

void runtime_impl::remove_group(address group) {
  std::lock_guard lock(setup_);
  routing_.remove_group(group, grace_);
  collect();
}

actor_index runtime_impl::add_alias(std::string name, address target) {
  std::lock_guard lock(setup_);
  require_setup_phase("add_alias('" + name + "')");
  return with_room([&] { return routing_.add_alias(name, target); });
}

actor_index runtime_impl::add_remote(std::string name, std::uint64_t tenant) {
  std::lock_guard lock(setup_);
  const std::string who = "add_remote('" + name + "')";
  require_setup_phase(who);
  if (!io_.has_outbound_ring())
    throw error(who + ": this runtime has no outbound ring (runtime_options::cluster_outbound is {0, 0}); "
                      "actors on other ranks are reached through an rk::cluster");
  if (name.empty()) throw error(who + ": the name must not be empty");
  if (actors_.name_taken(name)) throw error(who + ": an actor or alias with this name already exists");
  const std::uint32_t tenant_slot = tenants_.slot_of(tenant, who);
  return with_room([&] {
    if (actors_.free_slots() == 0)
      throw out_of_room(who + ": " + actors_.full_text() + "; raise runtime_options::max_actors");
    return actors_.add_remote(name, tenant, tenant_slot, io_.outbound_geometry());
  });
}

void runtime_impl::mark_remote_unreachable(actor_index remote) {
  std::lock_guard lock(setup_);
  const std::string who = "mark_remote_unreachable(" + std::to_string(remote) + ")";
  actors_.check(remote, who, actor_table::want::alias);
  if (actors_.next_hop(remote) != remote || !io_.has_outbound_ring())
    throw error(who + ": not a remote entry (an alias with an indirect route)");
  const std::uint32_t hw = actors_.host_word(remote);
  actors_.write_host_word(remote,
                          make_state_word(epoch_of(hw), static_cast<std::uint8_t>(host_state::unreachable)));
}

void runtime_impl::remove_alias(actor_index alias) {
  std::lock_guard lock(setup_);
  routing_.remove_alias(alias, grace_);
  collect();
}

void runtime_impl::set_route(actor_index from, address next_hop) {
  std::lock_guard lock(setup_);
  require_setup_phase("set_route(" + std::to_string(from) + ")");
  routing_.set_route(from, next_hop);
}

void runtime_impl::clear_route(actor_index a) {
  std::lock_guard lock(setup_);
  require_setup_phase("clear_route(" + std::to_string(a) + ")");
  routing_.clear_route(a);
}

// --- per-actor lifecycle ---------------------------------------------------------------------------------

void runtime_impl::refuse_from_worker(const std::string& who) const {
  if (backend_->on_worker_thread())
    throw error(who + ": called from a handler, on one of this runtime's worker threads; it would wait for "
                      "that very worker. Call it from a host thread");
}

bool runtime_impl::stop(actor_index a, std::chrono::nanoseconds timeout) {
  refuse_from_worker("stop()");
  actors_.check(a, "stop()", actor_table::want::actor);
  // Host messages sent to it before this call are let in first (without the lock): "send, then stop"
  // had the message refused with not_found in 978 of 1,000 tries, as if sent after the stop.
  timeout = run_.await_sends_before_stop(a, timeout);
  std::uint32_t hw;
  std::uint64_t tenant;
  {
    std::lock_guard lock(setup_);
    hw = run_.begin_stop(a);
    tenant = actors_.tenant_of(a);
  }
  // Waiting without the lock: stats() and other management calls stay available meanwhile. Paused workers
  // acknowledge nothing: in a paused runtime the wait ends at once (false), and the stop stands.
  const bool stopped = run_.await_device_state(a, hw, device_state::stopped, timeout,
                                               run_control::paused_runtime::ends_wait_when_held);
  if (!stopped) {
    run_.throw_if_stuck(a, "stop()"); // say why instead of timing out silently
    return false;
  }
  // shutdown() closes the audit log under the same lock: a stop this call confirms is in the log, and
  // one that shutdown overtook before it could be recorded is reported as overtaken (false).
  std::lock_guard lock(setup_);
  if (run_.current_phase() == phase::stopped) return false;
  // A stop that a respawn() or forget() overtook was recorded by it (record_stop_once); a later epoch's
  // stop is not this call's to confirm.
  if (actors_.contains(a, actor_table::want::actor) && epoch_of(actors_.host_word(a)) == epoch_of(hw))
    record_stop_once(a, epoch_of(hw), tenant);
  return true;
}

void runtime_impl::record_confirmed_stop(actor_index a) {
  if (run_.current_phase() != phase::running) return;
  const std::uint32_t hw = actors_.host_word(a);
  if (current_device_state(hw, actors_.device_word(a)) == device_state::stopped)
    record_stop_once(a, epoch_of(hw), actors_.tenant_of(a));
}

void runtime_impl::record_stop_once(actor_index a, std::uint32_t epoch, std::uint64_t tenant) {
  // A stop is recorded once: stop() again of a stopped actor, or a second caller of the same stop, only
  // confirms it. A respawn starts a new epoch, whose stop is a new record.
  const auto [audited, first] = stops_audited_.try_emplace(a, epoch);
  if (!first && audited->second == epoch) return;
  audited->second = epoch;
  audit_.record(audit_event::actor_stop, audit_level::info, a, tenant);
}

bool runtime_impl::pause_actor(actor_index a, std::chrono::nanoseconds timeout) {
  refuse_from_worker("pause_actor()");
  std::uint32_t hw;
  {
    std::lock_guard lock(setup_);
    hw = run_.begin_pause(a);
  }
  // The wait also ends if the actor faults meanwhile (then it is not paused), and at once in a paused
  // runtime, whose workers acknowledge nothing (the pause stands). Not `== paused` below: a worker that was
  // resuming the actor when the pause came writes `running` for a moment before it acknowledges it again
  // (acknowledge_resume); a fault stays.
  const bool paused = run_.await_device_state(a, hw, device_state::paused, timeout,
                                              run_control::paused_runtime::ends_wait_when_held) &&
                      current_device_state(hw, actors_.device_word(a)) != device_state::faulted;
  if (!paused) run_.throw_if_stuck(a, "pause_actor()");
  return paused;
}

void runtime_impl::resume_actor(actor_index a) {
  std::lock_guard lock(setup_);
  run_.resume_actor(a);
}

void runtime_impl::respawn(actor_index a, std::type_index type, const void* initial) {
  // A call that faulted with ctx.fault() goes on to its end: its writes would land in the fresh state (see
  // run_control::await_faulted_call). A live actor is refused at once, and one whose faulted call still
  // runs (it faulted again since the wait) is left for the next round (run_control::respawn).
  for (;;) {
    run_.await_faulted_call(a, "respawn()");
    run_.throw_if_shutting_down("respawn()"); // rather than wait for the setup lock the drain holds
    std::lock_guard lock(setup_);
    actors_.check(a, "respawn()", actor_table::want::actor);
    // The stop a respawn ends is in the log before the respawn's record, also when no stop() call has
    // confirmed it yet (the callers of that stop() then find a later epoch and record nothing).
    record_confirmed_stop(a);
    if (run_.respawn(a, type, initial)) return;
  }
}

// --- tenants -----------------------------------------------------------------------------------------------

void runtime_impl::add_tenant(std::uint64_t tenant, const tenant_quota& quota) {
  std::lock_guard lock(setup_);
  require_setup_phase("tenants().add(" + std::to_string(tenant) + ")");
  with_room([&] { tenants_.add(tenant, quota); });
}

void runtime_impl::set_quota(std::uint64_t tenant, const tenant_quota& quota) {
  std::lock_guard lock(setup_);
  require_setup_phase("tenants().set_quota(" + std::to_string(tenant) + ")");
  tenants_.set_quota(tenant, quota);
}

void runtime_impl::remove_tenant(std::uint64_t tenant) {
  std::lock_guard lock(setup_);
  // A grant outlives nothing: were the tenant removed while a region still names it, the same id added
  // again (perhaps for someone else) would read that region.
  if (const std::vector<region_handle> shared = regions_.shared_with(tenant); !shared.empty())
    throw error("tenants().remove(" + std::to_string(tenant) + "): " + std::to_string(shared.size()) +
                " registered region" + (shared.size() == 1 ? " shares" : "s share") +
                " its bytes with the tenant (region " + std::to_string(shared.front().region) +
                (shared.size() == 1 ? "" : ", ...") + "); unregister them first");
  with_room([&] { tenants_.remove(tenant, grace_); });
  actors_.forget_history(tenant);
  collect();
}

void runtime_impl::set_engagement_budget(std::uint64_t tenant, const audit_tag& tag,
                                         std::chrono::nanoseconds budget) {
  std::lock_guard lock(setup_);
  require_setup_phase("tenants().set_engagement_budget(" + std::to_string(tenant) + ")");
  with_room([&] { tenants_.set_engagement_budget(tenant, tag, budget); });
}

void runtime_impl::collect_if_free() const noexcept {
  if (on_own_thread() || !setup_.try_lock_brief()) return;
  try {
    const_cast<runtime_impl*>(this)->collect(); // the runtime itself is never const
  } catch (...) {                               // the next setup call collects (and reports) it
  }
  setup_.unlock_brief();
}

tenant_usage runtime_impl::usage(std::uint64_t tenant) const {
  collect_if_free();
  return usage_collected(tenant);
}

tenant_usage runtime_impl::usage_collected(std::uint64_t tenant) const {
  tenant_usage u = tenants_.usage(tenant);
  const tenant_history sums = actors_.tenant_sums(tenant);
  u.messages_sent += sums.passed;
  u.handler_ns = sums.handler_ns;
  return u;
}

std::vector<tenant_usage> runtime_impl::all_usage() const {
  collect_if_free();
  std::vector<tenant_usage> out;
  for (std::uint64_t t : tenants_.ids()) {
    try {
      out.push_back(usage_collected(t));
    } catch (const error&) { // removed meanwhile
    }
  }
  return out;
}

// --- regions -----------------------------------------------------------------------------------------------

region_handle runtime_impl::register_region(void* pointer, std::uint64_t bytes,
                                            const region_options& options) {
  std::lock_guard lock(setup_);
  require_setup_phase("register_region()");
  return with_room([&] { return regions_.register_region(pointer, bytes, options); });
}

region_handle runtime_impl::create_region(byte_view initial, std::uint64_t capacity,
                                          const region_options& options) {
  std::lock_guard lock(setup_);
  require_setup_phase("create_region()");
  return with_room([&] { return regions_.create_region(initial, capacity, options); });
}

void runtime_impl::unregister_region(region_handle region) {
  std::lock_guard lock(setup_);
  regions_.unregister_region(region, grace_);
  collect();
}

wait_result runtime_impl::release_region(region_handle region, std::chrono::nanoseconds timeout) {
  refuse_from_worker("release_region()");
  regions_.require_issued_here(region, "release_region()");
  {
    std::lock_guard lock(setup_);
    if (regions_.registered(region)) {
      regions_.unregister_region(region, grace_);
    } else if (!regions_.issued_slot(region)) {
      throw error("release_region(): region " + std::to_string(region.region) + " (generation " +
                  std::to_string(region.generation) + ") was never registered with this runtime");
    }
  }
  const auto released = [&] {
    std::lock_guard lock(setup_);
    collect();
    return !regions_.releasing(region);
  };
  // A shutdown that left a worker running (stuck in a handler) ends the wait: that worker may still read
  // the region, and nothing will ever say otherwise.
  const wait_result r = wait_until(
      released, [&] { return faults_.detected() || run_.current_phase() == phase::stopped; },
      timeout_ns(timeout));
  if (r == wait_result::aborted) {
    if (released()) return wait_result::ready; // the shutdown stopped every worker
    faults_.throw_if_faulted();
  }
  return r;
}

std::uint64_t runtime_impl::append(region_handle region, byte_view bytes) {
  std::lock_guard lock(setup_);
  require_setup_phase("append()");
  return regions_.append(region, bytes);
}

// --- the rest
// ------------------------------------------------------------------------------------------------

void runtime_impl::register_message_type(const message_type_info& info) {
  std::lock_guard lock(setup_);
  require_setup_phase("register_message_type('" + info.name + "')");
  routing_.register_type(info);
}

void runtime_impl::start() {
  std::lock_guard lock(setup_);
  // Registered first, so a hang inside start() can be dumped too; dropped again if start() fails, but
  // only when this call made them: a refused second start() leaves a running runtime's dump signal and
  // rk-top object (or a stopped one's last snapshot) as they were.
  const bool registers_dump = options_.dump_state_on_sigusr1 && !sigusr1_;
  if (registers_dump) sigusr1_ = std::make_unique<dump_signal_registration>([this] { deliver_dump(); });
  const bool publishes = options_.publish_stats && !publisher_;
  try {
    if (publishes)
      publisher_ = std::make_unique<stats_publisher>(
          stats_publisher::sources{[this] { return read_metrics(); }, [this] { return run_.stuck_names(); }},
          std::chrono::milliseconds(100));
    run_.start();
  } catch (...) {
    if (publishes) publisher_.reset();
    if (registers_dump) sigusr1_.reset();
    throw;
  }
  started_at_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count() | 1,
                       std::memory_order_relaxed);
}

metrics_reading runtime_impl::read_metrics() {
  metrics_reading r;
  r.backend = std::string(to_string(kind()));
  r.backend_description = description_;
  r.running = run_.current_phase() == phase::running;
  const std::int64_t started = started_at_ns_.load(std::memory_order_relaxed);
  if (started != 0)
    r.uptime_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch() -
                                                     std::chrono::steady_clock::duration(started))
                           .count();
  r.stats = stats();
  r.faulted = faults_.faulted();
  r.tenants = all_usage();
  r.audit = audit_.stats();
  r.faults = faults_.counts();
  return r;
}

std::uint16_t runtime_impl::serve_metrics(const metrics_endpoint_options& options) {
  std::lock_guard lock(endpoint_mutex_);
  if (endpoint_)
    throw error("serve_metrics(): this runtime already serves its metrics on " + endpoint_->address() + ":" +
                std::to_string(endpoint_->port()) + " (one endpoint per runtime)");
  const metrics_options shown = options.metrics;
  endpoint_ = std::make_unique<metrics_endpoint>(options, [this, shown](bool json) {
    const metrics_reading r = read_metrics();
    return json ? metrics_json(r, shown) : prometheus_text(r, shown);
  });
  return endpoint_->port();
}

shutdown_report runtime_impl::shutdown() noexcept {
  if (backend_->on_worker_thread()) { // it would wait for this very worker: nothing is stopped
    shutdown_report r;
    r.drained = false;
    r.fault = "shutdown() called from a handler, on one of this runtime's worker threads: refused, nothing "
              "was stopped; call it from a host thread";
    return r;
  }
  if (callback_of == &phase_) { // this runtime's audit sink or on_state_dump: shutdown() joins that thread
    shutdown_report r;
    r.drained = false;
    r.fault = "shutdown() called from a runtime callback (an audit sink, on_state_dump), on a thread "
              "shutdown() waits for: refused, nothing was stopped; call it from a host thread of your own";
    return r;
  }
  run_.note_shutdown_requested(); // a snapshot_all() holding the setup lock stops waiting for its pause
  std::lock_guard lock(setup_);
  shutdown_report r = run_.shutdown(); // SIGUSR1 still dumps a drain that hangs
  trace_.stop(r.workers_stopped);      // the rest of the trace ring is collected (later, for late workers)
  sigusr1_.reset();
  if (publisher_) publisher_->stop(); // after a last snapshot ("running": false); removed on destruction
  return r;
}

bool runtime_impl::waiting_calls_ended(std::chrono::milliseconds timeout) const {
  const wait_result r = wait_until([&] { return waiting_calls_.load(std::memory_order_acquire) == 0; },
                                   [] { return false; }, timeout_ns(timeout));
  return r == wait_result::ready;
}

runtime_stats runtime_impl::stats() {
  runtime_stats r = run_.stats();
  r.trace = trace_.stats();
  return r;
}

std::string runtime_impl::trace_json() {
  const auto [records, totals] = trace_.records_and_stats();
  trace_names names;
  names.actor = [this](actor_index a) {
    try {
      return actors_.name_of(a);
    } catch (const error&) {
      return std::string(); // forgotten since: exported as "actor <id>"
    }
  };
  names.message_type = [this](std::uint32_t id) {
    const auto info = routing_.types().find(id);
    return info ? info->name : std::string();
  };
  return chrome_trace_json(records, names, totals);
}

} // namespace rk::detail
