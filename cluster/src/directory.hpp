#pragma once
// The cluster's address book on one rank: the names every rank published (exchanged once, at start) and
// the remote entries this rank created for actors of other ranks, both ways (global address -> local id
// for senders here, local id -> global address for the proxy).
//
// A remote entry is keyed by (rank, actor, tenant): an actor's tenant never changes, but another rank's
// host sends as whichever tenant it names, and replies must go back as that tenant.
// Thread-safe: the application's threads (address_of) and the proxy thread (arrivals, departures) share
// it under one mutex, which is held while a remote entry is added to the runtime (the runtime never
// calls back into the cluster).

#include <ringkernel/cluster/cluster.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace rk::detail {

struct directory_entry {
  global_address where;
  std::uint64_t tenant = 0;
};

class cluster_directory {
public:
  cluster_directory(runtime& rt, std::uint32_t rank, std::uint32_t size)
      : rt_(rt), rank_(rank), size_(size), gone_(size, false) {}

  //! This rank's names, serialised for the exchange; and reading every rank's back (throws rk::error on a
  //! name published by two ranks, or on bytes that do not parse).
  void publish(const std::string& name, actor_index id, std::uint64_t tenant);
  std::vector<std::byte> published_bytes() const;
  void add_rank_names(std::uint32_t rank, std::span<const std::byte> bytes);

  std::optional<global_address> find(std::string_view name) const;
  //! See cluster::address_of.
  actor_index address_of(global_address a);
  //! The remote entry for (a, tenant), created when new (throws rk::error from the runtime: unknown
  //! tenant, table full).
  actor_index entry_for(global_address a, std::uint64_t tenant);
  //! The actor a remote entry of this rank stands for, or nothing (not a remote entry of ours).
  std::optional<global_address> target_of(actor_index entry) const;
  std::uint64_t entries() const;
  //! Marks every remote entry for an actor of `rank` unreachable (remote::mark_unreachable), now and when
  //! made later: sends to them end as status::unreachable.
  void mark_rank_gone(std::uint32_t rank);

private:
  runtime& rt_;
  std::uint32_t rank_;
  std::uint32_t size_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, directory_entry>> published_;
  std::unordered_map<std::string, directory_entry> by_name_;
  std::map<global_address, std::uint64_t> tenant_of_; //!< directory actors, and senders seen
  std::map<std::tuple<std::uint32_t, actor_index, std::uint64_t>, actor_index> entries_;
  std::unordered_map<actor_index, global_address> targets_;
  std::vector<bool> gone_; //!< per rank: marked by mark_rank_gone
};

} // namespace rk::detail
