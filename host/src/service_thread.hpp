#pragma once
// Which threads of the runtime's own call user code.

namespace rk::detail {

//! True on the runtime's service threads that call user code: the audit drain (sinks), the watchdog and
//! the SIGUSR1 dump reader (runtime_options::on_state_dump). shutdown() joins them while it holds the
//! setup lock, so a runtime call from them that finds that lock taken is refused rather than waited for
//! (runtime_impl::setup_mutex), as a handler's is.
inline thread_local bool on_service_thread = false;

} // namespace rk::detail
