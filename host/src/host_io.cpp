// Host I/O (see host_io.hpp).

#include "host_io.hpp"

#include "nvtx.hpp"
#include "support.hpp"

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
      busy_poll_(options.host_busy_poll) {
  const ring_geometry g = options.host_ring;
  ingress_memory_ = memory.allocate_mapped(g.total_bytes(), "the host ingress ring");
  init_ring_image(ingress_memory_.host(), g);
  h_ingress_ = make_ring_view(ingress_memory_.host(), g);
  d_ingress_ = make_ring_view(ingress_memory_.device(), g);
  receipt_memory_ = memory.allocate_mapped(sizeof(ingress_receipt) * g.capacity, "ingress receipts");
  h_receipts_ = static_cast<ingress_receipt*>(receipt_memory_.host());
  waiting_ = std::make_unique<std::atomic<std::uint32_t>[]>(g.capacity);

  egress_memory_ = memory.allocate_mapped(g.total_bytes(), "the host egress ring");
  init_ring_image(egress_memory_.host(), g);
  h_egress_ = make_ring_view(egress_memory_.host(), g);
  d_egress_ = make_ring_view(egress_memory_.device(), g);
  // Device producers claim with a CAS; keep that counter in device memory, never across PCIe.
  egress_tail_ = memory.allocate(ring_geometry::cursor_bytes, "the egress claim counter");
  d_egress_.tail = egress_tail_.as<std::uint64_t>();
  h_egress_.tail = nullptr; // the host consumer never touches it
  d_gateway_ = memory.allocate(sizeof(gateway_counters), "gateway counters");
}

void host_io::describe(system_view& sys) const {
  sys.ingress = d_ingress_;
  sys.receipts = static_cast<ingress_receipt*>(receipt_memory_.device());
  sys.egress = d_egress_;
  sys.gateway = d_gateway_.as<gateway_counters>();
}

status host_io::count(status s) {
  host_sends_[static_cast<std::size_t>(s)].fetch_add(1, std::memory_order_relaxed);
  return s;
}

hlc_timestamp host_io::tick() {
  std::lock_guard lock(clock_mutex_);
  return clock_.now();
}

//! Claims an ingress position, skipping none: a slot whose previous receipt a send_wait caller has not
//! read yet counts as full (it is released as soon as that caller reads it).
ring_claim host_io::claim_ingress() {
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

status host_io::enqueue(address destination, std::uint32_t type, byte_view payload, const send_options& opts,
                        bool hold_receipt, std::uint64_t& position) {
  if (phase_.load() != phase::running) return status::not_running;
  faults_.throw_if_faulted();
  if (destination == host_actor) return status::invalid_destination; // the host cannot send to itself
  const ingress_ring ingress(h_ingress_);
  if (payload.size > ingress.payload_capacity()) return status::too_large;
  const ring_claim c = claim_ingress();
  if (!c.ok) return status::queue_full;

  envelope header;
  header.correlation_id = opts.correlation_id;
  header.timestamp = tick();
  header.type_id = type;
  header.source = host_actor;
  header.destination = destination;
  header.payload_length = payload.size;
  header.flags = opts.flags;
  header.priority = static_cast<std::uint8_t>(opts.priority);
  header.route_key = opts.key;
  header.tenant = opts.tenant;
  header.tenant_slot = tenants_.send_slot(opts.tenant);
  ingress_ring::write_slot(ingress.slot_at(c.position), header, payload.data);
  if (hold_receipt) waiting_[c.position & (h_ingress_.capacity - 1)].store(1, std::memory_order_relaxed);
  ingress.publish(c.position); // release also orders the waiting_ store for later producers
  enqueued_.fetch_add(1, std::memory_order_release);
  position = c.position;
  return status::enqueued;
}

status host_io::send(address destination, std::uint32_t type, byte_view payload, const send_options& opts) {
  RK_NVTX_RANGE("rk::runtime::send");
  send_scope scope(*this);
  std::uint64_t position = 0;
  return count(enqueue(destination, type, payload, opts, false, position));
}

status host_io::send_wait(address destination, std::uint32_t type, byte_view payload,
                          std::chrono::nanoseconds timeout, const send_options& opts) {
  RK_NVTX_RANGE("rk::runtime::send_wait");
  std::uint64_t position = 0;
  {
    send_scope scope(*this);
    const status s = enqueue(destination, type, payload, opts, true, position);
    if (s != status::enqueued) return count(s);
  }
  const std::uint64_t index = position & (h_ingress_.capacity - 1);
  ingress_receipt& receipt = h_receipts_[index];
  const wait_result r =
      wait_until([&] { return load_acquire(receipt.position_plus_one) == position + 1; },
                 [&] { return faults_.detected(); }, timeout_ns(timeout), waiting_backoff());
  status verdict = status::timed_out;
  if (r == wait_result::ready) verdict = static_cast<status>(load_acquire(receipt.verdict));
  waiting_[index].store(0, std::memory_order_release);
  if (r == wait_result::aborted) faults_.throw_if_faulted();
  return count(verdict);
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
    const wait_result r = wait_until(
        take, [&] { return faults_.detected(); }, timeout_ns(timeout), waiting_backoff());
    if (r == wait_result::aborted) faults_.throw_if_faulted();
  }
  if (!got) return std::nullopt;
  host_received_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard clock_lock(clock_mutex_);
  clock_.observe(got->header.timestamp);
  return got;
}

void host_io::wait_for_senders() const {
  wait_until([&] { return senders_in_flight_.load() == 0; }, [] { return false; }, wait_forever);
}

gateway_counters host_io::read_gateway() const {
  gateway_counters g;
  backend_.copy_from_device(&g, d_gateway_.get(), sizeof g);
  return g;
}

void host_io::fill_host_counters(runtime_stats& s) const {
  for (std::size_t i = 0; i < status_count; ++i)
    s.host_sends[i] = host_sends_[i].load(std::memory_order_relaxed);
  s.host_received = host_received_.load(std::memory_order_relaxed);
}

std::uint64_t host_io::pending_egress() {
  std::lock_guard lock(egress_mutex_);
  const std::uint64_t head = *h_egress_.head;
  std::uint64_t n = 0;
  while (n < h_egress_.capacity &&
         cuda::atomic_ref<std::uint64_t, pcie_scope>(h_egress_.seq[(head + n) & (h_egress_.capacity - 1)])
                 .load(cuda::std::memory_order_acquire) == head + n + 1)
    ++n;
  return n;
}

} // namespace rk::detail
