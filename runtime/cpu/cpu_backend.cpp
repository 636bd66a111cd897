// CPU backend: the same device headers run on std::threads over host memory. "Device" and "mapped"
// memory are ordinary host allocations (cpu_memory.hpp); a worker thread serves several actors round-robin
// and exits once every one of them was retired; the gateway is one more thread.

#include "cpu_memory.hpp"
#include "kind_rotation.hpp"
#include "run_next_board.hpp"

#include <ringkernel/device/gateway.cuh>
#include <ringkernel/host/detail/thread_start.hpp>
#include <ringkernel/host/error.hpp>
#include <ringkernel/runtime/detail/backend.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_map>
#include <utility>

#include <unistd.h>

namespace rk::detail {
namespace {

class cpu_backend final : public backend_impl {
public:
  explicit cpu_backend(const runtime_options& options) : requested_workers_(options.cpu_workers) {}

  ~cpu_backend() override {
    // The runtime joins before destroying the backend; a thread that never stopped is detached so that
    // destruction cannot hang (the runtime leaks the memory it uses, and its done flag).
    for (auto& w : threads_)
      if (w.thread.joinable()) {
        w.thread.detach();
        (void)w.done.release();
      }
  }

  rk::backend kind() const noexcept override { return rk::backend::cpu; }

  static handler_call call_on_this_thread() noexcept {
    if (serving_backend == nullptr || serving_actor == host_actor) return {};
    return {serving_backend, serving_actor};
  }

  std::uint32_t default_scheduled_workers() const override {
    return requested_workers_ ? requested_workers_ : std::max(1u, std::thread::hardware_concurrency());
  }

  std::size_t memory_bytes() const noexcept override { return cpu_memory::physical_bytes(); }
  void* allocate_device(std::size_t bytes, bool populate) override {
    return memory_.allocate(bytes, populate);
  }
  void free_device(void* pointer) noexcept override { memory_.release(pointer); }

  mapped_allocation allocate_mapped(std::size_t bytes) override {
    void* p = allocate_device(bytes, true);
    return {p, p};
  }
  void free_mapped(const mapped_allocation& allocation) noexcept override { free_device(allocation.host); }

  void copy_to_device(void* device_destination, const void* host_source, std::size_t bytes) override {
    cpu_memory::copy_in(device_destination, host_source, bytes);
  }
  void zero_device(void* device_destination, std::size_t bytes) override {
    std::memset(device_destination, 0, bytes); // nothing reads it yet (a fresh or given-back slice)
  }
  void copy_from_device(void* host_destination, const void* device_source, std::size_t bytes) override {
    cpu_memory::copy_out(host_destination, device_source, bytes);
  }

  void preload(std::span<const actor_type_ops* const>) override {} // nothing to load on the CPU

  std::uint32_t launch(const system_view& sys, const control_block*, const worker_status*,
                       std::span<const worker_group> groups, std::uint32_t gateway_worker) override {
    sys_ = sys;
    if (sys_.sched.queues != nullptr) { // idle pool threads park (host_park.cuh)
      sys_.sched.pool_lot = &pool_lot_;
    }
    sys_.receive_lot = &receive_lot_; // egress publishes wake host threads parked in receive()
    start_thread(gateway_worker,
                 [this, gateway_worker](std::atomic<bool>& done) { gateway_loop(gateway_worker, done); });
    return start_workers(groups);
  }

  std::uint32_t launch_more(const system_view&, std::span<const worker_group> groups) override {
    return start_workers(groups);
  }

  void release_workers(std::uint32_t first_worker, std::uint32_t count) noexcept override {
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (it->worker >= first_worker && it->worker - first_worker < count) {
        if (it->thread.joinable()) it->thread.join(); // it wrote `exited`: it is returning
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::vector<std::uint32_t> scheduled_workers_of(std::uint32_t kind) const override {
    std::lock_guard lock(fault_mutex_);
    const auto it = pool_of_kind_.find(kind);
    return it == pool_of_kind_.end() ? std::vector<std::uint32_t>{} : it->second;
  }
  std::vector<actor_index> actors_of_worker(std::uint32_t worker) const override {
    std::lock_guard lock(fault_mutex_);
    const auto it = served_by_.find(worker);
    return it == served_by_.end() ? std::vector<actor_index>{} : it->second;
  }

  std::vector<contained_fault> take_contained_faults() override {
    std::lock_guard lock(fault_mutex_);
    return std::exchange(contained_, {});
  }

  std::optional<backend_fault> poll_fault() override {
    if (!faulted_.load(std::memory_order_acquire)) return std::nullopt;
    std::lock_guard lock(fault_mutex_);
    if (!fault_) // set by note_thread_failure, which cannot allocate the text
      return backend_fault{"a CPU worker thread",
                           "out of host memory while it handled a failure (its own text did not fit)",
                           {}};
    return fault_;
  }

  bool join(std::chrono::milliseconds timeout) noexcept override {
    const wait_result r = wait_until(
        [&] {
          for (const auto& w : threads_)
            if (!w.done->load(std::memory_order_acquire)) return false;
          return true;
        },
        [] { return false; }, timeout_ns(timeout));
    for (auto& w : threads_)
      if (w.done->load(std::memory_order_acquire) && w.thread.joinable()) w.thread.join();
    return r == wait_result::ready;
  }

private:
  struct worker_thread {
    std::thread thread;
    std::unique_ptr<std::atomic<bool>> done; //!< set by the thread as its last action
    std::uint32_t worker = 0;                //!< its worker_status entry
  };

  template <class Body>
  void start_thread(std::uint32_t worker, Body body) {
    auto done = std::make_unique<std::atomic<bool>>(false);
    std::atomic<bool>& flag = *done;
    // Room first: a push_back that failed after the thread existed destroyed it joinable (std::terminate).
    if (threads_.size() == threads_.capacity())
      threads_.reserve(std::max<std::size_t>(16, 2 * threads_.size()));
    try {
      threads_.push_back({std::thread([this, body = std::move(body), &flag]() mutable {
                            serving_backend = this;
                            try {
                              body(flag);
                            } catch (...) { // std::terminate otherwise
                              note_thread_failure();
                              flag.store(true, std::memory_order_release);
                            }
                          }),
                          std::move(done), worker});
    } catch (const std::system_error& e) {
      throw thread_start_error("CPU backend: a worker thread", e);
    }
  }

  //! Spreads the dedicated groups' actors over min(actors, cpu_workers or hardware threads) new threads,
  //! then starts one pool for the scheduled groups (threads: the largest group's count), each pool thread
  //! serving the run queues of every scheduled handler type.
  std::uint32_t start_workers(std::span<const worker_group> groups) {
    std::vector<served_actor> all;
    served_kinds by_kind;
    std::uint32_t pool = 0;
    for (const auto& g : groups) {
      if (g.scheduled) {
        if (by_kind.size() <= g.params.kind) by_kind.resize(g.params.kind + 1);
        by_kind[g.params.kind] = g.ops;
        pool = std::max(pool, g.workers);
        continue;
      }
      for (std::uint32_t i = 0; i < g.workers; ++i)
        all.push_back({g.ops, g.host_worker_actors[i], g.host_states[i]});
    }
    if (all.empty() && pool == 0) return 0;
    const auto actors = static_cast<std::uint32_t>(all.size());
    const std::uint32_t threads = actors == 0 ? 0 : std::min(actors, default_scheduled_workers());
    std::vector<std::vector<served_actor>> assignment(threads);
    for (std::uint32_t i = 0; i < actors; ++i) assignment[i % threads].push_back(all[i]);
    const std::uint32_t first = groups.front().params.first_worker;
    {
      std::lock_guard lock(fault_mutex_);
      for (std::uint32_t w = 0; w < threads; ++w) {
        std::vector<actor_index>& ids = served_by_[first + w];
        ids.clear();
        for (const served_actor& a : assignment[w]) ids.push_back(a.actor);
      }
      for (std::uint32_t kind = 0; kind < by_kind.size(); ++kind)
        if (by_kind[kind] != nullptr)
          for (std::uint32_t w = 0; w < pool; ++w) pool_of_kind_[kind].push_back(first + threads + w);
    }
    // All or nothing: the new threads wait at a gate before touching anything; if one cannot be
    // started, the gate tells the others to leave, and they are joined before the error propagates.
    auto gate = std::make_shared<start_gate>();
    const std::size_t before = threads_.size();
    try {
      for (std::uint32_t w = 0; w < threads; ++w)
        start_thread(first + w, [this, gate, index = first + w,
                                 work = std::move(assignment[w])](std::atomic<bool>& done) mutable {
          if (gate->wait()) worker_loop(index, std::move(work), done);
          done.store(true, std::memory_order_release);
        });
      for (std::uint32_t w = 0; w < pool; ++w) {
        run_next_slot* slot = &run_next_board_.add(&sys_);
        start_thread(first + threads + w, [this, gate, index = first + threads + w, by_kind,
                                           slot](std::atomic<bool>& done) mutable {
          if (gate->wait()) pool_loop(index, by_kind, *slot);
          done.store(true, std::memory_order_release);
        });
      }
    } catch (...) {
      gate->settle(false);
      for (std::size_t i = before; i < threads_.size(); ++i) threads_[i].thread.join();
      threads_.erase(threads_.begin() + static_cast<std::ptrdiff_t>(before), threads_.end());
      throw;
    }
    gate->settle(true);
    return threads + pool;
  }
  //! The backend whose worker the calling thread is (null: not a worker thread).
  static inline thread_local const cpu_backend* serving_backend = nullptr;
  //! The actor whose step the calling worker thread is taking (serve_guarded), else host_actor.
  static inline thread_local actor_index serving_actor = host_actor;
  //! The worker entry of the calling thread's loop (a dedicated thread's has a served_by_ list).
  static inline thread_local std::uint32_t serving_worker = ~0u;

  //! Where the threads of one start_workers call wait until all of them exist (all or nothing). They
  //! sleep: threads polling with a backoff while thousands more were created starved the creating thread
  //! (4,096 pool threads took 91 s to start on 2 cores).
  struct start_gate {
    std::mutex mutex;
    std::condition_variable settled_cv;
    bool settled = false;
    bool open = false;
    //! Blocks until settle(); whether the gate opened (false: the launch failed, leave at once).
    bool wait() {
      std::unique_lock lock(mutex);
      settled_cv.wait(lock, [this] { return settled; });
      return open;
    }
    void settle(bool opened) {
      {
        std::lock_guard lock(mutex);
        settled = true;
        open = opened;
      }
      settled_cv.notify_all();
    }
  };

  //! One step of actor `a` on this thread, with the watchdog's words around it. A handler fault is
  //! contained (listed, then the actor marked faulted); a failure of the runtime itself (e.g. out of
  //! memory) faults the whole runtime and comes back as `released`: the actor is not served again.
  //! `clock`: as for cpu_serve_one (a `released` step ends the turn, so a stale one is never reused).
  serve_result serve_guarded(std::uint32_t worker, worker_status& me, const served_actor& a,
                             std::uint64_t& polls, std::uint64_t& clock) {
    std::string failure;
    serve_result served = serve_result::idle;
    handler_fault fault;
    // Which actor this thread is serving, for the watchdog and reports (its own cache line).
    store_pcie(me.busy_actor, a.actor + 1);
    store_pcie(me.heartbeat, ++polls); // a call that never returns leaves it standing (watchdog)
    serving_actor = a.actor;
    try {
      served = a.ops->cpu_serve(sys_, a.actor, a.state, fault, me, clock);
    } catch (const std::exception& e) {
      const char* what = e.what();
      failure = what != nullptr && *what != '\0' ? what : "an exception without a message";
    } catch (...) {
      failure = "unknown exception";
    }
    serving_actor = host_actor;
    // The call's fault is recorded while this thread still shows the actor busy: respawn() waits for a
    // faulted call until its worker no longer does, so a respawn never lands between the call's end and
    // its fault (which then faulted the fresh actor: 0.6% of respawns of a call that called ctx.fault
    // and then threw, in a probe).
    if (!failure.empty()) {
      record_fault(worker, a, std::move(failure));
      served = serve_result::released;
    } else if (served == serve_result::faulted && !faulted_in_epoch(sys_, a.actor)) {
      // A call that called ctx.fault and then threw or trapped: the first fault stands, as on the device.
      {
        std::lock_guard lock(fault_mutex_); // listed before it is visible as faulted
        contained_.push_back({a.actor, fault.message_type, fault.code, fault.reason});
      }
      fault_actor(sys_, a.actor, fault.code, fault.time);
    }
    acknowledge_pcie(me.busy_actor, 0u); // release: the call's writes, and its fault, are visible at 0
    return served;
  }

  //! The global pause and quiescence, between messages. Returns whether the worker is paused.
  bool between_messages(worker_status& me, std::uint32_t& grace_seen, bool& paused) {
    note_quiescent(sys_, me, grace_seen);
    return follow_pause(sys_, me.paused, paused); // pause() then sees every state write before it
  }

  //! A paused thread (runtime::pause()) backs off, then sleeps until the host changes a control word
  //! (resume, terminate, a grace period: wake_idle_workers), with the backstop timeout: a paused runtime
  //! costs no CPU however long it stays paused.
  void wait_while_paused(backoff& idle, std::uint32_t grace_seen, bool paused) {
    if (idle.step() < park_after_steps) {
      idle.pause();
      return;
    }
    const std::uint32_t seen = park_enter(pool_lot_);
    if (!control_changed(grace_seen, &paused)) park_sleep(pool_lot_, seen, park_timeout_ns);
    park_leave(pool_lot_);
  }

  //! A dedicated-actor thread: serves its actors round-robin, one step each per pass.
  void worker_loop(std::uint32_t worker, std::vector<served_actor> work, std::atomic<bool>& done) {
    serving_worker = worker;
    worker_status& me = sys_.workers[worker];
    std::uint32_t grace_seen = check_in(sys_, me);
    backoff idle;
    std::uint64_t polls = 0;
    bool paused = false;
    while (!terminate_requested(sys_) && !work.empty()) {
      bool handled_any = false;
      if (between_messages(me, grace_seen, paused)) {
        wait_while_paused(idle, grace_seen, paused);
        store_pcie(me.heartbeat, ++polls);
        continue;
      }
      for (std::size_t i = 0; i < work.size();) {
        std::uint64_t clock = 0; // each of a dedicated worker's actors gets one message a pass
        const serve_result served = serve_guarded(worker, me, work[i], polls, clock);
        handled_any |= served == serve_result::worked || served == serve_result::faulted;
        if (served == serve_result::released) {
          work.erase(work.begin() + static_cast<std::ptrdiff_t>(i)); // never touched again
        } else {
          ++i; // a faulted actor stays: its worker discards what reaches it and serves it after respawn
        }
      }
      if (handled_any) {
        idle.reset();
      } else {
        idle.pause();
      }
      store_pcie(me.heartbeat, ++polls);
    }
    check_out(me);
    done.store(true, std::memory_order_release);
  }

  //! A scheduled-pool thread: takes ready actors from the run queues of `by_kind` (kind_rotation.hpp) and
  //! serves each for one turn (see schedule.cuh and scheduled_loop.cuh).
  void pool_loop(std::uint32_t worker, const served_kinds& by_kind, run_next_slot& run_next) {
    serving_worker = worker;
    worker_status& me = sys_.workers[worker];
    std::uint32_t grace_seen = check_in(sys_, me);
    backoff idle;
    std::uint64_t polls = 0;
    bool paused = false;
    kind_rotation next_kind;
    const std::uint32_t turn_limit = std::max(1u, sys_.sched.turn_messages);
    current_run_next = &run_next;
    std::uint32_t streak = 0;             // turns in a row taken from run_next
    std::vector<std::uint64_t> looked_at; // other slots' fills at this thread's last look (take_stranded)
    std::uint32_t rounds_since_look = 0;  // rounds of this loop, busy or idle
    std::uint64_t last_look_ns = 0;       // when this thread last looked, as far as a turn's clock tells
    std::uint64_t unproductive_turns = 0; // turns in a row that handled nothing (their actors deferred)
    std::uint64_t unproductive_pass = 0;  // actors ready when that streak began
    const auto look_out = [&] {
      rounds_since_look = 0;
      bool in_use = false;
      (void)take_stranded({}, run_next, looked_at, in_use);
    };
    while (!terminate_requested(sys_)) {
      store_pcie(me.heartbeat, ++polls);
      if (between_messages(me, grace_seen, paused)) {
        wait_while_paused(idle, grace_seen, paused);
        continue;
      }
      // Every thread looks at the others' slots now and then, busy or spinning idle (parked ones through
      // park()): while no thread parks, an actor stranded in a slot would otherwise wait until one does.
      // What it finds goes to the run queue.
      if (++rounds_since_look == look_out_rounds) look_out();
      served_actor a{nullptr, 0, nullptr};
      const std::uint64_t kept =
          run_next.held.load(std::memory_order_relaxed) == 0 ? 0 : run_next.held.exchange(0);
      const bool serve_kept = kept != 0 && serves(by_kind, run_next_kind(kept));
      if (serve_kept && streak < run_next_streak_limit) {
        a = {by_kind[run_next_kind(kept)], run_next_actor(kept), nullptr};
        ++streak;
      } else {
        streak = 0;
        a = next_kind.take(sys_, by_kind);
        if (kept != 0) {
          if (a.ops == nullptr && serve_kept) {
            // Fairness with nobody waiting: keep serving the slot's actor. Pushing it would wake a parked
            // thread (a futex call) only for this thread to pop it again, or to move a ping-pong across
            // threads.
            a = {by_kind[run_next_kind(kept)], run_next_actor(kept), nullptr};
          } else { // fairness: the slot's actor goes behind the queue's head this thread now serves
            hand_off(sys_, run_next_kind(kept), run_next_actor(kept), false);
          }
        }
      }
      if (a.ops == nullptr && idle.step() >= park_after_steps)
        a = park(by_kind, next_kind, grace_seen, paused, run_next, looked_at);
      if (a.ops == nullptr) {
        if (idle.step() < park_after_steps) {
          // Spinning idle before parking takes 128 steps, and when the CPUs are busy each yield may give
          // the core away for milliseconds (90 ms in all, measured): look by time too, so an actor
          // stranded in a slot waits about one look-out period, not until this thread parks. (A clock
          // read costs less than the step's pause hint or yield.)
          if (const std::uint64_t now = physical_clock_ns();
              now - last_look_ns >= std::uint64_t{run_next_look_out_ns}) {
            look_out();
            last_look_ns = now;
          }
          idle.pause();
        }
        continue;
      }
      a.state = sys_.routes[slot_of(sys_, a.actor)].state;
      std::uint32_t handled = 0;
      serve_result served = serve_result::worked;
      // Carried from call to call within the turn (cpu_serve_one): the first call takes the turn's start
      // as its own, so the turn's clock costs no read of its own.
      const std::uint64_t turn_begin = physical_clock_ns();
      std::uint64_t clock = turn_begin;
      bool turn_spent = false; // by count (actor_turn_messages) or by time (actor_turn_time)
      // Terminate is checked between messages: after shutdown gave up on a stuck call, the runtime may
      // have destroyed the handler tables this thread would read for the next message.
      while (!terminate_requested(sys_)) {
        served = serve_guarded(worker, me, a, polls, clock);
        if (served != serve_result::worked && served != serve_result::faulted) break;
        if (++handled == turn_limit || (clock != 0 && clock - turn_begin >= sys_.sched.turn_ns)) {
          turn_spent = true;
          break;
        }
      }
      if (served != serve_result::released) end_turn(sys_, a.actor, turn_spent);
      if (clock != 0 && clock - last_look_ns >= std::uint64_t{run_next_look_out_ns}) { // long turns: by time
        look_out();
        last_look_ns = clock;
      }
      if (handled != 0) {
        idle.reset();
        unproductive_turns = 0;
      } else {
        // A turn that made no progress (its actor deferred): the rest of its type's share of the round goes
        // to the next type, whose actors may be the ones that make room (one consumer behind thousands of
        // deferring producers got one turn per round of them: order_book's exchange crawled at 250 msg/s).
        next_kind.end_share();
        // Back off (and then sleep) only once a whole pass over the actors ready when the streak began made
        // none: before, each such turn past the 128th slept up to 50 us while the consumer that could make
        // room waited its turn. Within the pass, a pause hint only.
        if (unproductive_turns++ == 0) unproductive_pass = ready_actors(sys_, by_kind);
        if (unproductive_turns > unproductive_pass) {
          idle.pause();
        } else {
          backoff::spin_hint();
        }
      }
    }
    current_run_next = nullptr;
    check_out(me);
  }

  //! Looks at the other pool threads' run-next slots (run_next_board::take_stranded): of the actors
  //! stranded there, serves the first of a type in `by_kind` and queues the others.
  served_actor take_stranded(const served_kinds& by_kind, const run_next_slot& own,
                             std::vector<std::uint64_t>& looked_at, bool& in_use) {
    served_actor a{nullptr, 0, nullptr};
    (void)run_next_board_.take_stranded(own, looked_at, in_use, [&](std::uint64_t word) {
      if (serves(by_kind, run_next_kind(word))) {
        a = {by_kind[run_next_kind(word)], run_next_actor(word), nullptr};
        return true;
      }
      hand_off(sys_, run_next_kind(word), run_next_actor(word), false);
      return false;
    });
    return a;
  }

  //! A pool thread that stayed idle through its backoff sleeps until a push wakes it (or park_timeout_ns
  //! passes, so it still reads the control words and takes part in grace periods). See host_park.cuh.
  //! While other threads' run-next slots are in use, one idle thread (the watcher) sleeps at most
  //! run_next_look_out_ns, then looks at them again (take_stranded); a fill while nobody watches wakes
  //! one of the others (keep_on_this_thread).
  served_actor park(const served_kinds& by_kind, kind_rotation& next_kind, std::uint32_t grace_seen,
                    bool paused, const run_next_slot& own, std::vector<std::uint64_t>& looked_at) {
    bool slots_in_use = false;
    if (served_actor a = take_stranded(by_kind, own, looked_at, slots_in_use); a.ops != nullptr) return a;
    const std::uint32_t seen = park_enter(pool_lot_);
    served_actor a = next_kind.take(sys_, by_kind);
    // A control word written before `seen` was bumped is visible now (wake_idle_workers): read it first.
    if (a.ops == nullptr && !control_changed(grace_seen, &paused)) {
      // One idle thread at a time keeps the look-out: with many pool threads, every idle one waking each
      // millisecond (and scanning every slot) cost more than the conversations they watched.
      if (slots_in_use && !park_word(pool_lot_.watching).exchange(1u, cuda::std::memory_order_seq_cst)) {
        park_sleep(pool_lot_, seen, run_next_look_out_ns);
        park_word(pool_lot_.watching).store(0u, cuda::std::memory_order_seq_cst);
      } else {
        // Sleeps on the backstop timer alone when no slot is held or another thread watches them; a fill
        // with nobody watching wakes a thread counted here (keep_on_this_thread, sequentially consistent
        // against this count-then-look).
        park_word(pool_lot_.untimed).fetch_add(1u, cuda::std::memory_order_seq_cst);
        if (park_word(pool_lot_.watching).load(cuda::std::memory_order_seq_cst) != 0 ||
            !run_next_board_.any_held())
          park_sleep(pool_lot_, seen, pool_backstop_ns());
        park_word(pool_lot_.untimed).fetch_sub(1u, cuda::std::memory_order_seq_cst);
      }
    }
    park_leave(pool_lot_);
    return a;
  }

  //! The backstop of an idle pool thread: park_timeout_ns, longer for large pools (up to 16 times, from
  //! 1,024 threads on). Every wake scans every thread's run-next slot (take_stranded, any_run_next_held),
  //! so with one backstop for all, an idle pool cost O(threads^2): over one core at 4,096 threads. Pushes,
  //! control words and fills nobody watches wake threads at once; the backstop is only a safety net.
  long pool_backstop_ns() const noexcept {
    const std::uint32_t per_64 = run_next_board_.threads() / 64;
    return park_timeout_ns * static_cast<long>(std::clamp<std::uint32_t>(per_64, 1, 16));
  }

  //! Whether the host changed a control word this thread has not acted on yet (`paused`: its pause state;
  //! null for the gateway, which does not pause).
  bool control_changed(std::uint32_t grace_seen, const bool* paused) const noexcept {
    return terminate_requested(sys_) || (paused != nullptr && pause_requested(sys_) != *paused) ||
           grace_epoch_of(sys_) != grace_seen;
  }

  void wake_idle_workers() noexcept override {
    park_notify_all(pool_lot_);
    park_notify_all(gateway_lot_);
    park_notify_all(receive_lot_);
  }

  park_lot* receive_lot() noexcept override { return &receive_lot_; }
  bool on_worker_thread() const noexcept override { return serving_backend == this; }
  //! Its own actor; a dedicated actor listed for this thread's worker; or a scheduled actor (listed for
  //! no worker) when this is the only pool thread. Anything else may be served meanwhile: false.
  bool only_this_thread_serves(actor_index a) const noexcept override {
    if (serving_backend != this || serving_actor == host_actor || a == host_actor) return false;
    if (a == serving_actor) return true;
    try {
      std::lock_guard lock(fault_mutex_);
      for (const auto& [worker, ids] : served_by_)
        if (std::find(ids.begin(), ids.end(), a) != ids.end()) return worker == serving_worker;
      if (served_by_.contains(serving_worker)) return false; // a dedicated thread: the pool serves `a`
      return run_next_board_.threads() == 1;
    } catch (const std::system_error&) { // a lock that failed: say "may be served", the old behaviour
      return false;
    }
  }

  void notify_gateway() noexcept override { park_notify_one(gateway_lot_); }

  void gateway_loop(std::uint32_t worker, std::atomic<bool>& done) {
    worker_status& me = sys_.workers[worker];
    std::uint32_t grace_seen = check_in(sys_, me);
    backoff idle;
    std::uint64_t polls = 0;
    while (!terminate_requested(sys_)) {
      note_quiescent(sys_, me, grace_seen);
      if (gateway_step(sys_)) {
        idle.reset();
      } else if (idle.step() >= park_after_steps && sys_.parking.state->active_count == 0) {
        // Nothing parked to retry: sleep until the host publishes (notify_gateway) or the timeout.
        const std::uint32_t seen = park_enter(gateway_lot_);
        if (gateway_step(sys_)) {
          idle.reset();
        } else if (!control_changed(grace_seen, nullptr)) {
          park_sleep(gateway_lot_, seen, park_timeout_ns);
        }
        park_leave(gateway_lot_);
      } else {
        idle.pause();
      }
      if ((++polls & 63u) == 0) store_pcie(me.heartbeat, polls);
    }
    check_out(me);
    done.store(true, std::memory_order_release);
  }

  void record_fault(std::uint32_t worker, const served_actor& a, std::string what) {
    std::lock_guard lock(fault_mutex_);
    if (faulted_.load()) return;
    try {
      fault_ =
          backend_fault{"CPU worker " + std::to_string(worker) + " running handler '" + a.ops->name + "'",
                        std::move(what), a.actor};
    } catch (const std::bad_alloc&) {
      fault_.reset(); // poll_fault says out of memory
    }
    faulted_.store(true, std::memory_order_release);
    park_notify_all(receive_lot_); // a host thread parked in receive() reports the fault at once
  }

  //! A worker thread's body let an exception out (out of memory while it handled a failure): the whole
  //! runtime faults, as for record_fault, without allocating.
  void note_thread_failure() noexcept {
    if (!faulted_.exchange(true, std::memory_order_acq_rel)) park_notify_all(receive_lot_);
  }

  //! Backoff steps before an idle pool or gateway thread parks: 64 pause hints and 64 yields (tens of
  //! microseconds), never the backoff's timed sleeps: a thread in nanosleep is not woken by a push and
  //! would add its whole sleep plus the kernel's timer slack (~50 us) to the next message's latency.
  static constexpr std::uint32_t park_after_steps = 128;
  //! A backstop only: pushes, host publishes and control words wake parked threads at once.
  static constexpr long park_timeout_ns = 100'000'000;
  //! How long an actor may wait in a busy pool thread's run-next slot before an idle one takes it.
  static constexpr long run_next_look_out_ns = 1'000'000;
  //! How often a pool thread that does not park looks at the other slots: rounds of its loop (a turn, or
  //! a backoff step while idle; tens of microseconds at the least), or after a turn that ended
  //! run_next_look_out_ns after its last look.
  static constexpr std::uint32_t look_out_rounds = 256;

  cpu_memory memory_; //!< "device" and mapped memory
  std::uint32_t requested_workers_;
  park_lot pool_lot_;             //!< where idle pool threads park (host_park.cuh)
  park_lot gateway_lot_;          //!< where the idle gateway thread parks (notify_gateway)
  park_lot receive_lot_;          //!< where host threads wait in receive() (system_view::receive_lot)
  run_next_board run_next_board_; //!< every pool thread's run-next slot
  system_view sys_{};
  std::vector<worker_thread> threads_;
  mutable std::mutex fault_mutex_; //!< guards the fault records, served_by_ and pool_of_kind_
  std::atomic<bool> faulted_{false};
  std::optional<backend_fault> fault_;
  std::vector<contained_fault> contained_;                                //!< guarded by fault_mutex_
  std::unordered_map<std::uint32_t, std::vector<actor_index>> served_by_; //!< worker entry -> its actors
  //! Handler type -> the entries of the pool threads serving its run queue (scheduled_workers_of).
  std::unordered_map<std::uint32_t, std::vector<std::uint32_t>> pool_of_kind_;
};

} // namespace

std::unique_ptr<backend_impl> make_cpu_backend(const runtime_options& options) {
  return std::make_unique<cpu_backend>(options);
}

handler_call handler_call_on_this_thread() noexcept {
  return cpu_backend::call_on_this_thread();
}

} // namespace rk::detail
