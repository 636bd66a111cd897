// The host controller: owns every allocation, drives the lifecycle, maintains the device routing table
// (actors, aliases, routes, groups, message types), moves host messages through the mapped rings, reads
// counters back, and turns backend faults into rk::error.
//
// Locking: `control_mutex_` guards the structural tables (actors, kinds, groups, names, shadows of the
// device tables) so management calls and stats()/find() may come from different threads. The hot paths
// (send, send_wait, receive) never take it.

#include <ringkernel/host/runtime.hpp>
#include <ringkernel/runtime/detail/backend.hpp>

#include "nvtx.hpp"
#include "routing_tables.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cxxabi.h>
#include <map>
#include <mutex>
#include <typeindex>

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

namespace detail {

std::string demangle(const char* mangled) {
  int result = 0;
  std::unique_ptr<char, void (*)(void*)> text(abi::__cxa_demangle(mangled, nullptr, nullptr, &result),
                                              std::free);
  return result == 0 && text ? std::string(text.get()) : std::string(mangled);
}

namespace {

using clock_type = std::chrono::steady_clock;

std::uint64_t to_ns(std::chrono::nanoseconds d) noexcept {
  return d.count() <= 0 ? 0 : static_cast<std::uint64_t>(d.count());
}

//! Host read of a word that workers write (mapped memory).
template <class T>
T load_acquire(const T& word) noexcept {
  return cuda::atomic_ref<T, pcie_scope>(const_cast<T&>(word)).load(cuda::std::memory_order_acquire);
}

std::string geometry_text(const ring_geometry& g) {
  return "capacity=" + std::to_string(g.capacity) + ", slot_bytes=" + std::to_string(g.slot_bytes);
}

std::uint32_t host_word(std::uint32_t epoch, host_state s) {
  return make_state_word(epoch, static_cast<std::uint8_t>(s));
}

struct actor_record {
  std::string name;
  bool alias = false;
  std::uint64_t tenant = 0;
  std::uint64_t mailbox_bytes = 0;
  std::uint32_t kind = 0;
  void* d_state = nullptr;        //!< the actor's handler state (device memory), set when its worker starts
  std::vector<std::byte> initial; //!< for respawn
  std::vector<std::byte> final_state; //!< read back by shutdown
};

struct kind_record {
  actor_type_ops ops;
  bool loaded = false; //!< present at start(): its kernel was loaded and late spawns may use it
};

struct group_record {
  std::string name;
  std::vector<actor_index> members;
};

struct tenant_record {
  tenant_quota quota;
  std::uint32_t slot = 0;
  std::uint64_t actors = 0;
  std::uint64_t bytes = 0; //!< mailboxes + regions charged to the tenant
  std::uint32_t regions = 0;
};

struct engagement_record {
  std::uint64_t tenant = 0;
  audit_tag tag;
  std::uint64_t budget_ns = 0;
};

struct region_record {
  std::byte* pointer = nullptr;
  std::uint64_t size = 0;
  region_options options;
  std::uint32_t generation = 1;
  std::uint64_t cursor = 0;
  bool live = false;
};

std::string tenant_text(std::uint64_t tenant) {
  return "tenant " + std::to_string(tenant);
}

enum class phase : int { created, running, draining, stopped };

} // namespace

class runtime_impl {
public:
  explicit runtime_impl(runtime_options opts) : options_(std::move(opts)), types_(global_message_types()) {
    validate_options();
    choose_backend();
    allocate_shared_structures();
  }

  ~runtime_impl() {
    shutdown();
    release_memory();
  }

  runtime_options options_;
  std::unique_ptr<backend_impl> backend_;
  std::string description_;

  // --- construction ---------------------------------------------------------------------------------

  void validate_options() {
    if (options_.max_actors == 0 || options_.max_actors > (1u << 20))
      throw error("runtime_options::max_actors must be between 1 and 1048576 (got " +
                  std::to_string(options_.max_actors) + ")");
    if (const char* problem = options_.host_ring.validate())
      throw error(std::string("runtime_options::host_ring: ") + problem + " (got " +
                  geometry_text(options_.host_ring) + ")");
    if (options_.max_groups > (1u << 20))
      throw error("runtime_options::max_groups must be at most 1048576 (got " +
                  std::to_string(options_.max_groups) + ")");
    if (options_.max_group_members == 0) options_.max_group_members = options_.max_actors;
    if (options_.max_hops > 255)
      throw error("runtime_options::max_hops must be at most 255 (the envelope's hop counter is 8 bits)");
    if (options_.starvation_limit == 0 || options_.starvation_limit > 255)
      throw error("runtime_options::starvation_limit must be between 1 and 255 (got " +
                  std::to_string(options_.starvation_limit) + ")");
    if (options_.max_message_types > (1u << 24))
      throw error("runtime_options::max_message_types must be at most 16777216");
  }

  void choose_backend() {
    std::string why;
    switch (options_.backend) {
    case backend::cpu:
      backend_ = make_cpu_backend(options_);
      description_ = "requested";
      break;
    case backend::cuda:
      backend_ = make_cuda_backend(options_, description_);
      break;
    case backend::automatic:
      if (cuda_device_usable(options_.cuda_device, why)) {
        backend_ = make_cuda_backend(options_, description_);
      } else {
        backend_ = make_cpu_backend(options_);
        description_ = "no usable CUDA device: " + why;
      }
      break;
    }
    if (options_.announce_backend)
      std::fprintf(stderr, "ringkernel: backend %s (%s)\n", std::string(to_string(backend_->kind())).c_str(),
                   description_.c_str());
  }

  //! Zero-filled device memory. Before start() a fresh allocation; afterwards a slice of the running arena,
  //! because on CUDA a device allocation issued between two launches keeps them from running concurrently
  //! ("implicit synchronization"), which would hold back workers launched beside the persistent kernels.
  void* device_alloc(std::size_t bytes) {
    if (launched_ && arena_ == nullptr)
      throw error("cannot allocate device memory after start(): runtime_options::running_arena_bytes is 0");
    if (arena_ != nullptr) {
      const std::size_t size = (std::max<std::size_t>(bytes, 1) + 255) / 256 * 256;
      if (size > arena_size_ - arena_used_)
        throw error("out of running memory: " + std::to_string(bytes) + " bytes asked, " +
                    std::to_string(arena_size_ - arena_used_) +
                    " left of runtime_options::running_arena_bytes (" + std::to_string(arena_size_) +
                    "); raise it to spawn more actors or create more regions after start()");
      void* p = arena_ + arena_used_;
      arena_used_ += size;
      return p;
    }
    void* p = backend_->allocate_device(bytes);
    device_allocations_.push_back(p);
    return p;
  }
  mapped_allocation mapped_alloc(std::size_t bytes) {
    mapped_allocation m = backend_->allocate_mapped(bytes);
    mapped_allocations_.push_back(m);
    return m;
  }

  void allocate_shared_structures() {
    const std::uint32_t capacity = options_.max_actors;
    sys_.route_capacity = capacity;
    sys_.max_hops = options_.max_hops;
    sys_.starvation_limit = options_.starvation_limit;
    sys_.device_idle_sleep_max_ns = options_.device_idle_sleep_max_ns;
    sys_.routes = static_cast<route_entry*>(device_alloc(sizeof(route_entry) * capacity));
    routes_.resize(capacity);
    sys_.counters = static_cast<actor_counters*>(device_alloc(sizeof(actor_counters) * capacity));
    sys_.privates = static_cast<actor_private*>(device_alloc(sizeof(actor_private) * capacity));
    sys_.gateway = static_cast<gateway_counters*>(device_alloc(sizeof(gateway_counters)));

    sys_.group_capacity = options_.max_groups;
    sys_.groups =
        static_cast<group_entry*>(device_alloc(sizeof(group_entry) * std::max(1u, options_.max_groups)));
    sys_.group_cursors =
        static_cast<std::uint32_t*>(device_alloc(sizeof(std::uint32_t) * std::max(1u, options_.max_groups)));
    sys_.group_members =
        static_cast<address*>(device_alloc(sizeof(address) * std::max(1u, options_.max_group_members)));

    sys_.tenant_capacity = std::max(1u, options_.max_tenants);
    sys_.tenants = static_cast<tenant_entry*>(device_alloc(sizeof(tenant_entry) * sys_.tenant_capacity));
    sys_.engagement_capacity = options_.max_engagements;
    sys_.engagements = static_cast<engagement_entry*>(
        device_alloc(sizeof(engagement_entry) * std::max(1u, options_.max_engagements)));
    sys_.region_capacity = options_.max_regions;
    sys_.regions =
        static_cast<region_entry*>(device_alloc(sizeof(region_entry) * std::max(1u, options_.max_regions)));
    register_tenant(0, tenant_quota::unlimited()); // tenant 0: unspecified, always present

    sys_.blocked_type_limit = options_.max_message_types;
    blocked_types_.assign((options_.max_message_types + 31) / 32, 0u);
    sys_.blocked_types = static_cast<std::uint32_t*>(
        device_alloc(sizeof(std::uint32_t) * std::max<std::size_t>(1, blocked_types_.size())));
    for (const message_type_info& t : types_.all())
      if (!t.routable) block_type(t);

    const mapped_allocation control = mapped_alloc(sizeof(control_block));
    h_control_ = static_cast<control_block*>(control.host);
    sys_.control = static_cast<control_block*>(control.device);

    // One status entry per possible actor worker plus the gateway's (the last).
    const mapped_allocation workers = mapped_alloc(sizeof(worker_status) * (std::size_t{capacity} + 1));
    h_workers_ = static_cast<worker_status*>(workers.host);
    sys_.workers = static_cast<worker_status*>(workers.device);

    const ring_geometry g = options_.host_ring;
    const mapped_allocation ingress = mapped_alloc(g.total_bytes());
    init_ring_image(ingress.host, g);
    h_ingress_ = make_ring_view(ingress.host, g);
    sys_.ingress = make_ring_view(ingress.device, g);
    const mapped_allocation receipts = mapped_alloc(sizeof(ingress_receipt) * g.capacity);
    h_receipts_ = static_cast<ingress_receipt*>(receipts.host);
    sys_.receipts = static_cast<ingress_receipt*>(receipts.device);
    waiting_ = std::make_unique<std::atomic<std::uint32_t>[]>(g.capacity);

    const mapped_allocation egress = mapped_alloc(g.total_bytes());
    init_ring_image(egress.host, g);
    h_egress_ = make_ring_view(egress.host, g);
    sys_.egress = make_ring_view(egress.device, g);
    // Device producers claim with a CAS; keep that counter in device memory, never across PCIe.
    sys_.egress.tail = static_cast<std::uint64_t*>(device_alloc(ring_geometry::cursor_bytes));
    h_egress_.tail = nullptr; // the host consumer never touches it

    start_audit();
  }

  //! The audit ring (mapped; its claim and overflow counters in device memory) and the host drain that
  //! hash-chains every record into the memory sink and the user's sinks.
  void start_audit() {
    const ring_geometry g = audit_ring_geometry(options_.audit_ring_slots);
    if (const char* problem = g.validate())
      throw error(std::string("runtime_options::audit_ring_slots: ") + problem);
    const mapped_allocation ring = mapped_alloc(g.total_bytes());
    init_ring_image(ring.host, g);
    auto* words = static_cast<std::byte*>(device_alloc(2 * ring_geometry::cursor_bytes));
    sys_.audit.ring = make_ring_view(ring.device, g);
    sys_.audit.ring.tail = reinterpret_cast<std::uint64_t*>(words);
    sys_.audit.overflow = reinterpret_cast<std::uint64_t*>(words + ring_geometry::cursor_bytes);
    ring_view host_view = make_ring_view(ring.host, g);
    host_view.tail = nullptr;

    audit_memory_ =
        std::make_shared<audit_memory_sink>(std::max<std::size_t>(1, options_.audit_memory_records));
    std::vector<std::shared_ptr<audit_sink>> sinks{audit_memory_};
    for (const auto& sink : options_.audit_sinks)
      if (sink) sinks.push_back(sink);
    audit_drain_options o;
    std::uint64_t* tail = sys_.audit.ring.tail;
    std::uint64_t* overflow = sys_.audit.overflow;
    o.read_claimed = [this, tail] { return read_device_u64(tail); };
    drain_ = std::make_unique<audit_drain>(
        host_view, [this, overflow] { return read_device_u64(overflow); }, std::move(sinks), o);
  }

  std::uint64_t read_device_u64(const std::uint64_t* word) const {
    std::uint64_t v = 0;
    backend_->copy_from_device(&v, word, sizeof v);
    return v;
  }

  //! A host-side audit record (spawn, stop, respawn, faults the host detects); the drain stamps its time.
  void audit_host(audit_event event, audit_level level, actor_index actor, std::uint64_t tenant,
                  std::uint32_t detail = 0, std::uint64_t value = 0) {
    if (!drain_) return;
    audit_record r;
    r.event = event;
    r.level = level;
    r.actor = actor;
    r.tenant = tenant;
    r.detail = detail;
    r.value = value;
    (void)drain_->record_host(r); // not_running only after shutdown stopped the drain
  }

  void release_memory() noexcept {
    if (!memory_releasable_) return; // a worker may still be running: leaking is the only safe choice
    for (void* p : device_allocations_) backend_->free_device(p);
    for (const auto& m : mapped_allocations_) backend_->free_mapped(m);
    device_allocations_.clear();
    mapped_allocations_.clear();
  }

  // --- routing-table writes ---------------------------------------------------------------------------
  // The host writes an entry whole only while it is empty (no sender reads past the state word, no worker
  // exists); afterwards it writes single words: host_word and next_hop. It never writes device_word.

  void write_entry(address a) { backend_->copy_to_device(&sys_.routes[a], &routes_[a], sizeof(route_entry)); }
  void write_host_word(address a, std::uint32_t word) {
    routes_[a].host_word = word;
    backend_->copy_to_device(&sys_.routes[a].host_word, &word, sizeof(word));
  }
  void write_next_hop(address a, address next) {
    routes_[a].next_hop = next;
    backend_->copy_to_device(&sys_.routes[a].next_hop, &next, sizeof(next));
  }
  std::uint32_t read_device_word(address a) const {
    std::uint32_t word = 0;
    backend_->copy_from_device(&word, &sys_.routes[a].device_word, sizeof(word));
    return word;
  }

  // --- spawning -------------------------------------------------------------------------------------

  std::uint32_t kind_for(actor_type_ops ops, bool must_be_loaded, const std::string& who) {
    for (std::uint32_t i = 0; i < kinds_.size(); ++i) {
      if (kinds_[i].ops.type != ops.type) continue;
      if (kinds_[i].ops.cuda_kernel == nullptr && !kinds_[i].loaded)
        kinds_[i].ops.cuda_kernel = ops.cuda_kernel;
      if (must_be_loaded && !kinds_[i].loaded)
        throw error(who + ": handler '" + ops.name + "' was not known at start()");
      return i;
    }
    if (must_be_loaded)
      throw error(
          who + ": handler '" + ops.name +
          "' was not known at start(): loading a kernel while persistent kernels run can deadlock under "
          "CUDA lazy loading, so spawn or prepare<H>() every handler type before start()");
    kinds_.push_back(kind_record{std::move(ops), false});
    return static_cast<std::uint32_t>(kinds_.size() - 1);
  }

  void check_cuda_code(const actor_type_ops& ops, const std::string& who) const {
    if (backend_->kind() == backend::cuda && ops.cuda_kernel == nullptr)
      throw error(who + ": handler '" + ops.name +
                  "' was compiled without nvcc, so it has no CUDA kernel; compile the translation unit that "
                  "calls spawn<" +
                  ops.name + ">() as CUDA (a .cu file) or use backend::cpu");
  }

  void prepare(actor_type_ops ops) {
    std::lock_guard lock(control_mutex_);
    const std::string who = "prepare<" + ops.name + ">()";
    if (phase_.load() != phase::created) throw error(who + ": prepare handler types before start()");
    check_cuda_code(ops, who);
    kind_for(std::move(ops), false, who);
  }

  address spawn(actor_type_ops ops, std::string name, const actor_options& opts, const void* initial) {
    RK_NVTX_RANGE("rk::runtime::spawn");
    std::lock_guard lock(control_mutex_);
    const std::string who = "spawn('" + name + "')";
    const phase now = phase_.load();
    if (now != phase::created && now != phase::running)
      throw error(who + ": the runtime has shut down; create a new rk::runtime");
    throw_if_faulted();
    if (name.empty()) throw error("spawn(): the actor name must not be empty");
    if (opts.instances == 0) throw error(who + ": actor_options::instances must be at least 1");
    const std::uint32_t n = opts.instances;
    if (n > 1 && groups_by_name_.count(name) != 0)
      throw error(who + ": a group with this name already exists");
    std::vector<std::string> names;
    for (std::uint32_t i = 0; i < n; ++i) names.push_back(n == 1 ? name : name + "/" + std::to_string(i));
    for (const auto& nm : names)
      if (by_name_.count(nm) != 0) throw error("spawn('" + nm + "'): an actor with this name already exists");
    if (actors_.size() + n > options_.max_actors)
      throw error(who + ": the actor table is full (max_actors = " + std::to_string(options_.max_actors) +
                  "); raise runtime_options::max_actors");
    if (const char* problem = opts.mailbox.validate())
      throw error(who + ": invalid mailbox: " + problem + " (got " + geometry_text(opts.mailbox) + ")");
    check_cuda_code(ops, who);
    const std::size_t state_size = ops.state_size;
    const std::uint32_t kind = kind_for(std::move(ops), now == phase::running, who);
    const std::uint32_t lanes = opts.priority_lanes ? priority_levels : 1;
    const std::uint64_t mailbox_bytes = lane_stride(opts.mailbox) * lanes;
    const std::uint32_t engagement =
        opts.audit_tag == audit_tag{} ? no_slot : engagement_slot_for(opts.tenant, opts.audit_tag, who);
    charge_tenant(opts.tenant, n, mailbox_bytes * n, who);

    std::vector<actor_index> ids;
    try {
      for (const auto& nm : names)
        ids.push_back(create_actor(nm, kind, opts, initial, state_size, engagement));
      if (now == phase::running) start_late_workers(ids);
    } catch (...) {
      // Undo everything this spawn did: its actors (and their charges), then the charge of the rest.
      forget_last_actors(ids.size());
      tenant_record& t = tenants_.at(opts.tenant);
      t.actors -= n - ids.size();
      t.bytes -= mailbox_bytes * (n - ids.size());
      throw;
    }
    for (actor_index id : ids)
      audit_host(audit_event::actor_spawn, audit_level::info, id, opts.tenant, 0, kind);
    if (n == 1) return ids.front();
    return create_group_locked(name, ids);
  }

  //! Adds an actor record and its mailbox; the routing entry is written with host_state live before
  //! start, and left empty while running until its worker is up (start_late_workers).
  actor_index create_actor(const std::string& name, std::uint32_t kind, const actor_options& opts,
                           const void* initial, std::size_t state_size, std::uint32_t engagement) {
    const auto id = static_cast<actor_index>(actors_.size());
    const std::uint32_t lanes = opts.priority_lanes ? priority_levels : 1;
    const std::size_t stride = lane_stride(opts.mailbox);
    void* d_mailbox = device_alloc(stride * lanes);
    std::vector<std::byte> image(stride * (lanes - 1) + opts.mailbox.slots_offset());
    for (std::uint32_t l = 0; l < lanes; ++l) init_ring_image(image.data() + l * stride, opts.mailbox);
    backend_->copy_to_device(d_mailbox, image.data(), image.size());

    route_entry& e = routes_[id];
    e = route_entry{};
    e.mailbox = static_cast<std::byte*>(d_mailbox);
    e.geometry = opts.mailbox;
    e.lanes = lanes;
    e.kind = kind;
    e.tenant = opts.tenant;
    e.tenant_slot = tenants_.at(opts.tenant).slot;
    e.engagement_slot = engagement;
    e.next_hop = id;
    // Written whole, device word included: no worker exists for this id yet.
    e.host_word = host_word(1, phase_.load() == phase::running ? host_state::empty : host_state::live);
    write_entry(id);

    actor_record record;
    record.name = name;
    record.kind = kind;
    record.tenant = opts.tenant;
    record.mailbox_bytes = stride * lanes;
    record.initial.assign(static_cast<const std::byte*>(initial),
                          static_cast<const std::byte*>(initial) + state_size);
    by_name_.emplace(name, id);
    actors_.push_back(std::move(record));
    return id;
  }

  //! Undoes create_actor for the newest `count` actors after a failed spawn: their entries go back to
  //! empty and their tenant charges are returned. Their mailboxes stay allocated until shutdown (freeing
  //! device memory while kernels run would synchronise with them).
  void forget_last_actors(std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      const auto id = static_cast<actor_index>(actors_.size() - 1);
      if (state_in(routes_[id].host_word) != static_cast<std::uint8_t>(host_state::empty))
        write_host_word(id, host_word(epoch_of(routes_[id].host_word), host_state::empty));
      tenant_record& t = tenants_.at(actors_.back().tenant);
      t.actors -= 1;
      t.bytes -= actors_.back().mailbox_bytes;
      by_name_.erase(actors_.back().name);
      actors_.pop_back();
    }
  }

  //! Allocates the state array and worker list for `ids` (all of one kind) and describes their launch.
  worker_group make_worker_group(const std::vector<actor_index>& ids, std::uint32_t first_worker,
                                 std::vector<std::unique_ptr<std::vector<actor_index>>>& keep_alive) {
    const kind_record& k = kinds_[actors_[ids.front()].kind];
    const std::size_t size = k.ops.state_size;
    auto* d_actors = static_cast<actor_index*>(device_alloc(sizeof(actor_index) * ids.size()));
    backend_->copy_to_device(d_actors, ids.data(), sizeof(actor_index) * ids.size());
    auto* d_states = static_cast<std::byte*>(device_alloc(std::max<std::size_t>(size * ids.size(), 1)));
    for (std::size_t i = 0; i < ids.size(); ++i) {
      actor_record& a = actors_[ids[i]];
      a.d_state = d_states + i * size;
      if (size) backend_->copy_to_device(a.d_state, a.initial.data(), size);
    }
    keep_alive.push_back(std::make_unique<std::vector<actor_index>>(ids));

    worker_group g;
    g.ops = &k.ops;
    g.workers = static_cast<std::uint32_t>(ids.size());
    g.host_worker_actors = keep_alive.back()->data();
    g.host_states = d_states;
    g.params.sys = sys_;
    g.params.worker_actors = d_actors;
    g.params.states = d_states;
    g.params.first_worker = first_worker;
    for (std::size_t i = 0; i < ids.size(); ++i)
      g.actors_description += (i ? ", " : "") + actors_[ids[i]].name;
    return g;
  }

  //! Waits until worker_status entries [first, first + count) and (if asked) the gateway have checked in.
  void await_check_in(std::uint32_t first, std::uint32_t count, bool gateway, const std::string& who) {
    auto all_checked_in = [&] {
      if (gateway && load_acquire(h_workers_[options_.max_actors].checked_in) == 0) return false;
      for (std::uint32_t w = first; w < first + count; ++w)
        if (load_acquire(h_workers_[w].checked_in) == 0) return false;
      return true;
    };
    const wait_result r = wait_until(
        all_checked_in, [&] { return fault_detected(); }, to_ns(options_.start_timeout), host_backoff());
    if (r == wait_result::ready) return;
    if (r == wait_result::aborted) throw error(who + ": " + fault_text());
    std::uint32_t started = 0;
    for (std::uint32_t w = first; w < first + count; ++w)
      started += load_acquire(h_workers_[w].checked_in) != 0;
    throw error(
        who + ": only " + std::to_string(started) + " of " + std::to_string(count) +
        " actor workers started within " + std::to_string(options_.start_timeout.count()) +
        " ms, so the actor kernels are not all co-resident (other work on the GPU, MPS limits, or more "
        "actors than fit). Spawn fewer actors or free the GPU.");
  }

  void start_late_workers(const std::vector<actor_index>& ids) {
    std::vector<std::unique_ptr<std::vector<actor_index>>> keep_alive;
    std::vector<worker_group> groups{make_worker_group(ids, next_worker_, keep_alive)};
    const std::uint32_t used = backend_->launch_more(sys_, groups);
    await_check_in(next_worker_, used, false, "spawn('" + actors_[ids.front()].name + "')");
    next_worker_ += used;
    for (actor_index id : ids)
      write_host_word(id, host_word(epoch_of(routes_[id].host_word), host_state::live));
  }

  // --- groups, routes, aliases --------------------------------------------------------------------------

  address create_group(std::string name, std::span<const actor_index> members) {
    std::lock_guard lock(control_mutex_);
    return create_group_locked(std::move(name), std::vector<actor_index>(members.begin(), members.end()));
  }

  address create_group_locked(const std::string& name, const std::vector<actor_index>& members) {
    const std::string who = "create_group('" + name + "')";
    if (name.empty()) throw error("create_group(): the group name must not be empty");
    if (groups_by_name_.count(name) != 0) throw error(who + ": a group with this name already exists");
    if (members.empty()) throw error(who + ": a group needs at least one member");
    for (actor_index m : members) {
      if (m >= actors_.size() || actors_[m].alias)
        throw error(who + ": member " + std::to_string(m) + " is not an actor of this runtime");
    }
    for (actor_index m : members)
      if (actors_[m].tenant != actors_[members.front()].tenant)
        throw error(who + ": members '" + actors_[members.front()].name + "' and '" + actors_[m].name +
                    "' belong to different tenants; a group serves one tenant");
    if (const address dup = first_duplicate(members); dup != host_actor)
      throw error(who + ": actor '" + actors_[dup].name + "' is listed more than once");
    if (groups_.size() >= options_.max_groups)
      throw error(who + ": the group table is full (max_groups = " + std::to_string(options_.max_groups) +
                  ")");
    if (members_used_ + members.size() > options_.max_group_members)
      throw error(who + ": group member lists are full (max_group_members = " +
                  std::to_string(options_.max_group_members) + ")");

    const auto g = static_cast<std::uint32_t>(groups_.size());
    const std::vector<std::uint32_t> keys(members.size(), g);
    const group_tables t = build_group_tables(keys, members, g, 1, members_used_);
    // Members first, then the entry that makes them reachable; existing groups are never rewritten.
    backend_->copy_to_device(sys_.group_members + members_used_, t.members.data(),
                             sizeof(address) * t.members.size());
    backend_->copy_to_device(&sys_.groups[g], &t.entries[0], sizeof(group_entry));
    members_used_ += static_cast<std::uint32_t>(members.size());
    groups_.push_back(group_record{name, members});
    groups_by_name_.emplace(name, g);
    return group_address(g);
  }

  address group(std::string_view name) const {
    std::lock_guard lock(control_mutex_);
    const auto it = groups_by_name_.find(name);
    if (it == groups_by_name_.end())
      throw error("group('" + std::string(name) + "'): no group with this name");
    return group_address(it->second);
  }

  std::vector<actor_index> members(address g) const {
    std::lock_guard lock(control_mutex_);
    if (!is_group_address(g) || group_of(g) >= groups_.size())
      throw error("members(): " + std::to_string(g) + " is not the address of a group of this runtime");
    return groups_[group_of(g)].members;
  }

  void check_target(address target, const std::string& who) const {
    if (target == host_actor) throw error(who + ": a route cannot lead to the host");
    if (is_group_address(target)) {
      if (group_of(target) >= groups_.size())
        throw error(who + ": no group with address " + std::to_string(target));
      return;
    }
    if (target >= actors_.size()) throw error(who + ": no actor or alias with id " + std::to_string(target));
  }

  void set_route(actor_index from, address next_hop) {
    std::lock_guard lock(control_mutex_);
    const std::string who = "set_route(" + std::to_string(from) + ", " + std::to_string(next_hop) + ")";
    check_id(from, who.c_str());
    check_target(next_hop, who);
    write_next_hop(from, next_hop);
  }

  void clear_route(actor_index a) {
    std::lock_guard lock(control_mutex_);
    check_id(a, "clear_route()");
    if (actors_[a].alias)
      throw error("clear_route(): '" + actors_[a].name + "' is an alias; it has no own mailbox");
    write_next_hop(a, a);
  }

  actor_index add_alias(std::string name, address target) {
    std::lock_guard lock(control_mutex_);
    const std::string who = "add_alias('" + name + "')";
    if (name.empty()) throw error("add_alias(): the alias name must not be empty");
    if (by_name_.count(name) != 0) throw error(who + ": an actor or alias with this name already exists");
    if (actors_.size() >= options_.max_actors)
      throw error(who + ": the actor table is full (max_actors = " + std::to_string(options_.max_actors) +
                  ")");
    check_target(target, who);
    const auto id = static_cast<actor_index>(actors_.size());
    route_entry& e = routes_[id];
    e = route_entry{};
    e.next_hop = target;
    e.host_word = host_word(1, host_state::alias);
    write_entry(id);
    actor_record record;
    record.name = name;
    record.alias = true;
    by_name_.emplace(name, id);
    actors_.push_back(std::move(record));
    return id;
  }

  // --- per-actor lifecycle -----------------------------------------------------------------------------

  actor_index check_actor(actor_index a, const char* who) const {
    check_id(a, who);
    if (actors_[a].alias)
      throw error(std::string(who) + ": '" + actors_[a].name + "' is an alias, not an actor");
    return a;
  }

  void require_running(const char* who) const {
    if (phase_.load() != phase::running) throw error(std::string(who) + ": the runtime is not running");
  }

  //! Waits until actor `a` reports `wanted` (or, if `or_faulted`, faulted) in the epoch of `host_word`.
  //! Needs no lock: it only reads the device word.
  bool await_device_state(actor_index a, std::uint32_t host_word, device_state wanted, bool or_faulted,
                          std::chrono::nanoseconds timeout) {
    const wait_result r = wait_until(
        [&] {
          const device_state ds = current_device_state(host_word, read_device_word(a));
          return ds == wanted || (or_faulted && ds == device_state::faulted);
        },
        [&] { return fault_detected(); }, to_ns(timeout), host_backoff());
    if (r == wait_result::aborted) throw_if_faulted();
    return r == wait_result::ready;
  }

  //! Common checks of the per-actor lifecycle calls (with control_mutex_ held).
  void check_lifecycle_call(actor_index a, const char* who) {
    check_actor(a, who);
    require_running(who);
    throw_if_faulted();
  }

  bool stop(actor_index a, std::chrono::nanoseconds timeout) {
    std::uint64_t tenant;
    std::uint32_t hw;
    {
      std::lock_guard lock(control_mutex_);
      check_lifecycle_call(a, "stop()");
      hw = routes_[a].host_word;
      const auto hs = static_cast<host_state>(state_in(hw));
      if (hs == host_state::live || hs == host_state::paused)
        write_host_word(a, host_word(epoch_of(hw), host_state::stopping));
      tenant = actors_[a].tenant;
    }
    // Waiting without the lock: stats() and other management calls stay available meanwhile.
    const bool stopped = await_device_state(a, hw, device_state::stopped, true, timeout);
    if (stopped) audit_host(audit_event::actor_stop, audit_level::info, a, tenant);
    return stopped;
  }

  void respawn(actor_index a, std::type_index type, const void* initial) {
    std::lock_guard lock(control_mutex_);
    check_lifecycle_call(a, "respawn()");
    actor_record& r = actors_[a];
    const kind_record& k = kinds_[r.kind];
    if (initial != nullptr && type != k.ops.type)
      throw error("respawn<H>(" + std::to_string(a) + "): actor '" + r.name + "' runs handler '" +
                  k.ops.name + "', not the requested type");
    const std::uint32_t hw = routes_[a].host_word;
    const device_state ds = current_device_state(hw, read_device_word(a));
    if (ds != device_state::stopped && ds != device_state::faulted)
      throw error("respawn(): actor '" + r.name + "' is not stopped or faulted; stop() it first");
    // The worker is parked: it does not touch the state while stopped or faulted.
    if (k.ops.state_size)
      backend_->copy_to_device(r.d_state, initial ? initial : r.initial.data(), k.ops.state_size);
    write_host_word(a, host_word(epoch_of(hw) + 1, host_state::live));
    audit_host(audit_event::actor_spawn, audit_level::info, a, r.tenant, 1, r.kind); // detail 1: a respawn
  }

  bool pause_actor(actor_index a, std::chrono::nanoseconds timeout) {
    std::uint32_t hw;
    {
      std::lock_guard lock(control_mutex_);
      check_lifecycle_call(a, "pause_actor()");
      hw = routes_[a].host_word;
      if (static_cast<host_state>(state_in(hw)) != host_state::live)
        throw error("pause_actor(): actor '" + actors_[a].name + "' is not live");
      write_host_word(a, host_word(epoch_of(hw), host_state::paused));
    }
    return await_device_state(a, hw, device_state::paused, true, timeout);
  }

  void resume_actor(actor_index a) {
    std::lock_guard lock(control_mutex_);
    check_actor(a, "resume_actor()");
    const std::uint32_t hw = routes_[a].host_word;
    if (static_cast<host_state>(state_in(hw)) == host_state::paused)
      write_host_word(a, host_word(epoch_of(hw), host_state::live));
  }

  actor_lifecycle lifecycle_of(actor_index a, std::uint32_t device_word) const {
    if (actors_[a].alias) return actor_lifecycle::alias;
    const std::uint32_t hw = routes_[a].host_word;
    switch (current_device_state(hw, device_word)) {
    case device_state::stopped:
      return actor_lifecycle::stopped;
    case device_state::faulted:
      return actor_lifecycle::faulted;
    default:
      break;
    }
    switch (static_cast<host_state>(state_in(hw))) {
    case host_state::paused:
      return actor_lifecycle::paused;
    case host_state::stopping:
      return actor_lifecycle::stopping;
    default:
      return actor_lifecycle::live;
    }
  }

  actor_lifecycle lifecycle(actor_index a) const {
    std::lock_guard lock(control_mutex_);
    check_id(a, "lifecycle()");
    return lifecycle_of(a, read_device_word(a));
  }

  // --- tenants -----------------------------------------------------------------------------------------

  static void check_quota(std::uint64_t tenant, const tenant_quota& q) {
    if (q.burst > (1u << 20))
      throw error(tenant_text(tenant) + ": tenant_quota::burst must be at most 1048576 messages (got " +
                  std::to_string(q.burst) + ")");
    if (q.max_messages_per_second > 1'000'000'000'000ull)
      throw error(tenant_text(tenant) + ": tenant_quota::max_messages_per_second must be at most 1e12");
  }

  void write_rate(const tenant_record& r) {
    // rate_per_second and burst are adjacent words of tenant_entry
    const std::uint64_t words[2] = {r.quota.max_messages_per_second, r.quota.burst};
    backend_->copy_to_device(&sys_.tenants[r.slot].rate_per_second, words, sizeof(words));
  }

  void register_tenant(std::uint64_t tenant, const tenant_quota& quota) {
    check_quota(tenant, quota);
    if (next_tenant_slot_ >= sys_.tenant_capacity)
      throw error("tenants().add(" + std::to_string(tenant) +
                  "): the tenant table is full (max_tenants = " + std::to_string(options_.max_tenants) + ")");
    tenant_record r;
    r.quota = quota;
    r.slot = next_tenant_slot_++;
    tenant_entry e;
    e.id = tenant;
    e.rate_per_second = quota.max_messages_per_second;
    e.burst = quota.burst;
    backend_->copy_to_device(&sys_.tenants[r.slot], &e, sizeof(e)); // a fresh slot: nothing reads it yet
    {
      std::lock_guard lock(tenant_slots_mutex_);
      tenant_slots_[tenant] = r.slot;
    }
    tenants_.emplace(tenant, r);
  }

  void add_tenant(std::uint64_t tenant, const tenant_quota& quota) {
    std::lock_guard lock(control_mutex_);
    if (tenant == 0)
      throw error("tenants().add(0): tenant 0 (unspecified) always exists; use set_quota(0, ...)");
    if (tenants_.count(tenant) != 0)
      throw error("tenants().add(" + std::to_string(tenant) +
                  "): already registered; use set_quota to change it");
    register_tenant(tenant, quota);
  }

  tenant_record& tenant_of(std::uint64_t tenant, const std::string& who) {
    const auto it = tenants_.find(tenant);
    if (it == tenants_.end())
      throw error(who + ": " + tenant_text(tenant) + " is not registered; call rt.tenants().add(" +
                  std::to_string(tenant) + ", quota) first");
    return it->second;
  }
  const tenant_record& tenant_of(std::uint64_t tenant, const std::string& who) const {
    return const_cast<runtime_impl*>(this)->tenant_of(tenant, who);
  }

  void set_quota(std::uint64_t tenant, const tenant_quota& quota) {
    std::lock_guard lock(control_mutex_);
    const std::string who = "tenants().set_quota(" + std::to_string(tenant) + ")";
    tenant_record& r = tenant_of(tenant, who);
    check_quota(tenant, quota);
    if (quota.max_actors < r.actors)
      throw error(who + ": the tenant already has " + std::to_string(r.actors) +
                  " actors, more than the new max_actors " + std::to_string(quota.max_actors));
    if (quota.max_device_bytes < r.bytes)
      throw error(who + ": the tenant already uses " + std::to_string(r.bytes) +
                  " device bytes, more than the new max_device_bytes " +
                  std::to_string(quota.max_device_bytes));
    r.quota = quota;
    write_rate(r);
  }

  void remove_tenant(std::uint64_t tenant) {
    std::lock_guard lock(control_mutex_);
    const std::string who = "tenants().remove(" + std::to_string(tenant) + ")";
    if (tenant == 0) throw error(who + ": tenant 0 (unspecified) cannot be removed");
    const tenant_record& r = tenant_of(tenant, who);
    if (r.actors != 0 || r.regions != 0)
      throw error(who + ": the tenant still has " + std::to_string(r.actors) + " actors and " +
                  std::to_string(r.regions) + " regions");
    {
      std::lock_guard slots(tenant_slots_mutex_);
      tenant_slots_.erase(tenant);
    }
    tenants_.erase(tenant); // its slot is retired, never reused
  }

  bool has_tenant(std::uint64_t tenant) const {
    std::lock_guard lock(control_mutex_);
    return tenants_.count(tenant) != 0;
  }

  //! Charges `actors` and `bytes` to `tenant`, or throws naming the limit (nothing charged).
  void charge_tenant(std::uint64_t tenant, std::uint64_t actors, std::uint64_t bytes,
                     const std::string& who) {
    tenant_record& r = tenant_of(tenant, who);
    if (r.actors + actors > r.quota.max_actors)
      throw error(who + ": " + tenant_text(tenant) + " would have " + std::to_string(r.actors + actors) +
                  " actors, over its limit of " + std::to_string(r.quota.max_actors) +
                  " (tenant_quota::max_actors)");
    if (r.bytes + bytes > r.quota.max_device_bytes)
      throw error(who + ": " + tenant_text(tenant) + " would use " + std::to_string(r.bytes + bytes) +
                  " device bytes, over its limit of " + std::to_string(r.quota.max_device_bytes) +
                  " (tenant_quota::max_device_bytes)");
    r.actors += actors;
    r.bytes += bytes;
  }

  //! The engagement slot of (tenant, tag), created with no budget on first use.
  std::uint32_t engagement_slot_for(std::uint64_t tenant, const audit_tag& tag, const std::string& who) {
    for (std::uint32_t i = 0; i < engagements_.size(); ++i)
      if (engagements_[i].tenant == tenant && engagements_[i].tag == tag) return i;
    tenant_of(tenant, who);
    if (engagements_.size() >= options_.max_engagements)
      throw error(who + ": the engagement table is full (max_engagements = " +
                  std::to_string(options_.max_engagements) + ")");
    engagement_entry e;
    e.tenant = tenant;
    e.org_id = tag.org_id;
    e.engagement_id = tag.engagement_id;
    const auto slot = static_cast<std::uint32_t>(engagements_.size());
    backend_->copy_to_device(&sys_.engagements[slot], &e, sizeof(e));
    engagements_.push_back({tenant, tag, 0});
    return slot;
  }

  void set_engagement_budget(std::uint64_t tenant, const audit_tag& tag, std::chrono::nanoseconds budget) {
    std::lock_guard lock(control_mutex_);
    const std::string who = "tenants().set_engagement_budget(" + std::to_string(tenant) + ")";
    tenant_of(tenant, who);
    if (tag == audit_tag{})
      throw error(who + ": the audit tag {0, 0} means untagged; use a non-zero org or engagement id");
    if (budget.count() < 0) throw error(who + ": the budget must not be negative");
    const std::uint32_t slot = engagement_slot_for(tenant, tag, who);
    engagements_[slot].budget_ns = static_cast<std::uint64_t>(budget.count());
    backend_->copy_to_device(&sys_.engagements[slot].budget_ns, &engagements_[slot].budget_ns,
                             sizeof(std::uint64_t));
  }

  tenant_usage usage_locked(std::uint64_t tenant, const tenant_record& r) const {
    tenant_entry e;
    backend_->copy_from_device(&e, &sys_.tenants[r.slot], sizeof(e));
    // Actors count their own sends and handler time; sum those of the tenant's actors.
    std::uint64_t passed = 0, handler_ns = 0;
    const std::vector<actor_counters> counters = read_counters(actors_.size());
    for (std::size_t i = 0; i < actors_.size(); ++i) {
      if (actors_[i].alias || actors_[i].tenant != tenant) continue;
      passed += counters[i].passed;
      handler_ns += counters[i].handler_ns;
    }
    tenant_usage u;
    u.tenant = tenant;
    u.quota = r.quota;
    u.actors = r.actors;
    u.device_bytes = r.bytes;
    u.messages_sent = e.host_sent + passed;
    u.rate_rejections = e.rate_rejections;
    u.budget_rejections = e.budget_rejections;
    u.handler_ns = handler_ns;
    return u;
  }

  tenant_usage usage(std::uint64_t tenant) const {
    std::lock_guard lock(control_mutex_);
    return usage_locked(tenant, tenant_of(tenant, "tenants().usage(" + std::to_string(tenant) + ")"));
  }

  std::vector<tenant_usage> all_usage() const {
    std::lock_guard lock(control_mutex_);
    std::vector<tenant_usage> out;
    for (const auto& [id, r] : tenants_) out.push_back(usage_locked(id, r));
    return out;
  }

  engagement_usage engagement(std::uint64_t tenant, const audit_tag& tag) const {
    std::lock_guard lock(control_mutex_);
    engagement_usage u;
    u.tenant = tenant;
    u.tag = tag;
    for (std::uint32_t i = 0; i < engagements_.size(); ++i) {
      if (engagements_[i].tenant != tenant || !(engagements_[i].tag == tag)) continue;
      engagement_entry e;
      backend_->copy_from_device(&e, &sys_.engagements[i], sizeof(e));
      u.budget_ns = e.budget_ns;
      u.used_ns = e.used_ns;
      u.rejections = e.rejections;
    }
    return u;
  }

  //! Slot of `tenant` for stamping host sends (hot path: its own small lock, never control_mutex_).
  std::uint32_t send_slot(std::uint64_t tenant) {
    if (tenant == 0) return 0;
    std::lock_guard lock(tenant_slots_mutex_);
    const auto it = tenant_slots_.find(tenant);
    return it == tenant_slots_.end() ? no_slot : it->second;
  }

  // --- regions -----------------------------------------------------------------------------------------

  region_record& live_region(region_handle h, const std::string& who) {
    if (h.region >= region_records_.size() || !region_records_[h.region].live ||
        region_records_[h.region].generation != h.generation)
      throw error(who + ": region " + std::to_string(h.region) + " (generation " +
                  std::to_string(h.generation) + ") is not registered");
    return region_records_[h.region];
  }

  //! Slots are never reused, so a reader that raced an unregister never sees a new region's fields under
  //! an old descriptor.
  region_handle register_region_locked(void* pointer, std::uint64_t bytes, const region_options& opts,
                                       std::uint64_t cursor, bool charge) {
    const std::string who = "register_region()";
    if (pointer == nullptr) throw error(who + ": the region pointer is null");
    if (bytes == 0) throw error(who + ": a region needs at least one byte");
    if (opts.policy != region_policy::immutable && opts.policy != region_policy::append_only &&
        opts.policy != region_policy::slab)
      throw error(who + ": unknown region policy");
    if (opts.shared_with.size() > max_region_sharing)
      throw error(who + ": a region can be shared with at most " + std::to_string(max_region_sharing) +
                  " tenants");
    for (std::uint64_t t : opts.shared_with) tenant_of(t, who);
    if (region_records_.size() >= options_.max_regions)
      throw error(who + ": the region table is full (max_regions = " + std::to_string(options_.max_regions) +
                  ")");
    if (charge) charge_tenant(opts.owner_tenant, 0, bytes, who);
    tenant_of(opts.owner_tenant, who).regions += 1;

    region_record r;
    r.pointer = static_cast<std::byte*>(pointer);
    r.size = bytes;
    r.options = opts;
    r.cursor = cursor;
    r.live = true;
    region_entry e;
    e.base = r.pointer;
    e.size = bytes;
    e.append_cursor = cursor;
    e.owner_tenant = opts.owner_tenant;
    e.shared_count = static_cast<std::uint32_t>(opts.shared_with.size());
    for (std::size_t i = 0; i < opts.shared_with.size(); ++i) e.shared_with[i] = opts.shared_with[i];
    e.generation = r.generation;
    e.policy = static_cast<std::uint32_t>(opts.policy);
    e.live = 0;
    const auto slot = static_cast<std::uint32_t>(region_records_.size());
    backend_->copy_to_device(&sys_.regions[slot], &e, sizeof(e));
    const std::uint32_t live = 1;
    backend_->copy_to_device(&sys_.regions[slot].live, &live, sizeof(live)); // after every other field
    region_records_.push_back(r);
    return {slot, r.generation};
  }

  region_handle register_region(void* pointer, std::uint64_t bytes, const region_options& opts) {
    std::lock_guard lock(control_mutex_);
    return register_region_locked(pointer, bytes, opts, 0, true);
  }

  region_handle create_region(byte_view initial, std::uint64_t capacity, const region_options& opts) {
    std::lock_guard lock(control_mutex_);
    const std::string who = "create_region()";
    if (capacity < initial.size)
      throw error(who + ": capacity " + std::to_string(capacity) + " is smaller than the initial contents (" +
                  std::to_string(initial.size) + " bytes)");
    charge_tenant(opts.owner_tenant, 0, capacity, who);
    try {
      void* memory = device_alloc(std::max<std::uint64_t>(capacity, 1));
      if (initial.size) backend_->copy_to_device(memory, initial.data, initial.size);
      const std::uint64_t cursor = opts.policy == region_policy::append_only ? initial.size : 0;
      return register_region_locked(memory, capacity, opts, cursor, false);
    } catch (...) {
      tenant_of(opts.owner_tenant, who).bytes -= capacity;
      throw;
    }
  }

  void unregister_region(region_handle h) {
    std::lock_guard lock(control_mutex_);
    region_record& r = live_region(h, "unregister_region()");
    const std::uint32_t dead = 0;
    backend_->copy_to_device(&sys_.regions[h.region].live, &dead, sizeof(dead));
    const std::uint32_t generation = r.generation + 1;
    backend_->copy_to_device(&sys_.regions[h.region].generation, &generation, sizeof(generation));
    r.live = false;
    r.generation = generation;
    tenant_record& t = tenant_of(r.options.owner_tenant, "unregister_region()");
    t.regions -= 1;
    t.bytes -= std::min(t.bytes, r.size);
  }

  std::uint64_t append(region_handle h, byte_view bytes) {
    std::lock_guard lock(control_mutex_);
    const std::string who = "append()";
    region_record& r = live_region(h, who);
    if (r.options.policy != region_policy::append_only) throw error(who + ": the region is not append-only");
    if (bytes.size > r.size - r.cursor)
      throw error(who + ": " + std::to_string(bytes.size) + " bytes do not fit (" +
                  std::to_string(r.size - r.cursor) + " left in the region)");
    const std::uint64_t offset = r.cursor;
    if (bytes.size) backend_->copy_to_device(r.pointer + offset, bytes.data, bytes.size);
    r.cursor += bytes.size; // the bytes are in place before the cursor moves past them
    backend_->copy_to_device(&sys_.regions[h.region].append_cursor, &r.cursor, sizeof(r.cursor));
    return offset;
  }

  void* region_pointer(region_handle h) const {
    std::lock_guard lock(control_mutex_);
    return const_cast<runtime_impl*>(this)->live_region(h, "region_pointer()").pointer;
  }

  // --- message types ------------------------------------------------------------------------------------

  void block_type(const message_type_info& t) {
    if (t.id >= options_.max_message_types)
      throw error("register_message_type('" + t.name +
                  "'): a non-routable type needs an id below "
                  "runtime_options::max_message_types (" +
                  std::to_string(options_.max_message_types) + "); got " + std::to_string(t.id));
    std::uint32_t& word = blocked_types_[t.id / 32];
    word |= 1u << (t.id % 32);
    backend_->copy_to_device(&sys_.blocked_types[t.id / 32], &word, sizeof(word));
  }

  void register_message_type(const message_type_info& info) {
    std::lock_guard lock(control_mutex_);
    if (!info.routable && info.id >= options_.max_message_types) block_type(info); // throws with the reason
    types_.add(info);
    if (!info.routable) block_type(info);
  }

  // --- start ----------------------------------------------------------------------------------------

  void start() {
    RK_NVTX_RANGE("rk::runtime::start");
    std::lock_guard lock(control_mutex_);
    if (phase_.load() != phase::created)
      throw error("start(): a runtime starts once; create a new rk::runtime to run again");
    std::vector<std::vector<actor_index>> by_kind(kinds_.size());
    for (actor_index id = 0; id < actors_.size(); ++id)
      if (!actors_[id].alias) by_kind[actors_[id].kind].push_back(id);
    if (std::all_of(by_kind.begin(), by_kind.end(), [](const auto& v) { return v.empty(); }))
      throw error("start(): no actors; spawn at least one actor before start()");

    std::vector<const actor_type_ops*> all_kinds;
    for (const auto& k : kinds_) all_kinds.push_back(&k.ops);
    try {
      backend_->preload(all_kinds);
    } catch (const error& e) {
      phase_.store(phase::stopped);
      throw error(std::string("start(): ") + e.what());
    }
    for (auto& k : kinds_) k.loaded = true;

    std::vector<std::unique_ptr<std::vector<actor_index>>> keep_alive;
    std::vector<worker_group> groups;
    std::uint32_t first_worker = 0;
    for (const auto& ids : by_kind) {
      if (ids.empty()) continue;
      groups.push_back(make_worker_group(ids, first_worker, keep_alive));
      first_worker += static_cast<std::uint32_t>(ids.size());
    }

    if (options_.running_arena_bytes != 0) {
      arena_ = static_cast<std::byte*>(device_alloc(options_.running_arena_bytes)); // before any launch
      arena_size_ = options_.running_arena_bytes;
    }
    std::uint32_t workers = 0;
    launched_ = true;
    try {
      workers = backend_->launch(sys_, h_control_, groups, options_.max_actors);
      await_check_in(0, workers, true, "start()");
    } catch (const error& e) {
      terminate_and_join(); // whatever did start sees terminate and exits
      phase_.store(phase::stopped);
      const std::string what = e.what();
      throw error(what.rfind("start()", 0) == 0 ? what : "start(): " + what);
    } catch (...) {
      terminate_and_join();
      phase_.store(phase::stopped);
      throw;
    }
    next_worker_ = workers;
    phase_.store(phase::running);
  }

  // --- pause ----------------------------------------------------------------------------------------

  bool pause(std::chrono::nanoseconds timeout) {
    require_running("pause()");
    throw_if_faulted();
    cuda::atomic_ref<std::uint32_t, pcie_scope>(h_control_->pause).store(1, cuda::std::memory_order_release);
    std::uint32_t workers;
    {
      std::lock_guard lock(control_mutex_);
      workers = next_worker_;
    }
    const wait_result r = wait_until(
        [&] {
          for (std::uint32_t w = 0; w < workers; ++w)
            if (load_acquire(h_workers_[w].paused) == 0) return false;
          return true;
        },
        [&] { return fault_detected(); }, to_ns(timeout), host_backoff());
    if (r == wait_result::aborted) throw_if_faulted();
    return r == wait_result::ready;
  }

  void resume() {
    cuda::atomic_ref<std::uint32_t, pcie_scope>(h_control_->pause).store(0, cuda::std::memory_order_release);
  }

  // --- host sends -----------------------------------------------------------------------------------

  //! Keeps shutdown from draining while a host send is between its phase check and its publish.
  class send_scope {
  public:
    explicit send_scope(runtime_impl& rt) : rt_(rt) { rt_.senders_in_flight_.fetch_add(1); }
    ~send_scope() { rt_.senders_in_flight_.fetch_sub(1); }
    send_scope(const send_scope&) = delete;
    send_scope& operator=(const send_scope&) = delete;

  private:
    runtime_impl& rt_;
  };

  status count_host(status s) {
    host_sends_[static_cast<std::size_t>(s)].fetch_add(1, std::memory_order_relaxed);
    return s;
  }

  //! Claims an ingress position, skipping none: a slot whose previous receipt a send_wait caller has
  //! not read yet counts as full (it is released as soon as that caller reads it).
  ring_claim claim_ingress() {
    cuda::atomic_ref<std::uint64_t, pcie_scope> tail(*h_ingress_.tail);
    std::uint64_t pos = tail.load(cuda::std::memory_order_relaxed);
    const std::uint64_t mask = h_ingress_.capacity - 1;
    for (;;) {
      const std::uint64_t s = cuda::atomic_ref<std::uint64_t, pcie_scope>(h_ingress_.seq[pos & mask])
                                  .load(cuda::std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(s - pos);
      if (diff == 0) {
        if (waiting_[pos & mask].load(std::memory_order_acquire) != 0) return {pos, false};
        if (tail.compare_exchange_weak(pos, pos + 1, cuda::std::memory_order_relaxed,
                                       cuda::std::memory_order_relaxed))
          return {pos, true};
      } else if (diff < 0) {
        return {pos, false};
      } else {
        pos = tail.load(cuda::std::memory_order_relaxed);
      }
    }
  }

  //! Shared by send and send_wait. On success `position` is the ingress position used.
  status enqueue(address destination, std::uint32_t type, byte_view payload, const send_options& opts,
                 bool hold_receipt, std::uint64_t& position) {
    if (phase_.load() != phase::running) return status::not_running;
    throw_if_faulted();
    const ingress_ring ingress(h_ingress_);
    if (payload.size > ingress.payload_capacity()) return status::too_large;
    const ring_claim c = claim_ingress();
    if (!c.ok) return status::queue_full;

    envelope header;
    header.correlation_id = opts.correlation_id;
    header.timestamp = host_tick();
    header.type_id = type;
    header.source = host_actor;
    header.destination = destination;
    header.payload_length = payload.size;
    header.flags = opts.flags;
    header.priority = static_cast<std::uint8_t>(opts.priority);
    header.route_key = opts.key;
    header.tenant = opts.tenant;
    header.tenant_slot = send_slot(opts.tenant);
    ingress_ring::write_slot(ingress.slot_at(c.position), header, payload.data);
    if (hold_receipt) waiting_[c.position & (h_ingress_.capacity - 1)].store(1, std::memory_order_relaxed);
    ingress.publish(c.position); // release also orders the waiting_ store for later producers
    host_enqueued_.fetch_add(1, std::memory_order_release);
    position = c.position;
    return status::enqueued;
  }

  status send(address destination, std::uint32_t type, byte_view payload, const send_options& opts) {
    RK_NVTX_RANGE("rk::runtime::send");
    send_scope scope(*this);
    std::uint64_t position = 0;
    return count_host(enqueue(destination, type, payload, opts, false, position));
  }

  status send_wait(address destination, std::uint32_t type, byte_view payload,
                   std::chrono::nanoseconds timeout, const send_options& opts) {
    RK_NVTX_RANGE("rk::runtime::send_wait");
    std::uint64_t position = 0;
    {
      send_scope scope(*this);
      const status s = enqueue(destination, type, payload, opts, true, position);
      if (s != status::enqueued) return count_host(s);
    }
    const std::uint64_t index = position & (h_ingress_.capacity - 1);
    ingress_receipt& receipt = h_receipts_[index];
    const wait_result r = wait_until([&] { return load_acquire(receipt.position_plus_one) == position + 1; },
                                     [&] { return fault_detected(); }, to_ns(timeout), host_backoff());
    status verdict = status::timed_out;
    if (r == wait_result::ready) verdict = static_cast<status>(load_acquire(receipt.verdict));
    waiting_[index].store(0, std::memory_order_release);
    if (r == wait_result::aborted) throw_if_faulted();
    return count_host(verdict);
  }

  //! How host waits back off (see runtime_options::host_busy_poll).
  backoff host_backoff() const noexcept { return options_.host_busy_poll ? backoff::busy_poll() : backoff{}; }

  hlc_timestamp host_tick() {
    std::lock_guard lock(clock_mutex_);
    return host_clock_.now();
  }

  // --- receive --------------------------------------------------------------------------------------

  std::optional<received_message> receive(std::chrono::nanoseconds timeout) {
    RK_NVTX_RANGE("rk::runtime::receive");
    std::lock_guard lock(egress_mutex_);
    const egress_ring egress(h_egress_);
    const bool live = phase_.load() == phase::running || phase_.load() == phase::draining;
    if (live) throw_if_faulted();
    const std::byte* slot = egress.try_peek();
    if (slot == nullptr && live) {
      const wait_result r = wait_until([&] { return (slot = egress.try_peek()) != nullptr; },
                                       [&] { return fault_detected(); }, to_ns(timeout), host_backoff());
      if (r == wait_result::aborted) throw_if_faulted();
    }
    if (slot == nullptr) return std::nullopt;
    received_message m;
    std::memcpy(&m.header, slot, sizeof(envelope));
    const std::uint32_t length = std::min(m.header.payload_length, egress.payload_capacity());
    m.payload.assign(slot + envelope_bytes, slot + envelope_bytes + length);
    egress.pop();
    host_received_.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard clock_lock(clock_mutex_);
      host_clock_.observe(m.header.timestamp);
    }
    return m;
  }

  // --- faults ---------------------------------------------------------------------------------------

  //! Polls the backend at most once per millisecond; true once the runtime has faulted.
  bool fault_detected() {
    if (faulted_.load(std::memory_order_acquire)) return true;
    const auto now = clock_type::now().time_since_epoch().count();
    auto last = last_fault_poll_.load(std::memory_order_relaxed);
    if (now - last < 1'000'000) return false;
    if (!last_fault_poll_.compare_exchange_strong(last, now)) return false;
    std::optional<backend_fault> f;
    {
      std::lock_guard lock(backend_poll_mutex_);
      f = backend_->poll_fault();
    }
    if (!f) return false;
    record_fault(*f);
    return true;
  }

  void record_fault(const backend_fault& f) {
    std::lock_guard lock(fault_mutex_);
    if (faulted_.load()) return;
    const auto name = [&](std::uint32_t a) {
      return a < names_snapshot_.size() ? names_snapshot_[a] : std::to_string(a);
    };
    std::string text = f.where + " failed: " + f.what + ".";
    const std::uint32_t trap_actor = load_acquire(h_control_->trap_actor);
    if (trap_actor != 0) {
      text += " Actor '" + name(trap_actor - 1) + "' called ctx.trap(" +
              std::to_string(load_acquire(h_control_->trap_code)) + ").";
    } else if (f.actor) {
      text += " Raised by actor '" + name(*f.actor) + "'.";
    }
    if (backend_->kind() == backend::cuda) {
      std::string busy;
      for (std::uint32_t w = 0; w < options_.max_actors; ++w) {
        const std::uint32_t a = load_acquire(h_workers_[w].busy_actor);
        if (a != 0) busy += (busy.empty() ? "" : ", ") + name(a - 1);
      }
      if (!busy.empty()) text += " Actors inside a handler at the time: " + busy + ".";
      text +=
          " The CUDA context is unusable after a device fault; destroy the runtime and restart the process.";
    }
    fault_ = text;
    faulted_.store(true, std::memory_order_release);
    const actor_index culprit = trap_actor != 0 ? trap_actor - 1 : f.actor.value_or(host_actor);
    audit_host(audit_event::actor_fault, audit_level::critical, culprit, 0,
               trap_actor != 0 ? load_acquire(h_control_->trap_code) : 0);
  }

  std::string fault_text() {
    std::lock_guard lock(fault_mutex_);
    return fault_.value_or("");
  }

  void throw_if_faulted() {
    if (fault_detected()) throw error("ringkernel: " + fault_text());
  }

  // --- shutdown -------------------------------------------------------------------------------------

  struct drain_snapshot {
    std::uint64_t gateway_processed = 0;
    std::uint64_t finished = 0; //!< handled + discarded
    std::uint64_t received = 0;
  };

  std::vector<actor_counters> read_counters(std::size_t count) const {
    std::vector<actor_counters> c(count);
    if (count) backend_->copy_from_device(c.data(), sys_.counters, sizeof(actor_counters) * count);
    return c;
  }

  //! Reads gateway progress, then handled + discarded, then received, in that order. Counters only grow
  //! and a delivery is counted before it is published, so `processed == enqueued && finished == received`
  //! proves that at the moment `received` was read nothing was queued or inside a handler.
  drain_snapshot snapshot_for_drain(std::size_t actors) const {
    drain_snapshot s;
    gateway_counters g;
    backend_->copy_from_device(&g, sys_.gateway, sizeof(g));
    s.gateway_processed = g.processed;
    for (const auto& c : read_counters(actors)) s.finished += c.handled + c.discarded;
    for (const auto& c : read_counters(actors)) s.received += c.received;
    return s;
  }

  void terminate_and_join() {
    cuda::atomic_ref<std::uint32_t, pcie_scope>(h_control_->terminate)
        .store(1, cuda::std::memory_order_release);
    workers_stopped_ = backend_->join(options_.stop_timeout);
    memory_releasable_ = workers_stopped_;
  }

  shutdown_report shutdown() noexcept {
    RK_NVTX_RANGE("rk::runtime::shutdown");
    std::lock_guard lifecycle(lifecycle_mutex_);
    if (phase_.load() == phase::stopped) return last_report_;
    shutdown_report report;
    if (phase_.load() == phase::created) {
      if (drain_) (void)drain_->stop();
      phase_.store(phase::stopped);
      last_report_ = report;
      return report;
    }
    try {
      phase_.store(phase::draining);
      wait_until([&] { return senders_in_flight_.load() == 0; }, [] { return false; }, wait_forever);
      resume(); // paused workers would never drain
      std::size_t actors;
      {
        std::lock_guard lock(control_mutex_);
        actors = actors_.size();
        for (actor_index a = 0; a < actors; ++a)
          if (static_cast<host_state>(state_in(routes_[a].host_word)) == host_state::paused)
            write_host_word(a, host_word(epoch_of(routes_[a].host_word), host_state::live));
      }

      if (!fault_detected()) {
        const std::uint64_t enqueued = host_enqueued_.load(std::memory_order_acquire);
        drain_snapshot last;
        const wait_result r = wait_until(
            [&] {
              last = snapshot_for_drain(actors);
              return last.gateway_processed == enqueued && last.finished == last.received;
            },
            [&] { return fault_detected(); }, to_ns(options_.drain_timeout), host_backoff());
        if (r != wait_result::ready) {
          report.drained = false;
          report.undelivered = (enqueued - std::min(enqueued, last.gateway_processed)) +
                               (last.received - std::min(last.received, last.finished));
        }
      }
      terminate_and_join();
      report.workers_stopped = workers_stopped_;
      if (fault_detected()) {
        report.fault = fault_text();
        report.drained = false;
      }
      if (workers_stopped_ && !faulted_.load()) {
        std::lock_guard lock(control_mutex_);
        final_stats_ = collect_stats_locked();
        for (const auto& a : final_stats_->actors) report.discarded += a.discarded;
        for (auto& a : actors_) {
          const std::size_t size = a.alias ? 0 : kinds_[a.kind].ops.state_size;
          a.final_state.resize(size);
          if (size && a.d_state) backend_->copy_from_device(a.final_state.data(), a.d_state, size);
        }
        states_final_ = true;
      }
      report.pending_host_messages = pending_egress();
      if (drain_) (void)drain_->stop(); // every record emitted so far reaches the sinks
    } catch (const std::exception& e) {
      if (drain_) (void)drain_->stop();
      report.fault = std::string("shutdown failed: ") + e.what();
      report.drained = false;
    }
    phase_.store(phase::stopped);
    last_report_ = report;
    return report;
  }

  std::uint64_t pending_egress() {
    std::lock_guard lock(egress_mutex_);
    const std::uint64_t head = *h_egress_.head;
    std::uint64_t n = 0;
    while (n < h_egress_.capacity &&
           cuda::atomic_ref<std::uint64_t, pcie_scope>(h_egress_.seq[(head + n) & (h_egress_.capacity - 1)])
                   .load(cuda::std::memory_order_acquire) == head + n + 1)
      ++n;
    return n;
  }

  // --- stats ----------------------------------------------------------------------------------------

  runtime_stats collect_stats_locked() {
    runtime_stats s;
    const std::size_t n = actors_.size();
    const std::vector<actor_counters> counters = read_counters(n);
    std::vector<route_entry> entries(n);
    if (n) backend_->copy_from_device(entries.data(), sys_.routes, sizeof(route_entry) * n);
    s.actors.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      actor_stats a;
      a.id = static_cast<actor_index>(i);
      a.name = actors_[i].name;
      a.lifecycle = lifecycle_of(a.id, entries[i].device_word);
      std::copy(std::begin(counters[i].sent), std::end(counters[i].sent), a.sent.begin());
      a.received = counters[i].received;
      a.handled = counters[i].handled;
      a.discarded = counters[i].discarded;
      a.reservations = counters[i].reservations;
      a.fault_code = counters[i].fault_code;
      s.actors.push_back(std::move(a));
    }
    gateway_counters g;
    backend_->copy_from_device(&g, sys_.gateway, sizeof(g));
    std::copy(std::begin(g.verdicts), std::end(g.verdicts), s.gateway_verdicts.begin());
    s.gateway_processed = g.processed;
    fill_host_counters(s);
    return s;
  }

  void fill_host_counters(runtime_stats& s) const {
    for (std::size_t i = 0; i < status_count; ++i)
      s.host_sends[i] = host_sends_[i].load(std::memory_order_relaxed);
    s.host_received = host_received_.load(std::memory_order_relaxed);
  }

  runtime_stats stats() {
    std::lock_guard lock(control_mutex_);
    if (phase_.load() == phase::stopped) {
      runtime_stats s = final_stats_.value_or(runtime_stats{});
      fill_host_counters(s); // receive() keeps working after shutdown
      return s;
    }
    if (faulted_.load()) throw_if_faulted();
    return collect_stats_locked();
  }

  void read_state(actor_index id, std::type_index type, void* out, std::size_t bytes) const {
    std::lock_guard lock(control_mutex_);
    check_actor(id, "state()");
    const kind_record& k = kinds_[actors_[id].kind];
    if (k.ops.type != type)
      throw error("state<H>(" + std::to_string(id) + "): actor '" + actors_[id].name + "' runs handler '" +
                  k.ops.name + "', not the requested type");
    if (!states_final_)
      throw error(
          "state<H>(): actor states are read back by shutdown(); call it after shutdown() (and not after a "
          "fault)");
    std::memcpy(out, actors_[id].final_state.data(), bytes);
  }

  void check_id(actor_index id, const std::string& who) const {
    if (id >= actors_.size())
      throw error(who + ": unknown actor id " + std::to_string(id) + " (this runtime has " +
                  std::to_string(actors_.size()) + " actors and aliases)");
  }

  actor_index find(std::string_view name) const {
    std::lock_guard lock(control_mutex_);
    const auto it = by_name_.find(name);
    if (it == by_name_.end())
      throw error("find('" + std::string(name) + "'): no actor or alias with this name");
    return it->second;
  }

  const std::string& name_of(actor_index id) const {
    std::lock_guard lock(control_mutex_);
    check_id(id, "name_of()");
    return actors_[id].name;
  }

  std::uint32_t actor_count() const noexcept {
    std::lock_guard lock(control_mutex_);
    return static_cast<std::uint32_t>(actors_.size());
  }
  bool running() const noexcept { return phase_.load() == phase::running; }
  std::vector<audit_entry> audit_records() const { return audit_memory_->entries(); }
  wait_result flush_audit(std::chrono::nanoseconds timeout) { return drain_->flush(timeout); }
  audit_drain_stats audit_stats() const { return drain_->stats(); }
  const message_type_registry& message_types() const noexcept { return types_; }

  //! Names by id for fault messages, which are built without control_mutex_ (a fault may surface inside
  //! a management call that holds it).
  void snapshot_names() {
    std::lock_guard lock(fault_mutex_);
    names_snapshot_.clear();
    for (const auto& a : actors_) names_snapshot_.push_back(a.name);
  }

private:
  system_view sys_{};
  control_block* h_control_ = nullptr;
  worker_status* h_workers_ = nullptr;
  ingress_receipt* h_receipts_ = nullptr;
  ring_view h_ingress_{};
  ring_view h_egress_{};
  std::unique_ptr<std::atomic<std::uint32_t>[]> waiting_;

  std::vector<void*> device_allocations_;
  std::byte* arena_ = nullptr; //!< running arena (see device_alloc); null before start()
  bool launched_ = false;      //!< workers were launched: device memory comes from the arena only
  std::size_t arena_size_ = 0;
  std::size_t arena_used_ = 0;
  std::vector<mapped_allocation> mapped_allocations_;
  bool memory_releasable_ = true;
  bool workers_stopped_ = true;

  mutable std::mutex control_mutex_;
  std::vector<route_entry> routes_;          //!< host shadow of the routing table (host-written fields)
  std::vector<std::uint32_t> blocked_types_; //!< host shadow of the not-routable bitmap
  message_type_registry types_;
  std::vector<actor_record> actors_; //!< by id: actors and aliases
  std::vector<kind_record> kinds_;
  std::vector<group_record> groups_;
  std::map<std::string, actor_index, std::less<>> by_name_;
  std::map<std::string, std::uint32_t, std::less<>> groups_by_name_;
  std::uint32_t members_used_ = 0;
  std::map<std::uint64_t, tenant_record> tenants_;
  std::uint32_t next_tenant_slot_ = 0;
  std::mutex tenant_slots_mutex_; //!< guards tenant_slots_ (read by host sends)
  std::map<std::uint64_t, std::uint32_t> tenant_slots_;
  std::vector<engagement_record> engagements_;
  std::vector<region_record> region_records_;
  std::shared_ptr<audit_memory_sink> audit_memory_;
  std::unique_ptr<audit_drain> drain_; //!< stopped by shutdown(), before any memory is released
  std::uint32_t next_worker_ = 0;      //!< worker_status entries [0, n) belong to actor workers

  std::atomic<phase> phase_{phase::created};
  std::mutex lifecycle_mutex_;
  std::atomic<int> senders_in_flight_{0};
  std::atomic<std::uint64_t> host_enqueued_{0};
  std::array<std::atomic<std::uint64_t>, status_count> host_sends_{};
  std::atomic<std::uint64_t> host_received_{0};
  std::mutex egress_mutex_;
  std::mutex clock_mutex_;
  hlc_clock host_clock_;

  std::mutex fault_mutex_;
  std::mutex backend_poll_mutex_;
  std::atomic<bool> faulted_{false};
  std::optional<std::string> fault_;
  std::vector<std::string> names_snapshot_;
  std::atomic<clock_type::rep> last_fault_poll_{0};

  std::optional<runtime_stats> final_stats_;
  bool states_final_ = false;
  shutdown_report last_report_;
};

} // namespace detail

device_probe probe_cuda_device(int device) noexcept {
  device_probe p;
  try {
    p.usable = detail::cuda_device_usable(device, p.description);
  } catch (...) {
    p.usable = false;
  }
  return p;
}

// --- rk::runtime forwards to the implementation --------------------------------------------------------

runtime::runtime(runtime_options options)
    : impl_(std::make_unique<detail::runtime_impl>(std::move(options))) {}
runtime::~runtime() = default;

rk::backend runtime::backend() const noexcept {
  return impl_->backend_->kind();
}
const std::string& runtime::backend_description() const noexcept {
  return impl_->description_;
}

address runtime::spawn_erased(detail::actor_type_ops ops, std::string name, const actor_options& options,
                              const void* initial_state) {
  const address a = impl_->spawn(std::move(ops), std::move(name), options, initial_state);
  impl_->snapshot_names();
  return a;
}
void runtime::prepare_erased(detail::actor_type_ops ops) {
  impl_->prepare(std::move(ops));
}
actor_index runtime::find(std::string_view name) const {
  return impl_->find(name);
}
const std::string& runtime::name_of(actor_index id) const {
  return impl_->name_of(id);
}
std::uint32_t runtime::actor_count() const noexcept {
  return impl_->actor_count();
}

address runtime::create_group(std::string name, std::span<const actor_index> members) {
  return impl_->create_group(std::move(name), members);
}
address runtime::group(std::string_view name) const {
  return impl_->group(name);
}
std::vector<actor_index> runtime::members(address group) const {
  return impl_->members(group);
}
void runtime::set_route(actor_index from, address next_hop) {
  impl_->set_route(from, next_hop);
}
void runtime::clear_route(actor_index a) {
  impl_->clear_route(a);
}
actor_index runtime::add_alias(std::string name, address target) {
  const actor_index a = impl_->add_alias(std::move(name), target);
  impl_->snapshot_names();
  return a;
}

bool runtime::stop(actor_index a, std::chrono::nanoseconds timeout) {
  return impl_->stop(a, timeout);
}
void runtime::respawn_erased(actor_index a, std::type_index type, const void* initial_state) {
  impl_->respawn(a, type, initial_state);
}
bool runtime::pause_actor(actor_index a, std::chrono::nanoseconds timeout) {
  return impl_->pause_actor(a, timeout);
}
void runtime::resume_actor(actor_index a) {
  impl_->resume_actor(a);
}
actor_lifecycle runtime::lifecycle(actor_index a) const {
  return impl_->lifecycle(a);
}

region_handle runtime::register_region(void* device_pointer, std::uint64_t bytes,
                                       const region_options& options) {
  return impl_->register_region(device_pointer, bytes, options);
}
region_handle runtime::create_region(byte_view initial, std::uint64_t capacity,
                                     const region_options& options) {
  return impl_->create_region(initial, capacity, options);
}
void runtime::unregister_region(region_handle region) {
  impl_->unregister_region(region);
}
std::uint64_t runtime::append(region_handle region, byte_view bytes) {
  return impl_->append(region, bytes);
}
void* runtime::region_pointer(region_handle region) const {
  return impl_->region_pointer(region);
}
status runtime::send_descriptor(address destination, std::uint32_t type, const region_descriptor& descriptor,
                                send_options options) {
  options.flags |= envelope_flags::descriptor;
  return impl_->send(destination, type, as_bytes(descriptor), options);
}

void tenant_registry::add(std::uint64_t tenant, const tenant_quota& quota) {
  impl_->add_tenant(tenant, quota);
}
void tenant_registry::set_quota(std::uint64_t tenant, const tenant_quota& quota) {
  impl_->set_quota(tenant, quota);
}
void tenant_registry::remove(std::uint64_t tenant) {
  impl_->remove_tenant(tenant);
}
bool tenant_registry::contains(std::uint64_t tenant) const {
  return impl_->has_tenant(tenant);
}
void tenant_registry::set_engagement_budget(std::uint64_t tenant, const audit_tag& tag,
                                            std::chrono::nanoseconds budget) {
  impl_->set_engagement_budget(tenant, tag, budget);
}
tenant_usage tenant_registry::usage(std::uint64_t tenant) const {
  return impl_->usage(tenant);
}
engagement_usage tenant_registry::engagement(std::uint64_t tenant, const audit_tag& tag) const {
  return impl_->engagement(tenant, tag);
}
std::vector<tenant_usage> tenant_registry::all() const {
  return impl_->all_usage();
}

std::vector<audit_entry> runtime::audit_records() const {
  return impl_->audit_records();
}
wait_result runtime::flush_audit(std::chrono::nanoseconds timeout) {
  return impl_->flush_audit(timeout);
}
audit_drain_stats runtime::audit_stats() const {
  return impl_->audit_stats();
}

const message_type_registry& runtime::message_types() const noexcept {
  return impl_->message_types();
}
void runtime::register_message_type(const message_type_info& info) {
  impl_->register_message_type(info);
}

void runtime::start() {
  impl_->start();
}
bool runtime::running() const noexcept {
  return impl_->running();
}
bool runtime::pause(std::chrono::nanoseconds timeout) {
  return impl_->pause(timeout);
}
void runtime::resume() {
  impl_->resume();
}

status runtime::send(address destination, std::uint32_t type, byte_view payload,
                     const send_options& options) {
  return impl_->send(destination, type, payload, options);
}
status runtime::send_keyed(address group, std::uint64_t key, std::uint32_t type, byte_view payload,
                           send_options options) {
  options.flags |= envelope_flags::keyed;
  options.key = key;
  return impl_->send(group, type, payload, options);
}
status runtime::send_wait(address destination, std::uint32_t type, byte_view payload,
                          std::chrono::nanoseconds timeout, const send_options& options) {
  return impl_->send_wait(destination, type, payload, timeout, options);
}
std::optional<received_message> runtime::receive(std::chrono::nanoseconds timeout) {
  return impl_->receive(timeout);
}
shutdown_report runtime::shutdown() {
  return impl_->shutdown();
}
runtime_stats runtime::stats() const {
  return impl_->stats();
}
void runtime::read_state(actor_index id, std::type_index type, void* out, std::size_t bytes) const {
  impl_->read_state(id, type, out, bytes);
}

} // namespace rk
