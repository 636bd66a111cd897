#pragma once
//! \file
//! The shared state of one runtime as seen from the device (or from CPU-backend worker threads).
//! Every field says who writes it and who reads it. `system_view` is trivially copyable and is passed to
//! kernels by value; the structures it points to live in device memory unless marked "mapped"
//! (pinned host memory mapped into the device address space).

#include <ringkernel/device/audit.cuh>
#include <ringkernel/device/detail/parking.cuh>
#include <ringkernel/device/detail/relay_refusals.cuh>
#include <ringkernel/device/detail/run_queue.cuh>
#include <ringkernel/device/mailbox.cuh>
#include <ringkernel/device/region.cuh>
#include <ringkernel/device/trace.cuh>

#include <cuda/std/bit>

#include <cstddef>

namespace rk::detail {

// --- actor lifecycle ---------------------------------------------------------------------------------
//
// Two words per routing-table entry, each with exactly one writer, so host requests and device events
// never overwrite each other. Both carry an epoch (incremented by the host on respawn): a device state
// from an older epoch no longer applies.

//! What the host asks for (route_entry::host_word & 0xff).
enum class host_state : std::uint8_t {
  empty = 0,       //!< no actor and no route at this address
  live = 1,        //!< serving; eligible as a group member
  paused = 2,      //!< messages queue up but are not handled; skipped by groups
  stopping = 3,    //!< no new messages; the worker handles what is queued, then reports stopped
  alias = 4,       //!< an address with only an indirect route (no mailbox)
  retired = 5,     //!< being forgotten: the worker lets go of the actor for good and reports retired
  unreachable = 6, //!< a remote entry whose rank died or stopped answering (rk::cluster): sends to it
                   //!< end as status::unreachable
};

//! What the owning worker reports (route_entry::device_word & 0xff), valid for the epoch in the word.
enum class device_state : std::uint8_t {
  running = 0,
  stopped = 1, //!< drained after a stop request; queued strays are discarded and counted
  faulted = 2, //!< ctx.fault(), or (CPU backend) a handler that threw or trapped; later messages are
               //!< discarded and counted
  paused = 3,  //!< acknowledges host_state::paused
  retired = 4, //!< acknowledges host_state::retired: the worker never touches the actor again
};

RK_HOST_DEVICE constexpr std::uint32_t make_state_word(std::uint32_t epoch, std::uint8_t state) noexcept {
  return (epoch << 8) | state;
}
RK_HOST_DEVICE constexpr std::uint32_t epoch_of(std::uint32_t word) noexcept {
  return word >> 8;
}
RK_HOST_DEVICE constexpr std::uint8_t state_in(std::uint32_t word) noexcept {
  return static_cast<std::uint8_t>(word & 0xffu);
}

// --- ids with generations ----------------------------------------------------------------------------
//
// An actor id (and an alias id) is `generation << slot_bits | slot`: the slot indexes the routing table,
// the generation counts how often the slot was given back (runtime::forget, remove_alias). A runtime
// that never gives slots back hands out 0, 1, 2, ...; an id whose generation is not the slot's current
// one names an actor that is gone, and is refused on the host (rk::error) and on the device (not_found).
// Group addresses carry a generation the same way below group_address_bit. `slot_bits` is the smallest
// width that holds the table's capacity, so generations get the remaining bits below bit 31.

RK_HOST_DEVICE constexpr std::uint32_t slot_bits_for(std::uint32_t capacity) noexcept {
  std::uint32_t bits = 0;
  while (bits < 31 && (std::uint32_t{1} << bits) < capacity) ++bits;
  return bits;
}
RK_HOST_DEVICE constexpr std::uint32_t id_slot(address a, std::uint32_t slot_bits) noexcept {
  return (a & ~group_address_bit) & ((std::uint32_t{1} << slot_bits) - 1u);
}
RK_HOST_DEVICE constexpr std::uint32_t id_generation(address a, std::uint32_t slot_bits) noexcept {
  return (a & ~group_address_bit) >> slot_bits;
}
RK_HOST_DEVICE constexpr address make_id(std::uint32_t slot, std::uint32_t generation,
                                         std::uint32_t slot_bits) noexcept {
  return (generation << slot_bits) | slot;
}
//! Generations a slot can take before its ids repeat (they then wrap to 0).
RK_HOST_DEVICE constexpr std::uint32_t generation_limit(std::uint32_t slot_bits) noexcept {
  return std::uint32_t{1} << (31 - slot_bits);
}

// --- the routing table -------------------------------------------------------------------------------

//! One entry per address below `route_capacity` (device memory): O(1) from destination to mailbox.
//! Three sorts: an actor (a mailbox; next_hop == its own address), an alias or indirect route (no mailbox;
//! next_hop another address) and a remote entry (no mailbox; next_hop == its own address), which stands
//! for an actor on another rank of a cluster: deliveries to it go to sys.outbound, decided here against
//! its `tenant` (the remote actor's, from the cluster directory) and its `geometry` (the outbound ring's).
//! Fields other than the two state words are written by the host while the entry is `empty` (or while
//! its worker is parked) and read by every sender and by the owning worker.
struct route_entry {
  std::byte* mailbox = nullptr; //!< `lanes` ring headers (cursors, sequence numbers) back to back (null
                                //!< for an alias or a remote entry)
  std::byte* slots = nullptr;   //!< `lanes` rings' slots back to back (separate: see lane_view)
  ring_geometry geometry{};     //!< of each lane
  std::uint32_t lanes = 0;      //!< 1 (FIFO, priority ignored) or priority_levels
  std::uint32_t kind = 0;       //!< index of the actor's handler type
  std::uint64_t tenant = 0;
  address next_hop = 0;          //!< == this entry's own address: direct; otherwise an indirect route
  std::uint32_t host_word = 0;   //!< writer: host. make_state_word(epoch, host_state)
  std::uint32_t device_word = 0; //!< writer: the owning worker. make_state_word(epoch, device_state)
  std::uint32_t tenant_slot = 0; //!< the actor's tenant in the tenant table
  std::uint32_t engagement_slot = 0xFFFF'FFFFu; //!< the actor's audit tag in the engagement table (none: ~0)
  std::uint32_t generation = 0; //!< host: the id generation of the slot's occupant (see id_generation)
  //! 1: the actor has a worker of its own (actor_options::dedicated_worker) and is never put in a run
  //! queue; 0: scheduled workers of its handler type take turns serving it (see schedule.cuh).
  std::uint32_t dedicated = 0;
  void* state = nullptr; //!< the actor's handler state (device memory), for scheduled workers
};

//! Bytes one lane of a mailbox takes, header and slots.
RK_HOST_DEVICE constexpr std::size_t lane_stride(const ring_geometry& g) noexcept {
  return (g.total_bytes() + false_sharing_range - 1) / false_sharing_range * false_sharing_range;
}
//! What a spawn charges to its tenant's max_device_bytes per actor: every lane of its mailbox and its
//! handler state.
RK_HOST_DEVICE constexpr std::uint64_t charged_device_bytes(const ring_geometry& g, std::uint32_t lanes,
                                                            std::uint64_t state_bytes) noexcept {
  return std::uint64_t{lane_stride(g)} * lanes + state_bytes;
}
//! A mailbox lane: its header among the actor's headers (each a multiple of false_sharing_range, so every
//! lane's cursors keep their own lines), its slots among the actor's slots. Headers and slots live apart
//! so that the slots of actors that received nothing yet cost no memory on the CPU backend (their pages
//! are mapped on first use, see backend_impl::allocate_device).
RK_HOST_DEVICE inline ring_view lane_view(const route_entry& e, std::uint32_t lane) noexcept {
  return make_ring_view(e.mailbox + lane * e.geometry.header_bytes(),
                        e.slots + lane * e.geometry.slots_bytes(), e.geometry);
}

inline constexpr std::uint32_t no_slot = 0xFFFF'FFFFu;

//! One per group slot (device memory). The host writes `first` and `count` while the slot is free, then
//! `generation` (release), and hands out the address; removing the group sets `generation` to no_slot
//! first. Members are actor ids in `group_members[first, first + count)`.
struct group_entry {
  std::uint32_t first = 0;
  std::uint32_t count = 0;
  std::uint32_t generation = no_slot; //!< host: generation of the group's address; no_slot: free
  //! host: the members' tenant's slot in the tenant table (a group serves one tenant). A send stamped with
  //! another slot does not move the round-robin cursor: the member it reaches refuses it (tenant_mismatch),
  //! and a refused foreign send must not steer which member the group's own tenant reaches next.
  std::uint32_t tenant_slot = no_slot;
};

// --- tenancy and quotas -------------------------------------------------------------------------------

//! One per registered tenant (device memory). Host fields are written before the tenant's slot is handed
//! out (and the rate fields again on a quota change); device fields are counters and the token bucket.
struct alignas(64) tenant_entry {
  std::uint64_t id = 0;              //!< host
  std::uint64_t rate_per_second = 0; //!< host; 0: no rate limit
  std::uint64_t burst = 0;           //!< host; tokens the bucket holds when full
  std::uint64_t bucket = 0;          //!< device CAS: when the bucket is full again, see take_token_at_time
  std::uint64_t host_sent = 0; //!< gateway (single writer): host sends for the tenant delivered after every
                               //!< check; actors count their own in actor_counters::passed
  std::uint64_t rate_rejections = 0;   //!< device: sends refused for the rate
  std::uint64_t budget_rejections = 0; //!< device: sends refused for an exhausted engagement budget
  //! host: when set_quota() last changed rate or burst, in the bucket's clock (physical_clock_ns; 0: never).
  //! A bucket that owes more than the new quota tolerates is capped as of then, not at the next send.
  std::uint64_t quota_changed_ns = 0;
};

//! One per (tenant, org, engagement) audit tag in use (device memory).
struct alignas(64) engagement_entry {
  std::uint64_t tenant = 0;        //!< host
  std::uint64_t org_id = 0;        //!< host
  std::uint64_t engagement_id = 0; //!< host
  std::uint64_t budget_ns = 0;     //!< host; 0: no budget
  std::uint64_t used_ns = 0;       //!< device: handler time of the engagement's actors
  std::uint64_t rejections = 0;    //!< device: sends refused because the budget was spent
};

inline constexpr std::uint32_t max_region_sharing = 8;

//! One per region slot (device memory). The host fills a slot and then sets `live`; it clears `live`
//! and bumps `generation` to unregister. Descriptors name (slot, generation).
struct region_entry {
  std::byte* base = nullptr;                          //!< host
  std::uint64_t size = 0;                             //!< host
  std::uint64_t append_cursor = 0;                    //!< host (region appends); bytes below it are final
  std::uint64_t owner_tenant = 0;                     //!< host
  std::uint64_t shared_with[max_region_sharing] = {}; //!< host: tenants allowed besides the owner
  std::uint32_t shared_count = 0;                     //!< host
  std::uint32_t generation = 0;                       //!< host
  std::uint32_t policy = 0;                           //!< host: rk::region_policy
  std::uint32_t live = 0;                             //!< host
};

// --- counters ------------------------------------------------------------------------------------------

//! Per-actor counters (device memory). Two 128-byte lines, split by writer: the first is written only by
//! the actor's own threads (its worker, or the gateway retrying its sends), on every message it handles or
//! sends; the second by everyone who delivers to it (`received`) and, rarely, by its own refused sends.
//! Keeping `received` off the first line means a sender on another thread does not take the line the
//! receiver's worker writes for every message (measured: the line moved between the CPU backend's pool
//! threads twice per message in random traffic).
struct alignas(false_sharing_range) actor_counters {
  // --- line 1: the actor's own threads ---
  std::uint64_t delivered_sends = 0; //!< sends this actor made that were delivered (see sent_counter)
  std::uint64_t reservations = 0;    //!< slot-claim atomics this actor's sends performed
  std::uint64_t passed = 0;     //!< messages this actor sent that were delivered after every device check
  std::uint64_t handled = 0;    //!< writer: the owning worker, after the handler returned
  std::uint64_t discarded = 0;  //!< writer: the owning worker; arrived after a stop or fault, not handled
  std::uint64_t handler_ns = 0; //!< writer: the owning worker; time spent in the handler
  std::uint64_t deferred = 0;   //!< writer: the owning worker; handler calls that ended in ctx.defer()
  //! writer: the owning worker (CPU backend); messages whose handler call ended in a fault (an exception
  //! or ctx.trap): taken from the mailbox, not handled. received = handled + discarded + interrupted +
  //! queued.
  std::uint64_t interrupted = 0;
  //! writer: whoever claimed fault_claimed, i.e. the actor's handler (ctx.fault) or worker (a contained
  //! fault). Zeroed with fault_claimed when the actor is respawned or its slot reused.
  std::uint32_t fault_code = 0;
  std::uint32_t fault_claimed = 0; //!< 0, then 1 from the first fault of the epoch (fault_actor)
  //! writer: the owning worker; handler calls by running time (handler_time_bucket). The counters stay
  //! two 128-byte lines per actor. Keep it so: a 384-byte stride costs the scheduled actor kernel 8
  //! registers (PTX audit), 512 bytes cost memory per actor.
  std::uint64_t handler_time[handler_time_bucket_count] = {};
  // --- line 2: senders to this actor; this actor's refused sends ---
  std::uint64_t received = 0; //!< writers: any sender; counted before the message is published
  //! Sends this actor made that were refused, by verdict: index `status - 1` (see sent_counter).
  std::uint64_t refused_sends[status_count - 1] = {};
};
static_assert(static_cast<std::uint32_t>(status::delivered) == 0, "sent_counter maps delivered to line 1");
static_assert(offsetof(actor_counters, received) == false_sharing_range,
              "received must start the second line: senders write it, the actor's worker must not share it");
static_assert(sizeof(actor_counters) == 2 * false_sharing_range, "actor_counters grew past two lines");

//! The counter of this actor's sends that ended with `verdict` (any status).
RK_HOST_DEVICE inline std::uint64_t& sent_counter(actor_counters& c, status verdict) noexcept {
  const auto k = static_cast<std::uint32_t>(verdict);
  return k == 0 ? c.delivered_sends : c.refused_sends[k - 1];
}
RK_HOST_DEVICE inline std::uint64_t sent_count(const actor_counters& c, std::size_t k) noexcept {
  return k == 0 ? c.delivered_sends : c.refused_sends[k - 1];
}

//! The handler-time bucket of a call that ran `ns` nanoseconds (see handler_time_bucket_bound_ns).
RK_HOST_DEVICE inline std::uint32_t handler_time_bucket(std::uint64_t ns) noexcept {
  if (ns <= handler_time_bucket_bound_ns(0)) return 0;
  // Bucket k ≥ 1 holds (1024·4^(k-1), 1024·4^k]: k = ceil(bit width of (ns - 1) / 1024, halved).
  const auto width = static_cast<std::uint32_t>(64 - cuda::std::countl_zero((ns - 1) >> 10));
  const std::uint32_t k = (width + 1) / 2;
  return k < handler_time_bucket_count - 1 ? k : static_cast<std::uint32_t>(handler_time_bucket_count - 1);
}

//! Worker-private per-actor state (device memory). Writer and only reader: the owning worker's leader.
struct actor_private {
  hlc_clock clock{};
  //! Consecutive picks each non-empty lane was passed over (at most 255). 32-bit words, not bytes: the PTX
  //! audit counts byte stores as a sign of byte-wise copies, and the four words cost 12 bytes per actor.
  std::uint32_t starved[priority_levels] = {};
  //! Set by ctx.defer() (any thread of the worker, relaxed: the worker's barrier orders it), read and
  //! cleared by the leader after the call: the message stays in the mailbox for the actor's next turn.
  std::uint32_t defer_requested = 0;
  //! Handler calls since this actor's last traced one (runtime_options::trace.sample_every).
  std::uint32_t trace_count = 0;
};

//! Counters of the gateway (device memory; single writer: the gateway).
struct alignas(false_sharing_range) gateway_counters {
  std::uint64_t verdicts[status_count] = {}; //!< final outcome of each host message (delivered or refused)
  std::uint64_t processed = 0;               //!< host messages settled: delivered or refused
  std::uint64_t parked = 0;                  //!< host messages waiting in the parking area now (a gauge)
  std::uint64_t parked_total = 0;            //!< host messages that ever waited there
};

//! Host <-> device control (mapped).
struct alignas(false_sharing_range) control_block {
  std::uint32_t terminate = 0; //!< writer: host; readers: workers and gateway. Non-zero: exit the loop
  std::uint32_t pause = 0;     //!< writer: host; readers: workers. Non-zero: take no new messages
  //! writer: host; readers: workers and gateway, between messages (see note_quiescent). The host bumps
  //! it after unpublishing table entries or memory, and reuses them once every worker reported it.
  std::uint32_t grace_epoch = 0;
  alignas(false_sharing_range) std::uint32_t trap_actor = 0; //!< writer: a trapping worker; actor id + 1
  std::uint32_t trap_code = 0;                               //!< writer: the same worker
};

//! What workers and the gateway poll between messages (device memory; host writes through the backend's
//! copies, after writing the same value into the mapped control_block, which stays the host's record). In
//! device memory so that an idle poll never crosses PCIe: thousands of idle workers reading mapped words
//! would flood the bus and slow the host's own traffic.
struct alignas(false_sharing_range) device_control {
  std::uint32_t terminate = 0;   //!< see control_block::terminate
  std::uint32_t pause = 0;       //!< see control_block::pause
  std::uint32_t grace_epoch = 0; //!< see control_block::grace_epoch
};

//! Device pollers write their heartbeat (a PCIe write) once per this many idle polls: once the idle
//! backoff reaches runtime_options::device_idle_sleep_max_ns (1 µs by default) per poll, that is one write
//! every ~16 µs per idle worker instead of one per poll. It is below control_poll_interval, so a busy
//! worker still beats each time it looks at the control words.
inline constexpr std::uint32_t heartbeat_poll_interval = 16;

//! One per worker (mapped). Writer: that worker's leader thread; reader: the host.
struct alignas(64) worker_status {
  //! Advances while the worker loops, and whenever a handler call returns (CPU: every call; CUDA: every
  //! 64 polls and after any call longer than a millisecond), so the host watchdog sees a handler call
  //! that does not return as a busy worker whose heartbeat stands still.
  std::uint64_t heartbeat = 0;
  std::uint32_t checked_in = 0; //!< 1 once the worker runs: proves it is resident
  std::uint32_t busy_actor = 0; //!< actor id + 1 while the worker is in a burst of handler calls, else 0
  std::uint32_t paused = 0;    //!< 1 while the worker honours the global pause (acknowledgement for the host)
  std::uint32_t quiescent = 0; //!< the last control_block::grace_epoch seen between messages (release)
  std::uint32_t exited = 0;    //!< 1 as the worker's last write: it touches nothing of the runtime again
  std::uint32_t busy_type = 0; //!< the message type of the handler call in progress (CUDA: when it changes)
};

//! Verdict of the gateway for one host message (mapped). A host thread in send_wait holds the slot
//! until it read the verdict (or, after giving up, saw it written). Writer: gateway; reader: that thread.
struct alignas(16) ingress_receipt {
  std::uint64_t position_plus_one = 0; //!< ingress position + 1 this verdict belongs to (0: none yet)
  std::uint32_t verdict = 0;           //!< rk::status
  std::uint32_t reserved_ = 0;
};

//! The scheduler's shared state (see schedule.cuh). All device memory except `wakes`.
//! An event count for threads that sleep while idle (CPU backend; see host_park.cuh): how many are about
//! to sleep or asleep, and the word they sleep on. Each on its own line.
struct park_lot {
  alignas(64) std::uint32_t parked = 0;
  alignas(64) std::uint32_t signal = 0;
  //! Pool threads asleep with only the backstop timer, and whether an idle one watches the run-next
  //! slots (a timed sleep): a fill while nobody watches wakes one of the former (schedule.cuh).
  alignas(64) std::uint32_t untimed = 0;
  std::uint32_t watching = 0;
};

struct scheduler_view {
  run_queue_view* queues = nullptr; //!< one run queue per handler type (kind); null before start()
  std::uint32_t kinds = 0;
  std::uint32_t turn_messages = 1; //!< messages a worker handles for an actor before it requeues it
  //! Nanoseconds after the turn's first call began from which a call that ends ends the turn too.
  std::uint64_t turn_ns = 1'000'000;
  //! Per routing-table slot: 1 while the actor is in a run queue or being served, else 0 (see
  //! schedule.cuh). Writers: senders and workers (atomics); the host resets it while the slot is empty.
  std::uint32_t* scheduled = nullptr;
  //! Host -> gateway requests to look at an actor whose lifecycle word the host changed (mapped; host
  //! producers, gateway consumer): the gateway wakes it as if a message had arrived.
  ring_view wakes;
  //! CPU backend only (null on CUDA): where idle pool threads park; a push that makes an actor ready
  //! wakes one of them (host_park.cuh).
  park_lot* pool_lot = nullptr;
};

struct system_view {
  scheduler_view sched;
  route_entry* routes = nullptr; //!< the routing table, indexed by id_slot(id)
  actor_counters* counters = nullptr;
  actor_private* privates = nullptr;
  std::uint32_t route_capacity = 0;
  std::uint32_t actor_slot_bits = 0; //!< see id_slot
  std::uint32_t group_slot_bits = 0;
  std::uint32_t group_capacity = 0;
  group_entry* groups = nullptr;
  address* group_members = nullptr;
  std::uint32_t* group_cursors = nullptr; //!< writers: senders (round-robin, device-scope fetch_add)
  std::uint32_t* blocked_types = nullptr; //!< bit per message type id: set = not routable K2K (host writes)
  std::uint32_t blocked_type_limit = 0;   //!< type ids at or above this are routable
  std::uint32_t max_hops = 8;
  std::uint32_t starvation_limit = 16;
  tenant_entry* tenants = nullptr;
  std::uint32_t tenant_capacity = 0;
  std::uint32_t engagement_capacity = 0;
  engagement_entry* engagements = nullptr;
  region_entry* regions = nullptr;
  std::uint32_t region_capacity = 0;
  audit_channel audit;                        //!< where refusals and faults are reported (see audit.cuh)
  trace_channel trace;                        //!< where sampled handler calls are recorded (see trace.cuh)
  std::uint32_t device_idle_sleep_max_ns = 0; //!< backoff cap for device pollers (0: default)
  control_block* control = nullptr;           //!< mapped: the host's record, and trap reports
  device_control* live = nullptr;             //!< device memory: the control words workers poll
  worker_status* workers = nullptr;           //!< mapped
  ring_view ingress;                          //!< mapped (host producers, gateway consumer)
  ingress_receipt* receipts = nullptr;        //!< mapped; slots handed out by host send_wait callers
  std::uint32_t receipt_capacity = 0;
  gateway_counters* gateway = nullptr;
  parking_view parking;                  //!< device memory, gateway only (see parking.cuh)
  std::uint64_t* host_settled = nullptr; //!< mapped; writer: gateway. == gateway->processed, for admission
  //! Per parking queue (destination address), host messages settled: the gateway's count (device
  //! memory) and its copy for the host's per-destination admission (mapped). Writer: gateway.
  std::uint64_t* settled_by_queue = nullptr;
  std::uint64_t* host_settled_by_queue = nullptr;
  ring_view egress; //!< slots mapped; tail in device memory (device producers, host consumer)
  //! Messages to actors on other ranks (rk::cluster): laid out like egress, consumed by the rank's proxy.
  //! No slots without a cluster; then no remote entry exists either.
  ring_view outbound;
  //! Relayed messages this rank's gateway refused, for the proxy to notice their senders (no records
  //! without a cluster).
  refusal_channel refusals;
  //! CPU backend only (null on CUDA): where host threads blocked in receive() park; a publish to the
  //! egress ring wakes one of them (host_park.cuh).
  park_lot* receive_lot = nullptr;
};

// --- small accessors: every shared access says its scope and order here, once ---

RK_HOST_DEVICE inline bool terminate_requested(const system_view& s) noexcept {
  return cuda::atomic_ref<std::uint32_t, peer_scope>(s.live->terminate)
             .load(cuda::std::memory_order_acquire) != 0;
}
//! Acquire: what the host did before it lifted a pause (a snapshot's copy of a state) happens before
//! the handler calls that follow.
RK_HOST_DEVICE inline bool pause_requested(const system_view& s) noexcept {
  return cuda::atomic_ref<std::uint32_t, peer_scope>(s.live->pause).load(cuda::std::memory_order_acquire) !=
         0;
}
//! Acquire: the host unpublished what the epoch protects (table writes, through the same copy stream on
//! CUDA) before it wrote the epoch.
RK_HOST_DEVICE inline std::uint32_t grace_epoch_of(const system_view& s) noexcept {
  return cuda::atomic_ref<std::uint32_t, peer_scope>(s.live->grace_epoch)
      .load(cuda::std::memory_order_acquire);
}
//! Acquire: the host writes an entry's other fields before it changes the host word.
RK_HOST_DEVICE inline std::uint32_t host_word_of(const route_entry& e) noexcept {
  return cuda::atomic_ref<std::uint32_t, peer_scope>(const_cast<std::uint32_t&>(e.host_word))
      .load(cuda::std::memory_order_acquire);
}
RK_HOST_DEVICE inline std::uint32_t device_word_of(const route_entry& e) noexcept {
  return cuda::atomic_ref<std::uint32_t, peer_scope>(const_cast<std::uint32_t&>(e.device_word))
      .load(cuda::std::memory_order_acquire);
}
RK_HOST_DEVICE inline void set_device_word(route_entry& e, std::uint32_t word) noexcept {
  cuda::atomic_ref<std::uint32_t, peer_scope>(e.device_word).store(word, cuda::std::memory_order_release);
}
RK_HOST_DEVICE inline address next_hop_of(const route_entry& e) noexcept {
  return cuda::atomic_ref<std::uint32_t, peer_scope>(const_cast<std::uint32_t&>(e.next_hop))
      .load(cuda::std::memory_order_relaxed);
}
RK_HOST_DEVICE inline void bump(std::uint64_t& counter, std::uint64_t by = 1) noexcept {
  cuda::atomic_ref<std::uint64_t, peer_scope>(counter).fetch_add(by, cuda::std::memory_order_relaxed);
}
//! bump() for a counter of an actor's own (actor_counters: those its sends and calls count), which one
//! thread at a time writes: on the host its worker or the pool thread that owns it (ownership changes hands
//! with release/acquire, schedule.cuh), so a relaxed load and store suffice there; a locked add would also
//! make the sender wait for the message's slot to reach its cache first. On the device the threads of a
//! worker block may send together: an atomic add. Readers (the host's stats) load it relaxed either way.
RK_HOST_DEVICE inline void bump_own(std::uint64_t& counter, std::uint64_t by = 1) noexcept {
  cuda::atomic_ref<std::uint64_t, peer_scope> c(counter);
  NV_IF_TARGET(NV_IS_HOST,
               (c.store(c.load(cuda::std::memory_order_relaxed) + by, cuda::std::memory_order_relaxed);),
               (c.fetch_add(by, cuda::std::memory_order_relaxed);))
}
RK_HOST_DEVICE inline void store_pcie(std::uint32_t& word, std::uint32_t value) noexcept {
  cuda::atomic_ref<std::uint32_t, pcie_scope>(word).store(value, cuda::std::memory_order_relaxed);
}
//! A worker's acknowledgement to the host (e.g. worker_status::paused): release, so that what the worker
//! wrote before it (handler states, counters) is visible to a host that reads the word with acquire.
RK_HOST_DEVICE inline void acknowledge_pcie(std::uint32_t& word, std::uint32_t value) noexcept {
  cuda::atomic_ref<std::uint32_t, pcie_scope>(word).store(value, cuda::std::memory_order_release);
}
//! Orders a worker's acknowledgement before its next read of a host request word, and the host's request
//! before its read of the acknowledgement (both sides: a store-load fence, system scope). Used where an
//! acknowledgement repeats a value an earlier request already got (see follow_pause, acknowledge_resume):
//! without it a request could read the stale acknowledgement as its own while the worker, having read the
//! word before the request, goes on.
RK_HOST_DEVICE inline void store_load_fence() noexcept {
#if defined(__SANITIZE_THREAD__) && !defined(__CUDA_ARCH__)
  // GCC refuses fences under ThreadSanitizer. A sequentially consistent read-modify-write of a word of
  // this thread's own is the same full barrier on the hosts this builds for (a locked instruction on x86).
  thread_local std::uint32_t barrier_word = 0;
  (void)__atomic_fetch_add(&barrier_word, 0u, __ATOMIC_SEQ_CST);
#else
  cuda::atomic_thread_fence(cuda::std::memory_order_seq_cst, cuda::thread_scope_system);
#endif
}
RK_HOST_DEVICE inline void store_pcie(std::uint64_t& word, std::uint64_t value) noexcept {
  cuda::atomic_ref<std::uint64_t, pcie_scope>(word).store(value, cuda::std::memory_order_relaxed);
}

RK_HOST_DEVICE inline std::uint32_t load_relaxed(const std::uint32_t& word) noexcept {
  return cuda::atomic_ref<std::uint32_t, peer_scope>(const_cast<std::uint32_t&>(word))
      .load(cuda::std::memory_order_relaxed);
}

RK_HOST_DEVICE inline std::uint64_t load_relaxed(const std::uint64_t& word) noexcept {
  return cuda::atomic_ref<std::uint64_t, peer_scope>(const_cast<std::uint64_t&>(word))
      .load(cuda::std::memory_order_relaxed);
}

//! The routing-table slot of actor (or alias) id `a`; `a` must be an id this runtime handed out.
RK_HOST_DEVICE inline std::uint32_t slot_of(const system_view& s, actor_index a) noexcept {
  return id_slot(a, s.actor_slot_bits);
}

//! The entry of actor or alias `a` with its host word (acquire), or null when `a` is no id of this
//! runtime, names an empty slot, or names an earlier occupant of the slot. The host word is read before
//! the generation: the host writes a reused slot's generation before it publishes the slot's host word.
RK_HOST_DEVICE inline route_entry* entry_of(const system_view& s, address a,
                                            std::uint32_t& host_word) noexcept {
  if (a == host_actor || is_group_address(a)) return nullptr;
  const std::uint32_t slot = id_slot(a, s.actor_slot_bits);
  if (slot >= s.route_capacity) return nullptr;
  route_entry& e = s.routes[slot];
  host_word = host_word_of(e);
  if (static_cast<host_state>(state_in(host_word)) == host_state::empty) return nullptr;
  if (load_relaxed(e.generation) != id_generation(a, s.actor_slot_bits)) return nullptr;
  return &e;
}

//! Worker side of the host's grace periods: called between messages, never inside a handler. Once the
//! host reads `quiescent >= E`, this worker holds nothing it found in the tables before epoch E began.
RK_HOST_DEVICE inline void note_quiescent(const system_view& s, worker_status& w,
                                          std::uint32_t& seen) noexcept {
  const std::uint32_t epoch = grace_epoch_of(s);
  if (epoch == seen) return;
  seen = epoch;
  // Release: every access this worker made to tables and mailboxes so far happens before the report.
  cuda::atomic_ref<std::uint32_t, pcie_scope>(w.quiescent).store(epoch, cuda::std::memory_order_release);
}

//! A worker's first and last words: check-in (after its first quiescence report) and exit.
//! check_in returns the grace epoch it reported, for note_quiescent.
RK_HOST_DEVICE inline std::uint32_t check_in(const system_view& s, worker_status& w) noexcept {
  const std::uint32_t epoch = grace_epoch_of(s);
  cuda::atomic_ref<std::uint32_t, pcie_scope>(w.quiescent).store(epoch, cuda::std::memory_order_relaxed);
  cuda::atomic_ref<std::uint32_t, pcie_scope>(w.checked_in).store(1u, cuda::std::memory_order_release);
  return epoch;
}
RK_HOST_DEVICE inline void check_out(worker_status& w) noexcept {
  cuda::atomic_ref<std::uint32_t, pcie_scope>(w.busy_actor).store(0u, cuda::std::memory_order_relaxed);
  cuda::atomic_ref<std::uint32_t, pcie_scope>(w.exited).store(1u, cuda::std::memory_order_release);
}

//! The device state that applies now: an older epoch's report no longer counts.
RK_HOST_DEVICE inline device_state current_device_state(std::uint32_t host_word,
                                                        std::uint32_t device_word) noexcept {
  return epoch_of(device_word) == epoch_of(host_word) ? static_cast<device_state>(state_in(device_word))
                                                      : device_state::running;
}

} // namespace rk::detail
