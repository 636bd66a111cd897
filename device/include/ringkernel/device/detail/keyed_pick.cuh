#pragma once
//! \file
//! Keyed group sends: which member a key goes to. Jump consistent hashing (Lamping & Veach, "A Fast,
//! Minimal Memory, Consistent Hash Algorithm", 2014) maps a key to one of `count` members in O(log count)
//! steps with an even spread. When that member cannot take messages (stopped, faulted, gone), the key is
//! rehashed with the attempt number and jumped again, so the keys of a stopped member spread evenly over
//! the others while every other key stays where it was; it returns to its member once that member is
//! live again. After `rehash_attempts` misses (most members down) the key goes to the eligible member of
//! highest rendezvous weight (Thaler & Ravishankar's highest random weight over every member: one pass),
//! so a live member is always found if there is one, those keys too spread evenly over the live members,
//! and a member that stops moves only its own keys. (A scan on from the last pick would give the
//! live member after a run of stopped ones all their keys: with 2 of 64 live, 80% and 20%.)

#include <ringkernel/device/config.cuh>

namespace rk::detail {

//! splitmix64 finaliser: spreads keys (and attempt numbers) over 64 bits.
RK_HOST_DEVICE constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

//! Jump consistent hash of `key` into [0, buckets); buckets >= 1.
RK_HOST_DEVICE inline std::uint32_t jump_hash(std::uint64_t key, std::uint32_t buckets) noexcept {
  std::int64_t b = -1;
  std::int64_t j = 0;
  while (j < static_cast<std::int64_t>(buckets)) {
    b = j;
    key = key * 2862933555777941757ull + 1;
    j = static_cast<std::int64_t>(static_cast<double>(b + 1) * (static_cast<double>(std::int64_t{1} << 31) /
                                                                static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<std::uint32_t>(b);
}

inline constexpr std::uint32_t rehash_attempts = 16;

//! The member index in [0, count) for `key` whose `eligible(index)` holds, or `count` if none does.
template <class Eligible>
RK_HOST_DEVICE std::uint32_t keyed_pick(std::uint64_t key, std::uint32_t count,
                                        Eligible&& eligible) noexcept {
  if (count == 0) return 0;
  for (std::uint32_t attempt = 0; attempt < rehash_attempts; ++attempt) {
    const std::uint32_t index = jump_hash(mix64(key + attempt * 0x9e3779b97f4a7c15ull), count);
    if (eligible(index)) return index;
  }
  const std::uint64_t mixed = mix64(key + rehash_attempts * 0x9e3779b97f4a7c15ull);
  std::uint32_t best = count;
  std::uint64_t best_weight = 0;
  for (std::uint32_t candidate = 0; candidate < count; ++candidate) {
    const std::uint64_t weight = mix64(mixed ^ (candidate * 0xd6e8feb86659fd93ull));
    if ((best == count || weight > best_weight) && eligible(candidate)) {
      best = candidate;
      best_weight = weight;
    }
  }
  return best;
}

} // namespace rk::detail
