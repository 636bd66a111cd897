// The runtime's end of the sampled message trace (see trace_link.hpp).

#include "trace_link.hpp"

#include <ringkernel/host/detail/thread_start.hpp>
#include <ringkernel/host/error.hpp>

#include <new>
#include <string>
#include <system_error>

namespace rk::detail {

trace_link::trace_link(memory_pool& memory, backend_impl& backend, const runtime_options& options)
    : backend_(backend), options_(options.trace) {
  if (options_.sample_every == 0) return;
  // validated with the options
  ring_ = allocate_device_to_host_ring(memory, trace_ring_geometry(options_.ring_slots),
                                       "the trace ring (runtime_options::trace.ring_slots)");
  channel_.ring = ring_.device_view;
  channel_.ring_full = ring_.refused;
  channel_.sample_every = options_.sample_every;
  try {
    collector_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    throw thread_start_error(
        "runtime: the trace collector thread (runtime_options::trace.sample_every is not 0; "
        "set it to 0 to run without tracing)",
        e);
  }
}

void trace_link::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    collect_locked();
    // A periodic poll with a stop flag, not a synchronisation: records wait in the ring until then.
    wake_.wait_for(lock, options_.collect_interval, [this] { return stopping_; });
  }
}

void trace_link::collect_locked() noexcept {
  if (stopped_ || ring_.host_view.slots == nullptr) return;
  const trace_ring ring(ring_.host_view);
  while (const std::byte* slot = ring.try_peek()) {
    const trace_record r = load_words<trace_record>(slot);
    if (r.call.marker == trace_marker) {
      ++collected_;
      try {
        kept_.push_back(r);
      } catch (const std::bad_alloc&) { // no host memory to keep it: dropped, and counted so
        ++evicted_;
        ring.pop();
        continue;
      }
      if (kept_.size() > options_.max_records) {
        kept_.pop_front();
        ++evicted_;
      }
    }
    ring.pop();
  }
  try {
    std::uint64_t full = 0;
    backend_.copy_from_device(&full, channel_.ring_full, sizeof full);
    ring_full_ = full;
  } catch (...) {
    // A faulted device cannot be read: keep the last count (stats() stays what it was).
  }
}

std::vector<trace_record> trace_link::records() {
  std::lock_guard lock(mutex_);
  collect_locked();
  return {kept_.begin(), kept_.end()};
}

trace_stats trace_link::stats() {
  std::lock_guard lock(mutex_);
  collect_locked();
  return stats_locked();
}

trace_stats trace_link::stats_locked() const noexcept {
  return {options_.sample_every, collected_, ring_full_, evicted_, kept_.size(), !workers_outlived_};
}

std::pair<std::vector<trace_record>, trace_stats> trace_link::records_and_stats() {
  std::lock_guard lock(mutex_);
  collect_locked();
  return {{kept_.begin(), kept_.end()}, stats_locked()};
}

void trace_link::stop(bool workers_stopped) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    collect_locked();
    // A worker still running may publish a sampled call later: the ring stays readable (its memory is
    // leaked with the runtime's, never freed under the worker), so records() and stats() collect it,
    // and complete says that calls still running when the application last looked are in no count.
    if (workers_stopped)
      stopped_ = true;
    else
      workers_outlived_ = ring_.host_view.slots != nullptr;
  }
  wake_.notify_all();
  if (collector_.joinable()) collector_.join();
}

} // namespace rk::detail
