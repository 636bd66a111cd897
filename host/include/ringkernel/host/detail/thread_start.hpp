#pragma once
//! \file
//! The rk::error for a thread the runtime could not start: the same words and hint wherever it happens.

#include <ringkernel/host/error.hpp>

#include <cerrno>
#include <string>
#include <system_error>

namespace rk::detail {

//! rk::error saying that `what` (e.g. "start(): the watchdog thread") could not start, why, and, when the
//! process is out of threads or memory for their stacks, what to do about it.
inline error thread_start_error(const std::string& what, const std::system_error& e) {
  std::string text = what + " could not start: " + e.what();
  if (e.code() == std::errc::resource_unavailable_try_again || e.code() == std::errc::not_enough_memory)
    text += " (the process is out of threads or of memory for their stacks: raise `ulimit -u`, or run fewer "
            "threads: fewer runtimes or dedicated actors, a smaller runtime_options::scheduled_workers or "
            "cpu_workers)";
  return error(text);
}

} // namespace rk::detail
