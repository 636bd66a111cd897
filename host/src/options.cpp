// A runtime's options, checked before anything is allocated (see options.hpp). Kept apart from the
// backend choice so the option fuzzer (tools/fuzz) links this alone.

#include "options.hpp"

#include "support.hpp"

#include <algorithm>

namespace rk::detail {

namespace {
void validate_trace(const trace_options& t) {
  if (t.sample_every == 0) return; // off: the other fields are not used
  if (const char* problem = trace_ring_geometry(t.ring_slots).validate())
    throw error(std::string("runtime_options::trace.ring_slots: ") + problem);
  if (t.max_records == 0 || t.max_records > (std::size_t{1} << 28))
    throw error("runtime_options::trace.max_records must be between 1 and 268,435,456 (got " +
                std::to_string(t.max_records) + "); each kept record costs " +
                std::to_string(sizeof(trace_record)) + " bytes of host memory, plus a little for the buffer");
  if (t.collect_interval < std::chrono::milliseconds(1) || t.collect_interval > std::chrono::seconds(10))
    throw error("runtime_options::trace.collect_interval must be between 1 ms and 10 s (got " +
                std::to_string(t.collect_interval.count()) + " ms)");
}
} // namespace

runtime_options validated(runtime_options o) {
  if (o.max_actors == 0 || o.max_actors > (1u << 24))
    throw error("runtime_options::max_actors must be between 1 and 16777216 (got " +
                std::to_string(o.max_actors) + ")");
  if (const char* problem = o.host_ring.validate())
    throw error(std::string("runtime_options::host_ring: ") + problem + " (got " +
                geometry_text(o.host_ring) + ")");
  const bool no_outbound = o.cluster_outbound.capacity == 0 && o.cluster_outbound.slot_bytes == 0;
  if (!no_outbound) {
    if (const char* problem = o.cluster_outbound.validate())
      throw error(std::string("runtime_options::cluster_outbound: ") + problem + " (got " +
                  geometry_text(o.cluster_outbound) + "; {0, 0} means no cluster)");
  }
  if (o.host_parking_slots == 0 || o.host_parking_slots > (1u << 24))
    throw error("runtime_options::host_parking_slots must be between 1 and 16777216 (got " +
                std::to_string(o.host_parking_slots) + ")");
  if (o.host_parking_per_destination == 0)
    o.host_parking_per_destination = std::max(1u, o.host_parking_slots / 4);
  if (o.host_parking_per_destination > o.host_parking_slots)
    throw error("runtime_options::host_parking_per_destination must be at most host_parking_slots (" +
                std::to_string(o.host_parking_slots) + "; got " +
                std::to_string(o.host_parking_per_destination) + ")");
  if (o.max_groups > (1u << 20))
    throw error("runtime_options::max_groups must be at most 1048576 (got " + std::to_string(o.max_groups) +
                ")");
  if (o.max_group_members == 0) o.max_group_members = o.max_actors;
  if (o.max_group_members > (1u << 24))
    throw error("runtime_options::max_group_members must be at most 16777216 (got " +
                std::to_string(o.max_group_members) + "); the member lists take 4 bytes per entry");
  if (o.max_hops > max_hops_limit)
    throw error("runtime_options::max_hops must be at most " + std::to_string(max_hops_limit) + " (got " +
                std::to_string(o.max_hops) + "): the envelope's 8-bit hop counter must be able to exceed it");
  if (o.starvation_limit == 0 || o.starvation_limit > 255)
    throw error("runtime_options::starvation_limit must be between 1 and 255 (got " +
                std::to_string(o.starvation_limit) + ")");
  if (o.max_message_types > (1u << 24))
    throw error("runtime_options::max_message_types must be at most 16777216");
  if (o.max_tenants == 0 || o.max_tenants > (1u << 20))
    throw error("runtime_options::max_tenants must be between 1 and 1048576 (got " +
                std::to_string(o.max_tenants) + "; tenant 0 always takes a slot)");
  if (o.max_engagements > (1u << 20))
    throw error("runtime_options::max_engagements must be at most 1048576 (got " +
                std::to_string(o.max_engagements) + ")");
  if (o.max_regions > (1u << 20))
    throw error("runtime_options::max_regions must be at most 1048576 (got " + std::to_string(o.max_regions) +
                ")");
  if (o.audit_memory_records == 0 || o.audit_memory_records > (std::size_t{1} << 24))
    throw error("runtime_options::audit_memory_records must be between 1 and 16777216 (got " +
                std::to_string(o.audit_memory_records) + "); each kept record costs a few hundred bytes");
  for (std::size_t i = 0; i < o.audit_sinks.size(); ++i)
    if (o.audit_sinks[i] == nullptr)
      throw error("runtime_options::audit_sinks[" + std::to_string(i) +
                  "] is null; give a sink or leave it out");
  const std::pair<const char*, std::chrono::milliseconds> timeouts[] = {
      {"start_timeout", o.start_timeout},
      {"drain_timeout", o.drain_timeout},
      {"stop_timeout", o.stop_timeout},
      {"handler_timeout", o.handler_timeout}};
  for (const auto& [name, value] : timeouts)
    if (value.count() < 0)
      throw error(std::string("runtime_options::") + name + " must not be negative (got " +
                  std::to_string(value.count()) +
                  " ms); use milliseconds::max() to wait as long as it takes");
  if (o.stop_timeout.count() == 0)
    throw error(
        "runtime_options::stop_timeout must be at least 1 ms (shutdown() waits this long for the "
        "workers to exit after terminate; with 0 it gave up before they could, and leaked the runtime's "
        "memory every time)");
  if (o.scheduled_workers > max_scheduled_workers)
    throw error("runtime_options::scheduled_workers must be at most " +
                std::to_string(max_scheduled_workers) + " (got " + std::to_string(o.scheduled_workers) +
                "; 0 picks one per SM, or the CPU's threads)");
  if (o.cpu_workers > max_scheduled_workers)
    throw error("runtime_options::cpu_workers must be at most " + std::to_string(max_scheduled_workers) +
                " (got " + std::to_string(o.cpu_workers) + "; 0 uses the CPU's hardware threads)");
  if (o.actor_turn_messages == 0 || o.actor_turn_messages > 65536)
    throw error("runtime_options::actor_turn_messages must be between 1 and 65536 (got " +
                std::to_string(o.actor_turn_messages) + ")");
  if (o.actor_turn_time < std::chrono::microseconds{1} || o.actor_turn_time > std::chrono::seconds{1})
    throw error("runtime_options::actor_turn_time must be between 1 microsecond and 1 second (got " +
                std::to_string(o.actor_turn_time.count()) + " us)");
  if (o.device_idle_sleep_max_ns > max_device_idle_sleep_ns)
    throw error("runtime_options::device_idle_sleep_max_ns must be at most " +
                std::to_string(max_device_idle_sleep_ns) + " (1 ms; got " +
                std::to_string(o.device_idle_sleep_max_ns) +
                "): one __nanosleep sleeps at most about 1 ms, and a longer cap only delays wake-ups");
  if (const char* problem = audit_ring_geometry(o.audit_ring_slots).validate())
    throw error(std::string("runtime_options::audit_ring_slots: ") + problem);
  validate_trace(o.trace);
  return o;
}

} // namespace rk::detail
