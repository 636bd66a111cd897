#pragma once
// Routing: groups (member lists sent to round-robin or by key), indirect routes and aliases, and the
// message type registry with its not-routable bitmap.
//
// Owns (device memory): group_entry[max_groups] (sys.groups), the member array (sys.group_members, CSR
// ranges from a range allocator), the round-robin cursors (sys.group_cursors) and the not-routable bitmap
// (sys.blocked_types). Host side: group records and names, the registry, and who leads to whom (aliases,
// routes, group memberships), so that nothing is removed while something still leads to it.
// Alias entries and next_hop words live in the actor table; routing writes them through it.
//
// Called by the coordinator (setup calls, serialised) and from any thread for lookups (group, members);
// one mutex guards the records and is not held while calling the actor table.

#include "actor_table.hpp"
#include "grace.hpp"

#include <ringkernel/host/message_types.hpp>

#include <map>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace rk::detail {

class routing {
public:
  routing(memory_pool& memory, backend_impl& backend, actor_table& actors, const runtime_options& options);
  void describe(system_view& sys) const;

  // --- groups ----------------------------------------------------------------------------------------
  //! Throws (`who: ...`) unless a group `name` of `count` members fits: name free, a slot and a member
  //! range available.
  void check_room(const std::string& name, std::size_t count, const std::string& who) const;
  //! Creates a group over existing actors (validated here); published when its address is returned.
  address create_group(const std::string& name, std::span<const actor_index> members);
  //! Unpublishes a group no route or alias leads to; its slot and member range come back after a grace
  //! period.
  void remove_group(address group, grace_periods& grace);
  address group(std::string_view name) const;
  std::vector<actor_index> members(address group) const;
  table_fill group_fill() const;
  table_fill member_fill() const;

  // --- routes and aliases -----------------------------------------------------------------------------
  void set_route(actor_index from, address next_hop);
  void clear_route(actor_index a);
  actor_index add_alias(const std::string& name, address target);
  void remove_alias(actor_index alias, grace_periods& grace);
  //! Throws (`who: ...`) naming what leads to `a` (a group, an alias, a route), if anything does.
  void check_unreferenced(address a, const std::string& who) const;
  //! Actor `a` is being forgotten: its own indirect route goes with it.
  void drop_route_from(actor_index a);

  // --- message types ------------------------------------------------------------------------------------
  const message_type_registry& types() const noexcept { return types_; }
  //! Adds a type; a non-routable one is refused K2K on the device at once.
  void register_type(const message_type_info& info);

private:
  struct group_record {
    bool live = false;
    rk::address id = 0; //!< the group's address (with its generation)
    std::string name;
    std::vector<actor_index> members;
    std::uint32_t first = 0; //!< its range in the member array
  };

  //! The record of a current group address (needs mutex_), or null.
  const group_record* find_group(address group) const;
  void check_target(address target, const std::string& who) const;
  std::string describe_referrer(address from) const;
  void write_blocked_word(std::uint32_t index);

  memory_pool& memory_;
  backend_impl& backend_;
  actor_table& actors_;
  std::uint32_t max_groups_;
  std::uint32_t max_members_;
  std::uint32_t max_message_types_;
  std::uint32_t group_slot_bits_;
  device_block d_groups_;
  device_block d_members_;
  device_block d_cursors_;
  device_block d_blocked_;

  mutable std::mutex mutex_; //!< guards everything below
  //! Generations stop one short of the id space's: the last slot's last generation would make the group
  //! address 0xFFFFFFFF, which is host_actor.
  slot_allocator group_slots_;
  range_allocator member_ranges_;
  std::vector<group_record> groups_; //!< by slot
  std::map<std::string, address, std::less<>> groups_by_name_;
  //! target -> (source -> what it is, e.g. "alias 'a'"): what leads to each address.
  std::map<address, std::map<address, std::string>> referrers_;
  std::vector<std::uint32_t> blocked_types_; //!< host shadow of the not-routable bitmap
  message_type_registry types_;
};

} // namespace rk::detail
