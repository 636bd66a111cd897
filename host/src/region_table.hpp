#pragma once
// Zero-copy regions: registered or runtime-allocated device memory that descriptors name, and the
// device region table that validates them.
//
// Owns (device memory): region_entry[max_regions] (sys.regions) and the memory of regions it created
// (create_region). Host side: one record per slot (pointer, size, policy, owner, append cursor).
// A slot given back keeps counting generations, so every descriptor of an earlier registration stays
// refused; the slot and the memory come back after a grace period.
//
// Called by the coordinator (setup calls, serialised; charges go through the tenant table) and from any
// thread for region_pointer; one mutex guards the records. Never touches actors or routes.

#include "grace.hpp"
#include "memory.hpp"
#include "tenant_table.hpp"

#include <ringkernel/host/options.hpp>

#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace rk::detail {

class region_table {
public:
  region_table(memory_pool& memory, backend_impl& backend, tenant_table& tenants, std::uint32_t capacity);
  void describe(system_view& sys) const;

  region_handle register_region(void* pointer, std::uint64_t bytes, const region_options& options);
  region_handle create_region(byte_view initial, std::uint64_t capacity, const region_options& options);
  void unregister_region(region_handle region, grace_periods& grace);
  //! Whether `region` is registered now / was unregistered and a worker may still read it.
  bool registered(region_handle region) const;
  bool releasing(region_handle region) const;
  //! Whether `region` is a handle this table gave out, now or earlier (a generation not yet given out
  //! for its slot is not).
  bool issued_slot(region_handle region) const;
  //! Throws rk::error (naming `who`) for a handle this table did not give out: another runtime's, or one
  //! built by hand. The other calls taking a handle check it too, except registered(), releasing() and
  //! issued_slot(), which answer false.
  void require_issued_here(region_handle region, const std::string& who) const;
  std::uint64_t append(region_handle region, byte_view bytes);
  void* pointer(region_handle region) const;
  std::uint32_t in_use() const;
  //! The registered regions that share their bytes with `tenant` (not counting those it owns).
  std::vector<region_handle> shared_with(std::uint64_t tenant) const;

private:
  struct region_record {
    bool live = false;
    std::uint32_t generation = 0; //!< the handle's; kept when the region is gone (issued_slot)
    std::byte* pointer = nullptr;
    std::uint64_t size = 0;
    std::uint64_t cursor = 0;
    std::uint64_t charged = 0; //!< bytes counted against the owner's max_device_bytes
    region_options options;
    device_block memory; //!< set for regions the runtime allocated
  };

  void validate(const void* pointer, std::uint64_t bytes, const region_options& options,
                const std::string& who) const;
  region_handle publish(region_record record, const std::string& who);
  region_record& live(region_handle h, const std::string& who); //!< needs mutex_

  memory_pool& memory_;
  backend_impl& backend_;
  tenant_table& tenants_;
  std::uint32_t capacity_;
  const std::uint32_t issuer_; //!< region_handle::issuer of this table's handles
  device_block d_regions_;

  mutable std::mutex mutex_; //!< guards the records
  slot_allocator slots_;
  std::vector<region_record> records_;                          //!< by slot
  std::set<std::pair<std::uint32_t, std::uint32_t>> releasing_; //!< (slot, generation) in a grace period
};

} // namespace rk::detail
