// Group tables (CSR) built with Thrust on the host; see routing_tables.hpp.

#include "routing_tables.hpp"

#include <thrust/execution_policy.h>
#include <thrust/iterator/constant_iterator.h>
#include <thrust/reduce.h>
#include <thrust/scan.h>
#include <thrust/sort.h>

namespace rk::detail {

group_tables build_group_tables(const std::vector<std::uint32_t>& pair_groups,
                                const std::vector<address>& pair_members, std::uint32_t first_group,
                                std::uint32_t group_count, std::uint32_t member_offset) {
  group_tables t;
  std::vector<std::uint32_t> keys = pair_groups;
  t.members = pair_members;
  // Stable: members of one group keep the order the caller gave (the round-robin order).
  thrust::stable_sort_by_key(thrust::host, keys.begin(), keys.end(), t.members.begin());

  // Members per group that has any (unique keys + counts), then scattered into a dense count array.
  std::vector<std::uint32_t> unique_groups(keys.size()), counts(keys.size());
  const auto ends =
      thrust::reduce_by_key(thrust::host, keys.begin(), keys.end(), thrust::make_constant_iterator(1u),
                            unique_groups.begin(), counts.begin());
  const auto distinct = static_cast<std::size_t>(ends.first - unique_groups.begin());
  std::vector<std::uint32_t> dense(group_count, 0);
  for (std::size_t i = 0; i < distinct; ++i) dense[unique_groups[i] - first_group] = counts[i];

  std::vector<std::uint32_t> offsets(group_count);
  thrust::exclusive_scan(thrust::host, dense.begin(), dense.end(), offsets.begin(), member_offset);
  t.entries.resize(group_count);
  for (std::uint32_t g = 0; g < group_count; ++g) t.entries[g] = group_entry{offsets[g], dense[g]};
  return t;
}

address first_duplicate(std::vector<address> members) {
  thrust::sort(thrust::host, members.begin(), members.end());
  for (std::size_t i = 1; i < members.size(); ++i)
    if (members[i] == members[i - 1]) return members[i];
  return host_actor;
}

} // namespace rk::detail
