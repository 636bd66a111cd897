#pragma once
// The runtime's end of the sampled message trace (see <ringkernel/host/trace.hpp>): the device trace ring
// and the collector thread that empties it into a bounded host buffer.
//
// Owns: the trace ring (mapped), its claim and ring-full counters (device memory), the collector thread
// and the kept records. Nothing is allocated and no thread runs unless trace.sample_every > 0. Device
// code reaches the ring through sys.trace. Called from any thread; one mutex guards the ring's consumer
// side and the buffer. stop() (shutdown, or the destructor) takes what is left, then the collector ends;
// the records stay readable until the runtime is destroyed. When shutdown could not stop every worker,
// the ring stays in use (the runtime leaks its memory rather than free it under a worker): records(),
// stats() take what those workers publish later, and trace_stats::complete says the trace may miss calls.

#include "memory.hpp"

#include <ringkernel/host/options.hpp>
#include <ringkernel/host/trace.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace rk::detail {

class trace_link {
public:
  trace_link(memory_pool& memory, backend_impl& backend, const runtime_options& options);
  ~trace_link() { stop(); }
  trace_link(const trace_link&) = delete;
  trace_link& operator=(const trace_link&) = delete;

  void describe(system_view& sys) const { sys.trace = channel_; }
  //! Takes what the ring holds now, then returns every kept record (oldest first).
  std::vector<trace_record> records();
  trace_stats stats();
  //! Both from one collection, so that stats.kept == records.size().
  std::pair<std::vector<trace_record>, trace_stats> records_and_stats();
  //! Shutdown: takes what the ring holds and ends the collector. Idempotent. `workers_stopped` false
  //! (a worker outlived runtime_options::stop_timeout): the ring keeps being read by records() and
  //! stats(), as workers may still publish, and the stats say the trace is not complete.
  void stop(bool workers_stopped = true) noexcept;

private:
  void run();
  //! Under mutex_: moves every published record from the ring into kept_, refreshes ring_full_.
  void collect_locked() noexcept;
  trace_stats stats_locked() const noexcept;

  backend_impl& backend_;
  trace_options options_;
  device_to_host_ring ring_; //!< ring_full: its refused count
  trace_channel channel_{};

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool stopped_ = false;          //!< the ring is no longer read
  bool workers_outlived_ = false; //!< stop() was told a worker still ran: trace_stats::complete false
  std::deque<trace_record> kept_;
  std::uint64_t collected_ = 0;
  std::uint64_t evicted_ = 0;
  std::uint64_t ring_full_ = 0;
  std::thread collector_; //!< last: started once everything above exists
};

} // namespace rk::detail
