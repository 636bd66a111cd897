#pragma once
//! \file
//! The sampled message trace, host side: what runtime::trace_records() returns and how it is exported as
//! Chrome trace JSON (the format chrome://tracing, Perfetto's UI and `trace_processor` open).
//!
//! Turn tracing on with runtime_options::trace.sample_every (options.hpp); the device side (which calls
//! are sampled, the record layout, the clock) is described in <ringkernel/device/trace.cuh>. The runtime's
//! collector empties the device ring every trace.collect_interval and keeps the most recent
//! trace.max_records records; nothing is dropped without being counted in trace_stats (or, when workers
//! outlive shutdown, without trace_stats::complete saying so).
//!
//! The export, one event list:
//!  - an "X" (complete) event per record on the handling actor's track: name = the message type's
//!    registered name (else "type <id>"), ts = handler begin, dur = handler time; args: source, actor,
//!    destination (as sent: a group address for a group send), type_id, correlation_id, tenant, priority,
//!    hops, outcome, queued_ns (begin minus send time);
//!  - an async "b"/"e" pair per record (category "queue") from the send time to the handler's begin: the
//!    time the message waited. Send times of host messages come from the host's clock, handler times from
//!    the device's (both Unix time; see hlc.cuh), so on CUDA a small skew is possible: queued_ns keeps
//!    the raw difference (it may be slightly negative) and the pair is clamped to start no later than
//!    the handler;
//!  - "M" metadata naming the process and one thread per actor ("actor 'name' (id N)"; tid = id + 1,
//!    tid 0 = the host).
//! Timestamps are microseconds since `otherData.origin_unix_ns` (the earliest time in the records), so
//! they keep nanosecond resolution; otherData also carries the stats (`complete` included) and
//! sample_every.

#include <ringkernel/device/trace.cuh>

#include <cstdint>
#include <functional>
#include <span>
#include <string>

namespace rk {

//! Counters of the trace collector. collected = kept + evicted; every sampled call that has returned is
//! either collected or counted in ring_full, except while `complete` is false.
//!
//! `complete` false: shutdown() could not stop every worker (a handler call outlived
//! runtime_options::stop_timeout; shutdown_report::workers_stopped is false). The calls those workers were
//! running are recorded only when they return: each later runtime::trace_records(), stats() or trace_json()
//! still collects what they published (the ring's memory lives as long as the runtime), but a call that
//! has not returned by then, or returns after the runtime is destroyed, is in no count.
struct trace_stats {
  std::uint32_t sample_every = 0; //!< runtime_options::trace.sample_every (0: tracing is off)
  std::uint64_t collected = 0;    //!< records taken off the device ring
  std::uint64_t ring_full = 0;    //!< records dropped on the device: the ring was full
  std::uint64_t evicted = 0;      //!< records dropped on the host: more than trace.max_records, or no memory
  std::uint64_t kept = 0;         //!< records held now (runtime::trace_records)
  bool complete = true; //!< false: workers still ran after shutdown, so sampled calls may be missing
};

//! Names for the export; an empty function (or an empty result) falls back to "actor <id>" / "type <id>".
struct trace_names {
  std::function<std::string(actor_index)> actor;
  std::function<std::string(std::uint32_t)> message_type;
};

//! The records as Chrome trace JSON (see the file comment). Records in any order.
std::string chrome_trace_json(std::span<const trace_record> records, const trace_names& names = {},
                              const trace_stats& stats = {});

} // namespace rk
