#pragma once
//! \file
//! Options for rk::runtime and for spawning actors.

#include <ringkernel/device/context.cuh>
#include <ringkernel/device/mailbox.cuh>
#include <ringkernel/device/region.cuh>
#include <ringkernel/host/state_dump.hpp>
#include <ringkernel/host/tenancy.hpp>

#include <memory>

#include <chrono>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace rk {

class audit_sink;

enum class backend {
  automatic, //!< CUDA when a usable device is present, else the CPU backend; prints which and why
  cpu,       //!< worker threads on the host running the same device headers
  cuda,      //!< persistent CUDA kernels; throws rk::error at construction if no device is usable
};

std::string_view to_string(backend b) noexcept;
inline std::ostream& operator<<(std::ostream& os, backend b) {
  return os << to_string(b);
}

//! The largest runtime_options::max_hops: the envelope's 8-bit hop counter must be able to exceed it.
inline constexpr std::uint32_t max_hops_limit = 254;

//! The sampled message trace (trace.cuh; runtime::trace_json and write_trace export it for Perfetto and
//! chrome://tracing). Off by default.
struct trace_options {
  //! Record every N-th handler call of each actor (1: every call); 0: tracing off. Each recorded call
  //! costs one 128-byte write into mapped host memory; while on, every call copies its message's 64-byte
  //! envelope first (a record shows the message as delivered, whatever its handler writes into its slot).
  std::uint32_t sample_every = 0;
  //! Slots of the device-to-host trace ring (a power of two, 2 .. 2^24). A record that finds it full is
  //! dropped and counted (trace_stats::ring_full): raise this or collect_interval's rate for bursts. Each
  //! slot costs 136 bytes of mapped host memory (a 128-byte record and its sequence word): 544 KiB at the
  //! default, 2.1 GiB at 2^24.
  std::uint32_t ring_slots = 4096;
  //! Records the host keeps (the most recent; older ones are evicted and counted). 1 .. 2^28 when on.
  //! Each costs a 128-byte trace_record of host memory (the default, 2^20, up to 128 MiB).
  std::size_t max_records = std::size_t{1} << 20;
  //! How often the host collector empties the ring (1 ms .. 10 s).
  std::chrono::milliseconds collect_interval{10};
};

struct runtime_options {
  rk::backend backend = rk::backend::automatic;
  int cuda_device = 0;
  //! Capacity of the routing table: actor ids and aliases share it (dense, 0 .. max_actors-1). At most
  //! 16,777,216 (2^24; ids stay 32-bit). Each slot costs about 450 bytes of device memory (entry,
  //! counters, worker state, parking queue, run-queue cell) and about 170 bytes of host memory (the
  //! host's copy of the entry, bookkeeping) whether used or not: ~620 bytes of host memory per slot on
  //! the CPU backend (measured at 2^20 and 2^22). An actor adds its mailbox and state.
  std::uint32_t max_actors = 1024;
  //! Capacity of the group table (at most 2^20), and of all groups' member lists together (0: max_actors;
  //! at most 2^24, 4 bytes of device memory each).
  std::uint32_t max_groups = 256;
  std::uint32_t max_group_members = 0;
  //! Forwards a message may take before it is refused with max_hops_exceeded; at most rk::max_hops_limit.
  //! Each route followed counts one (an alias to its target, a set_route redirection), and so does each
  //! ctx.forward; a group's pick of a member counts none. 0 allows direct sends only: every message to an
  //! alias or through a route is then refused.
  std::uint32_t max_hops = 8;
  //! A non-empty priority lane passed over this many times in a row is served next (see actor_loop.cuh);
  //! 1 .. 255.
  std::uint32_t starvation_limit = 16;
  //! Message type ids below this can be marked not routable (the device keeps a bitmap of them).
  std::uint32_t max_message_types = 4096;
  //! Capacities of the device tenant (1 .. 2^20, tenant 0 included), engagement (audit tag; 0 .. 2^20) and
  //! region (0 .. 2^20) tables.
  std::uint32_t max_tenants = 64;
  std::uint32_t max_engagements = 256;
  std::uint32_t max_regions = 256;
  //! Host ingress and egress rings (pinned, mapped memory).
  ring_geometry host_ring{1024, 1024};
  //! The ring that carries messages to actors on other ranks (pinned, mapped memory), drained by the
  //! rank's proxy. rk::cluster sets it from cluster_options; {0, 0} (the default): no ring, no remote
  //! actors. Its slot size bounds what a handler may send to another rank.
  ring_geometry cluster_outbound{0, 0};
  //! Host messages that may be unsettled at once: in the ingress ring, or parked by the gateway because
  //! their destination mailbox was full (device memory, host_ring.slot_bytes each). send() returns
  //! queue_full beyond it, so no host message is ever dropped for a full mailbox (see
  //! envelope_flags::drop_if_full for the old behaviour). 1 .. 16777216.
  std::uint32_t host_parking_slots = 4096;
  //! Of those, how many may be for one destination address: a destination that stopped taking messages
  //! then holds back only its own senders (send() to it returns queue_full) while other destinations
  //! keep the rest of the area. 1 .. host_parking_slots; 0: a quarter of host_parking_slots (at least 1).
  //! The area is shared, so that holds for fewer than host_parking_slots / host_parking_per_destination
  //! stalled destinations: with the default quarter, four stalled addresses fill it and every host send
  //! is refused with queue_full (send_blocking waits) until one of them takes messages again. Where more
  //! destinations may stall at once, set a smaller share.
  std::uint32_t host_parking_per_destination = 0;
  //! CPU backend threads for dedicated actors (actor_options::dedicated_worker) per launch; 0 =
  //! min(those actors, hardware threads). A thread may serve several dedicated actors. The dedicated
  //! actors spawned before start() share one launch; each spawn()/spawn_many() of dedicated actors while
  //! running is a launch of its own with its own threads (gone when its actors are forgotten), so
  //! spawning them one at a time costs a polling thread each: batch them with spawn_many, or use
  //! scheduled actors (the default) for actors that come and go. 0 .. 4096.
  std::uint32_t cpu_workers = 0;
  //! Scheduled workers: actors that are not dedicated are served in turns by a fixed pool (see
  //! docs/architecture.md, "Scheduled actors"). CUDA: thread blocks per handler type (0: one per SM);
  //! CPU backend: threads in all, each serving every handler type (0: cpu_workers, else the hardware
  //! threads); more threads than cores only add switching, and idle ones still wake now and then (an
  //! idle pool of 1,024 threads costs 5-13% of a core, of 4,096 about a fifth). 1 .. 4096.
  std::uint32_t scheduled_workers = 0;
  //! Messages a scheduled worker handles for one actor before it moves on to the next ready actor (the
  //! actor goes to the back of the run queue if it has more). The CPU backend's pool serves the handler
  //! types' queues in rounds that give every actor ready at the round's start one turn, whatever its
  //! type (docs/architecture.md, "Scheduled actors"). 1 .. 65536.
  std::uint32_t actor_turn_messages = 32;
  //! A turn also ends after the first message whose call ends this long after the turn's first call
  //! began: a handler that takes milliseconds per message holds its worker for one call, not for
  //! actor_turn_messages of them, while other actors wait (fairness by time as well as by count). A call
  //! is never interrupted: a handler that does not return holds its worker (the watchdog reports it).
  //! 1 µs .. 1 s.
  std::chrono::microseconds actor_turn_time{1'000};
  //! Every actor gets a worker of its own, as if spawned with actor_options::dedicated_worker.
  bool dedicated_workers = false;
  //! How long start() waits for every worker to prove it is running (CUDA co-residency check).
  std::chrono::milliseconds start_timeout{10'000};
  //! How long shutdown() waits for in-flight messages to be handled before it terminates anyway.
  std::chrono::milliseconds drain_timeout{5'000};
  //! How long shutdown() waits for workers to exit after terminate (at least 1 ms): workers still running
  //! then are reported (shutdown_report::workers_stopped) and the runtime's memory is leaked under them.
  std::chrono::milliseconds stop_timeout{10'000};
  //! The watchdog: a handler call running longer than this is reported (runtime::faults(), an audit
  //! record, an rk::error from the next lifecycle call on its actor, on one sharing its worker, or on a
  //! scheduled actor of a handler type whose every worker is stuck; lifecycle calls waiting on them end
  //! the same way) and named by shutdown() if it still runs when the drain ends. The host looks every
  //! quarter of it, at most every 250 ms.
  //! 0: no watchdog.
  std::chrono::milliseconds handler_timeout{5'000};
  //! Backoff cap for idle device pollers (the CPU backend's workers too); lower = lower wake-up latency,
  //! more polling traffic. 0 picks the default (1,000 ns); at most 1,000,000 (1 ms, what one
  //! `__nanosleep` sleeps at most).
  std::uint32_t device_idle_sleep_max_ns = 1'000;
  //! Device memory reserved at start() for everything allocated while running (mailboxes and states of
  //! actors spawned later, regions created later): allocating on the device while persistent kernels run
  //! would serialise later launches behind them. 0: nothing may be allocated after start(). All of it is
  //! taken at start() (resident at once on the CPU backend) and given back when the runtime is destroyed.
  std::size_t running_arena_bytes = std::size_t{32} << 20;
  //! Host waits (receive, send_wait, pause, stop) spin and yield instead of sleeping when idle: lowest
  //! latency, one busy host core per waiting thread.
  bool host_busy_poll = false;
  //! Print the one-line backend choice to stderr.
  bool announce_backend = true;
  //! rk-top: from start(), publish a read-only snapshot of the counters about 10 times a second into POSIX
  //! shared memory (stats_shm.hpp; runtime::stats_shm_name() says where), until shutdown().
  bool publish_stats = false;
  //! While running, SIGUSR1 makes this runtime write a state dump (runtime::dump_state) to on_state_dump.
  //! The process's SIGUSR1 handler is replaced while any such runtime runs, then restored.
  bool dump_state_on_sigusr1 = false;
  //! When the watchdog reports a stuck handler call (handler_timeout), it also writes a state dump.
  bool dump_state_on_watchdog = true;
  //! Where those dumps go (called on a runtime thread, which shutdown() waits for: it should not block; a
  //! runtime call from it that needs the setup lock while another thread holds it is refused with
  //! rk::error). Empty: state_dump::text() to stderr.
  std::function<void(const state_dump&)> on_state_dump;
  //! Audit: slots of the device audit ring (a power of two, 2 .. 2^24; each costs 200 bytes of mapped host
  //! memory, a 192-byte slot and its sequence word: 800 KiB at the default, 3.1 GiB at 2^24), records the
  //! runtime keeps in memory for runtime::audit_records() (1 .. 2^24), and further sinks (e.g.
  //! rk::audit_file_sink; not null) fed by the same hash chain.
  std::uint32_t audit_ring_slots = 4096;
  std::size_t audit_memory_records = 4096;
  std::vector<std::shared_ptr<audit_sink>> audit_sinks;
  //! Non-empty: the audit log is chained with HMAC-SHA256 under this key (tamper-evident against whoever
  //! can rewrite the log but does not hold the key); verify with `rk-audit-verify --key-file`.
  std::string audit_key;
  //! Sampled message trace: off unless trace.sample_every > 0.
  trace_options trace{};
};

struct actor_options {
  std::uint64_t tenant = 0; //!< 0 = unspecified (single-tenant)
  //! Per lane: slots (a power of two, 2 .. 2^24) and slot bytes (a 64-byte header + payload: a multiple of
  //! 64 from 128 to 65,536; larger payloads go in a zero-copy region). The default (8 slots of
  //! 256 bytes, payloads up to 192 bytes, one lane) keeps an actor near 2.5 KiB so a GPU holds millions;
  //! give busy actors more slots (a full mailbox refuses K2K sends with queue_full and parks host sends).
  ring_geometry mailbox{8, 256};
  //! One lane per priority level (low, normal, high, urgent: served by priority with the anti-starvation
  //! rule, see actor_loop.cuh), which takes four times the mailbox memory; off (the default): one FIFO
  //! lane, and send priorities are ignored for this actor.
  bool priority_lanes = false;
  //! More than 1: spawn actors `name/0` .. `name/<instances-1>` and a group `name` over them.
  std::uint32_t instances = 1;
  //! Who pays for this actor's GPU time (see tenant_registry::set_engagement_budget).
  rk::audit_tag audit_tag{};
  //! The actor gets a worker of its own (a resident thread block on CUDA) that polls only its mailbox:
  //! no scheduling step, at the price of a worker per actor (a GPU holds a few thousand) and a kernel
  //! launch for each one spawned after start(). On CUDA this gives the lowest wake-up latency. On the
  //! CPU backend the worker is a thread that polls with short sleeps, so an idle dedicated actor wakes
  //! later (the kernel's timer slack: 50-100 us) than a scheduled one, whose sender wakes a parked pool
  //! thread directly, and costs a share of a core while idle; it gains only while busy (no hand-off
  //! between threads). Otherwise a pool of scheduled workers serves it when it has messages
  //! (runtime_options::scheduled_workers).
  bool dedicated_worker = false;
};

//! A zero-copy region: what may happen to its bytes, who owns it, and who else may send descriptors of it.
struct region_options {
  region_policy policy = region_policy::immutable;
  std::uint64_t owner_tenant = 0;
  std::vector<std::uint64_t> shared_with; //!< at most 8 other tenants
};

} // namespace rk
