// The actor table's handler states (see actor_table.hpp): where each lives, respawn's rewrite, snapshot
// images of running actors, and the final states shutdown() copies for runtime::state<H>().

#include "actor_table.hpp"

#include <ringkernel/host/error.hpp>

#include <cstddef>
#include <cstring>

namespace rk::detail {

actor_snapshot actor_table::image(actor_index id) const {
  std::lock_guard lock(mutex_);
  const actor_record& r = record(id, "snapshot()");
  if (r.alias) throw error("snapshot(): '" + r.name + "' is an alias, not an actor");
  const actor_type_ops& k = kinds_[r.kind].ops;
  const route_entry& e = routes_[slot(id)];
  actor_snapshot out;
  out.id = r.id;
  out.name = r.name;
  out.handler = k.name;
  out.tenant = r.tenant;
  out.mailbox = e.geometry;
  out.priority_lanes = e.lanes > 1;
  out.dedicated_worker = e.dedicated != 0;
  out.state.resize(k.state_size);
  if (!out.state.empty()) backend_.copy_from_device(out.state.data(), r.d_state, out.state.size());
  return out;
}

std::vector<actor_snapshot> actor_table::images() const {
  std::vector<actor_index> ids;
  {
    std::lock_guard lock(mutex_);
    for (const actor_record& r : records_)
      if (r.stage == stage_kind::active && !r.alias) ids.push_back(r.id);
  }
  std::vector<actor_snapshot> out;
  out.reserve(ids.size());
  for (actor_index id : ids) out.push_back(image(id));
  return out;
}

void actor_table::read_final_states() {
  std::lock_guard lock(mutex_);
  try {
    for (actor_record& r : records_) {
      if (r.stage != stage_kind::active || r.alias) continue;
      r.final_state.resize(kinds_[r.kind].ops.state_size);
      if (!r.final_state.empty())
        backend_.copy_from_device(r.final_state.data(), r.d_state, r.final_state.size());
    }
  } catch (...) {
    final_states_lost_ = true;
    throw;
  }
}

void actor_table::read_final_state(actor_index id, std::type_index type, void* out, std::size_t bytes) const {
  std::lock_guard lock(mutex_);
  const actor_record& r = record(id, "state()");
  if (r.alias) throw error("state(): '" + r.name + "' is an alias, not an actor");
  const actor_type_ops& k = kinds_[r.kind].ops;
  if (k.type != type)
    throw error("state<H>(" + std::to_string(id) + "): actor '" + r.name + "' runs handler '" + k.name +
                "', not the requested type");
  if (r.final_state.size() != bytes && final_states_lost_)
    throw error("state<H>(): shutdown() could not copy the final state of actor '" + r.name +
                "' to the host (out of host memory: see shutdown_report::fault); it is lost");
  if (r.final_state.size() != bytes)
    throw error(
        "state<H>(): actor states are read back by shutdown(); call it after shutdown() (and not after a "
        "fault)");
  std::memcpy(out, r.final_state.data(), bytes);
}

void* actor_table::state_of(actor_index id) const {
  std::lock_guard lock(mutex_);
  return records_[slot(id)].d_state;
}

void actor_table::rewrite_state(actor_index id, const void* initial) {
  std::lock_guard lock(mutex_);
  const actor_record& r = record(id, "respawn()");
  const std::size_t size = kinds_[r.kind].ops.state_size;
  if (size) backend_.copy_to_device(r.d_state, initial ? initial : r.initial.data(), size);
  // The respawned actor has not faulted: its last fault's code and claim go (the fault list and the
  // audit log keep them). No device thread writes them until the actor is live and faults again.
  static_assert(offsetof(actor_counters, fault_claimed) == offsetof(actor_counters, fault_code) + 4);
  const std::uint32_t no_fault[2] = {0, 0};
  backend_.copy_to_device(&d_counters_.as<actor_counters>()[slot(id)].fault_code, no_fault, sizeof no_fault);
}

} // namespace rk::detail
