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
  {
    std::lock_guard lock(list_mutex_);
    collect_contained();
  }
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
  // Tenant 0 here: audit_link writes a current actor's own tenant and audit tag into every record about it.
  audit_.record(audit_event::actor_fault, audit_level::critical, culprit, 0, trap_actor != 0 ? trap_code : 0);
}

void fault_monitor::collect_contained() const {
  for (contained_fault& c : backend_.take_contained_faults()) {
    actor_fault f;
    f.actor = c.actor;
    f.name = actors_.name_for_report(c.actor);
    f.handler = actors_.handler_for_report(c.actor);
    f.message_type = c.message_type;
    f.code = c.code;
    f.kind = c.code == fault_code_exception ? fault_kind::exception : fault_kind::trap;
    f.reason = std::move(c.reason);
    keep(std::move(f));
  }
  if (actor_faults_.size() > max_actor_faults)
    actor_faults_.erase(actor_faults_.begin(),
                        actor_faults_.begin() +
                            static_cast<std::ptrdiff_t>(actor_faults_.size() - max_actor_faults));
}

std::vector<actor_fault> fault_monitor::actor_faults() const {
  std::lock_guard lock(list_mutex_);
  collect_contained();
  return actor_faults_;
}

void fault_monitor::add_actor_fault(actor_fault f) {
  std::lock_guard lock(list_mutex_);
  collect_contained(); // keeps the list in order
  keep(std::move(f));
}

void fault_monitor::keep(actor_fault f) const {
  ++counts_.by_handler[f.handler][static_cast<std::size_t>(f.kind)];
  ++counts_.by_actor[f.actor];
  actor_faults_.push_back(std::move(f));
}

fault_counts fault_monitor::counts() const {
  std::lock_guard lock(list_mutex_);
  collect_contained();
  return counts_;
}

std::string fault_monitor::text() const {
  std::lock_guard lock(mutex_);
  return text_.value_or("");
}

void fault_monitor::throw_if_faulted() {
  if (detected()) throw error("ringkernel: " + text());
}

} // namespace rk::detail
