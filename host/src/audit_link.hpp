#pragma once
// The runtime's end of the audit log: the device audit ring and the host drain that hash-chains every
// record into the in-memory sink (runtime::audit_records) and the user's sinks.
//
// Owns: the audit ring (mapped), its claim and overflow counters (device memory), the drain thread and
// the memory sink. Device code reaches the ring through sys.audit; host facilities report through
// record(). Called from any thread; the drain is internally locked. The drain stops in stop() (shutdown)
// or in the destructor, before the ring it reads is freed.
//
// Also keeps who each current actor acts for (its tenant and audit tag, as spawned), so every host record
// about an actor carries the same tenant and tag as the records device code writes for it (docs/audit.md:
// `tag` is the acting actor's tag), whichever facility writes it (spawn, respawn, stop, forget, the
// watchdog, the fault monitor). Kept as runs of consecutive ids: spawn_many of a million actors is a few
// entries. One mutex guards them; it is never held while calling the drain or another facility.

#include "memory.hpp"

#include <ringkernel/host/audit.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace rk::detail {

class audit_link {
public:
  //! `runtime_id` marks the application's sinks' calls as that runtime's callbacks (service_thread.hpp).
  audit_link(memory_pool& memory, backend_impl& backend, const runtime_options& options,
             const void* runtime_id);
  ~audit_link() { stop(); }
  audit_link(const audit_link&) = delete;
  audit_link& operator=(const audit_link&) = delete;

  void describe(system_view& sys) const { sys.audit = channel_; }

  //! A host-side record (stop, respawn, faults the host detects, cluster events); the drain stamps its
  //! time. When `actor` is a current actor of this runtime (record_spawned, not yet forgotten) the record
  //! carries that actor's tenant and audit tag, whatever `tenant` says; `tenant` is used for anything
  //! else (the host, remote entries, an id forgotten meanwhile). Dropped once the drain stopped: only
  //! after shutdown, whose audit_closed entry ended the log.
  void record(audit_event event, audit_level level, actor_index actor, std::uint64_t tenant,
              std::uint32_t detail = 0, std::uint64_t value = 0) noexcept;
  //! A committed spawn: `ids` (any order) act for `tenant` under `tag` from now on, and the log gets
  //! actor_spawn records (value: `kind`, the handler type's index): with `one_record_each`, one per
  //! actor (detail 0); otherwise (spawn_many) one per run of consecutive ids: `actor` the run's first id
  //! and detail the run's length, written 0 for a run of one (detail 1 means a respawn). Throws
  //! std::bad_alloc only, before anything is kept or recorded (a spawn calls it before it commits).
  void record_spawned(std::span<const actor_index> ids, std::uint64_t tenant, const audit_tag& tag,
                      std::uint32_t kind, bool one_record_each);
  //! An actor restore() made: its id, tenant and handler type's index.
  struct restored_actor {
    actor_index id = 0;
    std::uint64_t tenant = 0;
    std::uint32_t kind = 0;
  };
  //! A committed restore: each actor acts for its tenant (no tag: a snapshot does not keep it) and gets
  //! one actor_spawn record (detail 0, value its kind). Throws std::bad_alloc only, before anything is
  //! kept or recorded (restore() calls it before it commits): all of them are recorded, or none.
  void record_restored(std::span<const restored_actor> actors);
  //! runtime::forget(a): the actor_stop record (detail 1) with its tenant and tag, then `a` acts for
  //! nobody any more (its id may come back, with another generation, for another actor).
  void record_forgotten(actor_index a, std::uint64_t tenant) noexcept;
  std::vector<audit_entry> records() const { return memory_sink_->entries(); }
  wait_result flush(std::chrono::nanoseconds timeout) { return drain_->flush(timeout); }
  audit_drain_stats stats() const { return drain_->stats(); }
  //! Every record emitted so far reaches the sinks, then the drain ends. Idempotent.
  void stop() noexcept;
  //! Before stop(), when workers outlive it: the closing entry says the log may miss their records.
  void note_workers_running() noexcept;

private:
  //! Who a run of consecutive actor ids [first, first + count) acts for.
  struct identity_run {
    std::uint32_t count = 0;
    std::uint64_t tenant = 0;
    audit_tag tag{};
  };
  std::uint64_t read_device_u64(const std::uint64_t* word) const;
  void record_as(audit_record r) noexcept; //!< fills in the actor's tenant and tag when it is known
  //! The run holding `a`, or end() (needs identities_mutex_).
  std::map<actor_index, identity_run>::iterator run_of(actor_index a);

  backend_impl& backend_;
  device_to_host_ring ring_; //!< overflow: its refused count
  audit_channel channel_{};
  std::shared_ptr<audit_memory_sink> memory_sink_;
  std::mutex identities_mutex_;                    //!< guards identities_
  std::map<actor_index, identity_run> identities_; //!< by first id; runs never overlap
  std::unique_ptr<audit_drain> drain_;             //!< last member: stopped before the memory it reads goes
};

} // namespace rk::detail
