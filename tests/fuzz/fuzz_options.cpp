// libFuzzer target: the option and geometry validators. Oracles: ring_geometry::validate() accepts only
// geometries whose layout arithmetic cannot overflow; rk::detail::validated() either throws rk::error with
// a message or returns options every facility can be built from. Build and run: see tests/fuzz/README.md.

#include "options.hpp" // rk::detail::validated (host/src)

#include <ringkernel/host/error.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>

namespace {
[[noreturn]] void violated(const char* oracle) {
  std::fprintf(stderr, "oracle violated: %s\n", oracle);
  std::abort();
}

void check_geometry(const rk::ring_geometry& g) {
  if (g.validate() != nullptr) return;
  if (g.capacity < 2 || (g.capacity & (g.capacity - 1)) != 0) violated("capacity is a power of two");
  if (g.slot_bytes < 128 || g.slot_bytes % 64 != 0) violated("slots hold an envelope and stay aligned");
  const unsigned __int128 exact = static_cast<unsigned __int128>(g.slots_offset()) +
                                  static_cast<unsigned __int128>(g.capacity) * g.slot_bytes;
  if (exact != g.total_bytes()) violated("the ring's size does not overflow");
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  check_geometry({in.ConsumeIntegral<std::uint32_t>(), in.ConsumeIntegral<std::uint32_t>()});
  rk::runtime_options o;
  o.max_actors = in.ConsumeIntegral<std::uint32_t>();
  o.max_groups = in.ConsumeIntegral<std::uint32_t>();
  o.max_group_members = in.ConsumeIntegral<std::uint32_t>();
  o.max_hops = in.ConsumeIntegral<std::uint32_t>();
  o.starvation_limit = in.ConsumeIntegral<std::uint32_t>();
  o.max_message_types = in.ConsumeIntegral<std::uint32_t>();
  o.host_ring = {in.ConsumeIntegral<std::uint32_t>(), in.ConsumeIntegral<std::uint32_t>()};
  o.audit_ring_slots = in.ConsumeIntegral<std::uint32_t>();
  o.start_timeout = std::chrono::milliseconds(in.ConsumeIntegral<std::int64_t>());
  o.drain_timeout = std::chrono::milliseconds(in.ConsumeIntegral<std::int64_t>());
  o.stop_timeout = std::chrono::milliseconds(in.ConsumeIntegral<std::int64_t>());
  o.trace.sample_every = in.ConsumeIntegral<std::uint32_t>();
  o.trace.ring_slots = in.ConsumeIntegral<std::uint32_t>();
  o.trace.max_records = in.ConsumeIntegral<std::size_t>();
  o.trace.collect_interval = std::chrono::milliseconds(in.ConsumeIntegral<std::int64_t>());
  try {
    const rk::runtime_options v = rk::detail::validated(o);
    if (v.max_actors == 0 || v.max_actors > (1u << 24)) violated("max_actors in range");
    if (v.host_ring.validate() != nullptr) violated("the host rings are valid");
    if (rk::audit_ring_geometry(v.audit_ring_slots).validate() != nullptr)
      violated("the audit ring is valid");
    if (v.max_hops > rk::max_hops_limit) violated("the hop counter can exceed max_hops");
    if (v.starvation_limit == 0 || v.starvation_limit > 255) violated("starvation_limit fits its counter");
    if (v.max_group_members == 0) violated("max_group_members is filled in");
    if (v.start_timeout.count() < 0 || v.drain_timeout.count() < 0 || v.stop_timeout.count() < 1)
      violated("timeouts are not negative, and shutdown waits for its workers");
    if (v.trace.sample_every != 0 &&
        (rk::trace_ring_geometry(v.trace.ring_slots).validate() != nullptr || v.trace.max_records == 0 ||
         v.trace.collect_interval.count() < 1 || v.trace.collect_interval.count() > 10'000))
      violated("a trace that is on has a valid ring, room for a record and a bounded interval");
  } catch (const rk::error& e) {
    if (std::string_view(e.what()).find("runtime_options::") == std::string_view::npos)
      violated("a refusal names the option");
  }
  return 0;
}
