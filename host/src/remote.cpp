// rk::cluster's access to a rank's runtime (ringkernel/host/detail/remote.hpp).

#include "runtime_impl.hpp"

#include <ringkernel/host/detail/remote.hpp>

namespace rk::detail {

struct runtime_access {
  static runtime_impl& impl(runtime& rt) { return *rt.impl_; }
  static const runtime_impl& impl(const runtime& rt) { return *rt.impl_; }
};

namespace remote {

actor_index add_entry(runtime& rt, std::string name, std::uint64_t tenant) {
  return runtime_access::impl(rt).add_remote(std::move(name), tenant);
}

void mark_unreachable(runtime& rt, actor_index entry) {
  runtime_access::impl(rt).mark_remote_unreachable(entry);
}

void audit(runtime& rt, audit_event event, audit_level level, std::uint32_t detail, std::uint64_t value,
           actor_index actor, std::uint64_t tenant) {
  runtime_access::impl(rt).audit().record(event, level, actor, tenant, detail, value);
}

bool take_refusal(runtime& rt, refusal_record& out) {
  return runtime_access::impl(rt).io().take_refusal(out);
}

std::uint64_t refusals_pending(runtime& rt) {
  return runtime_access::impl(rt).io().pending_refusals();
}

bool take_outbound(runtime& rt, received_message& out) {
  return runtime_access::impl(rt).io().take_outbound(out);
}

status relay(runtime& rt, const envelope& header, byte_view payload) {
  return runtime_access::impl(rt).io().relay(header, payload);
}

std::uint64_t relayed(const runtime& rt) {
  return runtime_access::impl(rt).io().relayed();
}

std::uint64_t enqueued(const runtime& rt) {
  return runtime_access::impl(rt).io().enqueued();
}

std::uint64_t outbound_pending(runtime& rt) {
  return runtime_access::impl(rt).io().pending_outbound();
}

} // namespace remote
} // namespace rk::detail
