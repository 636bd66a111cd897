#pragma once
//! \file
//! Scheduled actors: a fixed pool of workers per handler type takes ready actors from the type's run
//! queue (run_queue.cuh) instead of every actor owning a worker. Shared by both backends.
//!
//! Protocol. Each actor has a scheduled word S (sys.sched.scheduled[slot]): 0 idle, 1 owned. Whoever
//! moves S from 0 to 1 owns the actor until it moves S back to 0, and only the owner pushes it to the run
//! queue or serves it; a pop hands the ownership to the popping worker. Every change of S is an acq_rel
//! exchange (no fences: ThreadSanitizer checks exactly this protocol on the CPU backend).
//!   - Sender (wake, after publishing a message to a scheduled actor's mailbox):
//!       publish; if exchange(S, 1) == 0: push.
//!   - Worker, after a turn (end_turn): if it stopped because the turn budget was spent, it pushes the
//!     actor again (still the owner: FIFO fairness). Otherwise:
//!       exchange(S, 0); if the actor has work: if exchange(S, 1) == 0: push.
//!   - The host changes an actor's lifecycle word and then asks the gateway (sys.sched.wakes) to wake it,
//!     which the gateway does as a sender would.
//!
//! Why no wake-up is lost: all writes to S are exchanges, so they are totally ordered and each reads
//! the one before it. If a sender's exchange comes after the worker's exchange(S, 0), it reads that 0 or
//! a later owner's 1: then it owns the actor, or the later owner ends its turn with another exchange(S, 0)
//! after it, to which the same argument applies. If it comes before, the worker's exchange reads from
//! the sender's (or a later exchange in its release sequence), so the sender's publish happens before the
//! worker's re-check of the mailbox, which therefore sees the message and takes the actor back. The same
//! holds for a host request, whose word was written before the request reached the gateway.
//! Why no double scheduling: pushing requires owning S, owning requires a 0 -> 1 transition, and the
//! owner gives S up only after its last access to the actor; so an actor is in a queue at most once and
//! is served by at most one worker at a time. The acq_rel exchanges (then the queue's release/acquire)
//! order one owner's writes to the actor's state and private words before the next owner's reads.
//! Retirement: a worker that acknowledges `retired` keeps S at 1 for good, so the actor is never queued
//! again; the host resets S when it gives the slot to a new actor (no one else touches it then).
//! Dedicated actors (route_entry::dedicated) keep their own worker and never touch S.
//!
//! Skipped wake-ups (CPU backend). A sender that reads S == 1 right after publishing skips the exchange:
//! on a busy receiver every send would otherwise take S's cache line from the other senders' cores. This
//! is sound because the publish, that read, the worker's exchange(S, 0) and its look at the mailbox are
//! all sequentially consistent there (wake_*_order, config.cuh). In their single total order, if the read
//! of 1 comes before the worker's exchange(S, 0), so does the publish before it, and the worker's later
//! look at the mailbox sees the message (or, if the head position is another sender's message not yet
//! published, that sender's own publish and read are ordered against the worker's the same way, and
//! either it wakes the actor or the worker sees its message and takes the actor back, which serves ours
//! too); if the read of 1 comes after, it read a later owner's 1, and that owner ends its turn the same
//! way. A host request (wake_actor) always exchanges: the host's lifecycle word is not published this way.
//!
//! Run-next. An owner may keep the actor in its worker's run-next slot instead of the queue: a handler's
//! send that makes an actor ready hands it to the worker running the handler, which serves it after the
//! current actor (the receiver's message is still in cache, and no other worker is woken for it: a
//! ping-pong between two actors stays on one worker, as in CAF's and Go's schedulers). The slot holds one
//! actor; a second one goes to the queue. The slot is just another place an owned actor waits, so the
//! protocol above is unchanged. Fairness: after `run_next_streak_limit` turns in a row taken from the
//! slot, the worker puts the slot's actor at the back of the queue and serves the queue's head instead.
//!   - CPU backend: a pool thread's slot (found through a thread_local), served right after the current
//!     turn; any handler type (a pool thread serves them all). The pool has few threads, so one whose
//!     handler call runs long must not strand the actor it woke: another pool thread takes an actor it
//!     found in a slot, with the same fill, at two of its looks in a row. One idle thread watches (looks
//!     every millisecond) while slots are in use, a fill wakes a sleeper when nobody watches, and threads
//!     that do not park look every 256 rounds of their loop, queueing what they find.
//!   - CUDA: a scheduled worker block's slot in shared memory (device_run_next), passed to the handler's
//!     context; only actors of the worker's own handler type fit. A GPU has many workers, so the slot's
//!     actor waits only while the current one has nothing more: if the current actor goes on with
//!     another message, the slot's actor goes to the queue at once for another worker to take.

#include <ringkernel/device/backoff.cuh>
#include <ringkernel/device/detail/host_park.cuh>
#include <ringkernel/device/detail/system.cuh>

#include <atomic>

namespace rk::detail {

RK_HOST_DEVICE inline cuda::atomic_ref<std::uint32_t, peer_scope>
scheduled_word(const system_view& s, std::uint32_t slot) noexcept {
  return cuda::atomic_ref<std::uint32_t, peer_scope>(s.sched.scheduled[slot]);
}

//! Pushes `actor`, waiting out a pop that has claimed but not yet freed the tail's cell (run_queue.cuh):
//! the queue holds fewer actors than cells, so the wait ends within that pop's next two stores.
RK_HOST_DEVICE inline void push_until_done(const run_queue_view& q, actor_index actor) noexcept {
  backoff wait;
  while (!run_queue_push(q, actor)) wait.pause();
}

//! Turns in a row a worker takes from its run-next slot before it looks at the run queue (both backends).
inline constexpr std::uint32_t run_next_streak_limit = 16;

#if !defined(__CUDA_ARCH__)
//! A CPU pool thread's run-next slot (see the protocol above). Its owner fills it during a handler call
//! and empties it after the turn. An idle pool thread may empty it instead, when the actor waited there
//! through a whole look-out period (the call that woke it runs long, or never returns): whoever exchanges
//! `held` to 0 owns the actor (cpu_backend's park()).
struct run_next_slot {
  const system_view* sys = nullptr;
  std::atomic<std::uint64_t> held{0};  //!< 0: empty; else run_next_word(kind, actor)
  std::atomic<std::uint64_t> fills{0}; //!< fills so far (written by the owner): "still the same wait"
};
inline constexpr std::uint64_t run_next_word(std::uint32_t kind, actor_index id) noexcept {
  return (std::uint64_t{kind} + 1) << 32 | id;
}
inline constexpr std::uint32_t run_next_kind(std::uint64_t word) noexcept {
  return static_cast<std::uint32_t>(word >> 32) - 1;
}
inline constexpr actor_index run_next_actor(std::uint64_t word) noexcept {
  return static_cast<actor_index>(word);
}
//! The slot of the pool thread running this code; null on every other thread (gateway, dedicated
//! workers, the host's threads).
inline thread_local run_next_slot* current_run_next = nullptr;

inline bool keep_on_this_thread(const system_view& s, std::uint32_t kind, actor_index id) noexcept {
  run_next_slot* r = current_run_next;
  if (r == nullptr || r->sys != &s || r->held.load(std::memory_order_relaxed) != 0) return false;
  r->fills.store(r->fills.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  r->held.store(run_next_word(kind, id), std::memory_order_seq_cst);
  // With no idle thread watching the slots, one asleep on its backstop timer alone would not look at this
  // slot for a long time if the call goes on: wake one. Sequentially consistent against the sleeper's
  // count-then-look (cpu_backend's park()): one of the two sees the other.
  if (park_lot* lot = s.sched.pool_lot; lot != nullptr &&
                                        park_word(lot->watching).load(cuda::std::memory_order_seq_cst) == 0 &&
                                        park_word(lot->untimed).load(cuda::std::memory_order_seq_cst) != 0)
    park_notify_one(*lot);
  return true;
}
#endif

//! A CUDA scheduled worker's run-next slot (its block's shared memory; see "Run-next" above). Written by
//! the worker's threads during a handler call (a claim by CAS: they may send together) and by its leader
//! between calls; a __syncthreads separates the two.
struct device_run_next {
  std::uint32_t full = 0; //!< 1: holds `actor`
  actor_index actor = 0;
  std::uint32_t kind = 0; //!< the worker's handler type: only its actors fit
};

//! Claims the slot `r` for actor `id` of handler type `kind`: false when it is another type's or full.
//! (Host-callable for tests/device/test_run_next.cpp; only CUDA workers use it.)
RK_HOST_DEVICE inline bool keep_on_this_worker(device_run_next& r, std::uint32_t kind,
                                               actor_index id) noexcept {
  if (r.kind != kind) return false;
  std::uint32_t empty = 0;
  if (!cuda::atomic_ref<std::uint32_t, cuda::thread_scope_block>(r.full).compare_exchange_strong(
          empty, 1u, cuda::std::memory_order_relaxed, cuda::std::memory_order_relaxed))
    return false;
  r.actor = id; // read by the leader after the block's next __syncthreads
  return true;
}

//! The owner's hand-off of actor `id` of handler type `kind`: to the run-next slot of the worker running
//! the sending handler when `may_run_next` and it has room (CPU backend: this pool thread's; CUDA:
//! `keep`, null outside a scheduled worker), else to the run queue, waking a parked thread.
RK_HOST_DEVICE inline void hand_off(const system_view& s, std::uint32_t kind, actor_index id,
                                    bool may_run_next, device_run_next* keep = nullptr) noexcept {
  NV_IF_TARGET(NV_IS_HOST, ((void)keep; if (may_run_next && keep_on_this_thread(s, kind, id)) return;),
               (if (may_run_next && keep != nullptr && keep_on_this_worker(*keep, kind, id)) return;))
  push_until_done(s.sched.queues[kind], id);
  notify_parked(s.sched);
}

//! Takes ownership of the actor in `slot` if nobody holds it, and hands it to a worker. A sender's wake
//! may use the run-next slot; an actor taken back at the end of its own turn may not (it usually waits
//! for someone else, e.g. after a defer, and would only spin on this thread).
RK_HOST_DEVICE inline void claim_and_push(const system_view& s, std::uint32_t slot, bool may_run_next = true,
                                          device_run_next* keep = nullptr) noexcept {
  if (scheduled_word(s, slot).exchange(1u, cuda::std::memory_order_acq_rel) != 0) return;
  const route_entry& e = s.routes[slot];
  hand_off(s, load_relaxed(e.kind), make_id(slot, load_relaxed(e.generation), s.actor_slot_bits),
           may_run_next, keep);
}

//! wake() for a sender that already knows the actor in `slot` is not dedicated (it read the entry's
//! `dedicated` before publishing, sparing a load after the publish's fence on the device).
RK_HOST_DEVICE inline void wake_scheduled(const system_view& s, std::uint32_t slot,
                                          device_run_next* keep = nullptr) noexcept {
  if (s.sched.queues == nullptr) return;
  // Owned: its owner sees the message (see "Skipped wake-ups" above).
  NV_IF_TARGET(NV_IS_HOST, (if (scheduled_word(s, slot).load(wake_check_order) != 0) return;))
  claim_and_push(s, slot, true, keep);
}

//! Sender side: after publishing a message to the actor in `slot`, makes sure a worker will serve it.
//! `keep`: the sending worker's run-next slot (CUDA scheduled workers; null elsewhere).
RK_HOST_DEVICE inline void wake(const system_view& s, std::uint32_t slot,
                                device_run_next* keep = nullptr) noexcept {
  if (load_relaxed(s.routes[slot].dedicated) != 0) return;
  wake_scheduled(s, slot, keep);
}

//! Gateway side of a host request: wakes actor `id` if it is still the slot's occupant.
RK_HOST_DEVICE inline void wake_actor(const system_view& s, actor_index id) noexcept {
  const std::uint32_t slot = slot_of(s, id);
  if (slot >= s.route_capacity) return;
  if (load_relaxed(s.routes[slot].generation) != id_generation(id, s.actor_slot_bits)) return;
  if (s.sched.queues == nullptr || load_relaxed(s.routes[slot].dedicated) != 0) return;
  claim_and_push(s, slot);
}

//! Whether a worker has anything to do for `self` now: a message to handle or discard, or a lifecycle
//! request to acknowledge. Mirrors next_step (actor_loop.cuh) without its side effects.
RK_HOST_DEVICE inline bool has_pending_work(const system_view& s, actor_index self) noexcept {
  const route_entry& e = s.routes[slot_of(s, self)];
  const std::uint32_t hw = host_word_of(e);
  if (load_relaxed(e.generation) != id_generation(self, s.actor_slot_bits)) return false;
  const auto hs = static_cast<host_state>(state_in(hw));
  const device_state ds = current_device_state(hw, device_word_of(e));
  if (hs == host_state::retired) return ds != device_state::retired;
  bool any = false;
  for (std::uint32_t l = 0; l < e.lanes && !any; ++l)
    any = mailbox(lane_view(e, l)).try_peek(wake_check_order) != nullptr;
  if (ds == device_state::stopped || ds == device_state::faulted) return any;
  switch (hs) {
  case host_state::live:
    return any || ds == device_state::paused;
  case host_state::paused:
    return ds != device_state::paused;
  case host_state::stopping:
    return true;
  default:
    return false;
  }
}

//! The owner's end of a turn of `self` (not after it let go of a retired actor: that one stays owned).
//! `budget_spent`: the turn ended because it handled turn_messages messages, so it goes to the back of
//! the queue; otherwise it had nothing left it could do, and is given up (and taken back if work
//! arrived meanwhile).
RK_HOST_DEVICE inline void end_turn(const system_view& s, actor_index self, bool budget_spent) noexcept {
  const std::uint32_t slot = slot_of(s, self);
  if (budget_spent) {
    push_until_done(s.sched.queues[load_relaxed(s.routes[slot].kind)], self);
    return;
  }
  (void)scheduled_word(s, slot).exchange(0u, wake_release_order);
  if (has_pending_work(s, self)) claim_and_push(s, slot, false);
}

//! Worker side: the next ready actor of handler type `kind`, if any.
RK_HOST_DEVICE inline bool take_ready(const system_view& s, std::uint32_t kind, actor_index& actor) noexcept {
  return run_queue_pop(s.sched.queues[kind], actor);
}

//! A CUDA scheduled worker's leader, between actors: the next actor to serve. The run-next slot's, at
//! most run_next_streak_limit turns in a row (`streak` counts them); else the run queue's head,
//! and the slot's actor, if any, goes to the queue behind it; else the slot's actor even after a long
//! streak (nobody else is waiting). (Host-callable for tests/device/test_run_next.cpp.)
RK_HOST_DEVICE inline bool take_next(const system_view& s, std::uint32_t kind, device_run_next& run_next,
                                     std::uint32_t& streak, actor_index& actor) noexcept {
  if (run_next.full != 0 && streak < run_next_streak_limit) {
    actor = run_next.actor;
    run_next.full = 0;
    ++streak;
    return true;
  }
  streak = 0;
  if (take_ready(s, kind, actor)) {
    if (run_next.full != 0) {
      hand_off(s, kind, run_next.actor, false);
      run_next.full = 0;
    }
    return true;
  }
  if (run_next.full == 0) return false;
  actor = run_next.actor;
  run_next.full = 0;
  return true;
}

} // namespace rk::detail
