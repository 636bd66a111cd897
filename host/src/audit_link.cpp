// The runtime's end of the audit log (see audit_link.hpp).

#include "audit_link.hpp"

#include <algorithm>

namespace rk::detail {

audit_link::audit_link(memory_pool& memory, backend_impl& backend, const runtime_options& options)
    : backend_(backend) {
  // validated with the options
  ring_ =
      allocate_device_to_host_ring(memory, audit_ring_geometry(options.audit_ring_slots), "the audit ring");
  channel_.ring = ring_.device_view;
  channel_.overflow = ring_.refused;

  memory_sink_ = std::make_shared<audit_memory_sink>(std::max<std::size_t>(1, options.audit_memory_records));
  std::vector<std::shared_ptr<audit_sink>> sinks{memory_sink_};
  for (const auto& sink : options.audit_sinks)
    if (sink) sinks.push_back(sink);
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
  if (!drain_) return;
  audit_record r;
  r.event = event;
  r.level = level;
  r.actor = actor;
  r.tenant = tenant;
  r.detail = detail;
  r.value = value;
  (void)drain_->record_host(r); // not_running only after stop()
}

void audit_link::stop() noexcept {
  if (drain_) (void)drain_->stop();
}

void audit_link::note_workers_running() noexcept {
  if (drain_) drain_->note_producers_running();
}

} // namespace rk::detail
