#pragma once
//! \file
//! The scheduler's run queue: a bounded lock-free multi-producer / multi-consumer FIFO of actor ids
//! (Vyukov's bounded MPMC queue, 32-bit positions compared by signed difference so they may wrap). One
//! per handler type, in device memory: senders push an actor that became ready, workers of that type pop.
//!
//! Cell protocol (position `p`, cell `p & (capacity-1)`): `sequence == p` the cell is free for a push at
//! p; `sequence == p + 1` it holds the actor pushed at p; the pop at p sets it to `p + capacity`, freeing
//! it for the next lap. A push claims `tail` by CAS only after seeing its cell free, and a pop claims
//! `head` only after seeing its cell full, so neither ever waits for the other.
//!
//! Capacity rule: the scheduler pushes an actor only while it owns the actor's scheduled word (see
//! schedule.cuh), so an actor is in a queue at most once; with capacity > the actors that can use the
//! queue, the queue never holds `capacity` actors. A push can still find its cell taken: a pop that
//! claimed the cell a lap earlier (and was then descheduled, on the CPU backend) has not freed it yet
//! while other workers went round the whole ring. That lasts until that pop's next two stores, so the
//! scheduler retries such a push (push_until_done) instead of treating it as full.

#include <ringkernel/device/config.cuh>

namespace rk::detail {

struct run_queue_cell {
  std::uint32_t sequence = 0; //!< see the file comment
  std::uint32_t actor = 0;    //!< written by the push that owns the cell, read by the pop that owns it
};

//! Where one run queue lives (device memory). `head` and `tail` sit on their own lines.
struct run_queue_view {
  std::uint32_t* head = nullptr; //!< next position to pop (consumers' CAS)
  std::uint32_t* tail = nullptr; //!< next position to push (producers' CAS)
  run_queue_cell* cells = nullptr;
  std::uint32_t capacity = 0; //!< a power of two
};

//! Bytes of one queue of `capacity` cells: [head line][tail line][cells].
RK_HOST_DEVICE constexpr std::size_t run_queue_bytes(std::uint32_t capacity) noexcept {
  return 2 * false_sharing_range + std::size_t{capacity} * sizeof(run_queue_cell);
}

//! The view of a queue laid out at `base` (pointers computed, not dereferenced). The empty image is
//! cursors 0 and cells[i].sequence = i (see init_run_queue_image).
RK_HOST_DEVICE inline run_queue_view make_run_queue_view(void* base, std::uint32_t capacity) noexcept {
  auto* bytes = static_cast<std::byte*>(base);
  run_queue_view v;
  v.head = reinterpret_cast<std::uint32_t*>(bytes);
  v.tail = reinterpret_cast<std::uint32_t*>(bytes + false_sharing_range);
  v.cells = reinterpret_cast<run_queue_cell*>(bytes + 2 * false_sharing_range);
  v.capacity = capacity;
  return v;
}

inline void init_run_queue_image(void* host_base, std::uint32_t capacity) noexcept {
  auto* bytes = static_cast<std::byte*>(host_base);
  for (std::size_t i = 0; i < 2 * false_sharing_range; ++i) bytes[i] = std::byte{0};
  auto* cells = reinterpret_cast<run_queue_cell*>(bytes + 2 * false_sharing_range);
  for (std::uint32_t i = 0; i < capacity; ++i) cells[i] = {i, 0};
}

//! Pushes `actor`. False when the cell at the tail is not free yet (see the capacity rule).
RK_HOST_DEVICE inline bool run_queue_push(const run_queue_view& q, std::uint32_t actor) noexcept {
  cuda::atomic_ref<std::uint32_t, peer_scope> tail(*q.tail);
  std::uint32_t pos = tail.load(cuda::std::memory_order_relaxed);
  for (;;) {
    run_queue_cell& cell = q.cells[pos & (q.capacity - 1)];
    // Acquire pairs with the pop that freed the cell: its read of `actor` happens before our write.
    const std::uint32_t seq =
        cuda::atomic_ref<std::uint32_t, peer_scope>(cell.sequence).load(cuda::std::memory_order_acquire);
    const auto diff = static_cast<std::int32_t>(seq - pos);
    if (diff == 0) {
      if (tail.compare_exchange_weak(pos, pos + 1, cuda::std::memory_order_relaxed,
                                     cuda::std::memory_order_relaxed)) {
        cuda::atomic_ref<std::uint32_t, peer_scope>(cell.actor).store(actor, cuda::std::memory_order_relaxed);
        // Release: the actor id, and everything the pusher did before (the scheduled-word handover),
        // is visible to the pop that acquires this sequence.
        cuda::atomic_ref<std::uint32_t, peer_scope>(cell.sequence)
            .store(pos + 1, cuda::std::memory_order_release);
        return true;
      }
    } else if (diff < 0) {
      return false;
    } else {
      pos = tail.load(cuda::std::memory_order_relaxed);
    }
  }
}

//! Pops the oldest actor into `actor`; false when the queue is empty.
RK_HOST_DEVICE inline bool run_queue_pop(const run_queue_view& q, std::uint32_t& actor) noexcept {
  cuda::atomic_ref<std::uint32_t, peer_scope> head(*q.head);
  std::uint32_t pos = head.load(cuda::std::memory_order_relaxed);
  for (;;) {
    run_queue_cell& cell = q.cells[pos & (q.capacity - 1)];
    const std::uint32_t seq =
        cuda::atomic_ref<std::uint32_t, peer_scope>(cell.sequence).load(cuda::std::memory_order_acquire);
    const auto diff = static_cast<std::int32_t>(seq - (pos + 1));
    if (diff == 0) {
      if (head.compare_exchange_weak(pos, pos + 1, cuda::std::memory_order_relaxed,
                                     cuda::std::memory_order_relaxed)) {
        actor = cuda::atomic_ref<std::uint32_t, peer_scope>(cell.actor).load(cuda::std::memory_order_relaxed);
        cuda::atomic_ref<std::uint32_t, peer_scope>(cell.sequence)
            .store(pos + q.capacity, cuda::std::memory_order_release);
        return true;
      }
    } else if (diff < 0) {
      return false;
    } else {
      pos = head.load(cuda::std::memory_order_relaxed);
    }
  }
}

//! A snapshot of how many actors wait in the queue (for stats).
RK_HOST_DEVICE inline std::uint32_t run_queue_depth(const run_queue_view& q) noexcept {
  const std::uint32_t t =
      cuda::atomic_ref<std::uint32_t, peer_scope>(*q.tail).load(cuda::std::memory_order_relaxed);
  const std::uint32_t h =
      cuda::atomic_ref<std::uint32_t, peer_scope>(*q.head).load(cuda::std::memory_order_relaxed);
  return static_cast<std::int32_t>(t - h) > 0 ? t - h : 0;
}

} // namespace rk::detail
