// Host I/O (see host_io.hpp).

#include "host_io.hpp"

#include "service_thread.hpp"

#include "nvtx.hpp"
#include "support.hpp"

#include <ringkernel/device/detail/host_park.cuh>

#include <algorithm>
#include <cstring>

namespace rk::detail {

//! Keeps shutdown from draining while a host send is between its phase check and its publish.
class host_io::send_scope {
public:
  explicit send_scope(host_io& io) : io_(io) { io_.senders_in_flight_.fetch_add(1); }
  ~send_scope() { io_.senders_in_flight_.fetch_sub(1); }
  send_scope(const send_scope&) = delete;
  send_scope& operator=(const send_scope&) = delete;

private:
  host_io& io_;
};

host_io::host_io(memory_pool& memory, backend_impl& backend, const runtime_options& options,
                 const std::atomic<phase>& phase, fault_monitor& faults, const tenant_table& tenants)
    : backend_(backend), phase_(phase), faults_(faults), tenants_(tenants),
      busy_poll_(options.host_busy_poll), parking_capacity_(options.host_parking_slots),
      queue_count_(options.max_actors + options.max_groups + 1), // + 1: the host's (parking.cuh)
      per_destination_(options.host_parking_per_destination) {
  const ring_geometry g = options.host_ring;
  ingress_memory_ =
      memory.allocate_mapped(g.total_bytes(), "the host ingress ring (runtime_options::host_ring)");
  init_ring_image(ingress_memory_.host(), g);
  h_ingress_ = make_ring_view(ingress_memory_.host(), g);
  d_ingress_ = make_ring_view(ingress_memory_.device(), g);
  receipt_memory_ = memory.allocate_mapped(sizeof(ingress_receipt) * g.capacity,
                                           "ingress receipts (runtime_options::host_ring)");
  h_receipts_ = static_cast<ingress_receipt*>(receipt_memory_.host());
  for (std::uint32_t i = g.capacity; i-- > 0;) free_receipts_.push_back(i);

  egress_memory_ =
      memory.allocate_mapped(g.total_bytes(), "the host egress ring (runtime_options::host_ring)");
  init_ring_image(egress_memory_.host(), g);
  h_egress_ = make_ring_view(egress_memory_.host(), g);
  d_egress_ = make_ring_view(egress_memory_.device(), g);
  // Device producers claim with a CAS; keep that counter in device memory, never across PCIe.
  egress_tail_ = memory.allocate(ring_geometry::cursor_bytes, "the egress claim counter");
  d_egress_.tail = egress_tail_.as<std::uint64_t>();
  h_egress_.tail = nullptr; // the host consumer never touches it
  if (options.cluster_outbound.capacity != 0) {
    outbound_ = allocate_device_to_host_ring(memory, options.cluster_outbound, "the cluster outbound ring");
    // As many records as relays can be unsettled at once (in the ingress ring or parked): refusals then
    // hold relays back only while the proxy is that far behind in taking them.
    refusals_.emplace(memory, g.capacity + options.host_parking_slots);
  }
  d_gateway_ = memory.allocate(sizeof(gateway_counters), "gateway counters");
  settled_memory_ = memory.allocate_mapped(ring_geometry::cursor_bytes, "the gateway's settled counter");

  // The parking area: every queue empty, every slot on the free list (0 -> 1 -> ... -> none).
  std::vector<parking_queue> queues(queue_count_);
  parking_queues_ = memory.allocate(sizeof(parking_queue) * queue_count_, "the gateway's parking queues");
  backend.copy_to_device(parking_queues_.get(), queues.data(), sizeof(parking_queue) * queue_count_);
  std::vector<std::uint32_t> chain(parking_capacity_);
  for (std::uint32_t i = 0; i < parking_capacity_; ++i)
    chain[i] = i + 1 < parking_capacity_ ? i + 1 : parking_none;
  parking_next_ = memory.allocate(sizeof(std::uint32_t) * parking_capacity_, "the gateway's parking links");
  backend.copy_to_device(parking_next_.get(), chain.data(), sizeof(std::uint32_t) * parking_capacity_);
  parking_active_ = memory.allocate(sizeof(std::uint32_t) * parking_capacity_, "the gateway's parking list");
  parking_positions_ =
      memory.allocate(sizeof(std::uint64_t) * parking_capacity_, "the gateway's parking positions");
  parking_slots_ = memory.allocate(std::size_t{g.slot_bytes} * parking_capacity_,
                                   "the gateway's parking area (runtime_options::host_parking_slots)");
  parking_state_ = memory.allocate(sizeof(parking_state), "the gateway's parking state"); // zero: slot 0 free
  staging_slot_ = memory.allocate(g.slot_bytes, "the gateway's staging slot");
  settled_by_queue_ = memory.allocate(sizeof(std::uint64_t) * queue_count_, "per-destination settled counts");
  host_settled_by_queue_ =
      memory.allocate_mapped(sizeof(std::uint64_t) * queue_count_, "per-destination settled counts (host)");
  admitted_by_queue_ = std::make_unique<std::atomic<std::uint64_t>[]>(queue_count_);
  settled_seen_by_queue_ = std::make_unique<std::atomic<std::uint64_t>[]>(queue_count_);
}

void host_io::describe(system_view& sys) {
  sys.ingress = d_ingress_;
  sys.receipts = static_cast<ingress_receipt*>(receipt_memory_.device());
  sys.receipt_capacity = h_ingress_.capacity;
  sys.egress = d_egress_;
  sys.outbound = outbound_.device_view; // no slots without a cluster
  if (refusals_) refusals_->describe(sys);
  sys.gateway = d_gateway_.as<gateway_counters>();
  sys.host_settled = static_cast<std::uint64_t*>(settled_memory_.device());
  parking_view& p = sys.parking;
  p.queues = parking_queues_.as<parking_queue>();
  p.active = parking_active_.as<std::uint32_t>();
  p.next = parking_next_.as<std::uint32_t>();
  p.positions = parking_positions_.as<std::uint64_t>();
  p.slots = parking_slots_.as<std::byte>();
  p.state = parking_state_.as<parking_state>();
  p.staging = staging_slot_.as<std::byte>();
  p.capacity = parking_capacity_;
  p.slot_bytes = h_ingress_.slot_bytes;
  p.queue_count = queue_count_;
  p.route_capacity = sys.route_capacity;
  sys.settled_by_queue = settled_by_queue_.as<std::uint64_t>();
  sys.host_settled_by_queue = static_cast<std::uint64_t*>(host_settled_by_queue_.device());
  queue_geometry_ = p;
  actor_slot_bits_ = sys.actor_slot_bits;
  group_slot_bits_ = sys.group_slot_bits;
}

namespace {
//! Takes one unit of a credit of `limit` (`taken` admitted so far, `settled` what the gateway settled, as
//! published in mapped memory). The last settled count read is cached in `seen`: the mapped word, which the
//! gateway keeps writing, is read only when the cached count says the credit is spent, so a send that
//! finds room does not pull the gateway's cache line over. A stale `seen` is only ever too small (the
//! count grows), which errs towards reading again.
bool take_credit(std::atomic<std::uint64_t>& taken, std::atomic<std::uint64_t>& seen,
                 const std::uint64_t& settled, std::uint64_t limit) {
  std::uint64_t t = taken.load(std::memory_order_relaxed);
  std::uint64_t s = seen.load(std::memory_order_relaxed);
  for (;;) {
    if (t - std::min(t, s) >= limit) {
      const std::uint64_t fresh = load_acquire(settled);
      if (fresh <= s) return false;
      s = fresh;
      seen.store(fresh, std::memory_order_relaxed);
      continue;
    }
    if (taken.compare_exchange_weak(t, t + 1, std::memory_order_relaxed)) return true;
  }
}
} // namespace

bool host_io::admit(std::uint32_t queue) {
  if (!take_credit(admitted_, settled_seen_, *static_cast<const std::uint64_t*>(settled_memory_.host()),
                   parking_capacity_))
    return false;
  if (queue == parking_none) return true;
  if (take_credit(admitted_by_queue_[queue], settled_seen_by_queue_[queue],
                  static_cast<const std::uint64_t*>(host_settled_by_queue_.host())[queue], per_destination_))
    return true;
  admitted_.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

std::uint64_t host_io::sends_admitted(address destination) const noexcept {
  const std::uint32_t queue =
      parking_queue_of(queue_geometry_, destination, actor_slot_bits_, group_slot_bits_);
  return queue == parking_none ? 0 : admitted_by_queue_[queue].load(std::memory_order_acquire);
}

bool host_io::sends_settled(address destination, std::uint64_t admitted) const noexcept {
  const std::uint32_t queue =
      parking_queue_of(queue_geometry_, destination, actor_slot_bits_, group_slot_bits_);
  if (queue == parking_none) return true;
  // The admitted count also drops when a send takes its unit back (unadmit): never wait for more than
  // are admitted now.
  const std::uint64_t wanted = std::min(admitted, admitted_by_queue_[queue].load(std::memory_order_acquire));
  return load_acquire(static_cast<const std::uint64_t*>(host_settled_by_queue_.host())[queue]) >= wanted;
}

void host_io::unadmit(std::uint32_t queue) noexcept {
  admitted_.fetch_sub(1, std::memory_order_relaxed);
  if (queue != parking_none) admitted_by_queue_[queue].fetch_sub(1, std::memory_order_relaxed);
}

status host_io::count(status s) {
  host_sends_[static_cast<std::size_t>(s)].fetch_add(1, std::memory_order_relaxed);
  return s;
}

hlc_timestamp host_io::tick() {
  std::lock_guard lock(clock_mutex_);
  return clock_.now();
}

//! Claims an ingress position (the ring's own claim, with the host's PCIe-scope tail).
ring_claim host_io::claim_ingress() {
  cuda::atomic_ref<std::uint64_t, pcie_scope> tail(*h_ingress_.tail);
  std::uint64_t pos = tail.load(cuda::std::memory_order_relaxed);
  const std::uint64_t mask = h_ingress_.capacity - 1;
  for (;;) {
    const std::uint64_t s = cuda::atomic_ref<std::uint64_t, pcie_scope>(h_ingress_.seq[pos & mask])
                                .load(cuda::std::memory_order_acquire);
    const auto diff = static_cast<std::int64_t>(s - pos);
    if (diff == 0) {
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

std::uint32_t host_io::acquire_receipt() {
  std::lock_guard lock(receipt_mutex_);
  if (free_receipts_.empty()) {
    std::erase_if(abandoned_receipts_, [&](const std::pair<std::uint32_t, std::uint64_t>& a) {
      if (load_acquire(h_receipts_[a.first].position_plus_one) != a.second + 1) return false;
      free_receipts_.push_back(a.first);
      return true;
    });
  }
  if (free_receipts_.empty()) return no_slot;
  const std::uint32_t slot = free_receipts_.back();
  free_receipts_.pop_back();
  return slot;
}

void host_io::release_receipt(std::uint32_t slot, std::optional<std::uint64_t> abandoned_at) {
  std::lock_guard lock(receipt_mutex_);
  if (abandoned_at) {
    abandoned_receipts_.emplace_back(slot, *abandoned_at);
  } else {
    free_receipts_.push_back(slot);
  }
}

status host_io::enqueue(address destination, std::uint32_t type, byte_view payload, const send_options& opts,
                        std::uint32_t receipt_slot, std::uint64_t& position) {
  if (phase_.load() != phase::running) return status::not_running;
  faults_.throw_if_faulted();
  if (destination == host_actor) return status::invalid_destination; // the host cannot send to itself
  envelope header;
  header.correlation_id = opts.correlation_id;
  header.type_id = type;
  // A host message's source is the host; the field carries the receipt slot to the gateway (gateway.cuh).
  header.source = receipt_slot == no_slot ? host_actor : receipt_slot;
  header.destination = destination;
  header.flags = static_cast<std::uint16_t>((opts.flags & ~envelope_flags::runtime_only) |
                                            (receipt_slot != no_slot ? envelope_flags::wants_receipt : 0));
  header.priority = priority_byte(opts.priority);
  header.route_key = opts.key;
  header.tenant = opts.tenant;
  header.tenant_slot = tenants_.send_slot(opts.tenant);
  return enqueue_header(header, payload, position);
}

status host_io::enqueue_header(envelope& header, byte_view payload, std::uint64_t& position) {
  const ingress_ring ingress(h_ingress_);
  if (payload.size > ingress.payload_capacity()) return status::too_large;
  const std::uint32_t queue =
      parking_queue_of(queue_geometry_, header.destination, actor_slot_bits_, group_slot_bits_);
  if (!admit(queue)) return status::queue_full;
  const ring_claim c = claim_ingress();
  if (!c.ok) {
    unadmit(queue);
    return status::queue_full;
  }
  header.timestamp = tick();
  header.payload_length = payload.size;
  ingress_ring::write_slot(ingress.slot_at(c.position), header, payload.data);
  ingress.publish(c.position);
  backend_.notify_gateway();
  enqueued_.fetch_add(1, std::memory_order_release);
  position = c.position;
  return status::enqueued;
}

namespace {
//! A payload that claims bytes but has no pointer is a caller's mistake: said at once, not a crash later.
void check_payload(byte_view payload, const char* who) {
  if (payload.data == nullptr && payload.size != 0)
    throw error(call_name(who) + ": the payload has " + std::to_string(payload.size) +
                " bytes but no data pointer");
}
} // namespace

status host_io::relay(const envelope& from_peer, byte_view payload) {
  check_payload(payload, "relay()");
  send_scope scope(*this);
  if (phase_.load() != phase::running) return status::not_running;
  faults_.throw_if_faulted();
  envelope header = from_peer;
  header.flags =
      static_cast<std::uint16_t>((header.flags & ~envelope_flags::runtime_only) | envelope_flags::relayed);
  // The sending rank charged the tenant's rate quota; the message is not charged twice.
  header.tenant_slot = no_slot;
  std::uint64_t position = 0;
  status s = status::queue_full; // unless enqueued: no room for the refusal record it might become
  const auto enqueue = [&] { return (s = enqueue_header(header, payload, position)) == status::enqueued; };
  if (refusals_ ? refusals_->admit_then(header.type_id, enqueue) : enqueue())
    relayed_.fetch_add(1, std::memory_order_relaxed);
  return s;
}

bool host_io::take_outbound(received_message& out) {
  if (!has_outbound_ring()) return false;
  std::lock_guard lock(outbound_mutex_);
  const egress_ring ring(outbound_.host_view);
  const std::byte* slot = ring.try_peek();
  if (slot == nullptr) return false;
  std::memcpy(&out.header, slot, sizeof(envelope));
  const std::uint32_t length = std::min(out.header.payload_length, ring.payload_capacity());
  out.payload.assign(slot + envelope_bytes, slot + envelope_bytes + length);
  ring.pop();
  return true;
}

ring_geometry host_io::outbound_geometry() const noexcept {
  return {outbound_.host_view.capacity, outbound_.host_view.slot_bytes};
}

status host_io::send(address destination, std::uint32_t type, byte_view payload, const send_options& opts) {
  RK_NVTX_RANGE("rk::runtime::send");
  check_payload(payload, "send()");
  send_scope scope(*this);
  std::uint64_t position = 0;
  return count(enqueue(destination, type, payload, opts, no_slot, position));
}

status host_io::send_wait(address destination, std::uint32_t type, byte_view payload,
                          std::chrono::nanoseconds timeout, const send_options& opts) {
  RK_NVTX_RANGE("rk::runtime::send_wait");
  check_payload(payload, "send_wait()");
  std::uint64_t position = 0;
  const std::uint32_t slot = acquire_receipt();
  if (slot == no_slot) return count(status::queue_full); // as many send_waits in flight as ingress slots
  {
    send_scope scope(*this);
    const status s = enqueue(destination, type, payload, opts, slot, position);
    if (s != status::enqueued) {
      release_receipt(slot, std::nullopt);
      return count(s);
    }
  }
  ingress_receipt& receipt = h_receipts_[slot];
  const auto settled = [&] { return load_acquire(receipt.position_plus_one) == position + 1; };
  wait_result r = wait_until(
      settled, [&] { return waits_end(); }, timeout_ns(timeout), waiting_backoff());
  if (r == wait_result::aborted && settled()) r = wait_result::ready; // settled just before the stop
  status verdict = r == wait_result::aborted ? status::aborted : status::timed_out;
  if (r == wait_result::ready) verdict = static_cast<status>(load_acquire(receipt.verdict));
  release_receipt(slot, r == wait_result::ready ? std::nullopt : std::optional<std::uint64_t>(position));
  if (r == wait_result::aborted) faults_.throw_if_faulted();
  return count(verdict);
}

status host_io::send_blocking(address destination, std::uint32_t type, byte_view payload,
                              std::chrono::nanoseconds timeout, const send_options& opts) {
  RK_NVTX_RANGE("rk::runtime::send_blocking");
  check_payload(payload, "send_blocking()");
  status s = status::queue_full;
  // One attempt per poll, each inside its own send scope: shutdown never waits for a blocked sender
  // longer than one attempt, and the sender then sees not_running.
  const auto attempt = [&] {
    send_scope scope(*this);
    std::uint64_t position = 0;
    s = enqueue(destination, type, payload, opts, no_slot, position);
    return s != status::queue_full;
  };
  if (attempt()) return count(s);
  const wait_result r = wait_until(
      attempt, [&] { return faults_.detected(); }, timeout_ns(timeout), waiting_backoff());
  if (r == wait_result::aborted) faults_.throw_if_faulted();
  return count(r == wait_result::ready ? s : status::timed_out);
}

std::optional<received_message> host_io::receive(std::chrono::nanoseconds timeout) {
  RK_NVTX_RANGE("rk::runtime::receive");
  const bool live = phase_.load() == phase::running || phase_.load() == phase::draining;
  if (live) faults_.throw_if_faulted();
  // The egress ring has one consumer at a time: the lock is held to take one message, never while
  // waiting, so receivers with short timeouts are not held up by one with a long timeout.
  std::optional<received_message> got;
  const auto take = [&] {
    std::lock_guard lock(egress_mutex_);
    const egress_ring egress(h_egress_);
    const std::byte* slot = egress.try_peek();
    if (slot == nullptr) return false;
    received_message m;
    std::memcpy(&m.header, slot, sizeof(envelope));
    const std::uint32_t length = std::min(m.header.payload_length, egress.payload_capacity());
    m.payload.assign(slot + envelope_bytes, slot + envelope_bytes + length);
    egress.pop();
    got = std::move(m);
    return true;
  };
  if (!take() && live) {
    park_lot* lot = busy_poll_ ? nullptr : backend_.receive_lot();
    const wait_result r =
        lot != nullptr ? wait_parked(*lot, take, timeout_ns(timeout))
                       : wait_until(
                             take, [&] { return waits_end(); }, timeout_ns(timeout), waiting_backoff());
    // A shutdown that completed meanwhile published everything it will: one last look, then empty.
    if (r == wait_result::aborted && !take()) faults_.throw_if_faulted();
  }
  if (!got) return std::nullopt;
  host_received_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard clock_lock(clock_mutex_);
  clock_.observe(got->header.timestamp);
  return got;
}

// A short spin and yield (a reply that is microseconds away costs no sleep), then sleeps on `lot`, whose
// event count every egress publish, fault and control-word change bumps (host_park.cuh: taking the ticket
// before the last look means no publish is missed). The 100 ms cap only bounds a sleep if a wake were lost.
wait_result host_io::wait_parked(park_lot& lot, const std::function<bool()>& take, std::uint64_t timeout) {
  constexpr std::uint32_t spin_steps = 128; // backoff: 64 pause hints, then 64 yields
  const std::uint64_t start = physical_clock_ns();
  const auto elapsed = [start] { return physical_clock_ns() - start; };
  backoff spin = backoff::busy_poll();
  for (std::uint32_t i = 0; i < spin_steps; ++i) {
    if (take()) return wait_result::ready;
    if (timeout != wait_forever && elapsed() >= timeout) return wait_result::timed_out;
    spin.pause();
  }
  for (;;) {
    if (waits_end()) return wait_result::aborted;
    const std::uint64_t waited = elapsed();
    if (timeout != wait_forever && waited >= timeout)
      return take() ? wait_result::ready : wait_result::timed_out;
    const std::uint64_t left = timeout == wait_forever ? wait_forever : timeout - waited;
    const std::uint32_t seen = park_enter(lot);
    const bool ready = take();
    if (!ready && !waits_end())
      park_sleep(lot, seen, static_cast<long>(std::min<std::uint64_t>(left, 100'000'000)));
    park_leave(lot);
    if (ready || take()) return wait_result::ready;
  }
}

bool host_io::waits_end() {
  return faults_.detected() || phase_.load() == phase::stopped || callback_outlived(phase_);
}

void host_io::wake_receivers() noexcept {
  if (park_lot* lot = backend_.receive_lot(); lot != nullptr) park_notify_all(*lot);
}

void host_io::wait_for_senders() const {
  wait_until([&] { return senders_in_flight_.load() == 0; }, [] { return false; }, wait_forever);
}

gateway_counters host_io::read_gateway() const {
  gateway_counters g;
  backend_.copy_from_device(&g, d_gateway_.get(), sizeof g);
  return g;
}

std::uint64_t host_io::settled() const noexcept {
  return load_acquire(*static_cast<const std::uint64_t*>(settled_memory_.host()));
}

void host_io::fill_host_counters(runtime_stats& s) const {
  for (std::size_t i = 0; i < status_count; ++i)
    s.host_sends[i] = host_sends_[i].load(std::memory_order_relaxed);
  s.host_received = host_received_.load(std::memory_order_relaxed);
}

namespace {
//! Published messages from the consumer's head on, in a device-to-host ring the caller consumes alone.
std::uint64_t published_from_head(const ring_view& ring) {
  const std::uint64_t head = *ring.head;
  std::uint64_t n = 0;
  while (n < ring.capacity &&
         cuda::atomic_ref<std::uint64_t, pcie_scope>(ring.seq[(head + n) & (ring.capacity - 1)])
                 .load(cuda::std::memory_order_acquire) == head + n + 1)
    ++n;
  return n;
}
} // namespace

std::uint64_t host_io::pending_egress() {
  std::lock_guard lock(egress_mutex_);
  return published_from_head(h_egress_);
}

std::uint64_t host_io::pending_outbound() {
  if (!has_outbound_ring()) return 0;
  std::lock_guard lock(outbound_mutex_);
  return published_from_head(outbound_.host_view);
}

std::vector<undelivered_message> host_io::unsettled_messages() const {
  std::vector<undelivered_message> out;
  const auto describe_message = [&](const envelope& h, bool parked) {
    out.push_back({h.destination, h.type_id, h.correlation_id, h.tenant, parked});
  };
  parking_state st;
  backend_.copy_from_device(&st, parking_state_.get(), sizeof st);
  if (st.active_count <= parking_capacity_ && st.active_count != 0) {
    std::vector<std::uint32_t> active(st.active_count);
    std::vector<parking_queue> queues(queue_count_);
    std::vector<std::uint32_t> next(parking_capacity_);
    backend_.copy_from_device(active.data(), parking_active_.get(), sizeof(std::uint32_t) * active.size());
    backend_.copy_from_device(queues.data(), parking_queues_.get(), sizeof(parking_queue) * queues.size());
    backend_.copy_from_device(next.data(), parking_next_.get(), sizeof(std::uint32_t) * next.size());
    for (std::uint32_t q : active) {
      if (q >= queue_count_) continue;
      for (std::uint32_t lane = parking_lanes; lane-- != 0;) { // most urgent first, as the gateway tries
        // Bounded walk: a list longer than the capacity would be corrupt.
        std::uint32_t slot = queues[q].head[lane];
        for (std::uint32_t n = 0; slot < parking_capacity_ && n < parking_capacity_; ++n, slot = next[slot]) {
          envelope h;
          backend_.copy_from_device(&h,
                                    static_cast<const std::byte*>(parking_slots_.get()) +
                                        std::size_t{slot} * h_ingress_.slot_bytes,
                                    sizeof h);
          describe_message(h, true);
        }
      }
    }
  }
  const std::uint64_t mask = h_ingress_.capacity - 1;
  for (std::uint64_t pos = load_acquire(*h_ingress_.head);; ++pos) {
    if (load_acquire(h_ingress_.seq[pos & mask]) != pos + 1) break;
    envelope h;
    std::memcpy(&h, ingress_ring(h_ingress_).slot_at(pos), sizeof h);
    describe_message(h, false);
  }
  return out;
}

} // namespace rk::detail
