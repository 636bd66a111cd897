#pragma once
// The rk-top publisher (runtime_options::publish_stats; the shared-memory contract is
// <ringkernel/host/stats_shm.hpp>): one thread that about ten times a second takes a metrics reading and
// writes a compact JSON snapshot (per handler type with rates, per tenant, the busiest and deepest actors,
// stuck actors, audit losses) into a POSIX shared-memory object under a seqlock.
// Owned by the coordinator: started by start(), stopped (after a last snapshot) by shutdown(), the object
// removed on destruction. Reads only through the callbacks it is given; takes no facility lock itself.

#include "metrics.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rk::detail {

class stats_publisher {
public:
  struct sources {
    std::function<metrics_reading()> read;
    std::function<std::vector<std::string>()> stuck; //!< actors the watchdog reports stuck now
  };
  //! Creates the shared-memory object (the next free index for this process) and starts the thread.
  //! Throws rk::error when the object or the thread cannot be created.
  stats_publisher(sources from, std::chrono::milliseconds interval);
  ~stats_publisher(); //!< stops, then removes the object
  stats_publisher(const stats_publisher&) = delete;
  stats_publisher& operator=(const stats_publisher&) = delete;

  //! Stops the thread after one last snapshot; the object stays readable. Idempotent.
  void stop() noexcept;
  const std::string& name() const noexcept { return name_; }

private:
  void run();
  void publish() noexcept;
  //! Writes the header and, unless null, `text` as the next snapshot under the seqlock. An object another
  //! process truncated meanwhile (a SIGBUS, caught) gets its size back and is written again. False when
  //! that failed too.
  bool write_snapshot(const std::string* text) noexcept;
  std::string snapshot_json();

  sources from_;
  std::chrono::milliseconds interval_;
  std::string name_;
  void* mapping_ = nullptr;
  std::size_t mapped_bytes_ = 0;
  int lock_fd_ = -1; //!< the object, held open with a shared flock while it exists (see rk-top --clean)
  std::uint32_t pid_ = 0;
  std::uint64_t sequence_ = 0; //!< the seqlock word as last completed (the object's copy may be zeroed)
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;
  // The previous reading's counters, for rates: handled per handler type and per actor id.
  std::chrono::steady_clock::time_point previous_at_{};
  std::map<std::string, std::uint64_t> previous_by_handler_;
  std::map<actor_index, std::uint64_t> previous_by_actor_;
};

} // namespace rk::detail
