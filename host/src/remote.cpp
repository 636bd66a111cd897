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

bool take_outbound(runtime& rt, received_message& out) {
  return runtime_access::impl(rt).io().take_outbound(out);
}

status relay(runtime& rt, const envelope& header, byte_view payload) {
  return runtime_access::impl(rt).io().relay(header, payload);
}

std::uint64_t relayed(const runtime& rt) {
  return const_cast<runtime_impl&>(runtime_access::impl(rt)).io().relayed();
}

std::uint64_t enqueued(const runtime& rt) {
  return const_cast<runtime_impl&>(runtime_access::impl(rt)).io().enqueued();
}

std::uint64_t outbound_pending(runtime& rt) {
  return runtime_access::impl(rt).io().pending_outbound();
}

} // namespace remote
} // namespace rk::detail
