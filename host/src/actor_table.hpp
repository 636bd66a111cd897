#pragma once
// The actor table: actor and alias ids (slots with generations), names, handler types, each actor's
// mailbox and state memory, and the routing-table entries with their host-written lifecycle words.
//
// Owns (device memory): route_entry[max_actors] (sys.routes), actor_counters[] (sys.counters),
// actor_private[] (sys.privates), the scheduled words (sys.sched.scheduled), and per batch of actors
// spawned together two blocks: mailbox headers and handler states; mailbox slots (see lane_view). After
// writing a scheduled actor's lifecycle word it asks the scheduler to wake the actor, so a worker
// acknowledges the change. Host side: one record per slot and a shadow of every entry's host-written fields.
// It writes an entry whole only while the slot is empty and no worker holds it; afterwards single words
// (host_word, next_hop); never device_word.
//
// Called by the coordinator (spawn, forget, lifecycle calls), routing (alias entries, next_hop words) and
// run control (launch lists, stats, drain sums, final states). Setup calls are serialised by the
// coordinator; lookups (find, name_of, lifecycle, stats) may come from any thread: one mutex guards the
// records and is never held while calling another facility. Never touches tenants, regions, groups or the
// host rings: tenant charges are the caller's.

#include "grace.hpp"
#include "memory.hpp"
#include "scheduler.hpp"

#include <ringkernel/host/detail/actor_type.hpp>
#include <ringkernel/host/options.hpp>
#include <ringkernel/host/snapshot.hpp>
#include <ringkernel/host/state_dump.hpp>
#include <ringkernel/host/stats.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <typeindex>
#include <unordered_map>
#include <vector>

namespace rk::detail {

//! What spawn asks the table to create for one actor.
//! The memory of actors spawned together: mailbox headers and handler states (written at the spawn), and
//! mailbox slots (written as messages arrive: on the CPU backend their pages are mapped on first use).
//! It is freed with the last of them; what their tenant was charged for the forgotten ones (give_up) is
//! refunded then (actor_table::on_block_freed).
struct actor_memory {
  device_block headers_and_states;
  device_block slots;
  std::uint32_t live = 0;        //!< its actors not given up yet
  std::uint64_t given_up = 0;    //!< device bytes of those given up, still charged
  std::uint64_t pinned = 0;      //!< of given_up: given up while others lived (tenant_table::give_up_actor)
  std::uint64_t tenant = 0;      //!< theirs (a batch has one tenant)
  std::uint64_t incarnation = 0; //!< of that tenant, when the first was given up
};

//! How forget()'s bytes wait for their memory (actor_table::plan_give_up).
struct give_up_plan {
  bool others_live = false;   //!< actors spawned with it are still there: its bytes wait for the last
  std::uint64_t unpinned = 0; //!< it is that last: bytes of those before it that now wait only for grace
};

struct actor_spec {
  std::uint32_t kind = 0;
  std::uint64_t tenant = 0;
  std::uint32_t tenant_slot = 0;
  std::uint32_t engagement_slot = no_slot;
  ring_geometry mailbox{};
  bool priority_lanes = true;
  bool dedicated = false; //!< a worker of its own (actor_options::dedicated_worker)
};

//! A slot's host word: `s` in the slot's current epoch.
inline std::uint32_t host_word_of_state(std::uint32_t epoch, host_state s) {
  return make_state_word(epoch, static_cast<std::uint8_t>(s));
}

//! Heterogeneous lookup by std::string_view in the name maps.
struct name_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

//! Counters of actors that were forgotten, summed per tenant (tenant usage keeps counting them).
struct tenant_history {
  std::uint64_t passed = 0;
  std::uint64_t handler_ns = 0;
};

class actor_table {
public:
  actor_table(memory_pool& memory, backend_impl& backend, scheduler& sched, std::uint32_t capacity);
  void describe(system_view& sys) const;

  // --- handler types (added before start(); never removed once an actor uses them) -------------------
  //! The index of `ops`'s handler type, adding it if new (`added` says so). Throws when it is new, or
  //! was not loaded, and `must_be_loaded`.
  std::uint32_t kind_for(const actor_type_ops& ops, bool must_be_loaded, const std::string& who, bool& added);
  void remove_last_kind() noexcept;
  const actor_type_ops& kind(std::uint32_t k) const { return kinds_[k].ops; }
  std::vector<const actor_type_ops*> all_kinds() const;
  void mark_kinds_loaded() noexcept;

  // --- ids, names, entries -----------------------------------------------------------------------------
  //! Slots free now (given-back ones still in a grace period do not count, nor retired ones).
  std::uint32_t free_slots() const;
  //! "the actor table is full (max_actors = N)", saying how many slots are retired when some are (a
  //! slot's ids repeat after generation_limit reuses, so the slot is then given up for good), and, for a
  //! batch of `wanted` entries that found some slots free, how many.
  std::string full_text(std::uint64_t wanted = 1) const;
  bool name_taken(std::string_view name) const;
  //! The first of `names` that is taken, or null.
  const std::string* first_taken(std::span<const std::string> names) const;
  //! New actors named `names`, one per name, all as `spec` says (spec.name and spec.initial unused):
  //! slots, device blocks with every mailbox and state (initialised; actor i's state from
  //! `initials + i * initial_stride`, so stride 0 gives all the same state), entries (live before
  //! start(); empty while running, until made live). The blocks are freed with the last of them. Returns
  //! the ids in name order. Throws rk::error with nothing kept.
  std::vector<actor_index> add_actors(const actor_spec& spec, std::span<const std::string> names,
                                      const std::byte* initials, std::size_t initial_stride, bool running);
  //! A new alias with an indirect route to `target` (already validated), published at once.
  actor_index add_alias(const std::string& name, address target);
  //! A new remote entry (system.cuh): stands for an actor of tenant `tenant` on another rank; deliveries
  //! to it go to the outbound ring of geometry `outbound`. Published at once; an alias in every other
  //! respect here (no worker, no state, not counted as an actor).
  actor_index add_remote(const std::string& name, std::uint64_t tenant, std::uint32_t tenant_slot,
                         ring_geometry outbound);
  //! Undoes add_actor/add_alias of an id that no worker saw and nobody was given: the table is exactly as
  //! before it. Call in the reverse order of the adds.
  void unadd(actor_index id) noexcept;

  //! The id of `name`; throws rk::error naming it when there is none.
  actor_index find(std::string_view name) const;
  std::string name_of(actor_index id) const;
  std::uint32_t count() const;
  std::uint32_t capacity() const noexcept { return capacity_; }
  //! Slots in use, including given-back ones still waiting for their worker or a grace period.
  table_fill fill() const;
  bool launched(actor_index id) const;
  enum class want { any, actor, alias };
  bool contains(actor_index id, want sort) const;
  //! Throws rk::error (`who: ...`) unless `id` is a current actor/alias of the requested sort.
  void check(actor_index id, const std::string& who, want sort = want::any) const;
  std::uint64_t tenant_of(actor_index id) const;
  //! The slot of the actor's tenant in the device tenant table (what its sends stamp as
  //! envelope::tenant_slot).
  std::uint32_t tenant_slot_of(actor_index id) const;
  std::uint32_t kind_of(actor_index id) const;

  // --- words the host writes -----------------------------------------------------------------------------
  std::uint32_t host_word(actor_index id) const;
  std::uint32_t device_word(actor_index id) const; //!< read back from the device
  void write_host_word(actor_index id, std::uint32_t word);
  //! Publishes actors added while running (their entries `empty` until now) as live. No wake request:
  //! nothing can have been delivered to them yet, and the first delivery wakes a scheduled actor.
  void make_live(std::span<const actor_index> ids);
  address next_hop(actor_index id) const;
  //! The actor a send to `destination` reaches through aliases and set_route redirections (at most
  //! `max_hops` of them), as the device resolves it (deliver.cuh) from the host's copy of the routes;
  //! host_actor when it ends at the host, a group, another rank's actor, an unknown id or too many hops.
  address final_hop(address destination, std::uint32_t max_hops) const;
  void write_next_hop(actor_index id, address next);
  actor_lifecycle lifecycle(actor_index id) const;
  //! Actor `id`'s state (copied from the device) and spawn options (snapshots); the caller makes sure
  //! nothing writes the state meanwhile. Throws rk::error for an alias or an unknown id.
  actor_snapshot image(actor_index id) const;
  //! image() of every current actor, in id-slot order.
  std::vector<actor_snapshot> images() const;
  //! The handler type named `name`, or null (restore).
  const actor_type_ops* kind_named(std::string_view name) const;
  //! respawn: the parked worker does not touch the state (nor the fault code, cleared here) until the new
  //! epoch is published.
  void rewrite_state(actor_index id, const void* initial);
  //! shutdown(): paused actors would never drain.
  void resume_paused();
  //! Device bytes actor `id`'s tenant was charged for it: its share of spawn_charge.
  std::uint64_t device_bytes(actor_index id) const;
  //! What a spawn of `n` actors of `spec` charges their tenant (saturating). Before start(): each actor's
  //! mailbox and state (charged_device_bytes). While running: the running arena's two slices of the
  //! batch, whole 256-byte pieces with the layout's padding (a tiny actor spawned alone took 1.2 times
  //! what it was charged).
  std::uint64_t spawn_charge(const actor_spec& spec, std::uint64_t n, bool running) const;

  // --- launches (run control) ----------------------------------------------------------------------------
  //! Actors without a worker yet, by handler type: dedicated ones, or scheduled ones (which need none).
  std::vector<std::vector<actor_index>> unlaunched_by_kind(bool dedicated) const;
  bool dedicated(actor_index id) const;
  void* state_of(actor_index id) const;
  void mark_launched(const std::vector<actor_index>& ids, bool launched) noexcept;
  //! The names of the first 8 of `ids` ("id N" for one forgotten meanwhile) and how many more.
  std::string describe_actors(const std::vector<actor_index>& ids) const;

  // --- giving slots back ---------------------------------------------------------------------------------
  //! Unpublishes actor or alias `id` (its name is free at once) and gives its slot back once its worker
  //! let go of it and a grace period passed (see collect); its memory then too, or with the last of the
  //! actors spawned with it (one block).
  void retire(actor_index id, grace_periods& grace);
  //! forget()'s accounting, before retire() (under the setup lock: nothing gives up in between): how the
  //! bytes of actor `id` wait for their memory.
  give_up_plan plan_give_up(actor_index id) const;
  //! Records it: `bytes` of `id` stay charged to `tenant` (`incarnation`) until its block is freed, then
  //! on_block_freed refunds them with the block's others.
  void give_up(actor_index id, std::uint64_t bytes, std::uint64_t tenant, std::uint64_t incarnation) noexcept;
  //! What refunds a freed block's given-up bytes (tenant, incarnation, bytes); set once, before any
  //! give_up. Runs outside the table's lock.
  void on_block_freed(std::function<void(std::uint64_t, std::uint64_t, std::uint64_t)> refund) {
    refund_ = std::move(refund);
  }
  //! Moves retiring actors whose worker acknowledged (or that have none) on to a grace period.
  void collect(grace_periods& grace);
  //! Actors waiting for their worker to let go.
  std::size_t retiring() const;
  void forget_history(std::uint64_t tenant);

  // --- counters ------------------------------------------------------------------------------------------
  void collect_stats(runtime_stats& out) const;
  //! handled + discarded and received over every actor (retiring ones count as finished: what is left in
  //! their mailboxes is discarded when their slot is reclaimed).
  void drain_sums(std::uint64_t& finished, std::uint64_t& received) const;
  //! Messages queued or inside a handler now, from one reading of the counters (drain_sums' two readings
  //! prove quiet but overstate a backlog by whatever arrived between them).
  std::uint64_t backlog() const;
  //! Per-tenant sums of the counters tenant usage reports (live actors plus forgotten ones).
  tenant_history tenant_sums(std::uint64_t tenant) const;
  //! Actors with messages queued or in a handler: counters, then the cursors of each lane (state dumps;
  //! reads only counters and cursors). `lifecycle` holds the table's lifecycle for the caller to map.
  std::vector<std::pair<mailbox_state, actor_lifecycle>> nonempty_mailboxes() const;
  std::uint64_t actor_count() const; //!< current actors, aliases excluded
  //! After the workers stopped: copies every actor's state to the host for read_final_state. Throws
  //! (std::bad_alloc) when the host has no memory for them; the states read before stay readable.
  void read_final_states();
  void read_final_state(actor_index id, std::type_index type, void* out, std::size_t bytes) const;
  //! Names by slot for fault reports.
  std::string name_for_report(actor_index id) const;
  //! The handler type's name of actor `id`, for fault reports ("(unknown)" for a forgotten one).
  std::string handler_for_report(actor_index id) const;

private:
  struct kind_record {
    actor_type_ops ops;
    bool loaded = false; //!< present at start(): its kernel was loaded and late spawns may use it
  };
  enum class stage_kind : std::uint8_t { free, active, retiring };
  struct actor_record {
    stage_kind stage = stage_kind::free;
    actor_index id = 0;
    std::string name;
    bool alias = false;
    bool launched = false; //!< a started launch serves it (its worker must let go before reuse)
    std::uint64_t tenant = 0;
    //! Its tenant was removed while it retired (forget_history): its counters belong to no tenant's
    //! history, so a tenant added again under the same id does not inherit them.
    bool tenant_removed = false;
    std::uint32_t kind = 0;
    //! Mailbox headers, handler state and mailbox slots: slices of blocks shared by the actors spawned
    //! together.
    std::shared_ptr<actor_memory> memory;
    void* d_state = nullptr;
    std::uint64_t charged = 0; //!< device bytes its tenant was charged for it (device_bytes)
    std::vector<std::byte> initial;
    std::vector<std::byte> final_state;
  };

  //! Where a batch's actors keep their mailboxes and states (see lane_view): two blocks, mailbox headers
  //! and states (written at the spawn) and slots.
  struct batch_layout {
    std::uint32_t lanes = 1;
    std::size_t header_stride = 0; //!< one lane's header
    std::size_t state_offset = 0;  //!< in an actor's part of the first block
    std::size_t per_actor = 0;     //!< an actor's part of the first block
    std::size_t slots_per_actor = 0;
  };
  batch_layout layout_of(const actor_spec& spec) const;

  const actor_record& record(actor_index id, const std::string& who) const; //!< needs mutex_
  actor_record& record(actor_index id, const std::string& who) {
    return const_cast<actor_record&>(std::as_const(*this).record(id, who));
  }
  std::uint32_t slot(actor_index id) const noexcept { return id_slot(id, slot_bits_); }
  void write_entry(std::uint32_t slot);
  //! Publishes `state` in slot `s`'s host word, same epoch (needs mutex_; throws when the copy fails).
  void set_host_state(std::uint32_t s, host_state state);
  //! An alias or remote entry `e` in a new slot (`self_hop`: its next hop is its own id), published.
  actor_index add_entry_without_actor(const std::string& name, route_entry e, bool self_hop,
                                      const std::string& who);
  void write_entries(std::span<const slot_allocator::slot_id> taken); //!< needs mutex_
  void reclaim(std::uint32_t slot) noexcept;
  //! reclaim()'s work under mutex_: false when the device is gone. `freed` gets the block's accounting
  //! when this slot held the last reference to it (its given_up bytes are to be refunded).
  bool reclaim_locked(std::uint32_t slot, actor_memory& freed) noexcept;
  std::vector<actor_counters> read_counters() const;
  //! Adds a forgotten actor's counters to `into` (what was still queued counts as discarded).
  static void add_forgotten(actor_stats& into, const actor_counters& c) noexcept;
  //! By (handler type, tenant, whether the tenant was removed since the actors were spawned).
  using forgotten_map = std::map<std::tuple<std::uint32_t, std::uint64_t, bool>, actor_stats>;
  //! The entry of handler type `kind` and `tenant` (registration) in `groups`, labelled when new (needs
  //! mutex_). Removed tenants' actors share one entry per handler type (tenant 0): one per removed tenant
  //! grew without bound in a service that adds and removes tenants.
  actor_stats& forgotten_group(forgotten_map& groups, std::uint32_t kind, std::uint64_t tenant,
                               bool tenant_removed) const;
  actor_stats& forgotten_group(forgotten_map& groups, const actor_record& r) const {
    return forgotten_group(groups, r.kind, r.tenant, r.tenant_removed);
  }
  std::string name_locked(actor_index id) const; //!< name_for_report (needs mutex_)
  //! Whether `id` names the current occupant (actor or alias) of its slot (needs mutex_).
  bool current(actor_index id) const noexcept {
    const std::uint32_t s = slot(id);
    return id != host_actor && !is_group_address(id) && s < records_.size() &&
           records_[s].stage == stage_kind::active && records_[s].id == id;
  }
  actor_lifecycle lifecycle_of(const actor_record& r, std::uint32_t device_word) const;

  memory_pool& memory_;
  //! Asks for a worker's look at `id` after its host word changed (scheduled actors only).
  void wake_if_scheduled(actor_index id);

  backend_impl& backend_;
  scheduler& scheduler_;
  std::uint32_t capacity_;
  std::uint32_t slot_bits_;
  device_block d_routes_;
  device_block d_scheduled_;
  device_block d_counters_;
  device_block d_privates_;

  //! Stable addresses (the backend keeps pointers to the ops). Changed under setup_ and mutex_ both, so
  //! either lock is enough to read it.
  std::deque<kind_record> kinds_;
  mutable std::mutex mutex_; //!< guards everything below
  slot_allocator slots_;
  std::vector<route_entry> routes_;   //!< host shadow of the host-written fields, by slot
  std::vector<actor_record> records_; //!< by slot
  std::unordered_map<std::string, actor_index, name_hash, std::equal_to<>> by_name_;
  std::vector<std::uint32_t> retiring_; //!< slots waiting for their worker to let go
  std::function<void(std::uint64_t, std::uint64_t, std::uint64_t)> refund_; //!< see on_block_freed
  actor_stats forgotten_;                                                   //!< counters of reclaimed actors
  //! The same, by (handler type, tenant): runtime_stats::forgotten_by_handler_and_tenant.
  forgotten_map forgotten_groups_;
  std::map<std::uint64_t, tenant_history> history_;
  bool final_states_lost_ = false; //!< read_final_states threw: a state missing then is lost, not unread
};

} // namespace rk::detail
