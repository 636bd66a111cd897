#pragma once
//! \file
//! The host side of the audit log: hash-chained entries, sinks, the drain thread that empties the audit
//! ring into them, and the verifier for JSON-lines logs. The record format and the device-side writer are
//! in <ringkernel/device/audit.cuh>; the log format and the chain are specified in docs/audit.md.
//!
//! Data flow: device code -> rk::emit_audit -> audit ring (pinned, mapped) -> rk::audit_drain (one host
//! thread: takes records, numbers them, hash-chains them with SHA-256) -> every sink (memory, JSON-lines
//! file, callback). The host runtime's own events enter the same chain through audit_drain::record_host.

#include <ringkernel/device/audit.cuh>
#include <ringkernel/device/backoff.cuh>
#include <ringkernel/host/error.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rk {

namespace detail {
class audit_drain_impl;
} // namespace detail

// --- the chain ---------------------------------------------------------------------------------------

//! `prev` of the first entry of every log: 64 '0' characters.
//! `detail` of an audit_closed entry written while the ring's producers were still running (the
//! runtime's workers did not stop at shutdown): records they made later are not in the log.
inline constexpr std::uint32_t audit_closed_producers_running = 1;

inline constexpr std::string_view audit_genesis_hash =
    "0000000000000000000000000000000000000000000000000000000000000000";

//! One record as it appears in the log: numbered, chained, and rendered as one JSON line.
struct audit_entry {
  std::uint64_t sequence = 0; //!< 0 for the first entry of a log, then +1 per entry
  audit_record record{};
  std::string prev; //!< lower-case hex SHA-256 of the previous entry (audit_genesis_hash for the first)
  std::string hash; //!< lower-case hex SHA-256 of `prev` followed by the canonical form of this entry
  std::string json; //!< the complete JSON line, without the newline
};

//! The canonical form of entry `sequence` holding `record`: the compact JSON object that is hashed
//! (fixed key order, no whitespace, decimal integers). Exactly the text of the log line before its
//! `,"prev":...` member, followed by `}`. See docs/audit.md.
std::string audit_canonical_form(std::uint64_t sequence, const audit_record& record);

//! Lower-case hex SHA-256 (OpenSSL) of the bytes of `prev_hash` followed by the bytes of `canonical`; with
//! a non-empty `key`, HMAC-SHA256 under that key instead (a keyed chain: whoever rewrites the log cannot
//! recompute the hashes without the key). Throws rk::error if libcrypto fails.
std::string audit_chain_hash(std::string_view prev_hash, std::string_view canonical,
                             std::string_view key = {});

//! The entry that follows an entry whose hash is `prev_hash`: canonical form, hash, and JSON line.
audit_entry make_audit_entry(std::uint64_t sequence, const audit_record& record, std::string_view prev_hash,
                             std::string_view key = {});

//! Parses one log line (without its newline). Checks the syntax and that the line is in canonical form,
//! not the hash (the chain needs the previous line; see verify_audit_log). On failure returns nullopt
//! and, if `why` is given, says what is wrong.
std::optional<audit_entry> parse_audit_line(std::string_view line, std::string* why = nullptr);

// --- sinks -------------------------------------------------------------------------------------------

//! Where the drain delivers chained entries. The drain calls write() and flush() from its own thread
//! only, one call at a time, in sequence order; a sink never sees two calls at once. A sink may throw:
//! the drain counts the failure (audit_drain_stats::sink_failures), keeps the message, and goes on with
//! the next sink and entry. A sink must not block indefinitely, and must not call flush() or stop() on
//! the drain that feeds it.
class audit_sink {
public:
  virtual ~audit_sink() = default;
  //! One entry, in sequence order.
  virtual void write(const audit_entry& entry) = 0;
  //! Called whenever the drain runs out of work, on flush() and on stop(): make what was written visible
  //! to readers (e.g. push buffered lines to the file).
  virtual void flush() {}
};

//! Keeps the newest `capacity` entries in memory and counts the ones it evicted. Thread-safe readers.
class audit_memory_sink final : public audit_sink {
public:
  //! Throws rk::error when `capacity` is 0.
  explicit audit_memory_sink(std::size_t capacity);

  void write(const audit_entry& entry) override;

  //! A copy of the kept entries, oldest first.
  std::vector<audit_entry> entries() const;
  //! Entries written so far (kept + evicted).
  std::uint64_t written() const;
  //! Entries dropped to make room for newer ones.
  std::uint64_t evicted() const;
  std::size_t capacity() const noexcept { return capacity_; }

private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;     //!< guards everything below; writer: the drain thread; readers: any
  std::deque<audit_entry> kept_; //!< oldest first
  std::uint64_t written_ = 0;
  std::uint64_t evicted_ = 0;
};

//! Writes each entry as one line (`entry.json` + '\n') to a file it creates (or truncates): a
//! JSON-lines log that rk::verify_audit_log and `rk-audit-verify` check. Lines are buffered (64 KiB) and
//! reach the file whole or not at all: when the operating system refuses a write or cuts it short (a full
//! disk), the whole lines it took stay in the file, a torn last line is cut back, and the lines left stay
//! buffered and go out with the next write or flush(), so a nearly full disk still takes what fits.
//! While more than `pending_limit` bytes wait, write() refuses the entry (rk::error; counted by
//! refused()): it is missing from the file, whose hash chain then shows the gap. flush() pushes buffered
//! lines to the operating system; it does not fsync.
class audit_file_sink final : public audit_sink {
public:
  static constexpr std::size_t pending_limit = std::size_t{16} << 20;

  //! Throws rk::error naming the path and the reason when the file cannot be created, or when it is a FIFO
  //! or socket (refused at once, never waited on: the sink cuts a failed write back to the last whole line,
  //! which only a file allows). Devices such as /dev/null are accepted.
  explicit audit_file_sink(std::filesystem::path path);
  ~audit_file_sink() override;
  audit_file_sink(const audit_file_sink&) = delete;
  audit_file_sink& operator=(const audit_file_sink&) = delete;

  //! Throws rk::error when the buffered lines cannot be written (e.g. disk full; the entry stays buffered)
  //! or the entry is refused (pending_limit).
  void write(const audit_entry& entry) override;
  //! Throws rk::error when the buffered lines cannot be written (they stay buffered).
  void flush() override;
  const std::filesystem::path& path() const noexcept { return path_; }
  //! Entries write() refused (pending_limit): missing from the file for good. Any thread may read it.
  //! audit_drain_stats::sink_failures counts failed calls instead, most of which keep their entry buffered.
  std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

private:
  void write_out();
  std::filesystem::path path_;
  int fd_ = -1;            //!< owned; used by the drain thread only
  std::string pending_;    //!< whole lines not written yet
  std::uint64_t size_ = 0; //!< bytes of whole lines in the file
  std::atomic<std::uint64_t> refused_{0};
};

//! Calls a user function with every entry, on the drain thread.
class audit_callback_sink final : public audit_sink {
public:
  using callback = std::function<void(const audit_entry&)>;
  //! Throws rk::error when `fn` is empty.
  explicit audit_callback_sink(callback fn);
  void write(const audit_entry& entry) override { fn_(entry); }

private:
  callback fn_;
};

// --- the drain ---------------------------------------------------------------------------------------

struct audit_drain_options {
  //! How often the drain reads the overflow counter while running (it also reads it on every flush()
  //! and on stop()).
  std::chrono::milliseconds overflow_check_interval{10};
  //! Cap of the idle backoff between polls of an empty ring; bounds how late the drain notices new
  //! records, flush() and stop().
  std::uint32_t idle_sleep_max_ns = 1'000'000;
  //! Optional: reads the ring's claim counter (`tail`; on CUDA a copy from device memory). With it,
  //! flush() and stop() also wait for records that producers have claimed but not yet published; without
  //! it they take what is published when they look.
  std::function<std::uint64_t()> read_claimed;
  //! How long stop() waits for claimed-but-unpublished records (only with read_claimed).
  std::chrono::milliseconds stop_timeout{5'000};
  //! Non-empty: chain with HMAC-SHA256 under this key instead of plain SHA-256 (see audit_chain_hash);
  //! verify with the same key (audit_verify_options::key, `rk-audit-verify --key-file`).
  std::string key;
};

//! What the drain has done. A snapshot; counters only grow.
struct audit_drain_stats {
  std::uint64_t entries = 0;          //!< entries chained and delivered to the sinks (all origins)
  std::uint64_t device_records = 0;   //!< records taken from the audit ring
  std::uint64_t host_records = 0;     //!< records chained from record_host()
  std::uint64_t overflow_reports = 0; //!< audit_overflow entries written
  std::uint64_t records_lost = 0;     //!< sum of their values: records the full ring refused, or record_host
                                      //!< could not queue for lack of host memory
  std::uint64_t malformed = 0;        //!< ring slots that did not hold an audit record
  std::uint64_t sink_failures = 0;    //!< sink calls that threw (not entries lost: a file sink's write that
                                      //!< threw keeps its entry buffered; audit_file_sink::refused() counts
                                      //!< the entries its file lacks)
  std::uint64_t reader_failures = 0;  //!< read_overflow / read_claimed calls that threw
  std::string last_failure;           //!< the message of the most recent failure, if any
  std::string head;                   //!< hash of the newest entry (audit_genesis_hash before the first)
  bool closed = false;                //!< stop() wrote the audit_closed entry
  bool complete = true; //!< every flush so far (and stop's) reached every claimed record in time
};

//! Owns the thread that empties an audit ring into sinks.
//!
//! The drain is the ring's only consumer. It takes published records in ring order, stamps nothing on
//! them, numbers and hash-chains them together with host records and its own synthetic records, and
//! writes each entry to every sink in order. Every wait backs off (rk::backoff) and notices flush() and
//! stop() within `idle_sleep_max_ns`.
//!
//! Nothing is lost silently: records the full ring refused are counted by emit_audit in the overflow
//! counter; the drain reads it (every `overflow_check_interval`, on flush() and on stop()) and, when it
//! grew, chains an `audit_overflow` entry (level error, detail = status::queue_full) whose value is the
//! number of records lost since the previous report.
class audit_drain {
public:
  using counter_reader = std::function<std::uint64_t()>;

  //! Starts the drain thread.
  //!  - `host_ring`: the ring as the host addresses it (seq, slots and head host-addressable; tail unused).
  //!  - `read_overflow`: returns the ring's overflow counter (channel.overflow); on CUDA it copies it from
  //!    device memory, on the CPU backend it may read it with rk::audit_overflow_count.
  //!  - `sinks`: receive every entry, in this order.
  //! Throws rk::error on a ring too small for audit records, an empty reader, a null sink, or when the
  //! thread cannot start.
  audit_drain(const ring_view& host_ring, counter_reader read_overflow,
              std::vector<std::shared_ptr<audit_sink>> sinks, audit_drain_options options = {});
  //! stop(); never throws.
  ~audit_drain();
  audit_drain(const audit_drain&) = delete;
  audit_drain& operator=(const audit_drain&) = delete;

  //! Queues a host-originated record (e.g. actor spawn / stop); the drain chains it in the order of
  //! calls. Any thread; never waits for the drain. `origin` is set to host; a record whose
  //! `time.physical_ns` is 0 gets the drain's HLC time. Returns `enqueued`, `not_running` after stop()
  //! began (the record is not chained), or `queue_full` when the host is out of memory (the record is
  //! lost and counted like one the full ring refused: an audit_overflow entry reports it).
  [[nodiscard]] status record_host(const audit_record& record);

  //! Delivers to the sinks everything in the ring at the time of the call (with read_claimed: everything
  //! claimed by then), every host record queued before it, and an overflow report if the counter grew;
  //! then flushes the sinks. Any thread except a sink's. Returns `ready`, `timed_out` (the drain did not
  //! finish within `timeout`, or claimed records were not published in time), or `aborted` (the drain
  //! has stopped, or the call came from a sink on the drain thread).
  wait_result flush(std::chrono::nanoseconds timeout = std::chrono::seconds(5));

  //! Stops accepting host records, drains and flushes like flush() (waiting up to `stop_timeout` for
  //! claimed records), reports a final overflow, chains the closing `audit_closed` entry (value = number
  //! of entries before it), flushes the sinks and joins the thread. Idempotent: later calls return the
  //! same statistics. Records published after stop() stay in the ring. Called from a sink, it only
  //! requests the stop (a later call or the destructor joins).
  audit_drain_stats stop() noexcept;
  //! Says that the ring's producers may outlive stop() (the runtime calls it when its workers did not
  //! stop): the audit_closed entry then has detail audit_closed_producers_running, meaning records made
  //! after it are not in the log (nor counted lost), and the statistics say complete = false. Call before
  //! stop(); any thread.
  void note_producers_running() noexcept;

  //! A snapshot of the statistics. Any thread.
  audit_drain_stats stats() const;

private:
  std::unique_ptr<detail::audit_drain_impl> impl_;
};

// --- verification ------------------------------------------------------------------------------------

enum class audit_verdict : std::uint8_t {
  intact,     //!< every line verifies (and the log is closed, unless allowed open)
  tampered,   //!< a line was edited, deleted, inserted, reordered or cut, or the log is incomplete
  unreadable, //!< the file could not be opened or read
};

struct audit_verify_options {
  //! Require the log to end with the audit_closed entry the drain writes on stop(). Without it, lines
  //! removed from the end of a log cannot be told from a log still being written.
  bool require_closed = true;
  //! If not empty: the hash the last entry must have (a head recorded elsewhere, e.g. from
  //! audit_drain_stats::head), which also detects a log rewritten from some point on. Hex digits in
  //! either case (the log writes lower case, as `head` reports it).
  std::string expected_head;
  //! The key of a keyed log (audit_drain_options::key); empty for the plain SHA-256 chain.
  std::string key;
  //! Lines longer than this are refused (an audit line is a few hundred bytes), so a stream without
  //! newlines cannot make the verifier read without limit.
  std::size_t max_line_bytes = 64 * 1024;
};

struct audit_verify_result {
  audit_verdict verdict = audit_verdict::unreadable;
  std::uint64_t entries = 0;  //!< lines that verified (all of them when intact)
  std::uint64_t bad_line = 0; //!< 1-based line of the first problem when tampered, else 0
  std::string reason;  //!< what is wrong; when intact, empty or a note (an ignored incomplete last line)
  std::string head;    //!< hash of the last verified entry (audit_genesis_hash if none)
  bool closed = false; //!< the log ends with an audit_closed entry

  bool intact() const noexcept { return verdict == audit_verdict::intact; }
};

//! Checks a JSON-lines audit log line by line: each line is well-formed and canonical, its sequence
//! number follows the previous one, its `prev` is the previous line's `hash`, and its `hash` is the
//! SHA-256 of `prev` and its canonical form. Never throws for a bad or missing file (see `verdict`); a
//! FIFO, socket or device is refused unread (it could block or never end).
audit_verify_result verify_audit_log(const std::filesystem::path& path,
                                     const audit_verify_options& options = {});

} // namespace rk
