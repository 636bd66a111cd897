// The scheduler's host side (see scheduler.hpp).

#include "scheduler.hpp"

#include "support.hpp"

#include <ringkernel/host/error.hpp>

#include <vector>

namespace rk::detail {

namespace {
constexpr ring_geometry wake_ring_geometry{256, ring_geometry::min_slot_bytes};

std::uint32_t power_of_two_at_least(std::uint32_t n) {
  std::uint32_t p = 1;
  while (p < n) p <<= 1;
  return p;
}
} // namespace

scheduler::scheduler(memory_pool& memory, backend_impl& backend, const runtime_options& options)
    : memory_(memory), backend_(backend), options_(options) {
  wake_memory_ = memory.allocate_mapped(wake_ring_geometry.total_bytes(), "the scheduler's wake ring");
  init_ring_image(wake_memory_.host(), wake_ring_geometry);
  h_wakes_ = make_ring_view(wake_memory_.host(), wake_ring_geometry);
  d_wakes_ = make_ring_view(wake_memory_.device(), wake_ring_geometry);
}

void scheduler::describe(system_view& sys) const {
  sys.sched.wakes = d_wakes_;
  sys.sched.turn_messages = options_.actor_turn_messages;
  sys.sched.turn_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.actor_turn_time).count());
}

std::uint32_t scheduler::workers_per_kind() const {
  return options_.scheduled_workers != 0 ? options_.scheduled_workers : backend_.default_scheduled_workers();
}

void scheduler::create_queues(std::uint32_t kinds, std::uint32_t actors, system_view& sys) {
  if (kinds == 0) return;
  const std::uint32_t capacity = power_of_two_at_least(std::max(actors + 1, 64u));
  const std::size_t stride = round_up(run_queue_bytes(capacity), false_sharing_range);
  device_block queues =
      memory_.allocate(stride * kinds, "the scheduler's run queues (runtime_options::max_actors)");
  device_block views = memory_.allocate(sizeof(run_queue_view) * kinds,
                                        "the scheduler's run queues (runtime_options::max_actors)");
  std::vector<std::byte> image(run_queue_bytes(capacity));
  init_run_queue_image(image.data(), capacity);
  std::vector<run_queue_view> host_views;
  for (std::uint32_t k = 0; k < kinds; ++k) {
    std::byte* base = queues.as<std::byte>() + k * stride;
    backend_.copy_to_device(base, image.data(), image.size());
    host_views.push_back(make_run_queue_view(base, capacity));
  }
  backend_.copy_to_device(views.get(), host_views.data(), sizeof(run_queue_view) * kinds);
  queue_memory_ = std::move(queues);
  view_memory_ = std::move(views);
  sys.sched.queues = view_memory_.as<run_queue_view>();
  sys.sched.kinds = kinds;
}

void scheduler::wake(actor_index id) {
  if (!gateway_running_.load()) return;
  std::lock_guard lock(wake_mutex_);
  const ingress_ring ring(h_wakes_);
  envelope request{};
  request.destination = id;
  const std::byte no_payload{};
  const wait_result r = wait_until([&] { return ring.try_send(request, &no_payload) == status::delivered; },
                                   [&] { return !gateway_running_.load(); }, 10'000'000'000ull);
  if (r == wait_result::ready) backend_.notify_gateway();
  if (r == wait_result::timed_out)
    throw error("the gateway did not take a wake request for actor " + std::to_string(id) +
                " within 10 s (its wake ring stayed full); the device may be stalled");
}

} // namespace rk::detail
