// The audit drain: the thread that takes records off the device and host audit rings, chains them
// (make_audit_entry in audit.cpp) and hands them to the sinks; flush, overflow reports and stop.

#include <ringkernel/host/audit.hpp>
#include <ringkernel/host/detail/thread_start.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <thread>

namespace rk {

// --- the drain ---------------------------------------------------------------------------------------

namespace detail {

class audit_drain_impl {
  using clock = std::chrono::steady_clock;

public:
  audit_drain_impl(const ring_view& host_ring, audit_drain::counter_reader read_overflow,
                   std::vector<std::shared_ptr<audit_sink>> sinks, audit_drain_options options)
      : ring_view_(host_ring), ring_(host_ring), read_overflow_(std::move(read_overflow)),
        sinks_(std::move(sinks)), options_(std::move(options)) {
    if (host_ring.seq == nullptr || host_ring.slots == nullptr || host_ring.head == nullptr)
      throw error("audit_drain: the ring view has null seq, slots or head; pass the host view of the "
                  "audit ring (make_ring_view over its host address)");
    if (const char* problem = host_ring.geometry().validate())
      throw error(std::string("audit_drain: invalid audit ring: ") + problem);
    if (host_ring.slot_bytes < envelope_bytes + audit_record_bytes)
      throw error("audit_drain: ring slots of " + std::to_string(host_ring.slot_bytes) +
                  " bytes cannot hold an audit record; create the ring with rk::audit_ring_geometry()");
    if (!read_overflow_)
      throw error("audit_drain: read_overflow is empty; pass a function that returns the ring's overflow "
                  "counter (records lost are reported from it)");
    for (const auto& s : sinks_)
      if (!s) throw error("audit_drain: a sink is null");
    if (options_.overflow_check_interval.count() <= 0)
      throw error("audit_drain: overflow_check_interval must be positive");
    stats_.head = std::string(audit_genesis_hash);
    head_ = stats_.head;
    // Single consumer: the head is ours; start where a previous consumer (if any) left it.
    consumed_ =
        cuda::atomic_ref<std::uint64_t, pcie_scope>(*ring_view_.head).load(cuda::std::memory_order_relaxed);
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
      throw thread_start_error("audit_drain: the drain thread", e);
    }
  }

  ~audit_drain_impl() { stop(); }

  status record_host(const audit_record& record) {
    audit_record r = record;
    r.origin = audit_origin::host;
    std::lock_guard lock(queue_mutex_);
    if (!accepting_) return status::not_running;
    if (r.time.physical_ns == 0) r.time = clock_now();
    try {
      host_queue_.push_back(r);
    } catch (const std::bad_alloc&) {
      // Out of memory: lost like a record the full ring refused, and reported the same way (an
      // audit_overflow entry counts it), never silently.
      host_records_lost_.fetch_add(1, std::memory_order_relaxed);
      return status::queue_full;
    }
    return status::enqueued;
  }

  wait_result flush(std::chrono::nanoseconds timeout) {
    if (on_drain_thread()) return wait_result::aborted; // from a sink: waiting for ourselves would deadlock
    // Cap the wait so that now + timeout cannot overflow (wait_forever-like values).
    const auto deadline =
        clock::now() + std::min<std::chrono::nanoseconds>(timeout, std::chrono::hours(24 * 365));
    std::unique_lock lock(control_mutex_);
    if (thread_exited_) return wait_result::aborted;
    const std::uint64_t ticket = ++flush_requested_;
    if (!flush_deadline_ || *flush_deadline_ < deadline) flush_deadline_ = deadline;
    flush_pending_.store(true, std::memory_order_release);
    const bool done =
        control_cv_.wait_until(lock, deadline, [&] { return flush_done_ >= ticket || thread_exited_; });
    if (!done) return wait_result::timed_out;
    if (flush_done_ < ticket) return wait_result::aborted; // the thread exited without serving it
    return flush_outcome_;
  }

  void note_producers_running() noexcept { producers_outlive_stop_.store(true, std::memory_order_release); }

  audit_drain_stats stop() noexcept {
    {
      std::lock_guard lock(queue_mutex_);
      accepting_ = false;
    }
    stop_requested_.store(true, std::memory_order_release);
    if (!on_drain_thread()) { // from a sink the thread stops itself; a later call joins
      try {
        std::lock_guard lifecycle(lifecycle_mutex_);
        if (thread_.joinable()) thread_.join();
      } catch (const std::system_error& e) {
        note_failure(&audit_drain_stats::sink_failures, "joining the drain thread failed: ", e.what());
      }
    }
    try {
      return stats();
    } catch (const std::bad_alloc&) {
      return counts();
    }
  }

  audit_drain_stats stats() const {
    std::lock_guard lock(stats_mutex_);
    return stats_;
  }

  //! stats() without last_failure and head, for when copying them ran out of memory.
  audit_drain_stats counts() const noexcept {
    std::lock_guard lock(stats_mutex_);
    audit_drain_stats s;
    s.entries = stats_.entries;
    s.device_records = stats_.device_records;
    s.host_records = stats_.host_records;
    s.overflow_reports = stats_.overflow_reports;
    s.records_lost = stats_.records_lost;
    s.malformed = stats_.malformed;
    s.sink_failures = stats_.sink_failures;
    s.reader_failures = stats_.reader_failures;
    s.closed = stats_.closed;
    s.complete = stats_.complete;
    return s;
  }

private:
  bool on_drain_thread() const noexcept {
    return std::this_thread::get_id() == drain_thread_id_.load(std::memory_order_acquire);
  }

  hlc_timestamp clock_now() {
    std::lock_guard lock(clock_mutex_);
    return clock_.now();
  }
  void clock_observe(const hlc_timestamp& t) {
    std::lock_guard lock(clock_mutex_);
    clock_.observe(t);
  }

  //! Counts a failure and keeps its message, `prefix` + `detail`. Never throws: out of memory, the count
  //! stands and the message is the one before.
  void note_failure(std::uint64_t audit_drain_stats::*counter, const char* prefix,
                    const char* detail = "") noexcept {
    std::lock_guard lock(stats_mutex_);
    ++(stats_.*counter);
    try {
      stats_.last_failure = std::string(prefix) + (detail != nullptr ? detail : "");
    } catch (...) {
    }
  }

  // --- drain thread only below ---

  void run() noexcept {
    drain_thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
    backoff idle(options_.idle_sleep_max_ns);
    // Capped so that now + interval cannot overflow.
    const auto interval =
        std::min<std::chrono::nanoseconds>(options_.overflow_check_interval, std::chrono::hours(24 * 365));
    auto next_overflow_check = clock::now() + interval;
    bool dirty = false; // entries written since the sinks were last flushed
    for (;;) {
      try {
        std::uint64_t done = take_ring(ring_view_.capacity);
        done += take_host_queue();
        if (clock::now() >= next_overflow_check) {
          done += check_overflow();
          next_overflow_check = clock::now() + interval;
        }
        if (flush_pending_.load(std::memory_order_acquire)) {
          serve_flush();
          dirty = false;
          continue;
        }
        if (stop_requested_.load(std::memory_order_acquire)) break;
        if (done != 0) {
          dirty = true;
          idle.reset();
          continue;
        }
        if (dirty) { // ran out of work: make what was written visible
          flush_sinks();
          dirty = false;
        }
        idle.pause();
      } catch (const std::bad_alloc&) {
        // Out of host memory (a batch, a sink's buffer): what was not taken stays queued for the next
        // round; counted, and retried after a pause unless stopping.
        note_failure(&audit_drain_stats::sink_failures, "the audit drain ran out of host memory");
        {
          // A flush it was serving is served again next round (its caller would wait its whole timeout).
          std::lock_guard lock(control_mutex_);
          if (flush_done_ < flush_requested_) flush_pending_.store(true, std::memory_order_release);
        }
        if (stop_requested_.load(std::memory_order_acquire)) break;
        idle.pause();
      }
    }
    finish();
  }

  //! Takes up to `limit` published records, in ring order. Returns how many.
  std::uint64_t take_ring(std::uint64_t limit) {
    std::uint64_t taken = 0;
    while (taken < limit) {
      const std::byte* slot = ring_.try_peek();
      if (slot == nullptr) break;
      envelope header;
      std::memcpy(&header, slot, sizeof(header));
      audit_record r;
      if (header.type_id == audit_envelope_type && header.payload_length == audit_record_bytes) {
        std::memcpy(&r, slot + envelope_bytes, sizeof(r));
        ring_.pop();
        ++consumed_;
        clock_observe(r.time);
        append(r, &audit_drain_stats::device_records);
      } else {
        ring_.pop();
        ++consumed_;
        r.event = audit_event::audit_malformed;
        r.level = audit_level::critical;
        r.origin = audit_origin::drain;
        r.time = clock_now();
        r.tenant = header.tenant;
        r.actor = header.source;
        r.detail = header.type_id;
        r.value = header.payload_length;
        append(r, &audit_drain_stats::malformed);
      }
      ++taken;
    }
    return taken;
  }

  std::uint64_t take_host_queue() {
    std::deque<audit_record> batch;
    {
      std::lock_guard lock(queue_mutex_);
      batch.swap(host_queue_);
    }
    for (const audit_record& r : batch) append(r, &audit_drain_stats::host_records);
    return batch.size();
  }

  //! Reads the overflow counter; chains an audit_overflow entry if it grew. Returns entries written.
  std::uint64_t check_overflow() {
    std::uint64_t total = 0;
    try {
      total = read_overflow_() + host_records_lost_.load(std::memory_order_relaxed);
    } catch (const std::exception& e) {
      note_failure(&audit_drain_stats::reader_failures, "read_overflow threw: ", e.what());
      return 0;
    } catch (...) {
      note_failure(&audit_drain_stats::reader_failures, "read_overflow threw a non-standard exception");
      return 0;
    }
    if (total < overflow_reported_) {
      const std::string message = "the overflow counter went backwards (" +
                                  std::to_string(overflow_reported_) + " -> " + std::to_string(total) +
                                  "); it must only grow";
      note_failure(&audit_drain_stats::reader_failures, message.c_str());
      return 0;
    }
    if (total == overflow_reported_) return 0;
    audit_record r;
    r.event = audit_event::audit_overflow;
    r.level = audit_level::error;
    r.origin = audit_origin::drain;
    r.time = clock_now();
    r.detail = static_cast<std::uint32_t>(status::queue_full);
    r.value = total - overflow_reported_;
    overflow_reported_ = total;
    append(r, &audit_drain_stats::overflow_reports);
    {
      std::lock_guard lock(stats_mutex_);
      stats_.records_lost += r.value;
    }
    return 1;
  }

  //! Reads the claim counter, or nullopt without a reader (or when it throws).
  std::optional<std::uint64_t> claimed() {
    if (!options_.read_claimed) return std::nullopt;
    try {
      return options_.read_claimed();
    } catch (const std::exception& e) {
      note_failure(&audit_drain_stats::reader_failures, "read_claimed threw: ", e.what());
    } catch (...) {
      note_failure(&audit_drain_stats::reader_failures, "read_claimed threw a non-standard exception");
    }
    return std::nullopt;
  }

  //! Takes everything published, then (with read_claimed) waits until everything claimed at the start
  //! was taken, or `deadline`. Then host records and the overflow counter. True if nothing was left.
  bool drain_everything(clock::time_point deadline) {
    const std::optional<std::uint64_t> target = claimed();
    // At most `capacity` records were in the ring when the request came, and only we consume: taking
    // that many (or until empty) takes all of them, even if producers keep publishing.
    take_ring(ring_view_.capacity);
    bool complete = true;
    if (target && consumed_ < *target) {
      backoff wait(options_.idle_sleep_max_ns);
      while (consumed_ < *target) {
        if (take_ring(*target - consumed_) != 0) {
          wait.reset();
          continue;
        }
        if (clock::now() >= deadline) {
          complete = false;
          break;
        }
        wait.pause();
      }
    }
    take_host_queue();
    check_overflow();
    return complete;
  }

  void serve_flush() {
    std::uint64_t ticket = 0;
    clock::time_point deadline;
    {
      std::lock_guard lock(control_mutex_);
      ticket = flush_requested_;
      deadline = flush_deadline_.value_or(clock::now());
      flush_deadline_.reset();
      flush_pending_.store(false, std::memory_order_relaxed);
    }
    const bool complete = drain_everything(deadline);
    flush_sinks();
    if (!complete) {
      std::lock_guard lock(stats_mutex_);
      stats_.complete = false;
    }
    {
      std::lock_guard lock(control_mutex_);
      flush_done_ = ticket;
      flush_outcome_ = complete ? wait_result::ready : wait_result::timed_out;
    }
    control_cv_.notify_all();
  }

  void finish() noexcept {
    // Capped like flush(): now + milliseconds::max() would overflow; a negative timeout means no wait.
    bool complete = false;
    try {
      complete = drain_everything(clock::now() + std::clamp<std::chrono::nanoseconds>(
                                                     options_.stop_timeout, std::chrono::nanoseconds::zero(),
                                                     std::chrono::hours(24 * 365)));
    } catch (const std::bad_alloc&) { // out of host memory: the log is closed incomplete
      note_failure(&audit_drain_stats::sink_failures, "the audit drain ran out of host memory at stop");
    }
    audit_record closing;
    closing.event = audit_event::audit_closed;
    closing.level = audit_level::info;
    closing.origin = audit_origin::drain;
    closing.time = clock_now();
    closing.value = next_sequence_;
    const bool producers_running = producers_outlive_stop_.load(std::memory_order_acquire);
    closing.detail = producers_running ? audit_closed_producers_running : 0;
    append(closing, nullptr);
    flush_sinks();
    {
      std::lock_guard lock(stats_mutex_);
      stats_.closed = true;
      if (!complete || producers_running) stats_.complete = false;
    }
    {
      std::lock_guard lock(control_mutex_);
      thread_exited_ = true;
    }
    control_cv_.notify_all();
  }

  //! Numbers and chains `r`, then writes the entry to every sink. `counter` (if any) is the statistic
  //! that counts this kind of record.
  void append(const audit_record& r, std::uint64_t audit_drain_stats::*counter) noexcept {
    audit_entry entry;
    try {
      entry = make_audit_entry(next_sequence_, r, head_, options_.key);
    } catch (const std::exception& e) {
      // libcrypto failed or memory ran out: the record cannot be chained. Say so; nothing else can be done.
      note_failure(&audit_drain_stats::sink_failures, "chaining failed: ", e.what());
      return;
    }
    for (const auto& sink : sinks_) {
      try {
        sink->write(entry);
      } catch (const std::exception& e) {
        note_failure(&audit_drain_stats::sink_failures, "sink write failed: ", e.what());
      } catch (...) {
        note_failure(&audit_drain_stats::sink_failures, "sink write threw a non-standard exception");
      }
    }
    ++next_sequence_;
    head_ = std::move(entry.hash);
    std::lock_guard lock(stats_mutex_);
    ++stats_.entries;
    if (counter != nullptr) ++(stats_.*counter);
    try {
      stats_.head = head_;
    } catch (const std::bad_alloc&) {
      stats_.head.clear(); // out of memory: stats() shows no head rather than an old one
    }
  }

  void flush_sinks() noexcept {
    for (const auto& sink : sinks_) {
      try {
        sink->flush();
      } catch (const std::exception& e) {
        note_failure(&audit_drain_stats::sink_failures, "sink flush failed: ", e.what());
      } catch (...) {
        note_failure(&audit_drain_stats::sink_failures, "sink flush threw a non-standard exception");
      }
    }
  }

  // Immutable after construction.
  const ring_view ring_view_;
  const audit_ring ring_;
  const audit_drain::counter_reader read_overflow_;
  const std::vector<std::shared_ptr<audit_sink>> sinks_;
  const audit_drain_options options_;

  // Drain thread only.
  std::uint64_t consumed_ = 0;          //!< ring positions taken (the ring's head)
  std::uint64_t next_sequence_ = 0;     //!< sequence number of the next entry
  std::string head_;                    //!< hash of the newest entry
  std::uint64_t overflow_reported_ = 0; //!< overflow counter value covered by audit_overflow entries

  // HLC for host and synthetic records. Writers: record_host callers and the drain thread, under the mutex.
  std::mutex clock_mutex_;
  hlc_clock clock_;

  // Host records waiting to be chained. Writers: record_host callers; reader: the drain thread.
  std::mutex queue_mutex_;
  std::deque<audit_record> host_queue_;
  std::atomic<std::uint64_t> host_records_lost_{0}; //!< record_host calls out of memory; reported as overflow
  bool accepting_ = true;                           //!< cleared by stop(); guarded by queue_mutex_

  // Requests to the drain thread. Writers: flush()/stop() callers; reader: the drain thread.
  std::atomic<bool> flush_pending_{false}; //!< a flush ticket waits; polled without the mutex
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> producers_outlive_stop_{false}; //!< note_producers_running(): the log ends incomplete
  std::mutex control_mutex_;                        //!< guards the fields below
  std::condition_variable control_cv_;
  std::uint64_t flush_requested_ = 0; //!< last ticket handed out
  std::uint64_t flush_done_ = 0;      //!< last ticket served (writer: the drain thread)
  wait_result flush_outcome_ = wait_result::ready;
  std::optional<clock::time_point> flush_deadline_; //!< latest deadline among waiting tickets
  bool thread_exited_ = false;                      //!< writer: the drain thread, as it exits

  mutable std::mutex stats_mutex_;
  audit_drain_stats stats_; //!< writer: the drain thread (and note_failure); readers: stats()

  std::mutex lifecycle_mutex_; //!< serialises stop() callers around the join
  std::thread thread_;
  //! Writer: the drain thread, first thing; readers: flush()/stop() callers, to refuse calls from a sink.
  std::atomic<std::thread::id> drain_thread_id_{};
};

} // namespace detail

audit_drain::audit_drain(const ring_view& host_ring, counter_reader read_overflow,
                         std::vector<std::shared_ptr<audit_sink>> sinks, audit_drain_options options)
    : impl_(std::make_unique<detail::audit_drain_impl>(host_ring, std::move(read_overflow), std::move(sinks),
                                                       std::move(options))) {}

audit_drain::~audit_drain() {
  if (impl_) impl_->stop();
}

status audit_drain::record_host(const audit_record& record) {
  return impl_->record_host(record);
}
wait_result audit_drain::flush(std::chrono::nanoseconds timeout) {
  return impl_->flush(timeout);
}
void audit_drain::note_producers_running() noexcept {
  impl_->note_producers_running();
}
audit_drain_stats audit_drain::stop() noexcept {
  return impl_->stop();
}
audit_drain_stats audit_drain::stats() const {
  return impl_->stats();
}

} // namespace rk
