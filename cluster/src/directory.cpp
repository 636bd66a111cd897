// The cluster's address book on one rank (see directory.hpp).

#include "directory.hpp"

#include <ringkernel/host/detail/remote.hpp>

#include <cstring>

namespace rk::detail {
namespace {

// One published name: actor id (u32), tenant (u64), name length (u32), name bytes.
constexpr std::size_t record_header = 4 + 8 + 4;

template <class T>
void put(std::vector<std::byte>& out, const T& value) {
  const std::size_t at = out.size();
  out.resize(at + sizeof value);
  std::memcpy(out.data() + at, &value, sizeof value);
}

} // namespace

void cluster_directory::publish(const std::string& name, actor_index id, std::uint64_t tenant) {
  std::lock_guard lock(mutex_);
  published_.push_back({name, {{rank_, id}, tenant}});
}

std::vector<std::byte> cluster_directory::published_bytes() const {
  std::lock_guard lock(mutex_);
  std::vector<std::byte> out;
  for (const auto& [name, entry] : published_) {
    put(out, entry.where.actor);
    put(out, entry.tenant);
    put(out, static_cast<std::uint32_t>(name.size()));
    const std::size_t at = out.size();
    out.resize(at + name.size());
    std::memcpy(out.data() + at, name.data(), name.size());
  }
  return out;
}

void cluster_directory::add_rank_names(std::uint32_t rank, std::span<const std::byte> bytes) {
  std::lock_guard lock(mutex_);
  std::size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < record_header)
      throw error("rk::cluster: rank " + std::to_string(rank) + " sent a directory that does not parse");
    directory_entry e;
    e.where.rank = rank;
    std::uint32_t length = 0;
    std::memcpy(&e.where.actor, bytes.data() + at, 4);
    std::memcpy(&e.tenant, bytes.data() + at + 4, 8);
    std::memcpy(&length, bytes.data() + at + 12, 4);
    at += record_header;
    if (length > bytes.size() - at)
      throw error("rk::cluster: rank " + std::to_string(rank) + " sent a directory that does not parse");
    std::string name(reinterpret_cast<const char*>(bytes.data() + at), length);
    at += length;
    const auto [it, added] = by_name_.emplace(name, e);
    if (!added)
      throw error("rk::cluster::start(): the name '" + name + "' is spawned on rank " +
                  std::to_string(it->second.where.rank) + " and on rank " + std::to_string(rank) +
                  "; names given to cluster::spawn must be unique in the cluster");
    tenant_of_[e.where] = e.tenant;
  }
}

std::optional<global_address> cluster_directory::find(std::string_view name) const {
  std::lock_guard lock(mutex_);
  const auto it = by_name_.find(std::string(name));
  if (it == by_name_.end()) return std::nullopt;
  return it->second.where;
}

actor_index cluster_directory::address_of(global_address a) {
  if (a.rank >= size_)
    throw error("rk::cluster::address_of(): rank " + std::to_string(a.rank) +
                " is out of range (the cluster has " + std::to_string(size_) + " ranks)");
  if (a.rank == rank_) return a.actor;
  if (a.actor == host_actor) return entry_for(a, 0); // a host is always there; as tenant 0
  std::uint64_t tenant = 0;
  {
    std::lock_guard lock(mutex_);
    const auto it = tenant_of_.find(a);
    if (it == tenant_of_.end())
      throw error("rk::cluster::address_of(): actor " + std::to_string(a.actor) + " of rank " +
                  std::to_string(a.rank) +
                  " is not known here: spawn it with cluster::spawn (so it is in the directory), or let it "
                  "send to this rank first");
    tenant = it->second;
  }
  return entry_for(a, tenant);
}

actor_index cluster_directory::entry_for(global_address a, std::uint64_t tenant) {
  std::lock_guard lock(mutex_);
  const auto key = std::make_tuple(a.rank, a.actor, tenant);
  if (const auto it = entries_.find(key); it != entries_.end()) return it->second;
  std::string name = "rk:rank " + std::to_string(a.rank) + "/"; // reserved: no application name clashes
  name +=
      a.actor == host_actor ? "host as tenant " + std::to_string(tenant) : "actor " + std::to_string(a.actor);
  const actor_index id = remote::add_entry(rt_, name, tenant);
  if (gone_[a.rank]) remote::mark_unreachable(rt_, id);
  entries_.emplace(key, id);
  targets_.emplace(id, a);
  if (a.actor != host_actor) tenant_of_.emplace(a, tenant);
  return id;
}

std::optional<global_address> cluster_directory::target_of(actor_index entry) const {
  std::lock_guard lock(mutex_);
  const auto it = targets_.find(entry);
  if (it == targets_.end()) return std::nullopt;
  return it->second;
}

void cluster_directory::mark_rank_gone(std::uint32_t rank) {
  std::lock_guard lock(mutex_);
  if (rank >= size_ || gone_[rank]) return;
  gone_[rank] = true;
  for (const auto& [key, id] : entries_)
    if (std::get<0>(key) == rank) remote::mark_unreachable(rt_, id);
}

std::uint64_t cluster_directory::entries() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

} // namespace rk::detail
