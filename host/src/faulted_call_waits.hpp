#pragma once
// Faulted-call waits: which handler call waits for which faulted handler call, over every runtime of the
// process, so that a wait that would close a cycle is refused at once instead of timing out.
//
// respawn() and snapshot() of an actor whose handler call faulted (ctx.fault()) and still runs wait for
// that call to return (run_control::await_faulted_call). A handler may make such a call too, into its own
// runtime or another one: two faulted calls that respawn each other would each wait for the other until
// both timed out. Every waiting handler call registers here what it waits for; the registration that would
// close a cycle throws, its call returns, and that ends the other waits of the cycle.

#include <ringkernel/runtime/detail/backend.hpp>

#include <string>

namespace rk::detail {

//! Registers, while it lives, the handler call running on the calling thread (handler_call_on_this_thread;
//! a host thread, which no call waits for, registers nothing) as waiting for the faulted call `awaited`,
//! named `awaited_name` in messages. Throws rk::error, naming `who` (e.g. "respawn()"), when that would
//! close a cycle: `awaited` is the waiter's own call, or waits, directly or through others, for it.
//! Registration and the check happen under one process-wide lock, so of two calls that would wait for
//! each other the second sees the first and is refused.
class faulted_call_wait {
public:
  faulted_call_wait(handler_call awaited, const std::string& awaited_name, const std::string& who);
  ~faulted_call_wait();
  faulted_call_wait(const faulted_call_wait&) = delete;
  faulted_call_wait& operator=(const faulted_call_wait&) = delete;

private:
  handler_call waiter_;
};

} // namespace rk::detail
