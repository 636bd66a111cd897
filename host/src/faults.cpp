// Fault detection (see faults.hpp).

#include "faults.hpp"

#include "support.hpp"

#include <ringkernel/host/error.hpp>

namespace rk::detail {

bool fault_monitor::detected() {
  if (faulted()) return true;
  const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  std::int64_t last = last_poll_.load(std::memory_order_relaxed);
  if (now - last < 1'000'000) return false;
  if (!last_poll_.compare_exchange_strong(last, now)) return false;
  std::optional<backend_fault> f;
  {
    std::lock_guard lock(mutex_);
    f = backend_.poll_fault();
  }
  if (!f) return false;
  record(*f);
  return true;
}

void fault_monitor::record(const backend_fault& f) {
  std::string text = f.where + " failed: " + f.what + ".";
  const control_block& control = *workers_.host_control();
  const std::uint32_t trap_actor = load_acquire(control.trap_actor);
  const std::uint32_t trap_code = load_acquire(control.trap_code);
  if (trap_actor != 0) {
    text += " Actor '" + actors_.name_for_report(trap_actor - 1) + "' called ctx.trap(" +
            std::to_string(trap_code) + ").";
  } else if (f.actor) {
    text += " Raised by actor '" + actors_.name_for_report(*f.actor) + "'.";
  }
  if (backend_.kind() == backend::cuda) {
    std::string busy;
    for (std::uint32_t a : workers_.busy_actors())
      busy += (busy.empty() ? "" : ", ") + actors_.name_for_report(a - 1);
    if (!busy.empty()) text += " Actors inside a handler at the time: " + busy + ".";
    text +=
        " The CUDA context is unusable after a device fault; destroy the runtime and restart the process.";
  }
  {
    std::lock_guard lock(mutex_);
    if (faulted()) return;
    text_ = text;
    faulted_.store(true, std::memory_order_release);
  }
  const actor_index culprit = trap_actor != 0 ? trap_actor - 1 : f.actor.value_or(host_actor);
  audit_.record(audit_event::actor_fault, audit_level::critical, culprit, 0, trap_actor != 0 ? trap_code : 0);
}

std::string fault_monitor::text() const {
  std::lock_guard lock(mutex_);
  return text_.value_or("");
}

void fault_monitor::throw_if_faulted() {
  if (detected()) throw error("ringkernel: " + text());
}

} // namespace rk::detail
