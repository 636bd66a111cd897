#pragma once
// Tenancy: registered tenants with their quotas and what they hold, their slots in the device tenant table
// (rate bucket and counters), and engagements (audit tags with GPU-time budgets).
//
// Owns (device memory): tenant_entry[max_tenants] (sys.tenants) and engagement_entry[max_engagements]
// (sys.engagements). Host side: one record per tenant (quota, actors, device bytes, regions) and per
// engagement. Tenant 0 always holds slot 0.
//
// Called by the coordinator (setup calls, serialised; spawns and regions charge through it), by host I/O
// on every host send (send_slot: its own small lock), and from any thread for usage. Never touches actors,
// routes or regions: the per-actor counters in tenant_usage are added by the caller.

#include "grace.hpp"
#include "memory.hpp"

#include <ringkernel/host/tenancy.hpp>

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace rk::detail {

class tenant_table {
public:
  tenant_table(memory_pool& memory, backend_impl& backend, const runtime_options& options);
  void describe(system_view& sys) const;

  void add(std::uint64_t tenant, const tenant_quota& quota);
  void set_quota(std::uint64_t tenant, const tenant_quota& quota);
  //! Removes a tenant that holds no actors or regions; its slot and engagements come back after a grace
  //! period (host sends still stamped with the old slot are refused by the device's id check).
  void remove(std::uint64_t tenant, grace_periods& grace);
  bool contains(std::uint64_t tenant) const;
  std::vector<std::uint64_t> ids() const;
  //! The tenant's slot; throws (`who: tenant N is not registered; ...`) when there is none.
  std::uint32_t slot_of(std::uint64_t tenant, const std::string& who) const;
  //! Hot path (host sends): the tenant's slot, or no_slot when it is not registered.
  std::uint32_t send_slot(std::uint64_t tenant) const;

  //! Charges actors and bytes to `tenant`, or throws naming the limit (nothing charged). Overflow-safe.
  void charge(std::uint64_t tenant, std::uint64_t actors, std::uint64_t bytes, const std::string& who);
  void refund(std::uint64_t tenant, std::uint64_t actors, std::uint64_t bytes) noexcept;
  void count_region(std::uint64_t tenant, int delta) noexcept;
  //! Bytes charged to `tenant` that its forgotten actors or unregistered regions no longer use but still
  //! hold until a grace period frees them: they stay charged (the memory is not back yet), and a refusal
  //! for max_device_bytes says how many are waiting. Returns which registration of `tenant` holds them
  //! (0: none), for release_held: the same id removed and added again is another.
  std::uint64_t hold_for_release(std::uint64_t tenant, std::uint64_t bytes) noexcept;
  //! forget() of an actor: as hold_for_release, except that with `others_live` (actors spawned with it
  //! still there: one block holds their memory) its bytes wait for the last of them (pinned: not expected
  //! back soon). `unpinned`: bytes pinned earlier that now wait only for a grace period (the last of a block
  //! is forgotten).
  std::uint64_t give_up_actor(std::uint64_t tenant, std::uint64_t bytes, bool others_live,
                              std::uint64_t unpinned) noexcept;
  //! Their memory was freed: refunds them, unless the tenant was removed since `incarnation`.
  void release_held(std::uint64_t tenant, std::uint64_t incarnation, std::uint64_t bytes) noexcept;

  //! The engagement slot of (tenant, tag), created with no budget when new (`created` says so).
  std::uint32_t engagement_slot(std::uint64_t tenant, const audit_tag& tag, const std::string& who,
                                bool& created);
  //! Undoes the creation of an engagement nothing uses yet.
  void unadd_engagement(std::uint32_t slot) noexcept;
  void set_engagement_budget(std::uint64_t tenant, const audit_tag& tag, std::chrono::nanoseconds budget);
  engagement_usage engagement(std::uint64_t tenant, const audit_tag& tag) const;
  //! Usage without the per-actor sums (messages the tenant's actors sent, their handler time).
  tenant_usage usage(std::uint64_t tenant) const;
  std::uint32_t in_use() const;
  std::uint32_t engagements_in_use() const;

private:
  struct tenant_record {
    tenant_quota quota;
    std::uint32_t slot = 0;
    std::uint64_t actors = 0;
    std::uint64_t bytes = 0;  //!< mailboxes, handler states and regions charged to the tenant
    std::uint64_t held = 0;   //!< of `bytes`: waiting for a grace period (hold_for_release)
    std::uint64_t pinned = 0; //!< of `bytes`: waiting for live actors spawned with them (give_up_actor)
    std::uint64_t incarnation = 0;
    std::uint32_t regions = 0;
  };
  struct engagement_record {
    std::uint64_t tenant = 0;
    audit_tag tag;
    std::uint64_t budget_ns = 0;
  };
  using engagement_key = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>;

  static void check_quota(std::uint64_t tenant, const tenant_quota& q);
  //! What a max_device_bytes refusal adds about given-up bytes of `r` that are still charged ("" if none).
  static std::string given_up_text(const tenant_record& r);
  tenant_record& record(std::uint64_t tenant, const std::string& who); //!< needs mutex_
  const tenant_record& record(std::uint64_t tenant, const std::string& who) const;
  void register_tenant(std::uint64_t tenant, const tenant_quota& quota);
  //! Writes `r`'s rate and burst to the device and rescales its bucket from quota `previous` (see
  //! rescaled_bucket in tenant_table.cpp).
  void write_rate(const tenant_record& r, const tenant_quota& previous);

  backend_impl& backend_;
  std::uint32_t max_tenants_;
  std::uint32_t max_engagements_;
  device_block d_tenants_;
  device_block d_engagements_;

  mutable std::mutex mutex_; //!< guards the records
  slot_allocator tenant_slots_;
  slot_allocator engagement_slots_;
  std::map<std::uint64_t, tenant_record> tenants_;
  std::uint64_t next_incarnation_ = 1;
  std::map<std::uint32_t, engagement_record> engagements_; //!< by slot
  std::map<engagement_key, std::uint32_t> engagement_by_key_;
  mutable std::mutex send_mutex_; //!< guards send_slots_ (read on every host send)
  std::map<std::uint64_t, std::uint32_t> send_slots_;
};

} // namespace rk::detail
