#pragma once
//! \file
//! The hang hunter: runtime::dump_state() says who is stuck where, while it is stuck.
//!
//! Contract:
//!  - A dump reads only status words, counters and mailbox cursors (never a handler state, never a lock a
//!    handler could hold), so it works while handlers are stuck, while the runtime is paused and after a
//!    device fault (then with the last values the host could read).
//!  - Every worker that checked in and has not exited: the actor it is handling (if any), the message
//!    type, how long it has served that actor and how long its heartbeat has not moved. The two ages are
//!    the watchdog's observations (runtime_options::handler_timeout > 0), accurate to its sampling period
//!    (a quarter of the timeout, 1 .. 250 ms); without a watchdog they are unknown.
//!  - Every actor with messages in its mailbox or in its handler: depth per lane, the messages taken but
//!    not finished, lifecycle and the host's and device's lifecycle words.
//!  - text() is for people (one line per worker and actor), json() for scripts (nlohmann-json). In
//!    text(), control characters in names, handler types and the fault are escaped
//!    (<ringkernel/host/detail/printable.hpp>): a name cannot break a line or drive the terminal.
//!  - runtime_options::dump_state_on_sigusr1 makes SIGUSR1 dump every such runtime in the process, and
//!    the watchdog dumps when it reports a stuck call; both hand the dump to runtime_options::on_state_dump
//!    (default: text() to stderr).

#include <ringkernel/device/config.cuh>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rk {

//! One worker: a resident thread block on CUDA, a thread on the CPU backend.
struct worker_state {
  std::uint32_t worker = 0;         //!< its status entry
  std::string serves;               //!< the handler type(s) or actor(s) it was launched for
  bool scheduled = false;           //!< serves actors in turns from a run queue (else dedicated actors)
  std::optional<actor_index> actor; //!< the actor it is handling now (empty: idle)
  std::string actor_name;
  std::uint32_t message_type = 0; //!< of the call in progress (CUDA: the last type it reported)
  std::uint64_t heartbeat = 0;    //!< the raw heartbeat word
  //! How long it has been handling `actor` / since its heartbeat last moved (watchdog observations).
  std::optional<std::chrono::nanoseconds> busy_for;
  std::optional<std::chrono::nanoseconds> heartbeat_age;
};

//! One actor with a non-empty mailbox (or a message in its handler).
struct mailbox_state {
  actor_index actor = 0;
  std::string name;
  std::string handler;
  std::uint64_t tenant = 0;
  std::string lifecycle;                              //!< to_string(actor_lifecycle)
  std::array<std::uint64_t, priority_levels> lanes{}; //!< messages per lane (low .. urgent; FIFO: lane 0)
  std::uint32_t lane_count = 1;
  std::uint64_t queued = 0;    //!< received - handled - discarded - interrupted (includes one being handled)
  std::uint32_t host_word = 0; //!< the host's lifecycle word (epoch << 8 | state)
  std::uint32_t device_word = 0; //!< the device's acknowledgement word
};

struct state_dump {
  std::chrono::system_clock::time_point taken{};
  std::string backend;              //!< "cpu" or "cuda" and the backend description
  std::string phase;                //!< created, running, draining or stopped
  bool paused = false;              //!< pause() is in effect
  std::optional<std::string> fault; //!< the runtime-wide fault, if it faulted
  bool ages_known = false;          //!< a watchdog runs, so worker_state ages are filled in
  std::vector<worker_state> workers;
  std::vector<mailbox_state> mailboxes; //!< actors with messages waiting or in a handler, by id
  std::uint64_t actors = 0;             //!< current actors (aliases excluded)

  //! Readable text: a header, one line per worker, one line per non-empty mailbox.
  std::string text() const;
  //! The same as one JSON document (format "ringkernel-state/1").
  std::string json() const;
};

} // namespace rk
