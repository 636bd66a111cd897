#pragma once
//! \file
//! Tenants, quotas and usage: the host tenant registry (rt.tenants()).
//!
//! Every actor belongs to a tenant (actor_options::tenant). Tenant 0 means "unspecified": it is always
//! registered, with no limits, for single-tenant deployments. Isolation is strict in both directions:
//! tenant 0 actors and named-tenant actors cannot message each other (tenant_mismatch), exactly like two
//! named tenants; the host acts on behalf of a tenant through send_options::tenant (default 0).
//!
//! Limits enforced on the host at setup time (rk::error naming the tenant and the limit): max_actors,
//! max_device_bytes (mailboxes, handler states and regions). Limits enforced on the device per send
//! (quota_exceeded): max_messages_per_second (a token bucket of `burst` tokens per tenant), and
//! per-engagement GPU-time budgets (handler time measured on the device per audit tag).

#include <ringkernel/device/audit.cuh>

#include <chrono>
#include <cstdint>
#include <vector>

namespace rk {

namespace detail {
class runtime_impl;
}

inline constexpr std::uint64_t no_limit = ~std::uint64_t{0};

struct tenant_quota {
  std::uint64_t max_actors = no_limit; //!< actors spawned for the tenant (stopped ones count)
  //! Mailboxes, handler states and regions (after start(), the whole 256-byte pieces of the running
  //! arena they take), those given up (forget, unregister_region) until they are freed: after a grace
  //! period (a handler call still running holds it), and for an actor spawned with others (spawn_many, a
  //! group's instances) with the last of them, whose memory is one block. docs/tenancy.md lists the
  //! memory no tenant is charged for.
  std::uint64_t max_device_bytes = no_limit;
  std::uint64_t max_messages_per_second = 0; //!< 0: no rate limit; at most 1e11 (passes 1.6e10/s at most)
  //! Tokens when idle (at most 2^20); 0: one second's worth. A batch of more messages (send_aggregated)
  //! never passes: quota_exceeded until the burst is raised.
  std::uint64_t burst = 0;

  //! 1024 actors, 1 GiB, no rate limit.
  static tenant_quota standard() { return {1024, std::uint64_t{1} << 30, 0, 0}; }
  static tenant_quota unlimited() { return {}; }
};

// rk::audit_tag (ringkernel/device/audit.cuh): who pays for an actor's GPU time, the {org_id,
// engagement_id} it carries (actor_options::audit_tag); {0, 0} means untagged.

struct tenant_usage {
  std::uint64_t tenant = 0;
  tenant_quota quota;
  std::uint64_t actors = 0;
  std::uint64_t device_bytes = 0;
  std::uint64_t messages_sent = 0;     //!< messages that passed every device check and were delivered
  std::uint64_t rate_rejections = 0;   //!< sends refused for the message rate
  std::uint64_t budget_rejections = 0; //!< sends refused for an exhausted engagement budget
  std::uint64_t handler_ns = 0;        //!< handler time of the tenant's actors
};

struct engagement_usage {
  std::uint64_t tenant = 0;
  rk::audit_tag tag;
  std::uint64_t budget_ns = 0; //!< 0: no budget
  std::uint64_t used_ns = 0;
  std::uint64_t rejections = 0;
  bool exhausted() const noexcept { return budget_ns != 0 && used_ns >= budget_ns; }
};

//! The tenant registry of one runtime. Obtain it with runtime::tenants(); it lives as long as the runtime.
//! Setup calls throw rk::error with what was wrong and what to do.
class tenant_registry {
public:
  //! Registers `tenant` (not 0, which always exists) with `quota`.
  void add(std::uint64_t tenant, const tenant_quota& quota);
  //! Changes a registered tenant's quota; the rate applies on the device at once. The bucket keeps the
  //! tokens it holds (at most the new burst; a part of a token counts as spent) and refills at the new
  //! rate from this call: a change hands out no tokens and takes none. On CUDA, tokens taken in the
  //! microseconds between the call's read of the bucket and its write are not carried over.
  void set_quota(std::uint64_t tenant, const tenant_quota& quota);
  //! Deregisters `tenant`; refused while it has actors or regions, or a registered region shares its bytes
  //! with it (region_options::shared_with), so that no grant survives to a tenant added later with the id;
  //! and while bytes it gave up are still charged (waiting up to 2 s for a grace period to free them), so
  //! that the id added again does not start without the memory still held.
  void remove(std::uint64_t tenant);
  bool contains(std::uint64_t tenant) const;
  //! Sets the GPU-time budget of the engagement `tag` of `tenant` (0 ns: no budget). Actors carrying the
  //! tag are charged for their handler time; once it is spent their sends are refused with
  //! quota_exceeded. May be called before or after the actors are spawned, and while running.
  void set_engagement_budget(std::uint64_t tenant, const audit_tag& tag, std::chrono::nanoseconds budget);
  //! Usage of a registered tenant (rk::error for another id).
  tenant_usage usage(std::uint64_t tenant) const;
  //! Usage of engagement `tag` of a registered tenant (rk::error for another id): zeros for a tag that no
  //! actor carried and no budget named yet.
  engagement_usage engagement(std::uint64_t tenant, const audit_tag& tag) const;
  std::vector<tenant_usage> all() const;

private:
  friend class runtime;
  explicit tenant_registry(detail::runtime_impl* impl) : impl_(impl) {}
  detail::runtime_impl* impl_;
};

} // namespace rk
