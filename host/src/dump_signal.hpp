#pragma once
// SIGUSR1 → state dumps (runtime_options::dump_state_on_sigusr1). Process-wide: the first registration
// installs a SIGUSR1 handler (keeping the previous one) and starts one thread; the handler only writes a
// byte to a pipe (async-signal-safe), the thread reads it and calls every registered runtime's dump. The
// last registration to go restores the previous handler and joins the thread (one that goes from within
// another registration's dump, on that thread, leaves both for the next registration). A registration's
// callback never runs after its destructor returned (the destructor waits for its dump in progress); no
// lock is held while a dump runs, so a dump may shut down another runtime.

#include <functional>
#include <memory>

namespace rk::detail {

class dump_signal_registration {
public:
  //! Throws rk::error when the pipe, the handler or the thread cannot be set up.
  explicit dump_signal_registration(std::function<void()> dump);
  ~dump_signal_registration();
  dump_signal_registration(const dump_signal_registration&) = delete;
  dump_signal_registration& operator=(const dump_signal_registration&) = delete;

private:
  std::uint64_t id_;
};

} // namespace rk::detail
