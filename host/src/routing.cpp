// Routing: groups, routes, aliases, message types (see routing.hpp).

#include "routing.hpp"

#include "routing_tables.hpp"
#include "support.hpp"

#include <ringkernel/host/error.hpp>

#include <algorithm>

namespace rk::detail {

routing::routing(memory_pool& memory, backend_impl& backend, actor_table& actors,
                 const runtime_options& options)
    : memory_(memory), backend_(backend), actors_(actors), max_groups_(options.max_groups),
      max_members_(options.max_group_members ? options.max_group_members : options.max_actors),
      max_message_types_(options.max_message_types),
      group_slot_bits_(slot_bits_for(std::max(1u, max_groups_))),
      group_slots_(max_groups_, generation_limit(group_slot_bits_) - 1), member_ranges_(max_members_),
      types_(global_message_types()) {
  const std::size_t groups = std::max(1u, max_groups_);
  d_groups_ = memory.allocate(sizeof(group_entry) * groups, "the group table (runtime_options::max_groups)");
  const std::vector<group_entry> unused(groups); // generation no_slot: no group
  backend.copy_to_device(d_groups_.get(), unused.data(), sizeof(group_entry) * groups);
  d_cursors_ = memory.allocate(sizeof(std::uint32_t) * groups, "group cursors (runtime_options::max_groups)");
  d_members_ = memory.allocate(sizeof(address) * std::max(1u, max_members_),
                               "group member lists (runtime_options::max_group_members)");
  blocked_types_.assign((max_message_types_ + 31) / 32, 0u);
  d_blocked_ = memory.allocate(sizeof(std::uint32_t) * std::max<std::size_t>(1, blocked_types_.size()),
                               "the not-routable message type bitmap");
  for (const message_type_info& t : types_.all()) {
    if (t.routable) continue;
    if (t.id >= max_message_types_)
      throw error(
          "message type '" + t.name + "' (id " + std::to_string(t.id) +
          ") is registered as not routable, which needs an id below runtime_options::max_message_types (" +
          std::to_string(max_message_types_) + ")");
    blocked_types_[t.id / 32] |= 1u << (t.id % 32);
  }
  if (!blocked_types_.empty())
    backend.copy_to_device(d_blocked_.get(), blocked_types_.data(),
                           sizeof(std::uint32_t) * blocked_types_.size());
}

void routing::describe(system_view& sys) const {
  sys.group_capacity = max_groups_;
  sys.group_slot_bits = group_slot_bits_;
  sys.groups = d_groups_.as<group_entry>();
  sys.group_cursors = d_cursors_.as<std::uint32_t>();
  sys.group_members = d_members_.as<address>();
  sys.blocked_type_limit = max_message_types_;
  sys.blocked_types = d_blocked_.as<std::uint32_t>();
}

// --- groups ---------------------------------------------------------------------------------------------

const routing::group_record* routing::find_group(address g) const {
  if (!is_group_address(g)) return nullptr;
  const std::uint32_t slot = id_slot(g, group_slot_bits_);
  if (slot >= groups_.size() || !groups_[slot].live || groups_[slot].id != g) return nullptr;
  return &groups_[slot];
}

void routing::check_room(const std::string& name, std::size_t count, const std::string& who) const {
  std::lock_guard lock(mutex_);
  if (groups_by_name_.find(name) != groups_by_name_.end())
    throw error(who + ": a group with this name already exists");
  if (group_slots_.available() == 0)
    throw out_of_room(who + ": the group table is full (max_groups = " + std::to_string(max_groups_) +
                      group_slots_.retired_text("addresses", "groups") + ")");
  if (const std::size_t largest = member_ranges_.largest_free(); count > largest) {
    const std::size_t free = member_ranges_.size() - member_ranges_.used();
    // A group's members are one run of the shared list; removed groups leave gaps between the others.
    throw out_of_room(who + ": no room for a list of " + std::to_string(count) +
                      " members in the groups' member lists (max_group_members = " +
                      std::to_string(max_members_) + ": " + std::to_string(free) + " free" +
                      (free > largest ? ", at most " + std::to_string(largest) +
                                            " of them in one piece, between the lists of other groups"
                                      : std::string()) +
                      "); raise runtime_options::max_group_members or remove groups");
  }
}

address routing::create_group(const std::string& name, std::span<const actor_index> members) {
  const std::string who = "create_group('" + name + "')";
  check_user_name(name, who, "group name");
  if (members.empty()) throw error(who + ": a group needs at least one member");
  for (actor_index m : members)
    if (!actors_.contains(m, actor_table::want::actor))
      throw error(who + ": member " + std::to_string(m) + " is not an actor of this runtime");
  const std::uint64_t tenant = actors_.tenant_of(members.front());
  for (actor_index m : members)
    if (actors_.tenant_of(m) != tenant)
      throw error(who + ": members '" + actors_.name_of(members.front()) + "' and '" + actors_.name_of(m) +
                  "' belong to different tenants; a group serves one tenant");
  const std::vector<actor_index> list(members.begin(), members.end());
  if (const address dup = first_duplicate(list); dup != host_actor)
    throw error(who + ": actor '" + actors_.name_of(dup) + "' is listed more than once");
  check_room(name, list.size(), who);
  const std::uint32_t tenant_slot = actors_.tenant_slot_of(list.front());

  std::lock_guard lock(mutex_);
  const slot_allocator::slot_id s = *group_slots_.acquire();
  const std::uint32_t first = static_cast<std::uint32_t>(*member_ranges_.allocate(list.size()));
  const address g = group_address(make_id(s.slot, s.generation, group_slot_bits_));
  try {
    const std::vector<std::uint32_t> keys(list.size(), s.slot);
    const group_tables t = build_group_tables(keys, list, s.slot, 1, first);
    // Members and range first, then the generation that makes the address valid.
    backend_.copy_to_device(d_members_.as<address>() + first, t.members.data(),
                            sizeof(address) * t.members.size());
    group_entry e = t.entries[0];
    e.generation = no_slot;
    e.tenant_slot = tenant_slot;
    backend_.copy_to_device(&d_groups_.as<group_entry>()[s.slot], &e, sizeof e);
    backend_.copy_to_device(&d_groups_.as<group_entry>()[s.slot].generation, &s.generation,
                            sizeof s.generation);
  } catch (...) {
    member_ranges_.free(first, list.size());
    group_slots_.unacquire(s.slot);
    throw;
  }
  if (groups_.size() <= s.slot) groups_.resize(s.slot + 1);
  groups_[s.slot] = group_record{true, g, name, list, first};
  groups_by_name_.emplace(name, g);
  for (actor_index m : list) referrers_[m][g] = "group '" + name + "'";
  return g;
}

void routing::remove_group(address g, grace_periods& grace) {
  const std::string who = "remove_group(" + std::to_string(g) + ")";
  {
    std::lock_guard lock(mutex_);
    if (find_group(g) == nullptr) // before the referrer check: an actor's id is no group at all
      throw error(who + ": no group with this address" +
                  ((g & group_address_bit) == 0 ? " (it is an actor's or alias's id, not a group's)" : ""));
  }
  check_unreferenced(g, who);
  std::uint32_t slot;
  {
    std::lock_guard lock(mutex_);
    const group_record* r = find_group(g);
    if (r == nullptr) throw error(who + ": no group with this address");
    slot = id_slot(g, group_slot_bits_);
    const std::uint32_t unpublished = no_slot;
    backend_.copy_to_device(&d_groups_.as<group_entry>()[slot].generation, &unpublished, sizeof unpublished);
    groups_by_name_.erase(r->name);
    for (actor_index m : r->members) {
      referrers_[m].erase(g);
      if (referrers_[m].empty()) referrers_.erase(m);
    }
    groups_[slot].live = false;
  }
  grace.defer([this, slot] {
    std::lock_guard lock(mutex_);
    member_ranges_.free(groups_[slot].first, groups_[slot].members.size());
    groups_[slot] = group_record{};
    group_slots_.release(slot);
  });
}

table_fill routing::group_fill() const {
  std::lock_guard lock(mutex_);
  return {group_slots_.in_use(), max_groups_};
}

table_fill routing::member_fill() const {
  std::lock_guard lock(mutex_);
  return {member_ranges_.used(), max_members_};
}

address routing::group(std::string_view name) const {
  std::lock_guard lock(mutex_);
  const auto it = groups_by_name_.find(name);
  if (it == groups_by_name_.end()) throw error("group('" + std::string(name) + "'): no group with this name");
  return it->second;
}

std::vector<actor_index> routing::members(address g) const {
  std::lock_guard lock(mutex_);
  const group_record* r = find_group(g);
  if (r == nullptr)
    throw error("members(): " + std::to_string(g) + " is not the address of a group of this runtime");
  return r->members;
}

// --- routes and aliases
// -------------------------------------------------------------------------------------

void routing::check_target(address target, const std::string& who) const {
  if (target == host_actor) throw error(who + ": a route cannot lead to the host");
  if (is_group_address(target)) {
    std::lock_guard lock(mutex_);
    if (find_group(target) == nullptr) throw error(who + ": no group with address " + std::to_string(target));
    return;
  }
  if (!actors_.contains(target, actor_table::want::any))
    throw error(who + ": no actor or alias with id " + std::to_string(target));
}

std::string routing::describe_referrer(address from) const {
  const bool alias = actors_.contains(from, actor_table::want::alias);
  return (alias ? "alias '" : "the route from '") + actors_.name_of(from) + "'";
}

void routing::set_route(actor_index from, address next_hop) {
  const std::string who = "set_route(" + std::to_string(from) + ", " + std::to_string(next_hop) + ")";
  actors_.check(from, who);
  check_target(next_hop, who);
  // An actor routed to itself is delivered to directly (like clear_route); an alias has no mailbox, so
  // leading to itself is a loop that would look like a remote entry and end in not_found.
  if (next_hop == from && actors_.contains(from, actor_table::want::alias))
    throw error(who + ": alias '" + actors_.name_of(from) +
                "' cannot lead to itself; give it another target");
  const address old = actors_.next_hop(from);
  const std::string what = describe_referrer(from);
  actors_.write_next_hop(from, next_hop);
  std::lock_guard lock(mutex_);
  if (old != from) {
    referrers_[old].erase(from);
    if (referrers_[old].empty()) referrers_.erase(old);
  }
  if (next_hop != from) referrers_[next_hop][from] = what;
}

void routing::clear_route(actor_index a) {
  actors_.check(a, "clear_route()");
  if (actors_.contains(a, actor_table::want::alias))
    throw error("clear_route(): '" + actors_.name_of(a) + "' is an alias; it has no own mailbox");
  drop_route_from(a);
}

void routing::drop_route_from(actor_index a) {
  const address old = actors_.next_hop(a);
  if (old == a) return;
  actors_.write_next_hop(a, a);
  std::lock_guard lock(mutex_);
  referrers_[old].erase(a);
  if (referrers_[old].empty()) referrers_.erase(old);
}

actor_index routing::add_alias(const std::string& name, address target) {
  const std::string who = "add_alias('" + name + "')";
  check_user_name(name, who, "alias name");
  if (actors_.name_taken(name)) throw error(who + ": an actor or alias with this name already exists");
  check_target(target, who); // before the room: a stale target is the mistake to name, not a full table
  if (actors_.free_slots() == 0) throw out_of_room(who + ": " + actors_.full_text());
  const actor_index id = actors_.add_alias(name, target);
  std::lock_guard lock(mutex_);
  referrers_[target][id] = "alias '" + name + "'";
  return id;
}

void routing::remove_alias(actor_index alias, grace_periods& grace) {
  const std::string who = "remove_alias(" + std::to_string(alias) + ")";
  actors_.check(alias, who, actor_table::want::alias);
  check_unreferenced(alias, who);
  const address target = actors_.next_hop(alias);
  actors_.retire(alias, grace);
  std::lock_guard lock(mutex_);
  referrers_[target].erase(alias);
  if (referrers_[target].empty()) referrers_.erase(target);
}

void routing::check_unreferenced(address a, const std::string& who) const {
  std::lock_guard lock(mutex_);
  const auto it = referrers_.find(a);
  if (it == referrers_.end()) return;
  std::string what;
  for (const auto& [from, description] : it->second) what += (what.empty() ? "" : ", ") + description;
  throw error(who + ": still reachable through " + what + "; remove " +
              (it->second.size() == 1 ? "it" : "them") + " first");
}

// --- message types ----------------------------------------------------------------------------------------

void routing::write_blocked_word(std::uint32_t index) {
  backend_.copy_to_device(d_blocked_.as<std::uint32_t>() + index, &blocked_types_[index],
                          sizeof(std::uint32_t));
}

void routing::register_type(const message_type_info& info) {
  if (!info.routable && info.id >= max_message_types_)
    throw error("register_message_type('" + info.name +
                "'): a non-routable type needs an id below runtime_options::max_message_types (" +
                std::to_string(max_message_types_) + "); got " + std::to_string(info.id));
  std::lock_guard lock(mutex_);
  // Refusals first: the device must not see a type blocked that the registry then refuses (a conflicting
  // registration would otherwise refuse K2K sends of a routable type for a moment). Only this class adds
  // to types_, under mutex_, so what would_add() saw still holds below.
  if (!types_.would_add(info)) return;
  const std::uint32_t index = info.id / 32;
  const std::uint32_t before = info.routable ? 0 : blocked_types_[index];
  // Blocked on the device before the registry shows the type, so no send sees it registered and routable.
  if (!info.routable) {
    blocked_types_[index] |= 1u << (info.id % 32);
    write_blocked_word(index);
  }
  try {
    types_.add(info);
  } catch (...) { // allocation
    if (!info.routable && blocked_types_[index] != before) {
      blocked_types_[index] = before;
      write_blocked_word(index);
    }
    throw;
  }
}

} // namespace rk::detail
