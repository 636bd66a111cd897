// The backend a runtime runs on, chosen as runtime_options::backend asks (see options.hpp).

#include "options.hpp"

#include <ringkernel/host/error.hpp>

#include <cstdio>

namespace rk::detail {

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
