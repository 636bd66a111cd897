// Construction of a runtime: its options checked, and its backend chosen (see options.hpp).

#include "options.hpp"

#include "support.hpp"

#include <cstdio>

namespace rk::detail {

runtime_options validated(runtime_options o) {
  if (o.max_actors == 0 || o.max_actors > (1u << 20))
    throw error("runtime_options::max_actors must be between 1 and 1048576 (got " +
                std::to_string(o.max_actors) + ")");
  if (const char* problem = o.host_ring.validate())
    throw error(std::string("runtime_options::host_ring: ") + problem + " (got " +
                geometry_text(o.host_ring) + ")");
  if (o.max_groups > (1u << 20))
    throw error("runtime_options::max_groups must be at most 1048576 (got " + std::to_string(o.max_groups) +
                ")");
  if (o.max_group_members == 0) o.max_group_members = o.max_actors;
  if (o.max_hops > 255)
    throw error("runtime_options::max_hops must be at most 255 (the envelope's hop counter is 8 bits)");
  if (o.starvation_limit == 0 || o.starvation_limit > 255)
    throw error("runtime_options::starvation_limit must be between 1 and 255 (got " +
                std::to_string(o.starvation_limit) + ")");
  if (o.max_message_types > (1u << 24))
    throw error("runtime_options::max_message_types must be at most 16777216");
  if (const char* problem = audit_ring_geometry(o.audit_ring_slots).validate())
    throw error(std::string("runtime_options::audit_ring_slots: ") + problem);
  return o;
}

std::unique_ptr<backend_impl> choose_backend(const runtime_options& o, std::string& description) {
  std::unique_ptr<backend_impl> b;
  std::string why;
  switch (o.backend) {
  case backend::cpu:
    b = make_cpu_backend(o);
    description = "requested";
    break;
  case backend::cuda:
    b = make_cuda_backend(o, description);
    break;
  case backend::automatic:
    if (cuda_device_usable(o.cuda_device, why)) {
      b = make_cuda_backend(o, description);
    } else {
      b = make_cpu_backend(o);
      description = "no usable CUDA device: " + why;
    }
    break;
  }
  if (!b) throw error("runtime_options::backend: unknown backend");
  if (o.announce_backend)
    std::fprintf(stderr, "ringkernel: backend %s (%s)\n", std::string(to_string(b->kind())).c_str(),
                 description.c_str());
  return b;
}

} // namespace rk::detail
