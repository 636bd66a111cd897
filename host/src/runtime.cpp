// rk::runtime and rk::tenant_registry: the public face. Each call forwards to the coordinator (calls that
// span facilities or change tables) or straight to the facility that answers it (lookups, host I/O).

#include "file_output.hpp"
#include "nvtx.hpp"
#include "runtime_impl.hpp"
#include "support.hpp"

#include <cxxabi.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace rk {

std::string_view to_string(backend b) noexcept {
  switch (b) {
  case backend::automatic:
    return "automatic";
  case backend::cpu:
    return "cpu";
  case backend::cuda:
    return "cuda";
  }
  return "unknown";
}

std::string detail::demangle(const char* mangled) {
  int result = 0;
  std::unique_ptr<char, void (*)(void*)> text(abi::__cxa_demangle(mangled, nullptr, nullptr, &result),
                                              std::free);
  // -1: out of memory. The mangled name would register the type under another name than a healthy run
  // gives it (a snapshot naming it could not be restored there).
  if (result == -1) throw std::bad_alloc();
  return result == 0 && text ? std::string(text.get()) : std::string(mangled);
}

device_probe probe_cuda_device(int device) noexcept {
  device_probe p;
  try {
    p.usable = detail::cuda_device_usable(device, p.description);
  } catch (...) {
    p.usable = false;
  }
  return p;
}

namespace {
std::unique_ptr<detail::runtime_impl> construct(runtime_options options) {
  const std::uint32_t max_actors = options.max_actors;
  try {
    return std::make_unique<detail::runtime_impl>(std::move(options));
  } catch (const std::bad_alloc&) { // the host's own tables (device allocations name theirs)
    throw error("runtime: out of host memory for the runtime's tables (max_actors = " +
                std::to_string(max_actors) + ", about 620 bytes each; see runtime_options::max_actors)");
  }
}

//! Set once the process began to exit (std::exit, or a return from main): see note_exit_began.
std::atomic<bool> exit_began{false};

//! Registered with std::atexit by every start(). The standard runs atexit functions and the destructors
//! of statics in the reverse order of their registration and construction, so one registered after a
//! static runtime was constructed runs before its destructor: ~runtime on a handler thread can tell a
//! std::exit from a delete.
void note_exit_began() noexcept {
  exit_began.store(true);
}

//! Keeps `impl` reachable (for leak checkers) and never destroyed.
void keep_for_good(detail::runtime_impl* impl) noexcept {
  static std::mutex kept_mutex;
  static auto* kept = new std::vector<detail::runtime_impl*>;
  std::lock_guard lock(kept_mutex);
  try {
    kept->push_back(impl);
  } catch (const std::bad_alloc&) {
  }
}
} // namespace

runtime::runtime(runtime_options options) : impl_(construct(std::move(options)).release()) {}
runtime::~runtime() {
  // On one of this runtime's own threads (a handler or an audit sink that called std::exit with the
  // runtime a static, or deleted it), shutting down would wait for that very thread (15 s of drain and
  // stop timeouts) or destroy its std::thread while it runs (std::terminate). The runtime is asked to
  // stop instead, and kept: reachable, never destroyed, like a runtime whose worker could not be stopped.
  // In a child of fork() none of its threads exist (joining one crashed): nothing is stopped or freed.
  // impl_ stays as it is: calls still running in other threads go on using it. After a delete they
  // return as after shutdown(); while the process exits they keep waiting (a receive() in main that
  // returned would end the process with main's exit code instead of the handler's).
  if (impl_->on_own_thread() || impl_->forked()) {
    if (!impl_->forked()) impl_->abandon(!exit_began.load());
    keep_for_good(impl_);
    return;
  }
  // Calls waiting in other threads (receive, send_wait, pause, ...) end with the shutdown; they must
  // return before anything is freed. One that does not within the stop timeout keeps the runtime.
  (void)impl_->shutdown();
  if (!impl_->waiting_calls_ended(impl_->stop_timeout())) {
    keep_for_good(impl_);
    return;
  }
  delete impl_;
}

rk::backend runtime::backend() const noexcept {
  RK_NVTX_RANGE("rk::runtime::backend");
  return impl_->kind();
}
const std::string& runtime::backend_description() const noexcept {
  RK_NVTX_RANGE("rk::runtime::backend_description");
  return impl_->description();
}

// --- actors, groups, routes
// ---------------------------------------------------------------------------------

std::vector<actor_index> runtime::spawn_many_erased(detail::actor_type_ops ops, std::string prefix,
                                                    std::uint32_t count, const actor_options& options,
                                                    const void* initial_states, std::size_t initial_count) {
  return impl_->spawn_many(std::move(ops), std::move(prefix), count, options, initial_states, initial_count);
}

address runtime::spawn_erased(detail::actor_type_ops ops, std::string name, const actor_options& options,
                              const void* initial_state) {
  return impl_->spawn(std::move(ops), std::move(name), options, initial_state);
}
void runtime::prepare_erased(detail::actor_type_ops ops) {
  RK_NVTX_RANGE("rk::runtime::prepare");
  impl_->prepare(std::move(ops));
}
actor_index runtime::find(std::string_view name) const {
  RK_NVTX_RANGE("rk::runtime::find");
  return impl_->actors().find(name);
}
std::string runtime::name_of(actor_index id) const {
  RK_NVTX_RANGE("rk::runtime::name_of");
  const detail::public_call call("name_of()");
  return impl_->actors().name_of(id);
}
std::uint32_t runtime::actor_count() const noexcept {
  RK_NVTX_RANGE("rk::runtime::actor_count");
  return impl_->actors().count();
}
table_usage runtime::tables() const {
  RK_NVTX_RANGE("rk::runtime::tables");
  return impl_->tables();
}
void runtime::forget(actor_index a) {
  RK_NVTX_RANGE("rk::runtime::forget");
  const detail::public_call call("forget()");
  impl_->forget(a);
}

address runtime::create_group(std::string name, std::span<const actor_index> members) {
  RK_NVTX_RANGE("rk::runtime::create_group");
  return impl_->create_group(std::move(name), members);
}
void runtime::remove_group(address group) {
  RK_NVTX_RANGE("rk::runtime::remove_group");
  impl_->remove_group(group);
}
address runtime::group(std::string_view name) const {
  RK_NVTX_RANGE("rk::runtime::group");
  return impl_->routes().group(name);
}
std::vector<actor_index> runtime::members(address group) const {
  RK_NVTX_RANGE("rk::runtime::members");
  return impl_->routes().members(group);
}
void runtime::set_route(actor_index from, address next_hop) {
  RK_NVTX_RANGE("rk::runtime::set_route");
  impl_->set_route(from, next_hop);
}
void runtime::clear_route(actor_index a) {
  RK_NVTX_RANGE("rk::runtime::clear_route");
  impl_->clear_route(a);
}
actor_index runtime::add_alias(std::string name, address target) {
  RK_NVTX_RANGE("rk::runtime::add_alias");
  return impl_->add_alias(std::move(name), target);
}
void runtime::remove_alias(actor_index alias) {
  RK_NVTX_RANGE("rk::runtime::remove_alias");
  impl_->remove_alias(alias);
}

// --- lifecycle
// -------------------------------------------------------------------------------------------------

bool runtime::stop_for(actor_index a, std::chrono::nanoseconds timeout) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  RK_NVTX_RANGE("rk::runtime::stop");
  const detail::public_call call("stop()");
  return impl_->stop(a, timeout);
}
void runtime::respawn_erased(actor_index a, std::type_index type, const void* initial_state) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  RK_NVTX_RANGE("rk::runtime::respawn");
  const detail::public_call call("respawn()");
  impl_->respawn(a, type, initial_state);
}
bool runtime::pause_actor_for(actor_index a, std::chrono::nanoseconds timeout) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  RK_NVTX_RANGE("rk::runtime::pause_actor");
  const detail::public_call call("pause_actor()");
  return impl_->pause_actor(a, timeout);
}
void runtime::resume_actor(actor_index a) {
  RK_NVTX_RANGE("rk::runtime::resume_actor");
  const detail::public_call call("resume_actor()");
  impl_->resume_actor(a);
}
actor_lifecycle runtime::lifecycle(actor_index a) const {
  RK_NVTX_RANGE("rk::runtime::lifecycle");
  const detail::public_call call("lifecycle()");
  return impl_->lifecycle_as_reported(impl_->actors().lifecycle(a));
}
std::vector<actor_fault> runtime::faults() const {
  RK_NVTX_RANGE("rk::runtime::faults");
  return impl_->fault_list();
}
void runtime::start() {
  (void)std::atexit(note_exit_began); // after this runtime's construction: see note_exit_began
  impl_->start();
}
bool runtime::running() const noexcept {
  RK_NVTX_RANGE("rk::runtime::running");
  return impl_->run().current_phase() == detail::phase::running;
}
bool runtime::pause_for(std::chrono::nanoseconds timeout) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  RK_NVTX_RANGE("rk::runtime::pause");
  impl_->refuse_from_worker("pause()"); // it waits for every worker, the caller's too
  return impl_->run().pause(timeout);
}
void runtime::resume() {
  RK_NVTX_RANGE("rk::runtime::resume");
  impl_->run().resume();
}
shutdown_report runtime::shutdown() {
  return impl_->shutdown();
}
runtime_stats runtime::stats() const {
  RK_NVTX_RANGE("rk::runtime::stats");
  return impl_->stats();
}
std::vector<trace_record> runtime::trace_records() const {
  RK_NVTX_RANGE("rk::runtime::trace_records");
  return impl_->trace_records();
}
std::string runtime::trace_json() const {
  RK_NVTX_RANGE("rk::runtime::trace_json");
  return impl_->trace_json();
}
void runtime::write_trace(const std::filesystem::path& path) const {
  RK_NVTX_RANGE("rk::runtime::write_trace");
  detail::replace_file(path, {impl_->trace_json()}, "write_trace()");
}
void runtime::read_state(actor_index id, std::type_index type, void* out, std::size_t bytes) const {
  RK_NVTX_RANGE("rk::runtime::read_state");
  impl_->run().read_state(id, type, out, bytes);
}

// --- regions and message types
// ---------------------------------------------------------------------------------

region_handle runtime::register_region(void* device_pointer, std::uint64_t bytes,
                                       const region_options& options) {
  RK_NVTX_RANGE("rk::runtime::register_region");
  return impl_->register_region(device_pointer, bytes, options);
}
region_handle runtime::create_region(byte_view initial, std::uint64_t capacity,
                                     const region_options& options) {
  RK_NVTX_RANGE("rk::runtime::create_region");
  return impl_->create_region(initial, capacity, options);
}
void runtime::unregister_region(region_handle region) {
  RK_NVTX_RANGE("rk::runtime::unregister_region");
  impl_->unregister_region(region);
}
wait_result runtime::release_region_for(region_handle region, std::chrono::nanoseconds timeout) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  RK_NVTX_RANGE("rk::runtime::release_region");
  return impl_->release_region(region, timeout);
}
std::uint64_t runtime::append(region_handle region, byte_view bytes) {
  RK_NVTX_RANGE("rk::runtime::append");
  return impl_->append(region, bytes);
}
void* runtime::region_pointer(region_handle region) const {
  RK_NVTX_RANGE("rk::runtime::region_pointer");
  return impl_->regions().pointer(region);
}
const message_type_registry& runtime::message_types() const noexcept {
  RK_NVTX_RANGE("rk::runtime::message_types");
  return impl_->routes().types();
}
void runtime::register_message_type(const message_type_info& info) {
  RK_NVTX_RANGE("rk::runtime::register_message_type");
  impl_->register_message_type(info);
}

// --- audit
// ---------------------------------------------------------------------------------------------------------

std::vector<audit_entry> runtime::audit_records() const {
  RK_NVTX_RANGE("rk::runtime::audit_records");
  return impl_->audit().records();
}
wait_result runtime::flush_audit_for(std::chrono::nanoseconds timeout) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  RK_NVTX_RANGE("rk::runtime::flush_audit");
  return impl_->audit().flush(timeout);
}
audit_drain_stats runtime::audit_stats() const {
  RK_NVTX_RANGE("rk::runtime::audit_stats");
  return impl_->audit().stats();
}

std::string runtime::metrics_text(const metrics_options& options) const {
  RK_NVTX_RANGE("rk::runtime::metrics_text");
  return detail::prometheus_text(impl_->read_metrics(), options);
}
std::string runtime::metrics_json(const metrics_options& options) const {
  RK_NVTX_RANGE("rk::runtime::metrics_json");
  return detail::metrics_json(impl_->read_metrics(), options);
}
std::uint16_t runtime::serve_metrics(const metrics_endpoint_options& options) {
  RK_NVTX_RANGE("rk::runtime::serve_metrics");
  return impl_->serve_metrics(options);
}
state_dump runtime::dump_state() const {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  RK_NVTX_RANGE("rk::runtime::dump_state");
  return impl_->dump_state();
}
actor_snapshot runtime::snapshot_for(actor_index a, std::chrono::nanoseconds timeout) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  RK_NVTX_RANGE("rk::runtime::snapshot");
  const detail::public_call call("snapshot()");
  return impl_->snapshot(a, timeout);
}
void runtime::snapshot_into(actor_index a, std::type_index type, void* out, std::size_t bytes,
                            std::chrono::nanoseconds timeout) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  RK_NVTX_RANGE("rk::runtime::snapshot_into");
  const detail::public_call call("snapshot_state()");
  impl_->snapshot_into(a, type, out, bytes, timeout);
}
std::uint64_t runtime::snapshot_all_for(const std::filesystem::path& path, std::chrono::nanoseconds timeout) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  RK_NVTX_RANGE("rk::runtime::snapshot_all");
  return impl_->snapshot_all(path, timeout);
}
std::uint64_t runtime::restore(const std::filesystem::path& path) {
  RK_NVTX_RANGE("rk::runtime::restore");
  return impl_->restore(path);
}
std::string runtime::stats_shm_name() const {
  RK_NVTX_RANGE("rk::runtime::stats_shm_name");
  return impl_->stats_shm_name();
}

// --- host I/O
// ----------------------------------------------------------------------------------------------------

status runtime::send(address destination, std::uint32_t type, byte_view payload,
                     const send_options& options) {
  return impl_->io().send(destination, type, payload, options);
}
status runtime::send_keyed(address group, std::uint64_t key, std::uint32_t type, byte_view payload,
                           send_options options) {
  RK_NVTX_RANGE("rk::runtime::send_keyed");
  const detail::public_call call("send_keyed()");
  options.flags |= envelope_flags::keyed;
  options.key = key;
  return impl_->io().send(group, type, payload, options);
}
status runtime::send_descriptor(address destination, std::uint32_t type, const region_descriptor& descriptor,
                                send_options options) {
  RK_NVTX_RANGE("rk::runtime::send_descriptor");
  const detail::public_call call("send_descriptor()");
  options.flags |= envelope_flags::descriptor;
  return impl_->io().send(destination, type, as_bytes(descriptor), options);
}
status runtime::send_blocking_for(address destination, std::uint32_t type, byte_view payload,
                                  std::chrono::nanoseconds timeout, const send_options& options) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  // As for send_wait below: a handler waiting for room only its own return can make would wait for
  // itself, its whole timeout. One attempt: queue_full at once.
  if (impl_->sends_to_own_thread(destination)) return impl_->io().send(destination, type, payload, options);
  return impl_->io().send_blocking(destination, type, payload, timeout, options);
}
status runtime::send_wait_for(address destination, std::uint32_t type, byte_view payload,
                              std::chrono::nanoseconds timeout, const send_options& options) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  // A handler waiting for room in a mailbox only its own thread empties would wait for itself: only its
  // return makes room. Sent with drop_if_full, a full mailbox is a prompt queue_full verdict instead.
  send_options effective = options;
  if (impl_->sends_to_own_thread(destination)) effective.flags |= envelope_flags::drop_if_full;
  return impl_->io().send_wait(destination, type, payload, timeout, effective);
}
std::optional<received_message> runtime::receive_for(std::chrono::nanoseconds timeout) {
  const detail::runtime_impl::waiting_call in_flight(*impl_);
  return impl_->io().receive(timeout);
}

// --- the tenant registry
// -------------------------------------------------------------------------------------------

void tenant_registry::add(std::uint64_t tenant, const tenant_quota& quota) {
  RK_NVTX_RANGE("rk::tenant_registry::add");
  impl_->add_tenant(tenant, quota);
}
void tenant_registry::set_quota(std::uint64_t tenant, const tenant_quota& quota) {
  RK_NVTX_RANGE("rk::tenant_registry::set_quota");
  impl_->set_quota(tenant, quota);
}
void tenant_registry::remove(std::uint64_t tenant) {
  RK_NVTX_RANGE("rk::tenant_registry::remove");
  impl_->remove_tenant(tenant);
}
bool tenant_registry::contains(std::uint64_t tenant) const {
  RK_NVTX_RANGE("rk::tenant_registry::contains");
  return impl_->tenants().contains(tenant);
}
void tenant_registry::set_engagement_budget(std::uint64_t tenant, const audit_tag& tag,
                                            std::chrono::nanoseconds budget) {
  RK_NVTX_RANGE("rk::tenant_registry::set_engagement_budget");
  impl_->set_engagement_budget(tenant, tag, budget);
}
tenant_usage tenant_registry::usage(std::uint64_t tenant) const {
  RK_NVTX_RANGE("rk::tenant_registry::usage");
  return impl_->usage(tenant);
}
engagement_usage tenant_registry::engagement(std::uint64_t tenant, const audit_tag& tag) const {
  RK_NVTX_RANGE("rk::tenant_registry::engagement");
  return impl_->tenants().engagement(tenant, tag);
}
std::vector<tenant_usage> tenant_registry::all() const {
  RK_NVTX_RANGE("rk::tenant_registry::all");
  return impl_->all_usage();
}

} // namespace rk
