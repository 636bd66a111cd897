// The actor table (see actor_table.hpp).

#include "actor_table.hpp"

#include "support.hpp"

#include <ringkernel/host/error.hpp>

#include <algorithm>
#include <cstring>

namespace rk::detail {

actor_table::actor_table(memory_pool& memory, backend_impl& backend, scheduler& sched, std::uint32_t capacity)
    : memory_(memory), backend_(backend), scheduler_(sched), capacity_(capacity),
      slot_bits_(slot_bits_for(capacity)), slots_(capacity, generation_limit(slot_bits_for(capacity))) {
  d_routes_ =
      memory.allocate(sizeof(route_entry) * capacity, "the routing table (runtime_options::max_actors)");
  d_scheduled_ =
      memory.allocate(sizeof(std::uint32_t) * capacity, "the scheduled words (runtime_options::max_actors)");
  d_counters_ =
      memory.allocate(sizeof(actor_counters) * capacity, "actor counters (runtime_options::max_actors)");
  d_privates_ =
      memory.allocate(sizeof(actor_private) * capacity, "actor worker state (runtime_options::max_actors)");
  routes_.resize(capacity);
  forgotten_.id = host_actor;
  forgotten_.name = "(forgotten actors)";
}

void actor_table::describe(system_view& sys) const {
  sys.routes = d_routes_.as<route_entry>();
  sys.counters = d_counters_.as<actor_counters>();
  sys.privates = d_privates_.as<actor_private>();
  sys.sched.scheduled = d_scheduled_.as<std::uint32_t>();
  sys.route_capacity = capacity_;
  sys.actor_slot_bits = slot_bits_;
}

// --- handler types ----------------------------------------------------------------------------------------

std::uint32_t actor_table::kind_for(const actor_type_ops& ops, bool must_be_loaded, const std::string& who,
                                    bool& added) {
  added = false;
  for (std::uint32_t i = 0; i < kinds_.size(); ++i) {
    if (kinds_[i].ops.type != ops.type) continue;
    // A spawn from an nvcc-compiled file supplies the kernel a host-compiled one could not.
    if (kinds_[i].ops.cuda_kernel == nullptr && !kinds_[i].loaded) {
      std::lock_guard lock(mutex_); // stats() and dump_state() read the handler types under it
      kinds_[i].ops.cuda_kernel = ops.cuda_kernel;
      kinds_[i].ops.cuda_scheduled_kernel = ops.cuda_scheduled_kernel;
    }
    if (must_be_loaded && !kinds_[i].loaded)
      throw error(who + ": handler '" + ops.name + "' was not known at start()");
    return i;
  }
  if (must_be_loaded)
    throw error(
        who + ": handler '" + ops.name +
        "' was not known at start(): loading a kernel while persistent kernels run can deadlock under "
        "CUDA lazy loading, so spawn or prepare<H>() every handler type before start()");
  if (ops.name.empty() || !valid_utf8(ops.name))
    throw error(who + ": the handler type's name must be non-empty UTF-8 text (it labels metrics, traces, "
                      "state dumps and snapshots); fix its `static constexpr const char* name`");
  for (const kind_record& k : kinds_)
    if (k.ops.name == ops.name)
      throw error(who + ": another handler type is already named '" + ops.name +
                  "' (names identify handler types in snapshots, traces and metrics); give each handler "
                  "type its own `static constexpr const char* name`");
  {
    std::lock_guard lock(mutex_); // stats() and dump_state() read the handler types under it
    kinds_.push_back(kind_record{ops, false});
  }
  added = true;
  return static_cast<std::uint32_t>(kinds_.size() - 1);
}

void actor_table::remove_last_kind() noexcept {
  std::lock_guard lock(mutex_);
  kinds_.pop_back();
}

std::vector<const actor_type_ops*> actor_table::all_kinds() const {
  std::vector<const actor_type_ops*> out;
  for (const auto& k : kinds_) out.push_back(&k.ops);
  return out;
}

void actor_table::mark_kinds_loaded() noexcept {
  for (auto& k : kinds_) k.loaded = true;
}

const actor_type_ops* actor_table::kind_named(std::string_view name) const {
  std::lock_guard lock(mutex_);
  for (const kind_record& k : kinds_)
    if (k.ops.name == name) return &k.ops;
  return nullptr;
}

// --- ids, names, entries
// ------------------------------------------------------------------------------------

std::uint32_t actor_table::free_slots() const {
  std::lock_guard lock(mutex_);
  return slots_.available();
}

std::string actor_table::full_text(std::uint64_t wanted) const {
  std::lock_guard lock(mutex_);
  std::string text = "the actor table is full (max_actors = " + std::to_string(capacity_) +
                     slots_.retired_text("ids", "actors") + ")";
  if (const std::uint32_t free = slots_.available(); free != 0 && wanted > free)
    text.append(" for ")
        .append(std::to_string(wanted))
        .append(" more: ")
        .append(std::to_string(free))
        .append(" slots are free");
  return text;
}

bool actor_table::name_taken(std::string_view name) const {
  std::lock_guard lock(mutex_);
  return by_name_.find(name) != by_name_.end();
}

void actor_table::write_entry(std::uint32_t s) {
  // Every field with the slot still empty, then the host word that publishes it.
  route_entry e = routes_[s];
  e.host_word = host_word_of_state(epoch_of(e.host_word), host_state::empty);
  backend_.copy_to_device(&d_routes_.as<route_entry>()[s], &e, sizeof e);
  // A retired occupant left its scheduled word owned for good (schedule.cuh): the new one starts idle.
  const std::uint32_t idle = 0;
  backend_.copy_to_device(&d_scheduled_.as<std::uint32_t>()[s], &idle, sizeof idle);
  if (e.host_word != routes_[s].host_word)
    backend_.copy_to_device(&d_routes_.as<route_entry>()[s].host_word, &routes_[s].host_word,
                            sizeof e.host_word);
}

std::vector<actor_index> actor_table::add_actors(const actor_spec& spec, std::span<const std::string> names,
                                                 const std::byte* initials, std::size_t initial_stride,
                                                 bool running) {
  const actor_type_ops& ops = kinds_[spec.kind].ops;
  const batch_layout layout = layout_of(spec);
  const std::uint32_t lanes = layout.lanes;
  const std::size_t stride = layout.header_stride;
  const std::size_t state_offset = layout.state_offset;
  const std::size_t per_actor = layout.per_actor;
  const std::size_t slots_per_actor = layout.slots_per_actor;
  const std::size_t n = names.size();
  if (n == 0) return {};
  const std::uint64_t charged = spawn_charge(spec, n, running);
  // Refused whole before any of it is allocated and filled: a batch of huge mailboxes would otherwise fill
  // gigabytes of headers before its slots found no room.
  if (const std::size_t limit = backend_.memory_bytes(); n > limit / (per_actor + slots_per_actor)) {
    const std::string who = n == 1
                                ? "spawn('" + names.front() + "')"
                                : "spawning " + std::to_string(n) + " actors ('" + names.front() + "', ...)";
    throw error(who + ": " + std::to_string(n) + " x " + std::to_string(per_actor + slots_per_actor) +
                " bytes (mailbox of " + std::to_string(spec.mailbox.capacity) + " slots of " +
                std::to_string(spec.mailbox.slot_bytes) + " bytes x " + std::to_string(lanes) +
                " lane(s), and state) is more than the " + std::to_string(limit) +
                " bytes this backend has; use smaller mailboxes (actor_options::mailbox) or fewer actors");
  }
  std::vector<slot_allocator::slot_id> taken;
  taken.reserve(n);
  {
    std::lock_guard lock(mutex_);
    if (slots_.available() < n) throw out_of_room("spawn('" + names.front() + "'): the actor table is full");
    for (std::size_t i = 0; i < n; ++i) taken.push_back(*slots_.acquire());
  }
  std::vector<actor_index> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = make_id(taken[i].slot, taken[i].generation, slot_bits_);
  std::size_t named = 0; // names published so far (undone on failure)
  bool entries_written = false;
  try {
    const std::string what =
        n == 1 ? "the mailbox of '" + names.front() + "'"
               : std::string("the mailboxes of ").append(std::to_string(n)).append(" actors");
    auto block = std::make_shared<actor_memory>();
    block->headers_and_states = memory_.allocate(per_actor * n, what);
    try {
      block->slots = memory_.allocate(slots_per_actor * n, what + " (slots)", false);
    } catch (const out_of_room& e) { // said with the first block given back: its room is the spawn's too
      block->headers_and_states.reset();
      const arena_usage a = memory_.arena();
      throw out_of_room(
          std::string(e.what()) + " (this spawn needs " +
          std::to_string(arena_footprint(per_actor * n) + arena_footprint(slots_per_actor * n)) +
          " bytes of it in two pieces, " + std::to_string(arena_footprint(per_actor * n)) +
          " of them for mailbox headers and states; with nothing of it taken, " +
          std::to_string(a.bytes - a.used) + " bytes are free, the largest piece " +
          std::to_string(a.largest_piece) + ")");
    }
    std::byte* base = block->headers_and_states.as<std::byte>();
    std::byte* slots = block->slots.as<std::byte>();
    // Mailbox headers (cursors, sequence numbers) for every lane of every actor: one image, written with
    // one strided copy per lane; the slots themselves stay zero as allocated.
    std::vector<std::byte> header(spec.mailbox.slots_offset());
    init_ring_image(header.data(), spec.mailbox);
    for (std::uint32_t l = 0; l < lanes; ++l)
      backend_.copy_to_device_strided(base + l * stride, per_actor, header.data(), 0, header.size(), n);
    if (ops.state_size)
      backend_.copy_to_device_strided(base + state_offset, per_actor, initials, initial_stride,
                                      ops.state_size, n);

    std::lock_guard lock(mutex_);
    std::uint32_t last_slot = 0;
    for (const auto& t : taken) last_slot = std::max(last_slot, t.slot);
    if (records_.size() <= last_slot) records_.resize(last_slot + 1);
    by_name_.reserve(by_name_.size() + n);
    for (std::size_t i = 0; i < n; ++i) {
      route_entry e;
      e.mailbox = base + i * per_actor;
      e.slots = slots + i * slots_per_actor;
      e.geometry = spec.mailbox;
      e.lanes = lanes;
      e.kind = spec.kind;
      e.tenant = spec.tenant;
      e.tenant_slot = spec.tenant_slot;
      e.engagement_slot = spec.engagement_slot;
      e.next_hop = ids[i];
      e.generation = taken[i].generation;
      e.dedicated = spec.dedicated ? 1u : 0u;
      e.state = base + i * per_actor + state_offset;
      e.host_word = host_word_of_state(1, running ? host_state::empty : host_state::live);
      routes_[taken[i].slot] = e;
    }
    entries_written = true;
    write_entries(taken);
    for (std::size_t i = 0; i < n; ++i) {
      actor_record& r = records_[taken[i].slot];
      r.stage = stage_kind::active;
      r.id = ids[i];
      r.name = names[i];
      r.tenant = spec.tenant;
      r.kind = spec.kind;
      r.d_state = routes_[taken[i].slot].state;
      r.charged = charged / n + (i < charged % n ? 1 : 0); // the shares add up to the charge
      const std::byte* initial = initials + i * initial_stride;
      r.initial.assign(initial, initial + ops.state_size);
      r.memory = block;
      ++block->live;
      by_name_.emplace(names[i], ids[i]);
      ++named;
    }
  } catch (...) {
    std::lock_guard lock(mutex_);
    for (std::size_t i = n; i-- > 0;) {
      const std::uint32_t s = taken[i].slot;
      if (i < named) by_name_.erase(names[i]);
      routes_[s] = route_entry{};
      if (entries_written) {
        try {
          write_entry(s);
        } catch (...) { // the device is gone (a CUDA fault); nothing reads the entry any more
        }
      }
      if (s < records_.size()) records_[s] = actor_record{};
      slots_.unacquire(s);
    }
    throw;
  }
  return ids;
}

void actor_table::write_entries(std::span<const slot_allocator::slot_id> taken) {
  const bool consecutive = std::adjacent_find(taken.begin(), taken.end(), [](const auto& a, const auto& b) {
                             return b.slot != a.slot + 1;
                           }) == taken.end();
  if (!consecutive) {
    for (const auto& t : taken) write_entry(t.slot);
    return;
  }
  // Freshly handed-out slots in a row: entries and scheduled words in one copy each. Before start() no
  // worker reads them; while running they are written as `empty`, which workers skip.
  const std::uint32_t first = taken.front().slot;
  backend_.copy_to_device(&d_routes_.as<route_entry>()[first], &routes_[first],
                          sizeof(route_entry) * taken.size());
  const std::vector<std::uint32_t> idle(taken.size(), 0u);
  backend_.copy_to_device(&d_scheduled_.as<std::uint32_t>()[first], idle.data(),
                          sizeof(std::uint32_t) * taken.size());
}

const std::string* actor_table::first_taken(std::span<const std::string> names) const {
  std::lock_guard lock(mutex_);
  for (const std::string& n : names)
    if (by_name_.find(std::string_view(n)) != by_name_.end()) return &n;
  return nullptr;
}

actor_index actor_table::add_alias(const std::string& name, address target) {
  route_entry e;
  e.next_hop = target;
  e.host_word = host_word_of_state(1, host_state::alias);
  return add_entry_without_actor(name, e, false, "add_alias('" + name + "')");
}

actor_index actor_table::add_remote(const std::string& name, std::uint64_t tenant, std::uint32_t tenant_slot,
                                    ring_geometry outbound) {
  route_entry e; // no mailbox, next hop itself: a remote entry
  e.geometry = outbound;
  e.lanes = 1;
  e.tenant = tenant;
  e.tenant_slot = tenant_slot;
  e.dedicated = 1; // never in a run queue
  e.host_word = host_word_of_state(1, host_state::live);
  return add_entry_without_actor(name, e, true, "add_remote('" + name + "')");
}

actor_index actor_table::add_entry_without_actor(const std::string& name, route_entry e, bool self_hop,
                                                 const std::string& who) {
  std::lock_guard lock(mutex_);
  const std::optional<slot_allocator::slot_id> s = slots_.acquire();
  if (!s) throw out_of_room(who + ": the actor table is full");
  const actor_index id = make_id(s->slot, s->generation, slot_bits_);
  if (self_hop) e.next_hop = id;
  e.generation = s->generation;
  routes_[s->slot] = e;
  try {
    write_entry(s->slot);
    if (records_.size() <= s->slot) records_.resize(s->slot + 1);
  } catch (...) {
    routes_[s->slot] = route_entry{};
    slots_.unacquire(s->slot);
    throw;
  }
  actor_record& r = records_[s->slot];
  r.stage = stage_kind::active;
  r.id = id;
  r.name = name;
  r.alias = true;
  r.tenant = e.tenant;
  by_name_.emplace(name, id);
  return id;
}

void actor_table::unadd(actor_index id) noexcept {
  std::lock_guard lock(mutex_);
  const std::uint32_t s = slot(id);
  by_name_.erase(records_[s].name);
  routes_[s] = route_entry{};
  try {
    write_entry(s);
  } catch (...) { // the device is gone (a CUDA fault); nothing reads the entry any more
  }
  records_[s] = actor_record{};
  slots_.unacquire(s);
}

const actor_table::actor_record& actor_table::record(actor_index id, const std::string& who) const {
  const std::uint32_t s = slot(id);
  if (!current(id)) {
    // Issued once: its record is retiring, or its slot has moved on to a later generation (a slot's
    // generation advances when its occupant goes). Otherwise the id was never given out.
    const bool retiring =
        s < records_.size() && records_[s].stage == stage_kind::retiring && records_[s].id == id;
    const bool stale = retiring || id_generation(id, slot_bits_) < slots_.generation(s);
    std::string why = " (this runtime has " + std::to_string(by_name_.size()) + " actors and aliases)";
    if (is_group_address(id))
      why = " (it is a group's address, not an actor's: pass one of its members)";
    else if (stale)
      why = " (the actor or alias it named is gone: forgotten or removed)";
    throw error(call_name(who) + ": unknown actor id " + std::to_string(id) + why);
  }
  return records_[s];
}

actor_index actor_table::find(std::string_view name) const {
  std::lock_guard lock(mutex_);
  const auto it = by_name_.find(name);
  if (it == by_name_.end())
    throw error("find('" + std::string(name) + "'): no actor or alias with this name");
  return it->second;
}

std::string actor_table::name_of(actor_index id) const {
  std::lock_guard lock(mutex_);
  return record(id, "name_of()").name;
}

std::uint32_t actor_table::count() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::uint32_t>(by_name_.size());
}

void actor_table::check(actor_index id, const std::string& who, want sort) const {
  std::lock_guard lock(mutex_);
  const actor_record& r = record(id, who);
  if (sort == want::actor && r.alias) throw error(who + ": '" + r.name + "' is an alias, not an actor");
  if (sort == want::alias && !r.alias) throw error(who + ": '" + r.name + "' is an actor, not an alias");
}

bool actor_table::contains(actor_index id, want sort) const {
  std::lock_guard lock(mutex_);
  if (!current(id)) return false;
  return sort == want::any || (sort == want::alias) == records_[slot(id)].alias;
}

table_fill actor_table::fill() const {
  std::lock_guard lock(mutex_);
  return {slots_.in_use(), capacity_};
}

bool actor_table::launched(actor_index id) const {
  std::lock_guard lock(mutex_);
  return records_[slot(id)].launched;
}

std::uint64_t actor_table::tenant_of(actor_index id) const {
  std::lock_guard lock(mutex_);
  return record(id, "tenant_of()").tenant;
}

std::uint32_t actor_table::tenant_slot_of(actor_index id) const {
  std::lock_guard lock(mutex_);
  (void)record(id, "tenant_slot_of()");
  return routes_[slot(id)].tenant_slot;
}

std::uint32_t actor_table::kind_of(actor_index id) const {
  std::lock_guard lock(mutex_);
  return record(id, "kind_of()").kind;
}

// --- words the host writes ------------------------------------------------------------------------------

std::uint32_t actor_table::host_word(actor_index id) const {
  std::lock_guard lock(mutex_);
  return routes_[slot(id)].host_word;
}

std::uint32_t actor_table::device_word(actor_index id) const {
  std::lock_guard lock(mutex_);
  (void)record(id, "device_word()");
  std::uint32_t word = 0;
  backend_.copy_from_device(&word, &d_routes_.as<route_entry>()[slot(id)].device_word, sizeof word);
  return word;
}

void actor_table::write_host_word(actor_index id, std::uint32_t word) {
  {
    std::lock_guard lock(mutex_);
    routes_[slot(id)].host_word = word;
    backend_.copy_to_device(&d_routes_.as<route_entry>()[slot(id)].host_word, &word, sizeof word);
  }
  store_load_fence(); // before the caller reads the worker's acknowledgement: see acknowledge_resume
  wake_if_scheduled(id);
}

void actor_table::make_live(std::span<const actor_index> ids) {
  if (ids.empty()) return;
  std::lock_guard lock(mutex_);
  bool consecutive = true;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    route_entry& e = routes_[slot(ids[i])];
    e.host_word = make_state_word(epoch_of(e.host_word), static_cast<std::uint8_t>(host_state::live));
    consecutive = consecutive && slot(ids[i]) == slot(ids[0]) + i;
  }
  if (!consecutive) {
    for (actor_index id : ids)
      backend_.copy_to_device(&d_routes_.as<route_entry>()[slot(id)].host_word, &routes_[slot(id)].host_word,
                              sizeof(std::uint32_t));
    return;
  }
  // One strided copy of the host words of a batch spawned together (spawn_many while running).
  const std::uint32_t first = slot(ids[0]);
  backend_.copy_to_device_strided(&d_routes_.as<route_entry>()[first].host_word, sizeof(route_entry),
                                  &routes_[first].host_word, sizeof(route_entry), sizeof(std::uint32_t),
                                  ids.size());
}

void actor_table::wake_if_scheduled(actor_index id) {
  bool scheduled;
  {
    std::lock_guard lock(mutex_);
    scheduled = routes_[slot(id)].dedicated == 0 && routes_[slot(id)].mailbox != nullptr;
  }
  if (scheduled) scheduler_.wake(id);
}

bool actor_table::dedicated(actor_index id) const {
  std::lock_guard lock(mutex_);
  return routes_[slot(record(id, "dedicated()").id)].dedicated != 0;
}

address actor_table::next_hop(actor_index id) const {
  std::lock_guard lock(mutex_);
  return routes_[slot(id)].next_hop;
}

address actor_table::final_hop(address destination, std::uint32_t max_hops) const {
  std::lock_guard lock(mutex_);
  address d = destination;
  for (std::uint32_t hops = 0;; ++hops) {
    if (!current(d)) return host_actor;
    const std::uint32_t s = slot(d);
    const address next = routes_[s].next_hop;
    if (next == d) return records_[s].alias ? host_actor : d; // a remote entry: another rank's actor
    if (hops >= max_hops) return host_actor;
    d = next;
  }
}

void actor_table::write_next_hop(actor_index id, address next) {
  std::lock_guard lock(mutex_);
  routes_[slot(id)].next_hop = next;
  backend_.copy_to_device(&d_routes_.as<route_entry>()[slot(id)].next_hop, &next, sizeof next);
}

actor_lifecycle actor_table::lifecycle_of(const actor_record& r, std::uint32_t device_word) const {
  if (r.alias) return actor_lifecycle::alias;
  const std::uint32_t hw = routes_[slot(r.id)].host_word;
  switch (current_device_state(hw, device_word)) {
  case device_state::stopped:
    return actor_lifecycle::stopped;
  case device_state::faulted:
    return actor_lifecycle::faulted;
  default:
    break;
  }
  switch (static_cast<host_state>(state_in(hw))) {
  case host_state::paused:
    return actor_lifecycle::paused;
  case host_state::stopping:
    return actor_lifecycle::stopping;
  default:
    return actor_lifecycle::live;
  }
}

actor_lifecycle actor_table::lifecycle(actor_index id) const {
  std::lock_guard lock(mutex_);
  const actor_record& r = record(id, "lifecycle()");
  std::uint32_t dw = 0;
  backend_.copy_from_device(&dw, &d_routes_.as<route_entry>()[slot(id)].device_word, sizeof dw);
  return lifecycle_of(r, dw);
}

void actor_table::resume_paused() {
  std::vector<actor_index> resumed;
  {
    std::lock_guard lock(mutex_);
    for (const actor_record& r : records_) {
      if (r.stage != stage_kind::active || r.alias) continue;
      std::uint32_t& hw = routes_[slot(r.id)].host_word;
      if (static_cast<host_state>(state_in(hw)) != host_state::paused) continue;
      hw = host_word_of_state(epoch_of(hw), host_state::live);
      backend_.copy_to_device(&d_routes_.as<route_entry>()[slot(r.id)].host_word, &hw, sizeof hw);
      resumed.push_back(r.id);
    }
  }
  for (actor_index id : resumed) wake_if_scheduled(id);
}

std::uint64_t actor_table::device_bytes(actor_index id) const {
  std::lock_guard lock(mutex_);
  return record(id, "device_bytes()").charged;
}

actor_table::batch_layout actor_table::layout_of(const actor_spec& spec) const {
  const actor_type_ops& ops = kinds_[spec.kind].ops;
  batch_layout l;
  l.lanes = spec.priority_lanes ? priority_levels : 1;
  l.header_stride = spec.mailbox.header_bytes();
  l.state_offset = round_up(l.header_stride * l.lanes, std::max<std::size_t>(ops.state_align, 64));
  l.per_actor = round_up(l.state_offset + ops.state_size, 64);
  l.slots_per_actor = spec.mailbox.slots_bytes() * l.lanes;
  return l;
}

std::uint64_t actor_table::spawn_charge(const actor_spec& spec, std::uint64_t n, bool running) const {
  constexpr std::uint64_t saturated = ~std::uint64_t{0};
  const auto times_n = [n](std::uint64_t bytes) {
    return n != 0 && bytes > saturated / n ? saturated : bytes * n;
  };
  if (!running)
    return times_n(charged_device_bytes(spec.mailbox, spec.priority_lanes ? priority_levels : 1,
                                        kinds_[spec.kind].ops.state_size));
  const batch_layout l = layout_of(spec);
  const std::uint64_t headers_and_states = times_n(l.per_actor);
  const std::uint64_t slots = times_n(l.slots_per_actor);
  // Each below half the range: their footprints (at most 255 bytes more each) add up without wrapping.
  if (headers_and_states > saturated / 2 - arena_alignment || slots > saturated / 2 - arena_alignment)
    return saturated;
  return arena_footprint(headers_and_states) + arena_footprint(slots);
}

// --- launches
// -------------------------------------------------------------------------------------------------

std::vector<std::vector<actor_index>> actor_table::unlaunched_by_kind(bool dedicated) const {
  std::lock_guard lock(mutex_);
  std::vector<std::vector<actor_index>> by_kind(kinds_.size());
  for (const actor_record& r : records_)
    if (r.stage == stage_kind::active && !r.alias && !r.launched &&
        (routes_[slot(r.id)].dedicated != 0) == dedicated)
      by_kind[r.kind].push_back(r.id);
  return by_kind;
}

void actor_table::mark_launched(const std::vector<actor_index>& ids, bool launched) noexcept {
  std::lock_guard lock(mutex_);
  for (actor_index id : ids) records_[slot(id)].launched = launched;
}

std::string actor_table::describe_actors(const std::vector<actor_index>& ids) const {
  std::lock_guard lock(mutex_);
  std::string text;
  constexpr std::size_t named = 8;
  for (std::size_t i = 0; i < ids.size() && i < named; ++i) text += (i ? ", " : "") + name_locked(ids[i]);
  if (ids.size() > named) text += " and " + std::to_string(ids.size() - named) + " more";
  return text;
}

std::string actor_table::name_for_report(actor_index id) const {
  std::lock_guard lock(mutex_);
  return name_locked(id);
}

std::string actor_table::name_locked(actor_index id) const {
  const std::uint32_t s = slot(id);
  if (s < records_.size() && records_[s].stage != stage_kind::free && records_[s].id == id)
    return records_[s].name;
  std::string unknown = std::to_string(id); // an actor forgotten meanwhile: its id
  return unknown.insert(0, "id ");
}

std::string actor_table::handler_for_report(actor_index id) const {
  std::lock_guard lock(mutex_);
  const std::uint32_t s = slot(id);
  if (s < records_.size() && records_[s].stage != stage_kind::free && records_[s].id == id &&
      !records_[s].alias)
    return kinds_[records_[s].kind].ops.name;
  return "(unknown)";
}

} // namespace rk::detail
