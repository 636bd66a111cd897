#pragma once
// Host-side construction of the device routing tables. Built on the host with Thrust's host policy: the
// GPU is busy with persistent kernels, so device-side algorithms would queue behind them.

#include <ringkernel/device/detail/system.cuh>

#include <vector>

namespace rk::detail {

struct group_tables {
  std::vector<group_entry> entries; //!< one per group, in group id order
  std::vector<address> members;     //!< all groups' members back to back (CSR)
};

//! Builds the group table (CSR) for groups [first_group, first_group + group_count) from (group, member)
//! pairs given in any order. Within a group, members keep the order in which they were given. Member
//! offsets start at `member_offset` (where this batch lands in the device member array).
group_tables build_group_tables(const std::vector<std::uint32_t>& pair_groups,
                                const std::vector<address>& pair_members, std::uint32_t first_group,
                                std::uint32_t group_count, std::uint32_t member_offset);

//! The first address that occurs more than once in `members`, or host_actor when all are distinct.
address first_duplicate(std::vector<address> members);

} // namespace rk::detail
