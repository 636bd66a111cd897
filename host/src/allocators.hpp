#pragma once
// Bookkeeping for the runtime's fixed-size tables and memory ranges. Host-only, not thread-safe: each
// owner guards its allocator with its own lock.
//
//  - range_allocator: first-fit ranges of [0, size) that coalesce when freed (the running arena's bytes,
//    the group member array, worker_status entries).
//  - slot_allocator: slots of a table with a generation each (actor ids, groups, tenants, regions,
//    engagements). Never-used slots go first, in order, so a runtime that gives nothing back numbers its
//    entries 0, 1, 2, ...; given-back slots are reused oldest first, with their generation advanced, so a
//    stale handle stays refused for as long as possible. A slot whose generations are spent is retired,
//    never reused: its next occupant's handle would equal its first one's, and a stale handle kept since
//    then would reach the new occupant.

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rk::detail {

class range_allocator {
public:
  explicit range_allocator(std::uint64_t size = 0) : size_(size) {
    if (size) free_.emplace(0, size);
  }

  //! The offset of `length` units aligned to `alignment` (a power of two), or nullopt when no free range
  //! holds them.
  std::optional<std::uint64_t> allocate(std::uint64_t length, std::uint64_t alignment = 1) {
    if (length == 0) length = 1;
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      const std::uint64_t begin = it->first, end = it->first + it->second;
      const std::uint64_t start = (begin + alignment - 1) & ~(alignment - 1);
      if (start < begin || start > end || end - start < length) continue;
      free_.erase(it);
      if (start > begin) free_.emplace(begin, start - begin);
      if (start + length < end) free_.emplace(start + length, end - start - length);
      used_ += length;
      return start;
    }
    return std::nullopt;
  }

  //! Gives back a range allocate() returned (with the same length).
  void free(std::uint64_t offset, std::uint64_t length) {
    if (length == 0) length = 1;
    used_ -= length;
    auto next = free_.lower_bound(offset);
    if (next != free_.begin()) {
      auto previous = std::prev(next);
      if (previous->first + previous->second == offset) {
        offset = previous->first;
        length += previous->second;
        free_.erase(previous);
      }
    }
    if (next != free_.end() && offset + length == next->first) {
      length += next->second;
      free_.erase(next);
    }
    free_.emplace(offset, length);
  }

  std::uint64_t size() const noexcept { return size_; }
  std::uint64_t used() const noexcept { return used_; }
  //! The longest range allocate(…, alignment) could give (a piece's start rounds up to the alignment).
  std::uint64_t largest_free(std::uint64_t alignment = 1) const noexcept {
    std::uint64_t largest = 0;
    for (const auto& [offset, length] : free_) {
      const std::uint64_t skipped = (alignment - offset % alignment) % alignment;
      if (length > skipped && length - skipped > largest) largest = length - skipped;
    }
    return largest;
  }

private:
  std::map<std::uint64_t, std::uint64_t> free_; //!< offset -> length, never adjacent
  std::uint64_t size_ = 0;
  std::uint64_t used_ = 0;
};

class slot_allocator {
public:
  //! `generation_limit`: generations a slot can take (0 .. limit - 1); it is retired after the last.
  slot_allocator(std::uint32_t capacity, std::uint32_t generation_limit)
      : capacity_(capacity), generation_limit_(generation_limit) {}

  struct slot_id {
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;
  };

  std::optional<slot_id> acquire() {
    if (fresh_ < capacity_) {
      if (generations_.size() <= fresh_) generations_.push_back(0);
      ++in_use_;
      return slot_id{fresh_, generations_[fresh_++]};
    }
    if (released_.empty()) return std::nullopt;
    const std::uint32_t slot = released_.front();
    released_.pop_front();
    ++in_use_;
    return slot_id{slot, generations_[slot]};
  }

  //! Undoes the latest acquire() of `slot` whose occupant was never published: the table is exactly as
  //! before it (same next slot, same generation). Undo several in the reverse order of acquisition.
  void unacquire(std::uint32_t slot) {
    --in_use_;
    if (slot + 1 == fresh_ && generations_[slot] == 0) {
      --fresh_;
    } else {
      released_.push_front(slot);
    }
  }

  //! The slot's occupant is gone for good: its next occupant gets the next generation, or, when the slot
  //! had its last one, the slot is retired.
  void release(std::uint32_t slot) {
    --in_use_;
    if (generations_[slot] + 1 >= generation_limit_) {
      ++retired_;
      return;
    }
    ++generations_[slot];
    released_.push_back(slot);
  }

  std::uint32_t generation(std::uint32_t slot) const noexcept {
    return slot < generations_.size() ? generations_[slot] : 0;
  }
  std::uint32_t in_use() const noexcept { return in_use_; }
  std::uint32_t capacity() const noexcept { return capacity_; }
  //! Slots acquire() can still hand out.
  std::uint32_t available() const noexcept { return capacity_ - in_use_ - retired_; }
  //! Slots that spent every generation (see release()).
  std::uint32_t retired() const noexcept { return retired_; }
  //! For a full table's error: "" while no slot is retired, else "; N of its slots are retired for good:
  //! each was reused L times, after which its <handles> would repeat and stale ones reach new <occupants>".
  std::string retired_text(const std::string& handles, const std::string& occupants) const {
    if (retired_ == 0) return {};
    return "; " + std::to_string(retired_) + " of its slots are retired for good: each was reused " +
           std::to_string(generation_limit_) + " times, after which its " + handles +
           " would repeat and stale ones reach new " + occupants;
  }
  //! Slots handed out at least once (the table's high-water mark).
  std::uint32_t touched() const noexcept { return fresh_; }

private:
  std::uint32_t capacity_;
  std::uint32_t generation_limit_;
  std::uint32_t fresh_ = 0; //!< slots [0, fresh_) were handed out at least once
  std::uint32_t in_use_ = 0;
  std::uint32_t retired_ = 0;
  std::deque<std::uint32_t> released_;
  std::vector<std::uint32_t> generations_; //!< current generation of slots [0, fresh_)
};

} // namespace rk::detail
