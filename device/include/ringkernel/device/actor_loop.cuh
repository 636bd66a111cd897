#pragma once
//! \file
//! The worker loop: poll the mailbox, run the handler to completion on one message, release the slot.
//! next_step() is the per-actor decision shared by both backends (lifecycle transitions, priority lanes,
//! discarding after a stop or fault); cpu_serve_one() is the CPU backend's step and actor_kernel<H> the
//! persistent CUDA kernel (one thread block per actor).
//!
//! Priorities and starvation: a mailbox has one lane per priority level and the worker serves the highest
//! non-empty lane, except that a non-empty lane passed over `starvation_limit` times in a row (default
//! 16) is served next, before higher lanes (among several such lanes, the one passed over longest, then the
//! higher). So a queued message waits at most starvation_limit + priority_levels - 1 picks once it heads
//! its lane: once starved, only lanes passed over at least as long go first, at most one pick each.

#include <ringkernel/device/backoff.cuh>
#include <ringkernel/device/detail/schedule.cuh>
#include <ringkernel/device/handler.cuh>

#include <exception>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace rk::detail {

//! release: the worker lets go of the actor for good (it was forgotten, or the id is no longer the
//! slot's occupant); it never touches the actor's entry, mailbox or state again.
enum class step_kind : int { idle, handle, discard, park, release };

struct worker_step {
  step_kind kind = step_kind::idle;
  const std::byte* slot = nullptr;
  //! How finish_step releases the slot, kept from the peek so that releasing reads neither the route
  //! entry nor the lane's head again (each a round trip to L2 on the device, after a handler whose sends
  //! invalidated L1).
  mailbox::slot_release release{};
};

//! The message at the head of lane `lane` of `e` as a step of `kind`, or an idle step when none is there.
//! (One named result, filled in place: building a step and then choosing between two copies of it cost
//! the CPU backend's ping-pong 30 ns a round trip in store-to-load forwarding stalls.)
RK_HOST_DEVICE inline worker_step peek_lane(const route_entry& e, std::uint32_t lane,
                                            step_kind kind) noexcept {
  const mailbox ring(lane_view(e, lane));
  worker_step step;
  for (;;) {
    step.slot = ring.try_peek(step.release);
    if (step.slot == nullptr) return step;
    // A cancelled claim (deliver.cuh, the stop protocol): never counted as received, so dropped unseen.
    if ((reinterpret_cast<const envelope*>(step.slot)->flags & envelope_flags::cancelled) == 0) break;
    mailbox::release(step.release);
  }
  step.kind = kind;
  return step;
}

//! Whether any lane of `e` has a slot claimed and not consumed (published or not). The stopping worker's
//! W1 of the stop protocol (deliver.cuh), after a sequentially consistent fence.
RK_HOST_DEVICE inline bool claims_pending(const route_entry& e) noexcept {
  for (std::uint32_t l = 0; l < e.lanes; ++l)
    if (mailbox(lane_view(e, l)).approximate_size() != 0) return true;
  return false;
}

//! The next message of `e` by the priority/anti-starvation rule (updates `priv.starved`). Which lanes
//! are ready is a bit mask, not an array of head pointers: an array indexed at run time would live in
//! local memory and be reloaded on every poll; the chosen lane's head is peeked once more instead (it
//! is still published: only this worker consumes). With one lane, the default, there is nothing to
//! choose and a message costs one peek (keeping the highest ready lane's head across the loop instead
//! would cost the CUDA workers 8 registers).
RK_HOST_DEVICE inline worker_step pick_message(const route_entry& e, actor_private& priv,
                                               std::uint32_t limit) noexcept {
  const std::uint32_t lanes = e.lanes < priority_levels ? e.lanes : priority_levels;
  if (lanes == 1) {
    priv.starved[0] = 0;
    return peek_lane(e, 0, step_kind::handle);
  }
  std::uint32_t ready = 0;
  for (std::uint32_t l = 0; l < lanes; ++l)
    if (mailbox(lane_view(e, l)).try_peek() != nullptr) ready |= 1u << l;
  if (ready == 0) {
    for (auto& s : priv.starved) s = 0;
    return {};
  }
  // Starved lanes: the one passed over longest (ties: the higher). Taking the higher starved lane first
  // instead let two high lanes at limit 1 or 2 take turns while the lower ones waited for them to empty.
  int chosen = -1;
  std::uint32_t longest = 0;
  for (int l = static_cast<int>(lanes) - 1; l >= 0; --l) {
    const std::uint32_t passed = priv.starved[l];
    if (((ready >> l) & 1u) != 0 && passed >= limit && passed > longest) {
      chosen = l;
      longest = passed;
    }
  }
  for (int l = static_cast<int>(lanes) - 1; l >= 0 && chosen < 0; --l)
    if (((ready >> l) & 1u) != 0) chosen = l;
  for (std::uint32_t l = 0; l < lanes; ++l) {
    if (static_cast<int>(l) == chosen || ((ready >> l) & 1u) == 0) {
      priv.starved[l] = 0;
    } else if (priv.starved[l] < 255) {
      ++priv.starved[l];
    }
  }
  const auto lane = static_cast<std::uint32_t>(chosen);
  return peek_lane(e, lane, step_kind::handle);
}

//! Follows the host's global pause (runtime::pause / resume), acknowledging each change in `ack` (the
//! worker's worker_status::paused). Returns whether the worker is paused now. A resume is checked once
//! more after its acknowledgement: a pause() requested just after it may have read this worker's previous
//! acknowledgement (1, which every pause gets) as its own. With a store-load fence on both sides, either
//! that pause() reads the 0 written here and waits, or this worker reads the new request and pauses
//! again without serving anything.
RK_HOST_DEVICE inline bool follow_pause(const system_view& sys, std::uint32_t& ack, bool& paused) noexcept {
  if (pause_requested(sys) == paused) return paused;
  paused = !paused;
  acknowledge_pcie(ack, paused ? 1u : 0u); // release: see acknowledge_pcie
  if (!paused) {
    store_load_fence();
    if (pause_requested(sys)) {
      paused = true;
      acknowledge_pcie(ack, 1u);
    }
  }
  return paused;
}

//! An actor resumed (host word `hw` live, its device word still `paused` from this epoch): acknowledges,
//! then reads the host word again. A pause_actor() or snapshot() requested meanwhile writes the same
//! paused word every pause of the epoch writes, and may have read the old acknowledgement as its own:
//! with a store-load fence on both sides (the host's in actor_table::write_host_word), either it reads
//! `running` and waits, or this reads its request. Returns whether the actor may be served; if not, it
//! is acknowledged paused again (any other request is seen on its next step: the host's write woke it).
RK_HOST_DEVICE inline bool acknowledge_resume(route_entry& e, std::uint32_t hw) noexcept {
  const std::uint32_t epoch = epoch_of(hw);
  set_device_word(e, make_state_word(epoch, static_cast<std::uint8_t>(device_state::running)));
  store_load_fence();
  if (host_word_of(e) == hw) return true;
  set_device_word(e, make_state_word(epoch, static_cast<std::uint8_t>(device_state::paused)));
  return false;
}

//! Leader only: what the worker of `self` does next, applying lifecycle transitions on the way:
//! acknowledges pause and resume, reports `stopped` once a stopping actor's mailbox is empty, turns
//! messages that reach a stopped or faulted actor into discards, and lets go of a retired actor.
RK_HOST_DEVICE inline worker_step next_step(const system_view& sys, actor_index self) noexcept {
  const std::uint32_t slot = slot_of(sys, self);
  route_entry& e = sys.routes[slot];
  const std::uint32_t hw = host_word_of(e);
  // A worker launched for an id whose slot has a new occupant (an orphaned launch) serves nothing.
  if (load_relaxed(e.generation) != id_generation(self, sys.actor_slot_bits)) return {step_kind::release};
  const std::uint32_t dw = device_word_of(e);
  const auto hs = static_cast<host_state>(state_in(hw));
  const device_state ds = current_device_state(hw, dw);
  const std::uint32_t epoch = epoch_of(hw);

  if (hs == host_state::retired) {
    set_device_word(e, make_state_word(epoch, static_cast<std::uint8_t>(device_state::retired)));
    return {step_kind::release};
  }
  if (ds == device_state::stopped || ds == device_state::faulted) {
    for (std::uint32_t l = 0; l < e.lanes; ++l) {
      const worker_step head = peek_lane(e, l, step_kind::discard);
      if (head.kind != step_kind::discard) continue;
      // A respawn between the words' reads above and this peek: the message may be the fresh actor's (its
      // sender saw it delivered after respawn() had written the host word, before the message was
      // published, which the peek acquired). Discarding it lost it (a CI run: 1 reply of ~2,000 missing).
      if (host_word_of(e) != hw) return {step_kind::park};
      return head;
    }
    return {step_kind::park};
  }
  switch (hs) {
  case host_state::live: {
    if (ds == device_state::paused && !acknowledge_resume(e, hw)) return {step_kind::park};
    return pick_message(e, sys.privates[slot], sys.starvation_limit);
  }
  case host_state::paused:
    if (ds != device_state::paused)
      set_device_word(e, make_state_word(epoch, static_cast<std::uint8_t>(device_state::paused)));
    return {step_kind::park};
  case host_state::stopping: {
    const worker_step next = pick_message(e, sys.privates[slot], sys.starvation_limit);
    if (next.kind == step_kind::handle) return next;
    // The stop protocol (deliver.cuh): a sender that claimed before it could see `stopping` publishes and
    // wakes this actor; its message is handled before `stopped` is reported.
    store_load_fence();
    if (claims_pending(e)) return {};
    set_device_word(e, make_state_word(epoch, static_cast<std::uint8_t>(device_state::stopped)));
    return {step_kind::park};
  }
  default:
    return {step_kind::park};
  }
}

//! Runs H on the message in `slot` for `self`. Called by every thread of the worker with the same
//! arguments; the leader has already merged the HLC into `event_time` and taken `grant` from the slot
//! (restore_grant puts it back there after a deferred call). `run_next`: the worker's run-next slot (CUDA
//! scheduled workers, schedule.cuh).
template <class H>
RK_HOST_DEVICE void run_handler(const system_view& sys, actor_index self, handler_state_t<H>& state,
                                const std::byte* slot, hlc_timestamp event_time, const delivery_grant& grant,
                                device_run_next* run_next = nullptr) {
  const message m(slot);
  actor_context ctx(sys, self, sys.routes[slot_of(sys, self)].tenant, event_time, slot, grant, run_next);
  H handler{};
  handler(ctx, state, m);
}

//! Adds a handler's running time to its actor's engagement (the GPU-time budget; `engagement_slot` is the
//! actor's route_entry::engagement_slot, read by the caller) and tenant.
RK_HOST_DEVICE inline void charge_handler_time_to(const system_view& sys, actor_index self,
                                                  std::uint32_t engagement_slot, std::uint64_t ns) noexcept {
  if (engagement_slot < sys.engagement_capacity) bump(sys.engagements[engagement_slot].used_ns, ns);
  actor_counters& c = sys.counters[slot_of(sys, self)];
  bump_own(c.handler_ns, ns); // per actor: summed per tenant on the host
  bump_own(c.handler_time[handler_time_bucket(ns)]);
}
RK_HOST_DEVICE inline void charge_handler_time(const system_view& sys, actor_index self,
                                               std::uint64_t ns) noexcept {
  charge_handler_time_to(sys, self, sys.routes[slot_of(sys, self)].engagement_slot, ns);
}

//! Leader, after a handler call: whether the handler called ctx.defer() (cleared for the next call). A
//! deferred message stays in the mailbox and is counted as deferred, not handled.
RK_HOST_DEVICE inline bool take_defer(const system_view& sys, actor_index self) noexcept {
  const std::uint32_t slot = slot_of(sys, self);
  cuda::atomic_ref<std::uint32_t, peer_scope> flag(sys.privates[slot].defer_requested);
  if (flag.load(cuda::std::memory_order_relaxed) == 0) return false;
  flag.store(0u, cuda::std::memory_order_relaxed);
  bump_own(sys.counters[slot].deferred);
  return true;
}

//! Leader, after a handler call that faulted: forgets a ctx.defer() it made without counting it (the
//! message is released and counted as interrupted, not offered again).
RK_HOST_DEVICE inline void drop_defer(const system_view& sys, actor_index self) noexcept {
  cuda::atomic_ref<std::uint32_t, peer_scope>(sys.privates[slot_of(sys, self)].defer_requested)
      .store(0u, cuda::std::memory_order_relaxed);
}

//! Leader, after a handler call of `self`: records it if trace_sampled (below) said so before it, with the
//! envelope it copied to `seen` (trace.cuh). `begin_ns` is when the call began on the HLC's clock
//! (hlc_physical_ns), `took_ns` how long it ran.
RK_HOST_DEVICE inline void trace_call(const system_view& sys, actor_index self, const envelope_copy& seen,
                                      bool sampled, std::uint64_t begin_ns, std::uint64_t took_ns,
                                      trace_outcome outcome) noexcept {
  if (!sampled) return;
  (void)emit_trace(sys.trace, seen.bytes, self, begin_ns, begin_ns + took_ns,
                   outcome); // a full ring counts the drop
}

//! Leader, before a handler call of `self` on the message in `slot`, while tracing: copies the message's
//! envelope into `seen` as the handler is about to see it, and counts the call towards the trace sample.
//! Returns whether this call is one to record (every trace.sample_every-th; trace_call's `sampled`). A
//! handler can write its const slot: records show what was delivered (a copy taken after the call showed a
//! tenant and source the handler had written), and a deferred message is put back (restore_deferred).
RK_HOST_DEVICE inline bool trace_sampled(const system_view& sys, actor_index self, const std::byte* slot,
                                         envelope_copy& seen) noexcept {
  if (sys.trace.sample_every == 0) return false;
  copy_envelope(slot, seen.bytes);
  std::uint32_t& count = sys.privates[slot_of(sys, self)].trace_count;
  if (++count < sys.trace.sample_every) return false;
  count = 0;
  return true;
}

//! Leader, after a call that deferred the message in `slot` (every thread done with it): puts back what it
//! was delivered with for the next call: its envelope while tracing (`seen`, trace_sampled's copy: the next
//! record shows it), and its grant (restore_grant).
RK_HOST_DEVICE inline void restore_deferred(const system_view& sys, const std::byte* slot,
                                            const envelope_copy& seen, const delivery_grant& grant) noexcept {
  if (sys.trace.sample_every != 0) copy_envelope(seen.bytes, const_cast<std::byte*>(slot)); // a slot it holds
  restore_grant(slot, grant);
}

//! Releases the slot of `step` after it was handled or discarded, and counts it.
RK_HOST_DEVICE inline void finish_step(const system_view& sys, actor_index self,
                                       const worker_step& step) noexcept {
  const std::uint32_t slot = slot_of(sys, self);
  mailbox::release(step.release);
  bump_own(step.kind == step_kind::handle ? sys.counters[slot].handled : sys.counters[slot].discarded);
}

//! Reports that the worker's call of `previous` ended (it is busy with `next` + 1, or 0). The host's
//! respawn() and snapshot() of a faulted actor wait for this word to leave `previous` and then read its
//! state: after a faulted call the store is a release, so the call's writes come first. Other calls end
//! with a relaxed store, keeping a system-scope fence off the hot path.
RK_HOST_DEVICE inline void release_busy_actor(const system_view& sys, worker_status& status_word,
                                              actor_index previous, std::uint32_t next) noexcept {
  if (faulted_in_epoch(sys, previous))
    acknowledge_pcie(status_word.busy_actor, next);
  else
    store_pcie(status_word.busy_actor, next);
}

//! What one CPU backend step did for an actor. faulted: the handler threw or trapped; the fault was
//! contained (see cpu_serve_one) and described in the step's handler_fault.
enum class serve_result : int { idle, worked, released, faulted };

//! A contained CPU-backend handler fault.
struct handler_fault {
  std::uint32_t message_type = 0;
  std::uint32_t code = 0; //!< the ctx.trap code, or rk::fault_code_exception
  std::string reason;     //!< "ctx.trap(3)", or "handler threw: <what()>"
  hlc_timestamp time{};   //!< the event time of the call, for the fault's audit record
};

//! Bytes of an exception's what() kept in a fault's reason: a handler under an automatic respawn could
//! otherwise pin any amount of host memory in the fault list (4096 entries of 4 MiB texts: 16 GiB).
inline constexpr std::size_t max_fault_reason_bytes = 1024;

//! `what`, cut to max_fault_reason_bytes with a note of how much was left out.
inline std::string fault_reason_text(std::string_view what) {
  if (what.size() <= max_fault_reason_bytes) return std::string(what);
  return std::string(what.substr(0, max_fault_reason_bytes)) + "... (" +
         std::to_string(what.size() - max_fault_reason_bytes) + " more bytes left out)";
}

//! Keeps `e` alive until the process ends (reachable, so not a leak to LeakSanitizer; never destroyed,
//! not even at exit). For exceptions whose destructor throws.
inline void keep_forever(std::exception_ptr e) {
  static std::mutex mutex;
  static auto* kept = new std::vector<std::exception_ptr>;
  std::lock_guard lock(mutex);
  kept->push_back(std::move(e));
}

//! CPU backend step: handles (or discards) at most one message for `self`, or lets go of it (released:
//! the worker must not serve it again). A handler that throws or calls ctx.trap faults only its actor:
//! the message is released and counted as interrupted and `fault` says what happened; the caller then
//! records the report where the host finds it and only then marks the actor faulted with
//! fault_actor(..., fault.code, fault.time), so whoever sees the actor faulted also finds the report.
//! Later messages are discarded until runtime::respawn.
//! `clock`: a physical_clock_ns() reading the call may take as its start (0: none, read the clock); on
//! return, the reading taken at the end of the call (0 when the step called no handler). A worker passes
//! it from one call to the next within a turn, so back-to-back calls cost one clock read each, not two
//! (a read is ~25 ns here, a fifth of a short message's whole cost); a call's time then includes the
//! pop and the next message's pick before it.
template <class H>
serve_result cpu_serve_one(const system_view& sys, actor_index self, void* state, handler_fault& fault,
                           worker_status& status_word, std::uint64_t& clock) {
  const worker_step step = next_step(sys, self);
  const std::uint64_t carried = clock;
  clock = 0;
  if (step.kind == step_kind::release) return serve_result::released;
  if (step.kind == step_kind::handle) {
    const auto& header = *reinterpret_cast<const envelope*>(step.slot);
    // Read before the call: a fault names the type delivered, not one the handler wrote into its slot.
    const std::uint32_t type = header.type_id;
    store_pcie(status_word.busy_type, type);
    // One clock read for the call's start, its HLC event time and the trace's (Unix) start time.
    const std::uint64_t begin = carried != 0 ? carried : physical_clock_ns();
    const hlc_timestamp event_time =
        sys.privates[slot_of(sys, self)].clock.observe_at(header.timestamp, begin);
    const std::uint64_t wall_begin = sys.trace.sample_every != 0 ? hlc_physical_at(begin) : 0;
    const delivery_grant grant = grant_of(step.slot);
    envelope_copy seen;
    const bool sampled = trace_sampled(sys, self, step.slot, seen);
    bool failed = true;
    try {
      try {
        run_handler<H>(sys, self, *static_cast<handler_state_t<H>*>(state), step.slot, event_time, grant);
        failed = false;
      } catch (const trap_exception& t) {
        fault = {type, t.code, "ctx.trap(" + std::to_string(t.code) + ")"};
      } catch (const std::exception& e) {
        const char* what = e.what(); // a user type's what() may return null
        fault = {type, fault_code_exception,
                 "handler threw: " + fault_reason_text(what != nullptr ? what : "(what() returned null)")};
      } catch (...) {
        fault = {type, fault_code_exception, "handler threw a non-standard exception"};
      }
    } catch (...) {
      // The handler's exception threw again from its destructor (at the end of the catch above): still
      // the handler's fault, not the runtime's. What it threw is kept, never destroyed, so that it
      // cannot throw a third time.
      keep_forever(std::current_exception());
      fault = {type, fault_code_exception, "handler threw an exception whose destructor threw"};
    }
    if (trapped_code != 0) { // ctx.trap() in this call: cleared only then, so no store per message
      const auto code = static_cast<std::uint32_t>(trapped_code - 1);
      trapped_code = 0;
      if (!failed) // the handler caught its own trap: still the fault it asked for
        fault = {type, code, "ctx.trap(" + std::to_string(code) + "), caught by the handler"};
      failed = true;
    }
    const std::uint64_t end = physical_clock_ns();
    const std::uint64_t took = end - begin;
    charge_handler_time(sys, self, took);
    if (failed) {
      drop_defer(sys, self);
      trace_call(sys, self, seen, sampled, wall_begin, took, trace_outcome::faulted);
      fault.time = event_time;
      const std::uint32_t slot = slot_of(sys, self);
      mailbox::release(step.release);
      bump_own(sys.counters[slot].interrupted);
      return serve_result::faulted;
    }
    const bool deferred = take_defer(sys, self);
    trace_call(sys, self, seen, sampled, wall_begin, took,
               deferred ? trace_outcome::deferred : trace_outcome::handled);
    if (deferred) { // kept for the next turn: no progress made
      restore_deferred(sys, step.slot, seen, grant);
      return serve_result::idle;
    }
    clock = end;
  } else if (step.kind != step_kind::discard) {
    return serve_result::idle;
  }
  finish_step(sys, self, step);
  return serve_result::worked;
}

//! Parameters of one actor kernel launch (one kernel per handler type). Dedicated workers: block i runs
//! worker_actors[i]. Scheduled workers (scheduled_loop.cuh): every block serves the run queue of `kind`.
struct actor_kernel_params {
  system_view sys;
  const actor_index* worker_actors = nullptr; //!< device memory, one per block (dedicated workers)
  void* const* states = nullptr;              //!< device memory, one handler_state_t<H>* per block
  std::uint32_t first_worker = 0;             //!< index of block 0 in sys.workers
  std::uint32_t kind = 0;                     //!< the handler type's run queue (scheduled workers)
};

#if defined(__CUDACC__)
//! How often a busy worker looks at the control words (between handler calls).
inline constexpr std::uint32_t control_poll_interval = 64;

template <class H>
__device__ void device_worker_loop(const actor_kernel_params& p) {
  __shared__ worker_step shared_step;
  __shared__ bool shared_exit;
  __shared__ hlc_timestamp shared_time;
  __shared__ delivery_grant shared_grant;
  __shared__ envelope_copy shared_seen; // the traced message as delivered (trace_sampled)

  const system_view& sys = p.sys;
  const actor_index self = p.worker_actors[blockIdx.x];
  auto* state = static_cast<handler_state_t<H>*>(p.states[blockIdx.x]);
  worker_status& status_word = sys.workers[p.first_worker + blockIdx.x];

  backoff idle(sys.device_idle_sleep_max_ns);
  // Iterations of the leader (one more after a long call): the heartbeat's value. Control words and
  // heartbeats are paced by differences, not `polls % n`: a deferring handler advanced polls twice per
  // iteration, and a modulus then never came round again (no terminate, pause or heartbeat until it stopped).
  std::uint32_t polls = 0;
  std::uint32_t last_control = 0; // polls at the last look at the control words
  std::uint32_t last_beat = 0;    // polls at the last heartbeat
  bool busy = false;
  bool paused = false;
  std::uint64_t handler_begin = 0;            // thread 0 only
  bool sampled = false;                       // thread 0 only: the call is traced (trace_sampled)
  std::uint32_t grace_seen = 0;               // thread 0 only
  std::uint32_t reported_type = 0xFFFF'FFFFu; // thread 0 only: the last busy_type written
  if (threadIdx.x == 0) grace_seen = check_in(sys, status_word);

  for (;;) {
    if (threadIdx.x == 0) {
      worker_step step{};
      shared_exit = false;
      ++polls;
      const bool check_control = !busy || polls - last_control >= control_poll_interval;
      if (check_control) last_control = polls;
      if (check_control && terminate_requested(sys)) {
        shared_exit = true;
      } else {
        if (check_control) note_quiescent(sys, status_word, grace_seen);
        if (check_control) (void)follow_pause(sys, status_word.paused, paused);
        if (!paused) step = next_step(sys, self);
        if (step.kind == step_kind::release) shared_exit = true;
      }
      const bool working = step.kind == step_kind::handle;
      if (working && !busy) store_pcie(status_word.busy_actor, self + 1);
      if (!working && busy) release_busy_actor(sys, status_word, self, 0u);
      busy = working;
      if (working) {
        const auto& header = *reinterpret_cast<const envelope*>(step.slot);
        shared_time = sys.privates[slot_of(sys, self)].clock.observe(header.timestamp);
        shared_grant = grant_of(step.slot); // before any thread of the handler can write the slot
        sampled = trace_sampled(sys, self, step.slot, shared_seen);
        if (header.type_id != reported_type) { // one PCIe write per change of type, not per message
          reported_type = header.type_id;
          store_pcie(status_word.busy_type, reported_type);
        }
      }
      if (check_control && polls - last_beat >= heartbeat_poll_interval) {
        store_pcie(status_word.heartbeat, static_cast<std::uint64_t>(polls));
        last_beat = polls;
      }
      shared_step = step;
      if (working) handler_begin = physical_clock_ns();
    }
    __syncthreads();
    if (shared_exit) break;
    // Every thread needs the kind and the slot; the rest of the step (where to release the slot) stays in
    // shared memory for the leader, out of every thread's registers.
    const worker_step& step = shared_step;
    if (step.kind == step_kind::handle) {
      run_handler<H>(sys, self, *state, step.slot, shared_time, shared_grant);
      __syncthreads(); // every thread is done with the slot before it is released
    }
    if (threadIdx.x == 0) {
      bool deferred = false;
      if (step.kind == step_kind::handle) {
        const std::uint64_t took = physical_clock_ns() - handler_begin;
        charge_handler_time(sys, self, took);
        // A long call is rare and the watchdog must see it return: report at once.
        if (took > 1'000'000) store_pcie(status_word.heartbeat, static_cast<std::uint64_t>(++polls));
        deferred = take_defer(sys, self);
        // On the device the duration clock is the HLC's (%globaltimer), so handler_begin serves both.
        trace_call(sys, self, shared_seen, sampled, handler_begin, took,
                   deferred ? trace_outcome::deferred : trace_outcome::handled);
      }
      if (deferred) {
        restore_deferred(sys, step.slot, shared_seen, shared_grant);
        idle.pause(); // kept for the next turn: back off as if idle, so room can appear downstream
      } else if (step.kind == step_kind::handle || step.kind == step_kind::discard) {
        finish_step(sys, self, step);
        idle.reset();
      } else {
        idle.pause();
      }
    }
    __syncthreads(); // shared_step / shared_time are rewritten next iteration
  }
  if (threadIdx.x == 0) check_out(status_word);
}
#endif

} // namespace rk::detail

#if defined(__CUDACC__)
namespace rk {
//! The persistent actor kernel for handler type H. Launched with one block per actor of type H (at start,
//! and again for actors spawned later); a block returns when the host sets terminate or retires its actor
//! (runtime::forget), after writing worker_status::exited. Nsight shows
//! `rk::actor_kernel<H>`.
template <class H>
__global__ void actor_kernel(detail::actor_kernel_params params) {
  detail::device_worker_loop<H>(params);
}
} // namespace rk
#endif
