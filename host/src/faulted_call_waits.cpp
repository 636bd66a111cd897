// Faulted-call waits (see faulted_call_waits.hpp).

#include "faulted_call_waits.hpp"

#include <ringkernel/host/error.hpp>

#include <map>
#include <mutex>

namespace rk::detail {

namespace {
struct awaited_call {
  handler_call call;
  std::string name; //!< the awaited actor's, for the message of the wait that closes a cycle through it
};
struct wait_registry {
  std::mutex mutex;
  std::map<handler_call, awaited_call> waits; //!< waiting call -> the faulted call it waits for
};
wait_registry& registry() {
  // Never destroyed: a handler call may still wait while the process exits (std::exit from another thread).
  static wait_registry* const r = new wait_registry;
  return *r;
}
} // namespace

faulted_call_wait::faulted_call_wait(handler_call awaited, const std::string& awaited_name,
                                     const std::string& who)
    : waiter_(handler_call_on_this_thread()) {
  if (waiter_.backend == nullptr) return;
  if (waiter_ == awaited) // that call is the caller's own: it returns only after this
    throw error(who + ": called from the handler call of actor '" + awaited_name +
                "' that faulted (ctx.fault()): the call still writes the actor's state, and " + who +
                " would wait for it to return. Call it from a host thread or another actor once this call "
                "returned");
  std::string waiter_name; // found on the cycle: the name under which a call waiting for the waiter knows it
  {
    wait_registry& r = registry();
    std::lock_guard lock(r.mutex);
    handler_call next = awaited;
    for (std::size_t i = 0; i <= r.waits.size() && waiter_name.empty(); ++i) {
      const auto it = r.waits.find(next);
      if (it == r.waits.end()) break;
      next = it->second.call;
      if (next == waiter_) waiter_name = it->second.name.empty() ? "?" : it->second.name;
    }
    if (waiter_name.empty()) {
      r.waits[waiter_] = {awaited, awaited_name};
      return;
    }
  }
  throw error(who + ": called from the handler call of actor '" + waiter_name +
              "', which the faulted call of actor '" + awaited_name +
              "' waits for (directly or through others): neither call could return (the calls may be of two "
              "runtimes). Call it from a host thread, or once this call returned");
}

faulted_call_wait::~faulted_call_wait() {
  if (waiter_.backend == nullptr) return;
  wait_registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.waits.erase(waiter_);
}

} // namespace rk::detail
