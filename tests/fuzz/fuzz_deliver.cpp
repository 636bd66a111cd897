// libFuzzer target: the one decision point (prepare_delivery + commit, what the gateway and every K2K send
// call) over a system view built from the input: routing entries with any lifecycle words, generations,
// routes and tenants, groups with any members, tenant and region tables, a not-routable bitmap; then a
// run of messages with arbitrary envelopes and payloads (descriptors included).
//
// Oracles, after every send:
//  - at most one delivery, into the mailbox the verdict names, counted in exactly that actor's `received`;
//  - a delivered message's receiver has the sender's tenant; its hop count is at most max_hops;
//  - a delivered descriptor names live, final bytes the sender's tenant may read (an independent check);
//  - a K2K message of a blocked type is never delivered; a host send to the host is invalid_destination;
//  - a remote entry marked unreachable (its rank is gone) takes nothing;
//  - every refusal leaves every mailbox and counter as it was.
// Build and run: see tests/fuzz/README.md.

#include <ringkernel/device/detail/deliver.cuh>

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

using namespace rk;
using namespace rk::detail;

constexpr std::uint32_t actors = 8, groups = 2, tenants = 4, regions = 2, slot_bits = 3, group_bits = 1;
constexpr ring_geometry lane{4, 256};

struct world {
  std::vector<route_entry> routes = std::vector<route_entry>(actors);
  std::vector<actor_counters> counters = std::vector<actor_counters>(actors);
  std::vector<actor_private> privates = std::vector<actor_private>(actors);
  std::vector<group_entry> group_table = std::vector<group_entry>(groups);
  std::vector<address> members = std::vector<address>(actors);
  std::vector<std::uint32_t> cursors = std::vector<std::uint32_t>(groups);
  std::vector<tenant_entry> tenant_table = std::vector<tenant_entry>(tenants);
  std::vector<engagement_entry> engagements = std::vector<engagement_entry>(1);
  std::vector<region_entry> region_table = std::vector<region_entry>(regions);
  std::vector<std::uint32_t> blocked = std::vector<std::uint32_t>(2);
  std::vector<std::vector<std::byte>> mailboxes;
  std::vector<std::byte> region_bytes = std::vector<std::byte>(4096);
  std::vector<std::byte> egress_memory, outbound_memory, audit_memory;
  std::uint64_t egress_tail = 0, outbound_tail = 0, audit_tail = 0, audit_overflow = 0;
  control_block control{};
  gateway_counters gateway{};
  system_view sys{};

  static std::vector<std::byte> ring(const ring_geometry& g) {
    std::vector<std::byte> memory(g.total_bytes() + 256);
    init_ring_image(aligned(memory), g);
    return memory;
  }
  static std::byte* aligned(std::vector<std::byte>& v) {
    return reinterpret_cast<std::byte*>((reinterpret_cast<std::uintptr_t>(v.data()) + 255) &
                                        ~std::uintptr_t{255});
  }

  explicit world(FuzzedDataProvider& in) {
    for (std::uint32_t s = 0; s < actors; ++s) {
      route_entry& e = routes[s];
      // About one in four: a remote entry (no mailbox; deliveries go to the outbound ring).
      const bool remote = in.ConsumeBool() && in.ConsumeBool();
      e.lanes = !remote && in.ConsumeBool() ? priority_levels : 1;
      if (remote) {
        e.geometry = host_geometry;
      } else {
        // Headers (one ring image per lane), then the slots, as the actor table lays them out.
        mailboxes.emplace_back(lane_stride(lane) * e.lanes + 256);
        for (std::uint32_t l = 0; l < e.lanes; ++l)
          init_ring_image(aligned(mailboxes.back()) + l * lane.header_bytes(), lane);
        e.mailbox = aligned(mailboxes.back());
        e.slots = e.mailbox + e.lanes * lane.header_bytes();
        e.geometry = lane;
      }
      e.generation = in.ConsumeIntegralInRange<std::uint32_t>(0, 3);
      e.tenant = in.ConsumeIntegralInRange<std::uint64_t>(0, tenants - 1);
      e.tenant_slot = static_cast<std::uint32_t>(e.tenant);
      e.engagement_slot = in.ConsumeBool() ? 0 : no_slot;
      const address own = make_id(s, e.generation, slot_bits);
      e.next_hop = remote || in.ConsumeBool() ? own : in.ConsumeIntegral<address>();
      e.host_word = make_state_word(in.ConsumeIntegralInRange<std::uint32_t>(0, 3),
                                    in.ConsumeIntegralInRange<std::uint8_t>(0, 7));
      e.device_word = make_state_word(in.ConsumeIntegralInRange<std::uint32_t>(0, 3),
                                      in.ConsumeIntegralInRange<std::uint8_t>(0, 5));
    }
    std::uint32_t next_member = 0;
    for (std::uint32_t g = 0; g < groups; ++g) {
      group_entry& e = group_table[g];
      e.count = in.ConsumeIntegralInRange<std::uint32_t>(0, actors / groups);
      e.first = next_member;
      for (std::uint32_t k = 0; k < e.count; ++k) members[next_member++] = in.ConsumeIntegral<address>() % 64;
      e.generation = in.ConsumeBool() ? in.ConsumeIntegralInRange<std::uint32_t>(0, 3) : no_slot;
      // The members' tenant slot: a sender of another slot must not move the round-robin cursor.
      e.tenant_slot = in.ConsumeBool() ? in.ConsumeIntegralInRange<std::uint32_t>(0, tenants) : no_slot;
    }
    for (std::uint32_t t = 0; t < tenants; ++t) {
      tenant_table[t].id = in.ConsumeBool() ? t : in.ConsumeIntegralInRange<std::uint64_t>(0, tenants);
      tenant_table[t].rate_per_second =
          in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<std::uint64_t>(1, 1000);
      tenant_table[t].burst = in.ConsumeIntegralInRange<std::uint64_t>(0, 4);
    }
    engagements[0].budget_ns = in.ConsumeBool() ? 0 : 1;
    engagements[0].used_ns = in.ConsumeIntegralInRange<std::uint64_t>(0, 2);
    for (std::uint32_t r = 0; r < regions; ++r) {
      region_entry& e = region_table[r];
      e.base = region_bytes.data() + r * 2048;
      // The bytes are never read here, so a region may also claim more than 4 GiB (descriptor lengths).
      e.size = in.ConsumeBool() ? in.ConsumeIntegralInRange<std::uint64_t>(1, 2048)
                                : in.ConsumeIntegralInRange<std::uint64_t>(1, std::uint64_t{1} << 40);
      e.append_cursor = in.ConsumeIntegralInRange<std::uint64_t>(0, e.size);
      e.owner_tenant = in.ConsumeIntegralInRange<std::uint64_t>(0, tenants - 1);
      e.shared_count = in.ConsumeIntegralInRange<std::uint32_t>(0, 2);
      for (std::uint32_t i = 0; i < e.shared_count; ++i)
        e.shared_with[i] = in.ConsumeIntegralInRange<std::uint64_t>(0, tenants - 1);
      e.generation = in.ConsumeIntegralInRange<std::uint32_t>(0, 3);
      e.policy = in.ConsumeIntegralInRange<std::uint32_t>(0, 3);
      e.live = in.ConsumeBool();
    }
    blocked[0] = in.ConsumeIntegral<std::uint32_t>();
    blocked[1] = in.ConsumeIntegral<std::uint32_t>();

    const ring_geometry host = host_geometry;
    egress_memory = ring(host);
    outbound_memory = ring(host);
    audit_memory = ring(audit_ring_geometry(8));
    sys.routes = routes.data();
    sys.counters = counters.data();
    sys.privates = privates.data();
    sys.route_capacity = actors;
    sys.actor_slot_bits = slot_bits;
    sys.group_slot_bits = group_bits;
    sys.group_capacity = groups;
    sys.groups = group_table.data();
    sys.group_members = members.data();
    sys.group_cursors = cursors.data();
    sys.blocked_types = blocked.data();
    sys.blocked_type_limit = 64;
    sys.max_hops = in.ConsumeIntegralInRange<std::uint32_t>(0, max_hops_limit());
    sys.tenants = tenant_table.data();
    sys.tenant_capacity = tenants;
    sys.engagements = engagements.data();
    sys.engagement_capacity = 1;
    sys.regions = region_table.data();
    sys.region_capacity = regions;
    sys.audit.ring = make_ring_view(aligned(audit_memory), audit_ring_geometry(8));
    sys.audit.ring.tail = &audit_tail;
    sys.audit.overflow = &audit_overflow;
    sys.control = &control;
    sys.gateway = &gateway;
    sys.egress = make_ring_view(aligned(egress_memory), host);
    sys.egress.tail = &egress_tail;
    sys.outbound = make_ring_view(aligned(outbound_memory), host);
    sys.outbound.tail = &outbound_tail;
  }
  static constexpr std::uint32_t max_hops_limit() { return 254; }
  static constexpr ring_geometry host_geometry{4, 256}; //!< egress and outbound rings
};

[[noreturn]] void violated(const char* oracle) {
  std::fprintf(stderr, "oracle violated: %s\n", oracle);
  std::abort();
}

//! What the device promises about a descriptor it delivered, checked from the region table directly.
bool descriptor_allowed(const world& w, std::uint64_t tenant, const std::byte* payload,
                        std::uint32_t length) {
  if (length != sizeof(region_descriptor)) return false;
  region_descriptor d;
  std::memcpy(&d, payload, sizeof d);
  if (d.region >= regions) return false;
  const region_entry& r = w.region_table[d.region];
  if (!r.live || r.generation != d.generation) return false;
  if (r.policy != static_cast<std::uint32_t>(region_policy::immutable) &&
      r.policy != static_cast<std::uint32_t>(region_policy::append_only))
    return false;
  if (d.length > r.size || d.offset > r.size - d.length) return false;
  if (d.length > 0xFFFF'FFFFu) return false; // what a receiver's byte_view can hold
  if (r.policy == static_cast<std::uint32_t>(region_policy::append_only) &&
      d.offset + d.length > r.append_cursor)
    return false;
  if (r.owner_tenant == tenant) return true;
  for (std::uint32_t i = 0; i < r.shared_count && i < max_region_sharing; ++i)
    if (r.shared_with[i] == tenant) return true;
  return false;
}

std::uint64_t published(const ring_view& v) {
  std::uint64_t n = 0;
  for (std::uint64_t p = *v.head; p < *v.head + v.capacity; ++p) n += v.seq[p & (v.capacity - 1)] == p + 1;
  return n;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  world w(in);
  std::uint64_t sends = 0;
  while (in.remaining_bytes() > 0) {
    envelope h;
    h.correlation_id = ++sends; // tells this send's message from the earlier ones in a mailbox
    h.source = in.ConsumeBool() ? host_actor : in.ConsumeIntegral<actor_index>() % 64;
    const std::uint8_t kind = in.ConsumeIntegralInRange<std::uint8_t>(0, 3);
    h.destination = kind == 0   ? host_actor
                    : kind == 1 ? group_address(in.ConsumeIntegralInRange<std::uint32_t>(0, 7))
                    : kind == 2 ? in.ConsumeIntegral<address>() % 64
                                : in.ConsumeIntegral<address>();
    h.type_id = in.ConsumeIntegralInRange<std::uint32_t>(0, 70);
    h.flags = in.ConsumeIntegral<std::uint16_t>();
    h.priority = in.ConsumeIntegral<std::uint8_t>();
    h.hops = in.ConsumeIntegral<std::uint8_t>();
    h.tenant = in.ConsumeIntegralInRange<std::uint64_t>(0, tenants);
    h.tenant_slot = in.ConsumeIntegralInRange<std::uint32_t>(0, tenants + 1);
    h.route_key = in.ConsumeIntegral<std::uint64_t>();
    std::vector<std::uint8_t> payload =
        in.ConsumeBytes<std::uint8_t>(in.ConsumeIntegralInRange<std::size_t>(0, 300));
    h.payload_length = static_cast<std::uint32_t>(payload.size());
    const std::vector<actor_counters> before = w.counters;
    const std::vector<std::uint32_t> cursors_before = w.cursors;
    const std::uint64_t egress_before = published(w.sys.egress);
    const std::uint64_t outbound_before = published(w.sys.outbound);

    const status verdict = deliver(w.sys, h, payload.data());

    for (std::uint32_t g = 0; g < groups; ++g)
      if (w.group_table[g].tenant_slot != h.tenant_slot && w.cursors[g] != cursors_before[g])
        violated("another tenant's send moves no group's round-robin cursor");

    std::uint32_t receivers = 0, receiver = 0;
    for (std::uint32_t s = 0; s < actors; ++s)
      if (w.counters[s].received != before[s].received) {
        if (w.counters[s].received != before[s].received + 1) violated("one send, one count");
        ++receivers;
        receiver = s;
      }
    const std::uint64_t to_host = published(w.sys.egress) - egress_before;
    const std::uint64_t to_remote = published(w.sys.outbound) - outbound_before;
    if (verdict != status::delivered) {
      if (receivers != 0 || to_host != 0 || to_remote != 0) violated("a refused send wrote nothing");
      if (h.source == host_actor && h.destination == host_actor && verdict != status::invalid_destination)
        violated("the host cannot send to itself");
    } else {
      if (receivers + to_host + to_remote != 1) violated("a delivered send lands exactly once");
      if (to_remote == 1) {
        const ring_view& v = w.sys.outbound;
        bool found = false;
        for (std::uint64_t p = 0; p < v.capacity && !found; ++p) {
          envelope got;
          std::memcpy(&got, v.slots + p * v.slot_bytes, sizeof got);
          if (v.seq[p] != p + 1 || got.correlation_id != h.correlation_id) continue;
          found = true;
          const std::uint32_t slot = id_slot(got.destination, slot_bits);
          if (is_group_address(got.destination) || slot >= actors || w.routes[slot].mailbox != nullptr ||
              w.routes[slot].generation != id_generation(got.destination, slot_bits))
            violated("an outbound message names the remote entry it was decided for");
          if (w.routes[slot].tenant != h.tenant) violated("the remote actor has the sender's tenant");
          if (static_cast<host_state>(state_in(w.routes[slot].host_word)) == host_state::unreachable)
            violated("a remote entry whose rank is gone takes nothing");
          if (got.hops > w.sys.max_hops) violated("hops never exceed max_hops");
        }
        if (!found) violated("the delivered message is in the outbound ring");
      }
      if (h.source != host_actor && h.destination != host_actor && h.type_id < 64 &&
          ((w.blocked[h.type_id / 32] >> (h.type_id % 32)) & 1u))
        violated("a blocked type never travels K2K");
      if (receivers == 1) {
        const route_entry& e = w.routes[receiver];
        if (e.tenant != h.tenant) violated("the receiver has the sender's tenant");
        // The newest published message of the lane it went to.
        bool found = false;
        for (std::uint32_t l = 0; l < e.lanes && !found; ++l) {
          const ring_view v = lane_view(e, l);
          for (std::uint64_t p = 0; p < v.capacity && !found; ++p) {
            if (v.seq[p] != p + 1) continue;
            envelope got;
            std::memcpy(&got, v.slots + p * v.slot_bytes, sizeof got);
            if (got.correlation_id != h.correlation_id) continue;
            found = true;
            if (got.hops > w.sys.max_hops) violated("hops never exceed max_hops");
            if ((h.flags & envelope_flags::descriptor) != 0 &&
                !descriptor_allowed(w, h.tenant, v.slots + p * v.slot_bytes + envelope_bytes,
                                    got.payload_length))
              violated("a delivered descriptor names bytes the sender may hand out");
          }
        }
        if (!found) violated("the delivered message is in the receiver's mailbox");
      }
    }
  }
  return 0;
}
