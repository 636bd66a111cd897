// Tenancy (see tenant_table.hpp).

#include "tenant_table.hpp"

#include "support.hpp"

#include <ringkernel/device/detail/deliver.cuh>
#include <ringkernel/device/hlc.cuh>
#include <ringkernel/host/error.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>

namespace rk::detail {

namespace {
std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) noexcept {
  return a > no_limit - b ? no_limit : a + b;
}

using wide = unsigned __int128;

//! Tokens a full bucket of `q` holds: its burst, or one second's worth at its rate (bucket_tolerance).
std::uint64_t full_bucket(const tenant_quota& q) noexcept {
  return q.burst != 0 ? q.burst : q.max_messages_per_second;
}

//! The bucket word (take_token_with_clock: when the bucket is full again, in sixteenths of a nanosecond)
//! after a quota change at `now16` from `from` to `to`: the tokens it holds now under `from`, at most a
//! full bucket of `to`, owed at `to`'s rate. So a change neither hands out tokens nor takes them: the word
//! is a time, and a lowered rate made the old debt worth fewer tokens (lowering 1,000/s to 10/s passed 989
//! more messages at once; halving the rate every 5 ms passed 3x the bound), a raised one more. Partial
//! tokens count as owed.
std::uint64_t rescaled_bucket(std::uint64_t bucket, std::uint64_t now16, const tenant_quota& from,
                              const tenant_quota& to) noexcept {
  const std::uint64_t old_rate = from.max_messages_per_second, new_rate = to.max_messages_per_second;
  if (bucket == 0 || old_rate == 0 || new_rate == 0) return bucket; // never used, or no rate either side
  const auto ahead = static_cast<std::int64_t>(bucket - now16);
  if (ahead <= 0) return bucket; // full
  const wide units = rate_units_per_second;
  const wide owed_units =
      std::min<wide>(static_cast<std::uint64_t>(ahead), units * full_bucket(from) / old_rate);
  const wide owed_tokens = (owed_units * old_rate + units - 1) / units;
  const wide held = full_bucket(from) - std::min<wide>(owed_tokens, full_bucket(from));
  const wide owed_now = full_bucket(to) - std::min<wide>(held, full_bucket(to));
  const wide new_units = (owed_now * units + new_rate - 1) / new_rate; // at most 2^20 tokens or 1 s
  return bucket_time(now16 + static_cast<std::uint64_t>(new_units));
}
} // namespace

tenant_table::tenant_table(memory_pool& memory, backend_impl& backend, const runtime_options& options)
    : backend_(backend), max_tenants_(std::max(1u, options.max_tenants)),
      max_engagements_(options.max_engagements), tenant_slots_(max_tenants_, ~0u),
      engagement_slots_(max_engagements_, ~0u) {
  d_tenants_ = memory.allocate(sizeof(tenant_entry) * max_tenants_, "the tenant table");
  d_engagements_ =
      memory.allocate(sizeof(engagement_entry) * std::max(1u, max_engagements_), "the engagement table");
  register_tenant(0, tenant_quota::unlimited()); // tenant 0: unspecified, always present, slot 0
}

void tenant_table::describe(system_view& sys) const {
  sys.tenants = d_tenants_.as<tenant_entry>();
  sys.tenant_capacity = max_tenants_;
  sys.engagements = d_engagements_.as<engagement_entry>();
  sys.engagement_capacity = max_engagements_;
}

void tenant_table::check_quota(std::uint64_t tenant, const tenant_quota& q) {
  if (q.burst > (1u << 20))
    throw error(tenant_text(tenant) + ": tenant_quota::burst must be at most 1048576 messages (got " +
                std::to_string(q.burst) + ")");
  // The device refills the bucket with up to 10 s * rate * 16 sixteenths in 64 bits: at most 1e11/s.
  if (q.max_messages_per_second > 100'000'000'000ull)
    throw error(tenant_text(tenant) + ": tenant_quota::max_messages_per_second must be at most 1e11 (got " +
                std::to_string(q.max_messages_per_second) + "; 0: no rate limit)");
}

tenant_table::tenant_record& tenant_table::record(std::uint64_t tenant, const std::string& who) {
  const auto it = tenants_.find(tenant);
  if (it == tenants_.end())
    throw error(who + ": " + tenant_text(tenant) + " is not registered; call rt.tenants().add(" +
                std::to_string(tenant) + ", quota) first");
  return it->second;
}
const tenant_table::tenant_record& tenant_table::record(std::uint64_t tenant, const std::string& who) const {
  return const_cast<tenant_table*>(this)->record(tenant, who);
}

void tenant_table::register_tenant(std::uint64_t tenant, const tenant_quota& quota) {
  check_quota(tenant, quota);
  std::lock_guard lock(mutex_);
  const std::optional<slot_allocator::slot_id> s = tenant_slots_.acquire();
  if (!s)
    throw out_of_room("tenants().add(" + std::to_string(tenant) +
                      "): the tenant table is full (max_tenants = " + std::to_string(max_tenants_) +
                      "); remove a tenant first");
  tenant_entry e; // a free slot: only stale host sends read it, and they check the id
  e.id = tenant;
  e.rate_per_second = quota.max_messages_per_second;
  e.burst = quota.burst;
  try {
    backend_.copy_to_device(&d_tenants_.as<tenant_entry>()[s->slot], &e, sizeof e);
  } catch (...) {
    tenant_slots_.unacquire(s->slot);
    throw;
  }
  tenant_record r;
  r.quota = quota;
  r.slot = s->slot;
  r.incarnation = next_incarnation_++;
  tenants_.emplace(tenant, r);
  std::lock_guard send_lock(send_mutex_);
  send_slots_[tenant] = s->slot;
}

void tenant_table::add(std::uint64_t tenant, const tenant_quota& quota) {
  if (tenant == 0)
    throw error("tenants().add(0): tenant 0 (unspecified) always exists; use set_quota(0, ...)");
  if (contains(tenant))
    throw error("tenants().add(" + std::to_string(tenant) +
                "): already registered; use set_quota to change it");
  register_tenant(tenant, quota);
}

void tenant_table::write_rate(const tenant_record& r, const tenant_quota& previous) {
  tenant_entry& e = d_tenants_.as<tenant_entry>()[r.slot];
  // The change's time in the clock the bucket keeps (take_token_with_clock): steady_clock on the CPU
  // backend, %globaltimer (ns since the Unix epoch, as hlc_physical_ns() reads on the host) on CUDA.
  // Written before the rates, so that a send that sees the new tolerance is likely to see it too (one that
  // does not caps the bucket at its own time, as before).
  const std::uint64_t changed = backend_.kind() == backend::cuda ? hlc_physical_ns() : physical_clock_ns();
  backend_.copy_to_device(&e.quota_changed_ns, &changed, sizeof changed);
  // rate_per_second, burst and bucket are adjacent words of tenant_entry, written in that order: a send
  // that sees the rescaled bucket sees the rate it was rescaled for (take_token_with_clock).
  static_assert(offsetof(tenant_entry, burst) == offsetof(tenant_entry, rate_per_second) + 8 &&
                offsetof(tenant_entry, bucket) == offsetof(tenant_entry, burst) + 8);
  const std::uint64_t now16 = changed * 16;
  if (backend_.kind() == backend::cpu) { // the device's memory is this process's: rescale with a CAS
    const std::uint64_t words[2] = {r.quota.max_messages_per_second, r.quota.burst};
    backend_.copy_to_device(&e.rate_per_second, words, sizeof(words));
    std::atomic_ref<std::uint64_t> bucket(e.bucket);
    std::uint64_t old = bucket.load();
    while (!bucket.compare_exchange_weak(old, rescaled_bucket(old, now16, previous, r.quota))) {
    }
    return;
  }
  // CUDA: sends that take tokens between this read and the write below are forgotten (microseconds).
  std::uint64_t old = 0;
  backend_.copy_from_device(&old, &e.bucket, sizeof old);
  const std::uint64_t words[3] = {r.quota.max_messages_per_second, r.quota.burst,
                                  rescaled_bucket(old, now16, previous, r.quota)};
  backend_.copy_to_device(&e.rate_per_second, words, sizeof(words));
}

void tenant_table::set_quota(std::uint64_t tenant, const tenant_quota& quota) {
  const std::string who = "tenants().set_quota(" + std::to_string(tenant) + ")";
  std::lock_guard lock(mutex_);
  tenant_record& r = record(tenant, who);
  check_quota(tenant, quota);
  if (quota.max_actors < r.actors)
    throw error(who + ": the tenant already has " + std::to_string(r.actors) +
                " actors, more than the new max_actors " + std::to_string(quota.max_actors));
  if (quota.max_device_bytes < r.bytes)
    throw error(who + ": the tenant already uses " + std::to_string(r.bytes) +
                " device bytes, more than the new max_device_bytes " +
                std::to_string(quota.max_device_bytes) + given_up_text(r));
  tenant_record updated = r;
  updated.quota = quota;
  write_rate(updated, r.quota); // the only step that can fail: the record changes after it
  r = updated;
}

void tenant_table::remove(std::uint64_t tenant, grace_periods& grace) {
  const std::string who = "tenants().remove(" + std::to_string(tenant) + ")";
  if (tenant == 0) throw error(who + ": tenant 0 (unspecified) cannot be removed");
  std::uint32_t slot;
  std::vector<std::uint32_t> engagement_slots;
  {
    std::lock_guard lock(mutex_);
    const tenant_record& r = record(tenant, who);
    if (r.actors != 0 || r.regions != 0)
      throw error(who + ": the tenant still has " + std::to_string(r.actors) + " actors and " +
                  std::to_string(r.regions) + " regions; forget() its actors (stopped ones count) and " +
                  "unregister its regions first");
    // Removed while memory it gave up is still held, the same id added again would start without that
    // charge, and could take as much again (a tenant re-added in a loop held ten times its quota).
    if (r.bytes != 0) {
      const std::string text = who + ": " + std::to_string(r.bytes) +
                               " device bytes it gave up are still charged to it until their memory is "
                               "freed (tenant_quota::max_device_bytes)" +
                               given_up_text(r) + "; remove it once they are";
      if (r.held == r.bytes) throw out_of_room(text); // the coordinator waits a grace period for them
      throw error(text);
    }
    slot = r.slot;
    tenants_.erase(tenant);
    for (auto it = engagements_.begin(); it != engagements_.end(); ++it)
      if (it->second.tenant == tenant) engagement_slots.push_back(it->first);
    for (std::uint32_t e : engagement_slots) {
      const engagement_record& g = engagements_.at(e);
      engagement_by_key_.erase({g.tenant, g.tag.org_id, g.tag.engagement_id});
      engagements_.erase(e);
    }
    std::lock_guard send_lock(send_mutex_);
    send_slots_.erase(tenant);
  }
  grace.defer([this, slot, engagement_slots] {
    std::lock_guard lock(mutex_);
    tenant_slots_.release(slot);
    for (std::uint32_t e : engagement_slots) engagement_slots_.release(e);
  });
}

bool tenant_table::contains(std::uint64_t tenant) const {
  std::lock_guard lock(mutex_);
  return tenants_.count(tenant) != 0;
}

std::vector<std::uint64_t> tenant_table::ids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::uint64_t> out;
  for (const auto& [id, r] : tenants_) out.push_back(id);
  return out;
}

std::uint32_t tenant_table::slot_of(std::uint64_t tenant, const std::string& who) const {
  std::lock_guard lock(mutex_);
  return record(tenant, who).slot;
}

std::uint32_t tenant_table::send_slot(std::uint64_t tenant) const {
  if (tenant == 0) return 0;
  std::lock_guard lock(send_mutex_);
  const auto it = send_slots_.find(tenant);
  return it == send_slots_.end() ? no_slot : it->second;
}

void tenant_table::charge(std::uint64_t tenant, std::uint64_t actors, std::uint64_t bytes,
                          const std::string& who) {
  std::lock_guard lock(mutex_);
  tenant_record& r = record(tenant, who);
  if (actors > r.quota.max_actors || r.actors > r.quota.max_actors - actors)
    throw error(who + ": " + tenant_text(tenant) + " would have " +
                std::to_string(saturating_add(r.actors, actors)) + " actors, over its limit of " +
                std::to_string(r.quota.max_actors) + " (tenant_quota::max_actors)");
  if (bytes > r.quota.max_device_bytes || r.bytes > r.quota.max_device_bytes - bytes) {
    const bool overflows = r.bytes > no_limit - bytes;
    const std::string text =
        who + ": " + tenant_text(tenant) + " would use " + (overflows ? "more than " : "") +
        std::to_string(saturating_add(r.bytes, bytes)) + " device bytes, over its limit of " +
        std::to_string(r.quota.max_device_bytes) + " (tenant_quota::max_device_bytes)" + given_up_text(r);
    if (r.held == 0) throw error(text);
    // Room once they are freed: out_of_room, which the coordinator waits on for a grace period.
    if (bytes <= r.quota.max_device_bytes && r.bytes - r.held <= r.quota.max_device_bytes - bytes)
      throw out_of_room(text);
    throw error(text);
  }
  r.actors += actors;
  r.bytes += bytes;
}

void tenant_table::refund(std::uint64_t tenant, std::uint64_t actors, std::uint64_t bytes) noexcept {
  std::lock_guard lock(mutex_);
  const auto it = tenants_.find(tenant);
  if (it == tenants_.end()) return;
  it->second.actors -= std::min(it->second.actors, actors);
  it->second.bytes -= std::min(it->second.bytes, bytes);
}

std::uint64_t tenant_table::hold_for_release(std::uint64_t tenant, std::uint64_t bytes) noexcept {
  return give_up_actor(tenant, bytes, false, 0); // nothing else waits with them
}

std::uint64_t tenant_table::give_up_actor(std::uint64_t tenant, std::uint64_t bytes, bool others_live,
                                          std::uint64_t unpinned) noexcept {
  std::lock_guard lock(mutex_);
  const auto it = tenants_.find(tenant);
  if (it == tenants_.end()) return 0;
  tenant_record& r = it->second;
  const std::uint64_t moved = std::min(r.pinned, unpinned);
  r.pinned -= moved;
  r.held += moved;
  std::uint64_t& waiting = others_live ? r.pinned : r.held;
  waiting += std::min(bytes, r.bytes - r.held - r.pinned);
  return r.incarnation;
}

void tenant_table::release_held(std::uint64_t tenant, std::uint64_t incarnation,
                                std::uint64_t bytes) noexcept {
  std::lock_guard lock(mutex_);
  const auto it = tenants_.find(tenant);
  if (it == tenants_.end() || it->second.incarnation != incarnation) return;
  it->second.held -= std::min(it->second.held, bytes);
  it->second.bytes -= std::min(it->second.bytes, bytes);
}

std::string tenant_table::given_up_text(const tenant_record& r) {
  std::string text;
  if (r.held != 0)
    text += "; " + std::to_string(r.held) +
            " of them belong to forgotten actors and unregistered regions, and come back once every handler "
            "call running since they were given up has returned";
  if (r.pinned != 0)
    text += "; " + std::to_string(r.pinned) +
            " of them belong to forgotten actors spawned together with actors still there (one spawn_many, "
            "or one spawn of a group's instances): one block holds their mailboxes and states and is freed "
            "with the last of them, so forget those too, or raise the limit";
  return text;
}

void tenant_table::count_region(std::uint64_t tenant, int delta) noexcept {
  std::lock_guard lock(mutex_);
  const auto it = tenants_.find(tenant);
  if (it != tenants_.end()) it->second.regions += static_cast<std::uint32_t>(delta);
}

std::uint32_t tenant_table::engagement_slot(std::uint64_t tenant, const audit_tag& tag,
                                            const std::string& who, bool& created) {
  std::lock_guard lock(mutex_);
  created = false;
  if (const auto it = engagement_by_key_.find({tenant, tag.org_id, tag.engagement_id});
      it != engagement_by_key_.end())
    return it->second;
  record(tenant, who);
  const std::optional<slot_allocator::slot_id> s = engagement_slots_.acquire();
  if (!s)
    throw out_of_room(
        who + ": the engagement table is full (max_engagements = " + std::to_string(max_engagements_) +
        "): an engagement (tenant and audit tag) keeps its table slot, usage and budget until its tenant is "
        "removed, also once no actor carries its tag; raise runtime_options::max_engagements, or reuse audit "
        "tags");
  engagement_entry e;
  e.tenant = tenant;
  e.org_id = tag.org_id;
  e.engagement_id = tag.engagement_id;
  try {
    backend_.copy_to_device(&d_engagements_.as<engagement_entry>()[s->slot], &e, sizeof e);
  } catch (...) {
    engagement_slots_.unacquire(s->slot);
    throw;
  }
  engagements_[s->slot] = {tenant, tag, 0};
  engagement_by_key_[{tenant, tag.org_id, tag.engagement_id}] = s->slot;
  created = true;
  return s->slot;
}

void tenant_table::unadd_engagement(std::uint32_t slot) noexcept {
  std::lock_guard lock(mutex_);
  const engagement_record& g = engagements_.at(slot);
  engagement_by_key_.erase({g.tenant, g.tag.org_id, g.tag.engagement_id});
  engagements_.erase(slot);
  engagement_slots_.unacquire(slot);
}

void tenant_table::set_engagement_budget(std::uint64_t tenant, const audit_tag& tag,
                                         std::chrono::nanoseconds budget) {
  const std::string who = "tenants().set_engagement_budget(" + std::to_string(tenant) + ")";
  slot_of(tenant, who);
  if (tag == audit_tag{})
    throw error(who + ": the audit tag {0, 0} means untagged; use a non-zero org or engagement id");
  if (budget.count() < 0) throw error(who + ": the budget must not be negative");
  bool created = false;
  const std::uint32_t slot = engagement_slot(tenant, tag, who, created);
  const auto ns = static_cast<std::uint64_t>(budget.count());
  try {
    backend_.copy_to_device(&d_engagements_.as<engagement_entry>()[slot].budget_ns, &ns, sizeof ns);
  } catch (...) {
    if (created) unadd_engagement(slot);
    throw;
  }
  std::lock_guard lock(mutex_);
  engagements_.at(slot).budget_ns = ns;
}

engagement_usage tenant_table::engagement(std::uint64_t tenant, const audit_tag& tag) const {
  std::lock_guard lock(mutex_);
  (void)record(tenant, "tenants().engagement(" + std::to_string(tenant) + ")"); // as usage(): registered only
  engagement_usage u;
  u.tenant = tenant;
  u.tag = tag;
  const auto it = engagement_by_key_.find({tenant, tag.org_id, tag.engagement_id});
  if (it == engagement_by_key_.end()) return u;
  engagement_entry e;
  backend_.copy_from_device(&e, &d_engagements_.as<engagement_entry>()[it->second], sizeof e);
  u.budget_ns = e.budget_ns;
  u.used_ns = e.used_ns;
  u.rejections = e.rejections;
  return u;
}

tenant_usage tenant_table::usage(std::uint64_t tenant) const {
  std::lock_guard lock(mutex_);
  const tenant_record& r = record(tenant, "tenants().usage(" + std::to_string(tenant) + ")");
  tenant_entry e;
  backend_.copy_from_device(&e, &d_tenants_.as<tenant_entry>()[r.slot], sizeof e);
  tenant_usage u;
  u.tenant = tenant;
  u.quota = r.quota;
  u.actors = r.actors;
  u.device_bytes = r.bytes;
  u.messages_sent = e.host_sent;
  u.rate_rejections = e.rate_rejections;
  u.budget_rejections = e.budget_rejections;
  return u;
}

std::uint32_t tenant_table::in_use() const {
  std::lock_guard lock(mutex_);
  return tenant_slots_.in_use();
}

std::uint32_t tenant_table::engagements_in_use() const {
  std::lock_guard lock(mutex_);
  return engagement_slots_.in_use();
}

} // namespace rk::detail
