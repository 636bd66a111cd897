// The host controller: owns every allocation, drives the lifecycle, moves host messages through the
// mapped rings, reads counters back, and turns backend faults into rk::error.

#include <ringkernel/host/runtime.hpp>
#include <ringkernel/runtime/detail/backend.hpp>

#include "nvtx.hpp"

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

struct actor_record {
  std::string name;
  std::uint32_t kind = 0;
  std::uint64_t tenant = 0;
  ring_geometry mailbox;
  void* d_mailbox = nullptr;
};

struct kind_record {
  actor_type_ops ops;
  std::vector<actor_index> actors;
  std::vector<std::byte> states; // initial states before start, final states after shutdown
  actor_index* d_worker_actors = nullptr;
  void* d_states = nullptr;
};

enum class phase : int { created, running, draining, stopped };

} // namespace

class runtime_impl {
public:
  explicit runtime_impl(runtime_options opts) : options_(std::move(opts)) {
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

  void validate_options() const {
    if (options_.max_actors == 0 || options_.max_actors > (1u << 20))
      throw error("runtime_options::max_actors must be between 1 and 1048576 (got " +
                  std::to_string(options_.max_actors) + ")");
    if (const char* problem = options_.host_ring.validate())
      throw error(std::string("runtime_options::host_ring: ") + problem + " (got " +
                  geometry_text(options_.host_ring) + ")");
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

  void* device_alloc(std::size_t bytes) {
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
    sys_.actor_capacity = capacity;
    sys_.device_idle_sleep_max_ns = options_.device_idle_sleep_max_ns;
    sys_.actors = static_cast<actor_slot*>(device_alloc(sizeof(actor_slot) * capacity));
    sys_.counters = static_cast<actor_counters*>(device_alloc(sizeof(actor_counters) * capacity));
    sys_.clocks = static_cast<hlc_clock*>(device_alloc(sizeof(hlc_clock) * capacity));
    sys_.gateway = static_cast<gateway_counters*>(device_alloc(sizeof(gateway_counters)));

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
  }

  void release_memory() noexcept {
    if (!memory_releasable_) return; // a worker may still be running: leaking is the only safe choice
    for (void* p : device_allocations_) backend_->free_device(p);
    for (const auto& m : mapped_allocations_) backend_->free_mapped(m);
    device_allocations_.clear();
    mapped_allocations_.clear();
  }

  // --- spawning -------------------------------------------------------------------------------------

  actor_index spawn(actor_type_ops ops, std::string name, const actor_options& opts, const void* initial) {
    RK_NVTX_RANGE("rk::runtime::spawn");
    const std::string who = "spawn('" + name + "')";
    if (phase_.load() != phase::created)
      throw error(who + ": actors must be spawned before start(); spawn every actor, then call start()");
    if (name.empty()) throw error("spawn(): the actor name must not be empty");
    if (by_name_.count(name) != 0) throw error(who + ": an actor with this name already exists");
    if (actors_.size() >= options_.max_actors)
      throw error(who + ": the actor table is full (max_actors = " + std::to_string(options_.max_actors) +
                  "); raise runtime_options::max_actors");
    if (const char* problem = opts.mailbox.validate())
      throw error(who + ": invalid mailbox: " + problem + " (got " + geometry_text(opts.mailbox) + ")");
    if (backend_->kind() == backend::cuda && ops.cuda_kernel == nullptr)
      throw error(who + ": handler '" + ops.name +
                  "' was compiled without nvcc, so it has no CUDA kernel; compile the translation unit that "
                  "calls spawn<" +
                  ops.name + ">() as CUDA (a .cu file) or use backend::cpu");

    const std::uint32_t kind = kind_for(std::move(ops));
    const auto id = static_cast<actor_index>(actors_.size());

    actor_record record;
    record.name = name;
    record.kind = kind;
    record.tenant = opts.tenant;
    record.mailbox = opts.mailbox;
    record.d_mailbox = device_alloc(opts.mailbox.total_bytes());
    std::vector<std::byte> image(opts.mailbox.slots_offset());
    init_ring_image(image.data(), opts.mailbox);
    backend_->copy_to_device(record.d_mailbox, image.data(), image.size());

    actor_slot slot;
    slot.inbox = make_ring_view(record.d_mailbox, opts.mailbox);
    slot.tenant = opts.tenant;
    slot.kind = kind;
    slot.life = static_cast<std::uint32_t>(actor_life::live);
    backend_->copy_to_device(&sys_.actors[id], &slot, sizeof(slot));

    kind_record& k = kinds_[kind];
    const std::size_t offset = k.states.size();
    k.states.resize(offset + k.ops.state_size);
    std::memcpy(k.states.data() + offset, initial, k.ops.state_size);
    k.actors.push_back(id);

    by_name_.emplace(name, id);
    actors_.push_back(std::move(record));
    return id;
  }

  std::uint32_t kind_for(actor_type_ops ops) {
    for (std::uint32_t i = 0; i < kinds_.size(); ++i) {
      if (kinds_[i].ops.type == ops.type) {
        if (kinds_[i].ops.cuda_kernel == nullptr) kinds_[i].ops.cuda_kernel = ops.cuda_kernel;
        return i;
      }
    }
    kinds_.push_back(kind_record{std::move(ops), {}, {}, nullptr, nullptr});
    return static_cast<std::uint32_t>(kinds_.size() - 1);
  }

  // --- start ----------------------------------------------------------------------------------------

  void start() {
    RK_NVTX_RANGE("rk::runtime::start");
    if (phase_.load() != phase::created)
      throw error("start(): a runtime starts once; create a new rk::runtime to run again");
    if (actors_.empty()) throw error("start(): no actors; spawn at least one actor before start()");

    std::vector<worker_group> groups;
    std::uint32_t first_worker = 0;
    for (auto& k : kinds_) {
      const auto count = static_cast<std::uint32_t>(k.actors.size());
      k.d_worker_actors = static_cast<actor_index*>(device_alloc(sizeof(actor_index) * count));
      backend_->copy_to_device(k.d_worker_actors, k.actors.data(), sizeof(actor_index) * count);
      k.d_states = device_alloc(std::max<std::size_t>(k.states.size(), 1));
      if (!k.states.empty()) backend_->copy_to_device(k.d_states, k.states.data(), k.states.size());

      worker_group g;
      g.ops = &k.ops;
      g.workers = count;
      g.host_worker_actors = k.actors.data();
      g.host_states = k.d_states;
      g.params.sys = sys_;
      g.params.worker_actors = k.d_worker_actors;
      g.params.states = k.d_states;
      g.params.first_worker = first_worker;
      for (std::size_t i = 0; i < k.actors.size(); ++i)
        g.actors_description += (i ? ", " : "") + actors_[k.actors[i]].name;
      groups.push_back(std::move(g));
      first_worker += count;
    }

    const std::uint32_t gateway_worker = options_.max_actors;
    std::uint32_t workers = 0;
    try {
      workers = backend_->launch(sys_, h_control_, groups, gateway_worker);
    } catch (...) {
      terminate_and_join(); // whatever did start sees terminate and exits
      phase_.store(phase::stopped);
      throw;
    }

    auto all_checked_in = [&] {
      if (load_acquire(h_workers_[gateway_worker].checked_in) == 0) return false;
      for (std::uint32_t w = 0; w < workers; ++w)
        if (load_acquire(h_workers_[w].checked_in) == 0) return false;
      return true;
    };
    const wait_result r = wait_until(
        all_checked_in, [&] { return fault_detected(); }, to_ns(options_.start_timeout));
    if (r != wait_result::ready) {
      std::uint32_t started = 0;
      for (std::uint32_t w = 0; w < workers; ++w) started += load_acquire(h_workers_[w].checked_in) != 0;
      const std::string fault = fault_text();
      terminate_and_join();
      phase_.store(phase::stopped);
      if (r == wait_result::aborted) throw error("start(): " + fault);
      throw error("start(): only " + std::to_string(started) + " of " + std::to_string(workers) +
                  " actor workers started within " + std::to_string(options_.start_timeout.count()) +
                  " ms, so the actor kernels are not all co-resident (other work on the GPU, MPS limits, or "
                  "more actors than fit). Nothing is left running; spawn fewer actors or free the GPU.");
    }
    actor_workers_ = workers;
    phase_.store(phase::running);
  }

  // --- pause ----------------------------------------------------------------------------------------

  bool pause(std::chrono::nanoseconds timeout) {
    if (phase_.load() != phase::running) throw error("pause(): the runtime is not running");
    throw_if_faulted();
    cuda::atomic_ref<std::uint32_t, pcie_scope>(h_control_->pause).store(1, cuda::std::memory_order_release);
    const wait_result r = wait_until(
        [&] {
          for (std::uint32_t w = 0; w < actor_workers_; ++w)
            if (load_acquire(h_workers_[w].paused) == 0) return false;
          return true;
        },
        [&] { return fault_detected(); }, to_ns(timeout));
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
  status enqueue(actor_index destination, std::uint32_t type, byte_view payload, const send_options& opts,
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
    ingress_ring::write_slot(ingress.slot_at(c.position), header, payload.data);
    if (hold_receipt) waiting_[c.position & (h_ingress_.capacity - 1)].store(1, std::memory_order_relaxed);
    ingress.publish(c.position); // release also orders the waiting_ store for later producers
    host_enqueued_.fetch_add(1, std::memory_order_release);
    position = c.position;
    return status::enqueued;
  }

  status send(actor_index destination, std::uint32_t type, byte_view payload, const send_options& opts) {
    RK_NVTX_RANGE("rk::runtime::send");
    send_scope scope(*this);
    std::uint64_t position = 0;
    return count_host(enqueue(destination, type, payload, opts, false, position));
  }

  status send_wait(actor_index destination, std::uint32_t type, byte_view payload,
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
                                     [&] { return fault_detected(); }, to_ns(timeout));
    status verdict = status::timed_out;
    if (r == wait_result::ready) verdict = static_cast<status>(load_acquire(receipt.verdict));
    waiting_[index].store(0, std::memory_order_release);
    if (r == wait_result::aborted) throw_if_faulted();
    return count_host(verdict);
  }

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
                                       [&] { return fault_detected(); }, to_ns(timeout));
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
    std::optional<backend_fault> f = backend_->poll_fault();
    if (!f) return false;
    record_fault(*f);
    return true;
  }

  void record_fault(const backend_fault& f) {
    std::lock_guard lock(fault_mutex_);
    if (faulted_.load()) return;
    std::string text = f.where + " failed: " + f.what + ".";
    const std::uint32_t trap_actor = load_acquire(h_control_->trap_actor);
    if (trap_actor != 0 && trap_actor - 1 < actors_.size()) {
      text += " Actor '" + actors_[trap_actor - 1].name + "' called ctx.trap(" +
              std::to_string(load_acquire(h_control_->trap_code)) + ").";
    } else if (f.actor && *f.actor < actors_.size()) {
      text += " Raised by actor '" + actors_[*f.actor].name + "'.";
    }
    if (backend_->kind() == backend::cuda) {
      std::string busy;
      for (std::uint32_t w = 0; w < options_.max_actors; ++w) {
        const std::uint32_t a = load_acquire(h_workers_[w].busy_actor);
        if (a != 0 && a - 1 < actors_.size()) busy += (busy.empty() ? "" : ", ") + actors_[a - 1].name;
      }
      if (!busy.empty()) text += " Actors inside a handler at the time: " + busy + ".";
      text += " The CUDA context is unusable after a device fault; destroy the runtime and restart the "
              "process.";
    }
    fault_ = text;
    faulted_.store(true, std::memory_order_release);
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
    std::uint64_t handled = 0;
    std::uint64_t received = 0;
  };

  std::vector<actor_counters> read_counters() const {
    std::vector<actor_counters> c(actors_.size());
    if (!c.empty()) backend_->copy_from_device(c.data(), sys_.counters, sizeof(actor_counters) * c.size());
    return c;
  }

  //! Reads gateway progress, then handled, then received, in that order. Counters only grow and a
  //! delivery is counted before it is published, so `processed == enqueued && handled == received`
  //! proves that at the moment `received` was read nothing was queued or inside a handler.
  drain_snapshot snapshot_for_drain() const {
    drain_snapshot s;
    gateway_counters g;
    backend_->copy_from_device(&g, sys_.gateway, sizeof(g));
    s.gateway_processed = g.processed;
    for (const auto& c : read_counters()) s.handled += c.handled;
    for (const auto& c : read_counters()) s.received += c.received;
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
      phase_.store(phase::stopped);
      last_report_ = report;
      return report;
    }
    try {
      phase_.store(phase::draining);
      wait_until([&] { return senders_in_flight_.load() == 0; }, [] { return false; }, wait_forever);
      resume(); // paused workers would never drain

      if (!fault_detected()) {
        const std::uint64_t enqueued = host_enqueued_.load(std::memory_order_acquire);
        drain_snapshot last;
        const wait_result r = wait_until(
            [&] {
              last = snapshot_for_drain();
              return last.gateway_processed == enqueued && last.handled == last.received;
            },
            [&] { return fault_detected(); }, to_ns(options_.drain_timeout));
        if (r != wait_result::ready) {
          report.drained = false;
          report.undelivered = (enqueued - std::min(enqueued, last.gateway_processed)) +
                               (last.received - std::min(last.received, last.handled));
        }
      }
      terminate_and_join();
      report.workers_stopped = workers_stopped_;
      if (fault_detected()) {
        report.fault = fault_text();
        report.drained = false;
      }
      if (workers_stopped_ && !faulted_.load()) {
        final_stats_ = collect_stats();
        for (auto& k : kinds_)
          if (!k.states.empty()) backend_->copy_from_device(k.states.data(), k.d_states, k.states.size());
        states_final_ = true;
      }
      report.pending_host_messages = pending_egress();
    } catch (const std::exception& e) {
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

  runtime_stats collect_stats() const {
    runtime_stats s;
    const std::vector<actor_counters> counters = read_counters();
    s.actors.reserve(actors_.size());
    for (std::size_t i = 0; i < actors_.size(); ++i) {
      actor_stats a;
      a.id = static_cast<actor_index>(i);
      a.name = actors_[i].name;
      std::copy(std::begin(counters[i].sent), std::end(counters[i].sent), a.sent.begin());
      a.received = counters[i].received;
      a.handled = counters[i].handled;
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
    if (phase_.load() == phase::stopped) {
      runtime_stats s = final_stats_.value_or(runtime_stats{});
      fill_host_counters(s); // receive() keeps working after shutdown
      return s;
    }
    if (faulted_.load()) throw_if_faulted();
    return collect_stats();
  }

  void read_state(actor_index id, std::type_index type, void* out, std::size_t bytes) const {
    check_id(id, "state()");
    const kind_record& k = kinds_[actors_[id].kind];
    if (k.ops.type != type)
      throw error("state<H>(" + std::to_string(id) + "): actor '" + actors_[id].name + "' runs handler '" +
                  k.ops.name + "', not the requested type");
    if (!states_final_)
      throw error("state<H>(): actor states are read back by shutdown(); call it after shutdown() (and not "
                  "after a fault)");
    const auto pos = std::find(k.actors.begin(), k.actors.end(), id) - k.actors.begin();
    std::memcpy(out, k.states.data() + static_cast<std::size_t>(pos) * bytes, bytes);
  }

  void check_id(actor_index id, const char* who) const {
    if (id >= actors_.size())
      throw error(std::string(who) + ": unknown actor id " + std::to_string(id) + " (this runtime has " +
                  std::to_string(actors_.size()) + " actors)");
  }

  actor_index find(std::string_view name) const {
    const auto it = by_name_.find(std::string(name));
    if (it == by_name_.end()) throw error("find('" + std::string(name) + "'): no actor with this name");
    return it->second;
  }

  const std::string& name_of(actor_index id) const {
    check_id(id, "name_of()");
    return actors_[id].name;
  }

  std::uint32_t actor_count() const noexcept { return static_cast<std::uint32_t>(actors_.size()); }
  bool running() const noexcept { return phase_.load() == phase::running; }

private:
  system_view sys_{};
  control_block* h_control_ = nullptr;
  worker_status* h_workers_ = nullptr;
  ingress_receipt* h_receipts_ = nullptr;
  ring_view h_ingress_{};
  ring_view h_egress_{};
  std::unique_ptr<std::atomic<std::uint32_t>[]> waiting_;

  std::vector<void*> device_allocations_;
  std::vector<mapped_allocation> mapped_allocations_;
  bool memory_releasable_ = true;
  bool workers_stopped_ = true;

  std::vector<actor_record> actors_;
  std::vector<kind_record> kinds_;
  std::map<std::string, actor_index, std::less<>> by_name_;

  std::uint32_t actor_workers_ = 0; //!< worker_status entries [0, n) belong to actor workers
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
  std::atomic<bool> faulted_{false};
  std::optional<std::string> fault_;
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

actor_index runtime::spawn_erased(detail::actor_type_ops ops, std::string name, const actor_options& options,
                                  const void* initial_state) {
  return impl_->spawn(std::move(ops), std::move(name), options, initial_state);
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

status runtime::send(actor_index destination, std::uint32_t type, byte_view payload,
                     const send_options& options) {
  return impl_->send(destination, type, payload, options);
}
status runtime::send_wait(actor_index destination, std::uint32_t type, byte_view payload,
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
