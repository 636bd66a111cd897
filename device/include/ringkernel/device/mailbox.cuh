#pragma once
//! \file
//! Bounded lock-free multi-producer / single-consumer ring of fixed-size slots (Vyukov's bounded queue
//! with per-slot sequence numbers). It is the actor mailbox (device memory) and, with other scopes, the
//! host ingress and egress rings (pinned, mapped memory).
//!
//! Protocol (position `p` counts messages since creation; slot index is `p & (capacity-1)`):
//!   - `seq[slot] == p`            the slot is free for position p
//!   - `seq[slot] == p + 1`        position p is published
//!   - `seq[slot] == p + capacity` the consumer released position p; the slot is free for the next lap
//! Producers *claim* positions with a CAS on `tail` (only after seeing the slot free, so a full ring is
//! reported as queue_full and never overwritten), *write* header and payload, then *publish* with a
//! release store of `seq`. The consumer *acquires* `seq`, reads the slot in place, and *releases* it.
//! A claim never waits for a consumer: try_send is lock-free and returns immediately.
//!
//! Who touches what: `tail` is read-modified by producers only; `head` is written by the one consumer;
//! `seq` alternates between one producer (publish) and the consumer (release); slot bytes are written by
//! the claiming producer and read by the consumer. Per-producer FIFO holds because one producer's claims
//! take increasing positions and the consumer reads positions in order.

#include <ringkernel/device/detail/copy.cuh>
#include <ringkernel/device/envelope.cuh>
#include <ringkernel/device/status.cuh>

#include <cuda/std/cstring>

#include <cstring>

namespace rk {

//! Capacity and slot size of a ring. Validated on the host (see validate()) before anything is allocated.
struct ring_geometry {
  static constexpr std::uint32_t min_slot_bytes = 128;
  static constexpr std::uint32_t max_slot_bytes = 64 * 1024;
  static constexpr std::uint32_t slot_alignment = 64;
  static constexpr std::uint32_t min_capacity = 2;
  static constexpr std::uint32_t max_capacity = 1u << 24;

  std::uint32_t capacity = 256;   //!< slots; a power of two
  std::uint32_t slot_bytes = 256; //!< envelope (64 bytes) + inline payload; a multiple of 64

  RK_HOST_DEVICE constexpr std::uint32_t payload_capacity() const noexcept {
    return slot_bytes - envelope_bytes;
  }

  //! Null when the geometry is usable, else a sentence saying what is wrong and what to do.
  constexpr const char* validate() const noexcept {
    if (capacity < min_capacity || capacity > max_capacity)
      return "the ring's capacity must be between 2 and 16777216 slots";
    if ((capacity & (capacity - 1)) != 0)
      return "the ring's capacity must be a power of two (e.g. 256, 1024)";
    if (slot_bytes < min_slot_bytes)
      return "slot size must be at least 128 bytes (64-byte envelope + payload)";
    if (slot_bytes > max_slot_bytes) return "slot size must be at most 65536 bytes; use a zero-copy region";
    if (slot_bytes % slot_alignment != 0) return "slot size must be a multiple of 64 bytes";
    return nullptr;
  }

  // Layout of a ring: a header [tail line][head line][seq array] and the slots, either right after the
  // header in one allocation (make_ring_view(base, g)) or elsewhere (make_ring_view(header, slots, g)).
  static constexpr std::size_t cursor_bytes = detail::false_sharing_range;
  RK_HOST_DEVICE constexpr std::size_t seq_offset() const noexcept { return 2 * cursor_bytes; }
  RK_HOST_DEVICE constexpr std::size_t slots_offset() const noexcept {
    const std::size_t seq_end = seq_offset() + std::size_t{capacity} * sizeof(std::uint64_t);
    return (seq_end + cursor_bytes - 1) / cursor_bytes * cursor_bytes;
  }
  RK_HOST_DEVICE constexpr std::size_t header_bytes() const noexcept { return slots_offset(); }
  RK_HOST_DEVICE constexpr std::size_t slots_bytes() const noexcept {
    return std::size_t{capacity} * slot_bytes;
  }
  RK_HOST_DEVICE constexpr std::size_t total_bytes() const noexcept { return header_bytes() + slots_bytes(); }
};

//! Where a ring lives. Trivially copyable so it can be a kernel parameter; on CUDA the pointers are
//! device-visible addresses. `tail` may point elsewhere than the ring's own allocation (the host egress
//! ring keeps its claim counter in device memory so that device producers never CAS across PCIe).
struct ring_view {
  std::uint64_t* tail = nullptr; //!< writers: producers (CAS); next position to claim
  std::uint64_t* head = nullptr; //!< writer: the consumer; next position to read
  std::uint64_t* seq = nullptr;  //!< per-slot sequence numbers (see file comment)
  std::byte* slots = nullptr;    //!< capacity * slot_bytes
  std::uint32_t capacity = 0;
  std::uint32_t slot_bytes = 0;

  RK_HOST_DEVICE constexpr ring_geometry geometry() const noexcept { return {capacity, slot_bytes}; }
};

//! The view of a ring whose header (g.header_bytes(), see ring_geometry) is at `header` and whose slots
//! (g.slots_bytes(), aligned to slot_alignment) are at `slots` (any address space; pointers are computed,
//! not dereferenced).
RK_HOST_DEVICE inline ring_view make_ring_view(void* header, void* slots, ring_geometry g) noexcept {
  auto* bytes = static_cast<std::byte*>(header);
  ring_view v;
  v.tail = reinterpret_cast<std::uint64_t*>(bytes);
  v.head = reinterpret_cast<std::uint64_t*>(bytes + ring_geometry::cursor_bytes);
  v.seq = reinterpret_cast<std::uint64_t*>(bytes + g.seq_offset());
  v.slots = static_cast<std::byte*>(slots);
  v.capacity = g.capacity;
  v.slot_bytes = g.slot_bytes;
  return v;
}

//! The view of a ring laid out in one allocation at `base`: the header, then the slots.
RK_HOST_DEVICE inline ring_view make_ring_view(void* base, ring_geometry g) noexcept {
  return make_ring_view(base, static_cast<std::byte*>(base) + g.slots_offset(), g);
}

//! Writes the empty-ring image (cursors zero, seq[i] = i) into host-addressable memory laid out as
//! make_ring_view expects. For a device ring, build the image in a host buffer and copy it over.
inline void init_ring_image(void* host_base, ring_geometry g) noexcept {
  auto* bytes = static_cast<std::byte*>(host_base);
  std::memset(bytes, 0, g.slots_offset());
  auto* seq = reinterpret_cast<std::uint64_t*>(bytes + g.seq_offset());
  for (std::uint32_t i = 0; i < g.capacity; ++i) seq[i] = i;
}

//! Result of a claim: `ok` false means the ring was full for the requested count (nothing claimed).
struct ring_claim {
  std::uint64_t position = 0;
  bool ok = false;
};

//! Operations on a ring. `SlotScope` is the scope of the seq handshake (peer_scope when producers and
//! consumer share the ring's memory space, pcie_scope across host and device); `TailScope` is the scope
//! of the producers' claim counter.
template <cuda::thread_scope SlotScope, cuda::thread_scope TailScope>
class mpsc_ring {
public:
  RK_HOST_DEVICE explicit mpsc_ring(const ring_view& view) noexcept : v_(view) {}

  RK_HOST_DEVICE const ring_view& view() const noexcept { return v_; }
  RK_HOST_DEVICE std::uint32_t payload_capacity() const noexcept { return v_.slot_bytes - envelope_bytes; }

  //! Claims `count` consecutive positions (1 <= count <= capacity) or none. Lock-free; never waits for
  //! the consumer. Each claimed position must later be published. `order`: of a successful claim (a
  //! mailbox delivery claims sequentially consistently, for the stop protocol: deliver.cuh).
  RK_HOST_DEVICE ring_claim
  try_claim(std::uint32_t count = 1,
            cuda::std::memory_order order = cuda::std::memory_order_relaxed) const noexcept {
    cuda::atomic_ref<std::uint64_t, TailScope> tail(*v_.tail);
    std::uint64_t pos = tail.load(cuda::std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t last = pos + count - 1;
      // Acquire pairs with the consumer's release in pop(): its reads of the previous lap's bytes happen
      // before we overwrite them. The consumer releases in order, so `last` free implies the whole range is.
      const std::uint64_t s = seq_ref(last).load(cuda::std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(s - last);
      if (diff == 0) {
        if (tail.compare_exchange_weak(pos, pos + count, order, cuda::std::memory_order_relaxed))
          return {pos, true};
        // pos was reloaded by the failed CAS.
      } else if (diff < 0) {
        return {pos, false}; // the previous lap's message in that slot is not consumed yet
      } else {
        pos = tail.load(cuda::std::memory_order_relaxed); // someone else took it; try the new tail
      }
    }
  }

  RK_HOST_DEVICE std::byte* slot_at(std::uint64_t position) const noexcept {
    return v_.slots + (position & (v_.capacity - 1)) * std::size_t{v_.slot_bytes};
  }

  //! Makes a claimed, fully written position visible to the consumer.
  RK_HOST_DEVICE void publish(std::uint64_t position) const noexcept {
    // Release: header and payload stores become visible no later than the sequence number. On the host
    // also sequentially consistent, for the scheduler's skipped wake-ups (see detail::wake_publish_order).
    seq_ref(position).store(position + 1, detail::wake_publish_order);
  }

  //! Claim, write `header` + `header.payload_length` bytes of `payload`, call `before_publish()` (used to
  //! count a delivery before the consumer can see it), publish. Returns delivered, queue_full or
  //! too_large; on failure nothing was written.
  template <class BeforePublish>
  RK_HOST_DEVICE status try_send(const envelope& header, const void* payload,
                                 BeforePublish&& before_publish) const noexcept {
    if (header.payload_length > payload_capacity()) return status::too_large;
    const ring_claim c = try_claim(1);
    if (!c.ok) return status::queue_full;
    write_slot(slot_at(c.position), header, payload);
    before_publish();
    publish(c.position);
    return status::delivered;
  }
  RK_HOST_DEVICE status try_send(const envelope& header, const void* payload) const noexcept {
    return try_send(header, payload, [] {});
  }

  //! Consumer: the next published slot (envelope followed by payload), or null if none is ready.
  //! `order`: at least acquire, which pairs with publish(): the producer's slot writes are visible after it.
  RK_HOST_DEVICE const std::byte*
  try_peek(cuda::std::memory_order order = cuda::std::memory_order_acquire) const noexcept {
    const std::uint64_t h = head_ref().load(cuda::std::memory_order_relaxed);
    if (seq_ref(h).load(order) != h + 1) return nullptr;
    return slot_at(h);
  }

  //! What releasing one peeked slot takes, apart from the ring's view: a consumer that keeps it until it
  //! is done with the slot releases it without reading head or the view again (on the device each is a
  //! round trip to L2, and the view a handful of registers more).
  struct slot_release {
    std::uint64_t* seq = nullptr;  //!< the slot's sequence word
    std::uint64_t* head = nullptr; //!< the ring's head
    std::uint64_t position = 0;    //!< the slot's position (== head while it is peeked)
    std::uint32_t capacity = 0;
  };

  //! try_peek() that also fills `release` for release(), which then stands for pop().
  RK_HOST_DEVICE const std::byte*
  try_peek(slot_release& release,
           cuda::std::memory_order order = cuda::std::memory_order_acquire) const noexcept {
    const std::uint64_t h = head_ref().load(cuda::std::memory_order_relaxed);
    if (seq_ref(h).load(order) != h + 1) return nullptr;
    release = {&v_.seq[h & (v_.capacity - 1)], v_.head, h, v_.capacity};
    return slot_at(h);
  }

  //! Consumer: pop() of the slot that try_peek(release) returned.
  RK_HOST_DEVICE static void release(const slot_release& r) noexcept {
    cuda::atomic_ref<std::uint64_t, SlotScope>(*r.seq).store(r.position + r.capacity,
                                                             cuda::std::memory_order_release);
    cuda::atomic_ref<std::uint64_t, SlotScope>(*r.head).store(r.position + 1,
                                                              cuda::std::memory_order_relaxed);
  }

  //! Consumer: releases the slot returned by try_peek() for the producers' next lap.
  RK_HOST_DEVICE void pop() const noexcept {
    const std::uint64_t h = head_ref().load(cuda::std::memory_order_relaxed);
    seq_ref(h).store(h + v_.capacity, cuda::std::memory_order_release);
    head_ref().store(h + 1, cuda::std::memory_order_relaxed);
  }

  //! The same two steps for a consumer that keeps its own copy of head (its only writer), so that a head
  //! in mapped memory is only written, never read back across PCIe: the slot at `position` (== head) if
  //! it is published, else null; then releasing it, which advances head to position + 1.
  RK_HOST_DEVICE const std::byte* try_peek_at(std::uint64_t position) const noexcept {
    if (seq_ref(position).load(cuda::std::memory_order_acquire) != position + 1) return nullptr;
    return slot_at(position);
  }
  RK_HOST_DEVICE void pop_at(std::uint64_t position) const noexcept {
    release({&v_.seq[position & (v_.capacity - 1)], v_.head, position, v_.capacity});
  }

  //! Claimed-but-not-consumed positions (includes claims not yet published). A snapshot, for stats.
  RK_HOST_DEVICE std::uint64_t approximate_size() const noexcept {
    const std::uint64_t t =
        cuda::atomic_ref<std::uint64_t, TailScope>(*v_.tail).load(cuda::std::memory_order_relaxed);
    const std::uint64_t h = head_ref().load(cuda::std::memory_order_relaxed);
    return t >= h ? t - h : 0;
  }

  //! Copies the 64-byte header and the inline payload into a claimed slot (wide stores, see copy.cuh).
  RK_HOST_DEVICE static void write_slot(std::byte* slot, const envelope& header,
                                        const void* payload) noexcept {
    detail::store_words(slot, header);
    if (header.payload_length != 0)
      detail::copy_to_slot(slot + envelope_bytes, payload, header.payload_length);
  }

private:
  RK_HOST_DEVICE cuda::atomic_ref<std::uint64_t, SlotScope> seq_ref(std::uint64_t position) const noexcept {
    return cuda::atomic_ref<std::uint64_t, SlotScope>(v_.seq[position & (v_.capacity - 1)]);
  }
  RK_HOST_DEVICE cuda::atomic_ref<std::uint64_t, SlotScope> head_ref() const noexcept {
    return cuda::atomic_ref<std::uint64_t, SlotScope>(*v_.head);
  }

  ring_view v_;
};

//! An actor mailbox: producers (actors, the gateway) and the consumer (the owning worker) share memory.
using mailbox = mpsc_ring<peer_scope, peer_scope>;
//! Host -> device ingress: host threads claim and publish, the device gateway consumes.
using ingress_ring = mpsc_ring<pcie_scope, pcie_scope>;
//! Device -> host egress: device actors claim (tail in device memory) and publish, the host consumes.
using egress_ring = mpsc_ring<pcie_scope, peer_scope>;

} // namespace rk
