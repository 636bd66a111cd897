#pragma once
// Which runtime's callback, if any, runs on this thread.

#include <atomic>

namespace rk::detail {

//! While a runtime calls user code on a thread it waits for in shutdown() (an audit sink's write or
//! flush on the drain thread, on_state_dump on the watchdog's or the SIGUSR1 reader's): that runtime's
//! identity (the address of its phase word), else null. A runtime call from there that needs the setup
//! lock while another thread holds it is refused rather than waited for, shutdown() is refused, and waits
//! end once shutdown began: shutdown() holds that lock while it waits for this very thread. Calls on other
//! runtimes are not affected.
inline thread_local const void* callback_of = nullptr;

//! Whether a wait on this thread in the runtime whose phase word is `phase` must end: the thread runs that
//! runtime's callback and shutdown() began (it waits for this very thread).
template <class Phase>
bool callback_outlived(const std::atomic<Phase>& phase) noexcept {
  return callback_of == &phase && phase.load() != Phase::running;
}

//! Marks the calling thread as running a callback of runtime `id` for its lifetime.
class callback_scope {
public:
  explicit callback_scope(const void* id) noexcept : saved_(callback_of) { callback_of = id; }
  ~callback_scope() { callback_of = saved_; }
  callback_scope(const callback_scope&) = delete;
  callback_scope& operator=(const callback_scope&) = delete;

private:
  const void* saved_;
};

} // namespace rk::detail
