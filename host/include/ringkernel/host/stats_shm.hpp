#pragma once
//! \file
//! The shared-memory snapshot a runtime publishes for rk-top (runtime_options::publish_stats): its layout
//! is a contract between a runtime and readers in other processes.
//!
//! Contract:
//!  - Name: "/ringkernel.<pid>.<k>", k = 0, 1, ... for the runtimes of process <pid> that publish, in
//!    the order they started (shm_open namespace; on Linux the file /dev/shm/ringkernel.<pid>.<k>).
//!  - Content: a stats_shm_header, then `length` bytes of one JSON document (format "ringkernel-top/1",
//!    see docs/observability.md), rewritten about every `interval_ns`.
//!  - Consistency: a seqlock. The publisher makes `sequence` odd, writes, makes it even (release). A
//!    reader copies header and text and accepts the copy only if `sequence` was even and unchanged
//!    before and after (acquire). Readers map the object read-only: they cannot disturb the runtime. A
//!    process of the runtime's user that truncates the object costs a snapshot: the runtime catches the
//!    SIGBUS of its write (a process-wide handler, installed at the first publishing start(), that passes
//!    every other SIGBUS on to the handler before it), gives the object its size back and writes again;
//!    before each snapshot it also gives back the size of an object that shrank without a SIGBUS.
//!  - The object is created at start() and removed when the runtime is destroyed; after shutdown() the
//!    last snapshot says "running": false.

#include <cstdint>
#include <string>

namespace rk {

struct stats_shm_header {
  char magic[8];              //!< "RKTOP\0\0\1"
  std::uint32_t version;      //!< 1
  std::uint32_t pid;          //!< the publishing process
  std::uint64_t sequence;     //!< seqlock word (see above); access with std::atomic_ref
  std::uint64_t length;       //!< bytes of JSON after the header
  std::uint64_t capacity;     //!< bytes available after the header
  std::uint64_t published_ns; //!< system_clock time of the last snapshot (ns since the Unix epoch)
  std::uint64_t interval_ns;  //!< how often it is rewritten
};

inline constexpr char stats_shm_magic[8] = {'R', 'K', 'T', 'O', 'P', '\0', '\0', '\1'};

//! The shared-memory name of the `index`-th publishing runtime of process `pid`.
inline std::string stats_shm_name(std::uint32_t pid, std::uint32_t index) {
  return std::string("/ringkernel.").append(std::to_string(pid)).append(".").append(std::to_string(index));
}

} // namespace rk
