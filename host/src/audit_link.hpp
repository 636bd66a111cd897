#pragma once
// The runtime's end of the audit log: the device audit ring and the host drain that hash-chains every
// record into the in-memory sink (runtime::audit_records) and the user's sinks.
//
// Owns: the audit ring (mapped), its claim and overflow counters (device memory), the drain thread and
// the memory sink. Device code reaches the ring through sys.audit; host facilities report through
// record(). Called from any thread; the drain is internally locked. The drain stops in stop() (shutdown)
// or in the destructor, before the ring it reads is freed.

#include "memory.hpp"

#include <ringkernel/host/audit.hpp>

#include <memory>
#include <vector>

namespace rk::detail {

class audit_link {
public:
  audit_link(memory_pool& memory, backend_impl& backend, const runtime_options& options);
  ~audit_link() { stop(); }
  audit_link(const audit_link&) = delete;
  audit_link& operator=(const audit_link&) = delete;

  void describe(system_view& sys) const { sys.audit = channel_; }

  //! A host-side record (spawn, stop, forget, faults the host detects); the drain stamps its time.
  //! Dropped silently once the drain stopped.
  void record(audit_event event, audit_level level, actor_index actor, std::uint64_t tenant,
              std::uint32_t detail = 0, std::uint64_t value = 0) noexcept;
  std::vector<audit_entry> records() const { return memory_sink_->entries(); }
  wait_result flush(std::chrono::nanoseconds timeout) { return drain_->flush(timeout); }
  audit_drain_stats stats() const { return drain_->stats(); }
  //! Every record emitted so far reaches the sinks, then the drain ends. Idempotent.
  void stop() noexcept;
  //! Before stop(), when workers outlive it: the closing entry says the log may miss their records.
  void note_workers_running() noexcept;

private:
  std::uint64_t read_device_u64(const std::uint64_t* word) const;

  backend_impl& backend_;
  device_to_host_ring ring_; //!< overflow: its refused count
  audit_channel channel_{};
  std::shared_ptr<audit_memory_sink> memory_sink_;
  std::unique_ptr<audit_drain> drain_; //!< last member: stopped before the memory it reads goes
};

} // namespace rk::detail
