// Zero-copy regions (see region_table.hpp).

#include "region_table.hpp"

#include "support.hpp"

#include <ringkernel/host/error.hpp>

#include <algorithm>
#include <atomic>

namespace rk::detail {

namespace {

//! A number no other region table of this process has (0 is never given: a default handle's).
std::uint32_t next_issuer() {
  static std::atomic<std::uint32_t> last{0};
  std::uint32_t issuer = last.fetch_add(1, std::memory_order_relaxed) + 1;
  while (issuer == 0) issuer = last.fetch_add(1, std::memory_order_relaxed) + 1;
  return issuer;
}

} // namespace

region_table::region_table(memory_pool& memory, backend_impl& backend, tenant_table& tenants,
                           std::uint32_t capacity)
    : memory_(memory), backend_(backend), tenants_(tenants), capacity_(capacity), issuer_(next_issuer()),
      slots_(capacity, ~0u - 1) {
  d_regions_ = memory.allocate(sizeof(region_entry) * std::max(1u, capacity),
                               "the region table (runtime_options::max_regions)");
}

void region_table::describe(system_view& sys) const {
  sys.regions = d_regions_.as<region_entry>();
  sys.region_capacity = capacity_;
}

namespace {
// 57 bits: the largest virtual address space of an x86-64 (5-level paging) or GPU address.
constexpr std::uint64_t address_space = std::uint64_t{1} << 57;
} // namespace

void region_table::validate(const void* pointer, std::uint64_t bytes, const region_options& opts,
                            const std::string& who) const {
  if (pointer == nullptr) throw error(who + ": the region pointer is null");
  if (bytes == 0) throw error(who + ": a region needs at least one byte");
  const auto start = reinterpret_cast<std::uintptr_t>(pointer);
  if (start >= address_space || bytes > address_space - start)
    throw error(who + ": a region of " + std::to_string(bytes) +
                " bytes there would run past the end of the address space; pass the buffer's real size");
  if (opts.policy != region_policy::immutable && opts.policy != region_policy::append_only &&
      opts.policy != region_policy::slab)
    throw error(who + ": unknown region policy");
  if (opts.shared_with.size() > max_region_sharing)
    throw error(who + ": a region can be shared with at most " + std::to_string(max_region_sharing) +
                " tenants");
  for (std::size_t i = 0; i < opts.shared_with.size(); ++i) {
    const std::uint64_t t = opts.shared_with[i];
    if (t == opts.owner_tenant)
      throw error(who + ": region_options::shared_with lists the owner, tenant " + std::to_string(t) +
                  " (it has the bytes already; list only other tenants)");
    if (std::find(opts.shared_with.begin(), opts.shared_with.begin() + static_cast<std::ptrdiff_t>(i), t) !=
        opts.shared_with.begin() + static_cast<std::ptrdiff_t>(i))
      throw error(who + ": region_options::shared_with lists tenant " + std::to_string(t) + " twice");
  }
  tenants_.slot_of(opts.owner_tenant, who);
  for (std::uint64_t t : opts.shared_with) tenants_.slot_of(t, who);
}

void region_table::require_issued_here(region_handle h, const std::string& who) const {
  if (h.issuer != issuer_)
    throw error(who + ": the region handle was not given out by this runtime (" +
                (h.issuer == 0 ? std::string("it was built by hand or default-constructed")
                               : std::string("another runtime gave it out")) +
                "); use the handle this runtime's register_region() or create_region() returned");
}

region_table::region_record& region_table::live(region_handle h, const std::string& who) {
  require_issued_here(h, who);
  if (h.region >= records_.size() || !records_[h.region].live ||
      records_[h.region].generation != h.generation)
    throw error(who + ": region " + std::to_string(h.region) + " (generation " +
                std::to_string(h.generation) + ") is not registered");
  return records_[h.region];
}

region_handle region_table::publish(region_record r, const std::string& who) {
  std::lock_guard lock(mutex_);
  const std::optional<slot_allocator::slot_id> s = slots_.acquire();
  if (!s)
    throw out_of_room(who + ": the region table is full (max_regions = " + std::to_string(capacity_) +
                      "); unregister a region or raise runtime_options::max_regions");
  r.live = true;
  r.generation = s->generation + 1; // handles and descriptors start at generation 1
  region_entry e;
  e.base = r.pointer;
  e.size = r.size;
  e.append_cursor = r.cursor;
  e.owner_tenant = r.options.owner_tenant;
  e.shared_count = static_cast<std::uint32_t>(r.options.shared_with.size());
  for (std::size_t i = 0; i < r.options.shared_with.size(); ++i) e.shared_with[i] = r.options.shared_with[i];
  e.generation = r.generation;
  e.policy = static_cast<std::uint32_t>(r.options.policy);
  e.live = 0;
  try {
    backend_.copy_to_device(&d_regions_.as<region_entry>()[s->slot], &e, sizeof e);
    const std::uint32_t live = 1;
    backend_.copy_to_device(&d_regions_.as<region_entry>()[s->slot].live, &live,
                            sizeof live); // after the rest
  } catch (...) {
    slots_.unacquire(s->slot);
    throw;
  }
  if (records_.size() <= s->slot) records_.resize(s->slot + 1);
  const std::uint64_t owner = r.options.owner_tenant;
  records_[s->slot] = std::move(r);
  tenants_.count_region(owner, +1);
  return {s->slot, records_[s->slot].generation, issuer_};
}

region_handle region_table::register_region(void* pointer, std::uint64_t bytes, const region_options& opts) {
  const std::string who = "register_region()";
  validate(pointer, bytes, opts, who);
  tenants_.charge(opts.owner_tenant, 0, bytes, who);
  try {
    region_record r;
    r.pointer = static_cast<std::byte*>(pointer);
    r.size = bytes;
    r.charged = bytes;
    r.options = opts;
    return publish(std::move(r), who);
  } catch (...) {
    tenants_.refund(opts.owner_tenant, 0, bytes);
    throw;
  }
}

region_handle region_table::create_region(byte_view initial, std::uint64_t capacity,
                                          const region_options& opts) {
  const std::string who = "create_region()";
  if (initial.data == nullptr && initial.size != 0)
    throw error(who + ": " + std::to_string(initial.size) + " bytes of initial contents but no data pointer");
  if (capacity < initial.size)
    throw error(who + ": capacity " + std::to_string(capacity) + " is smaller than the initial contents (" +
                std::to_string(initial.size) + " bytes)");
  if (capacity >= address_space)
    throw error(who + ": a capacity of " + std::to_string(capacity) +
                " bytes is more than any address space holds (2^57 bytes)");
  const int placeholder = 0; // validate() wants a pointer; the memory comes below
  validate(&placeholder, capacity, opts, who);
  // What it takes of the memory: whole 256-byte pieces (a tenant's one-byte regions each held 256 bytes of
  // the running arena, 4.5 times its max_device_bytes over 290 of them).
  const std::uint64_t charged = arena_footprint(capacity);
  tenants_.charge(opts.owner_tenant, 0, charged, who);
  try {
    region_record r;
    r.memory = memory_.allocate(static_cast<std::size_t>(capacity), "a region");
    if (initial.size) backend_.copy_to_device(r.memory.get(), initial.data, initial.size);
    r.pointer = r.memory.as<std::byte>();
    r.size = capacity;
    r.cursor = opts.policy == region_policy::append_only ? initial.size : 0;
    r.charged = charged;
    r.options = opts;
    return publish(std::move(r), who);
  } catch (...) {
    tenants_.refund(opts.owner_tenant, 0, charged);
    throw;
  }
}

void region_table::unregister_region(region_handle h, grace_periods& grace) {
  std::uint64_t owner, bytes;
  {
    std::lock_guard lock(mutex_);
    region_record& r = live(h, "unregister_region()");
    const std::uint32_t dead = 0;
    backend_.copy_to_device(&d_regions_.as<region_entry>()[h.region].live, &dead, sizeof dead);
    const std::uint32_t generation = r.generation + 1;
    backend_.copy_to_device(&d_regions_.as<region_entry>()[h.region].generation, &generation,
                            sizeof generation);
    r.live = false;
    owner = r.options.owner_tenant;
    bytes = r.charged;
    releasing_.emplace(h.region, h.generation);
  }
  // The region no longer counts against the tenant's regions, but its bytes stay charged until they are
  // freed: refunded at once, a tenant whose own handler call held the grace period open could create and
  // unregister regions past its max_device_bytes, until the running arena was full for every tenant.
  tenants_.count_region(owner, -1);
  const std::uint64_t incarnation = tenants_.hold_for_release(owner, bytes);
  grace.defer([this, slot = h.region, generation = h.generation, owner, bytes, incarnation] {
    {
      std::lock_guard lock(mutex_);
      const std::uint32_t issued = records_[slot].generation;
      records_[slot] = region_record{};   // frees the memory of a created region
      records_[slot].generation = issued; // issued_slot: handles up to it were given out
      slots_.release(slot);
      releasing_.erase({slot, generation});
    }
    tenants_.release_held(owner, incarnation, bytes);
  });
}

std::uint64_t region_table::append(region_handle h, byte_view bytes) {
  const std::string who = "append()";
  if (bytes.data == nullptr && bytes.size != 0)
    throw error(who + ": " + std::to_string(bytes.size) + " bytes to append but no data pointer");
  std::lock_guard lock(mutex_);
  region_record& r = live(h, who);
  if (r.options.policy != region_policy::append_only) throw error(who + ": the region is not append-only");
  if (bytes.size > r.size - r.cursor)
    throw error(who + ": " + std::to_string(bytes.size) + (bytes.size == 1 ? " byte does" : " bytes do") +
                " not fit (" + std::to_string(r.size - r.cursor) + " of the region's " +
                std::to_string(r.size) + " left)");
  const std::uint64_t offset = r.cursor;
  if (bytes.size) backend_.copy_to_device(r.pointer + offset, bytes.data, bytes.size);
  const std::uint64_t cursor =
      r.cursor + bytes.size; // the bytes are in place before the cursor moves past them
  backend_.copy_to_device(&d_regions_.as<region_entry>()[h.region].append_cursor, &cursor, sizeof cursor);
  r.cursor = cursor;
  return offset;
}

bool region_table::registered(region_handle h) const {
  std::lock_guard lock(mutex_);
  return h.issuer == issuer_ && h.region < records_.size() && records_[h.region].live &&
         records_[h.region].generation == h.generation;
}

bool region_table::issued_slot(region_handle h) const {
  std::lock_guard lock(mutex_);
  // Handles start at generation 1; a slot's record keeps the latest it gave out when its region is gone.
  return h.issuer == issuer_ && h.region < records_.size() && h.generation != 0 &&
         h.generation <= records_[h.region].generation;
}

bool region_table::releasing(region_handle h) const {
  std::lock_guard lock(mutex_);
  return h.issuer == issuer_ && releasing_.count({h.region, h.generation}) != 0;
}

void* region_table::pointer(region_handle h) const {
  std::lock_guard lock(mutex_);
  return const_cast<region_table*>(this)->live(h, "region_pointer()").pointer;
}

std::vector<region_handle> region_table::shared_with(std::uint64_t tenant) const {
  std::lock_guard lock(mutex_);
  std::vector<region_handle> out;
  for (std::uint32_t slot = 0; slot < records_.size(); ++slot) {
    const region_record& r = records_[slot];
    if (r.live && std::find(r.options.shared_with.begin(), r.options.shared_with.end(), tenant) !=
                      r.options.shared_with.end())
      out.push_back({slot, r.generation, issuer_});
  }
  return out;
}

std::uint32_t region_table::in_use() const {
  std::lock_guard lock(mutex_);
  return slots_.in_use();
}

} // namespace rk::detail
