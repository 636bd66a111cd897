#pragma once
//! \file
//! Snapshots of actor states: runtime::snapshot (one actor, while it runs), runtime::snapshot_all (every
//! actor, to a versioned file) and runtime::restore (a new runtime's actors from that file, before start).
//!
//! Contract:
//!  - snapshot(a) holds a live or paused actor paused until its worker confirmed (no handler call is
//!    writing the state), copies its handler state, and lets go of it: a live actor resumes, one the
//!    application paused stays paused, and a resume_actor() made meanwhile takes effect then. An actor
//!    that is stopped or faulted, or a runtime that is not running, is copied as it is; one that is
//!    stopping (still handling what was queued) is refused with rk::error.
//!    The state is exactly the bytes of handler_state_t<H>: no pointers are followed.
//!  - snapshot_all(path) holds every worker paused as snapshot() holds one actor (until all confirmed; a
//!    runtime::resume() meanwhile takes effect after the copies), copies every actor, and writes the
//!    file: one JSON header line (format "ringkernel-snapshot", version 2, the handler types with their
//!    state sizes, and per actor its name, handler type, tenant, mailbox geometry, priority lanes and
//!    dedicated worker flag), then the states back to back, then a last line "sha256 <64 hex digits>": the
//!    SHA-256 of every byte before it, so a damaged name or tenant is refused like damaged state. Version 1
//!    files (their header held the SHA-256 of the states only) are still read. Groups, aliases, routes,
//!    audit tags and queued messages are not part of a snapshot.
//!  - restore(path), before start(), checks the whole file first (format, version, checksum, that every
//!    handler type is known to this runtime, spawned or prepare<H>()d, with the same state size) and then
//!    spawns every actor with its saved name, options and state, all or nothing. Errors are rk::error
//!    saying what did not match. The actors get the new runtime's ids (in the file's order): ids kept in
//!    states name the old ones, so look peers up by name after restore(). Members of the header it does
//!    not know are skipped unread; the header line is at most 1 GiB (snapshot_all() refuses to write a
//!    longer one).

#include <ringkernel/device/config.cuh>
#include <ringkernel/device/mailbox.cuh>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace rk {

//! One actor's state and what is needed to spawn it again.
struct actor_snapshot {
  actor_index id = 0;
  std::string name;
  std::string handler; //!< its handler type's name
  std::uint64_t tenant = 0;
  ring_geometry mailbox{}; //!< of each lane
  bool priority_lanes = false;
  bool dedicated_worker = false;
  std::vector<std::byte> state; //!< the bytes of handler_state_t<H>
};

//! Current version of the snapshot file format.
inline constexpr std::uint32_t snapshot_format_version = 2;

} // namespace rk
