// rk::cluster (see cluster.hpp): joining the job, the directory exchange, and the collective shutdown.

#include "directory.hpp"
#include "inbox.hpp"
#include "proxy.hpp"
#include "survivors.hpp"

#include <ringkernel/cluster/cluster.hpp>
#include <ringkernel/host/detail/remote.hpp>

#include <mpi.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <numeric>
#include <thread>

namespace rk {
namespace detail {
namespace {

void finalize_mpi_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized != 0) return;
  if (rank_failure_seen()) { // MPI_Finalize would wait for the dead rank for ever (seen with Open MPI 4)
    std::fprintf(stderr, "rk::cluster: a rank failed during this run; MPI_Finalize is not called at exit\n");
    return;
  }
  MPI_Finalize();
}

//! Makes sure MPI is initialised with MPI_THREAD_MULTIPLE (the proxy thread and the caller's thread both
//! call MPI). Initialises it (and finalises it at exit) when the application has not.
void join_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized != 0)
    throw error(
        "rk::cluster: MPI was already finalised in this process; create clusters before MPI_Finalize");
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = 0;
  if (initialized == 0) {
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    std::atexit(finalize_mpi_at_exit);
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_MULTIPLE)
    throw error("rk::cluster: MPI runs with thread support level " + std::to_string(provided) +
                "; the cluster needs MPI_THREAD_MULTIPLE (initialise MPI with MPI_Init_thread(..., "
                "MPI_THREAD_MULTIPLE, ...), or let rk::cluster initialise it)");
}

void validate(const cluster_options& o) {
  if (const char* problem = o.outbound.validate())
    throw error(std::string("cluster_options::outbound: ") + problem + " (got " +
                std::to_string(o.outbound.capacity) + " slots of " + std::to_string(o.outbound.slot_bytes) +
                " bytes)");
  // Every rank's outbound slots are alike (checked against rank 0's): a message that fits one fits this
  // rank's host ring, which every message from another rank enters (a smaller slot refused them unseen).
  if (o.runtime.host_ring.slot_bytes < o.outbound.slot_bytes)
    throw error("cluster_options::runtime.host_ring.slot_bytes (" +
                std::to_string(o.runtime.host_ring.slot_bytes) + ") must be at least outbound.slot_bytes (" +
                std::to_string(o.outbound.slot_bytes) +
                "): messages from other ranks enter this rank's gateway through the host ring");
  const std::size_t one_message = wire::header_bytes + wire::message_bytes(o.outbound.payload_capacity());
  if (o.batch_bytes < one_message || o.batch_bytes > (64u << 20))
    throw error("cluster_options::batch_bytes must hold one outbound message (" +
                std::to_string(one_message) + " bytes) and be at most 64 MiB; got " +
                std::to_string(o.batch_bytes));
  if (o.max_batches_in_flight < 1 || o.max_batches_in_flight > 1024)
    throw error("cluster_options::max_batches_in_flight must be 1 .. 1024; got " +
                std::to_string(o.max_batches_in_flight));
  if (o.notice_backlog < 1 || o.notice_backlog > (1u << 24))
    throw error("cluster_options::notice_backlog must be 1 .. 16777216 (2^24); got " +
                std::to_string(o.notice_backlog));
  if (o.drain_timeout.count() <= 0 || o.drain_timeout > std::chrono::hours(24))
    throw error("cluster_options::drain_timeout must be positive and at most 24 hours; got " +
                std::to_string(o.drain_timeout.count()) + " ms");
  if (o.heartbeat_interval < std::chrono::milliseconds(1) || o.heartbeat_interval > std::chrono::minutes(1))
    throw error("cluster_options::heartbeat_interval must be 1 ms .. 60 s; got " +
                std::to_string(o.heartbeat_interval.count()) + " ms");
  if (o.failure_timeout < 2 * o.heartbeat_interval || o.failure_timeout > std::chrono::hours(24))
    throw error("cluster_options::failure_timeout must be at least twice heartbeat_interval (" +
                std::to_string(2 * o.heartbeat_interval.count()) + " ms) and at most 24 hours; got " +
                std::to_string(o.failure_timeout.count()) + " ms");
}

//! The options every rank must share (collective): a message one rank's outbound slot holds must fit the
//! receiving rank's (which takes at most its own payload capacity), each rank's failure detector expects
//! the heartbeats of the others at its own pace, and shutdown's rounds give up together. Every rank learns
//! the smallest and largest value of each, so each names the option that differs, also where its own value
//! is rank 0's. Nothing when they agree (or when this rank's own options are bad: that error comes first).
std::exception_ptr differences_between_ranks(MPI_Comm comm, const cluster_options& o) {
  struct shared_option {
    const char* name;
    std::int64_t value;
  };
  const shared_option mine[] = {
      {"outbound.slot_bytes", o.outbound.slot_bytes},
      {"heartbeat_interval (ms)", o.heartbeat_interval.count()},
      {"failure_timeout (ms)", o.failure_timeout.count()},
      {"drain_timeout (ms)", o.drain_timeout.count()},
  };
  constexpr int count = static_cast<int>(std::size(mine));
  std::int64_t values[count], smallest[count], largest[count];
  for (int i = 0; i < count; ++i) values[i] = mine[i].value;
  MPI_Allreduce(values, smallest, count, MPI_INT64_T, MPI_MIN, comm);
  MPI_Allreduce(values, largest, count, MPI_INT64_T, MPI_MAX, comm);
  for (int i = 0; i < count; ++i)
    if (smallest[i] != largest[i])
      return std::make_exception_ptr(error(std::string("rk::cluster: cluster_options::") + mine[i].name +
                                           " must be the same on every rank: the ranks have values from " +
                                           std::to_string(smallest[i]) + " to " + std::to_string(largest[i]) +
                                           ", this rank " + std::to_string(mine[i].value)));
  return nullptr;
}

//! Whether every rank says `ok`; the ranks that do not throw their own error, the others one naming them.
void agree_or_throw(MPI_Comm comm, const std::string& step, const std::exception_ptr& failure) {
  int ok = failure ? 0 : 1;
  int all_ok = 0;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
  if (failure) std::rethrow_exception(failure);
  if (all_ok == 0) throw error("rk::cluster: " + step + " failed on another rank (its own error says why)");
}

} // namespace

class cluster_impl {
public:
  explicit cluster_impl(cluster_options options) : options_(std::move(options)) {
    // A rank with bad options says so only after every rank joined: throwing before would leave the others
    // waiting in the collectives below for a rank that never comes.
    std::exception_ptr failure;
    try {
      validate(options_);
    } catch (...) {
      failure = std::current_exception();
    }
    options_.runtime.cluster_outbound = options_.outbound;
    join_mpi();
    MPI_Comm_dup(MPI_COMM_WORLD, &control_);
    MPI_Comm_dup(MPI_COMM_WORLD, &data_);
    // Errors come back as codes (a rank that died must not end this one); the proxy treats one on a
    // peer's operation as that peer being gone.
    MPI_Comm_set_errhandler(control_, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(data_, MPI_ERRORS_RETURN);
    int rank = 0, size = 0;
    MPI_Comm_rank(control_, &rank);
    MPI_Comm_size(control_, &size);
    rank_ = static_cast<std::uint32_t>(rank);
    size_ = static_cast<std::uint32_t>(size);
    if (std::exception_ptr differs = differences_between_ranks(control_, options_); !failure)
      failure = differs;
    try {
      if (!failure) {
        runtime_ = std::make_unique<runtime>(options_.runtime);
        inbox_ = std::make_unique<host_inbox>(*runtime_);
        directory_ = std::make_unique<cluster_directory>(*runtime_, rank_, size_);
      }
    } catch (...) {
      failure = std::current_exception();
    }
    try {
      agree_or_throw(control_, "checking the options and creating the rank's runtime", failure);
    } catch (...) {
      directory_.reset();
      inbox_.reset();
      runtime_.reset();
      free_comms();
      throw;
    }
  }

  ~cluster_impl() {
    try {
      if (started_ && !stopped_) (void)shutdown();
    } catch (...) { // a destructor does not throw; shutdown() already reported what it could
    }
    proxy_.reset();
    directory_.reset();
    inbox_.reset();
    runtime_.reset();
    free_comms();
  }

  void start() {
    if (started_) throw error("rk::cluster::start(): the cluster was started already");
    if (stopped_) throw error("rk::cluster::start(): the cluster was shut down; create a new rk::cluster");
    // A failed start() leaves names exchanged and remote entries made on some ranks: it is not retried.
    if (start_failed_)
      throw error(
          "rk::cluster::start(): an earlier start() of this cluster failed; shut it down and create a "
          "new rk::cluster");
    start_failed_ = true; // until it succeeds
    std::exception_ptr failure;
    try {
      exchange_directory();
    } catch (...) {
      failure = std::current_exception();
    }
    agree_or_throw(control_, "exchanging the directory of names", failure);
    try {
      runtime_->start();
    } catch (...) {
      failure = std::current_exception();
    }
    agree_or_throw(control_, "starting the rank's runtime", failure);
    proxy_options po;
    po.batch_bytes = options_.batch_bytes;
    po.max_in_flight = options_.max_batches_in_flight;
    po.max_payload = options_.outbound.payload_capacity();
    po.heartbeat_interval = options_.heartbeat_interval;
    po.failure_timeout = options_.failure_timeout;
    po.notice_backlog = options_.notice_backlog;
    proxy_ = std::make_unique<mpi_proxy>(*runtime_, *directory_, data_, rank_, size_, po);
    survivors_ = std::make_unique<survivors>(control_, rank_, size_,
                                             [this](std::uint32_t r) { return proxy_->gone(r); });
    proxy_->start();
    started_ = true;
    start_failed_ = false;
    announce();
    MPI_Barrier(control_);
  }

  cluster_report shutdown() {
    if (stopped_) return last_report_; // idempotent: the first shutdown's report again
    cluster_report report;
    if (!started_) {
      report.drained = true;
      if (runtime_) report.local = runtime_->shutdown();
      stopped_ = true; // a later start() is refused as after any shutdown
      last_report_ = report;
      return report;
    }
    stopped_ = true;
    std::vector<bool> gone(size_, false);
    report.drained = wait_until_quiet(report.in_flight, gone);
    // Whatever is still held is dropped (counted); every live rank's sends finish before the proxies stop.
    proxy_->stop_carrying();
    wait_for_sends_everywhere(gone);
    proxy_->stop();
    // Nobody carries messages to other ranks from here on: sends to them, and host messages parked for
    // them, end as unreachable, so the runtime's own drain does not wait for them to its drain_timeout.
    for (std::uint32_t r = 0; r < size_; ++r)
      if (r != rank_) directory_->mark_rank_gone(r);
    report.local = runtime_->shutdown();
    (void)proxy_->discard_outbound(); // what handlers sent to other ranks after the proxy stopped: unsent
    for (std::uint32_t r = 0; r < size_; ++r)
      if (gone[r] || proxy_->gone(r)) report.gone_ranks.push_back(r);
    if (!report.gone_ranks.empty()) note_rank_failure(); // at exit, MPI_Finalize would wait for them
    last_report_ = report;
    return report;
  }

  bool rank_gone(std::uint32_t r) const noexcept;

  std::vector<std::vector<std::uint64_t>> exchange_for_collective(std::span<const std::uint64_t> row) {
    if (!started_ || stopped_) throw error("rk::cluster: collectives run between start() and shutdown()");
    exchange_result x =
        survivors_->agreed_all_to_all(step_collective, step_collective_agreed, row, step_quiet);
    if (x.peer_elsewhere)
      throw error("rk::cluster: rank " + std::to_string(*x.peer_elsewhere) +
                  " called shutdown() while this rank waits for it in a collective (allreduce, reduce or "
                  "broadcast); every rank must make the same collective calls, in the same order, before "
                  "shutdown()");
    return std::move(x.rows);
  }

  cluster_stats stats() const {
    cluster_stats s;
    if (proxy_) {
      const proxy_counters& c = proxy_->counters();
      s.sent = c.sent.load();
      s.sent_batches = c.sent_batches.load();
      s.received = c.received.load();
      s.received_batches = c.received_batches.load();
      s.relayed = c.relayed.load();
      s.relay_waits = c.relay_waits.load();
      s.refused = c.refused.load();
      s.dropped = c.dropped.load();
      s.unreachable = c.unreachable.load();
      s.abandoned = c.abandoned.load();
      s.unsent = c.unsent.load();
      s.refusals_noticed = c.notices_sent.load();
      s.refused_remotely = c.refused_remotely.load();
      s.notices_relayed = c.notices_relayed.load();
      s.notices_unreachable = c.notices_unreachable.load();
      s.notices_dropped = c.notices_dropped.load();
    }
    if (inbox_) s.stale_partials = inbox_->stale();
    s.remote_entries = directory_->entries();
    return s;
  }

  cluster_options options_;
  MPI_Comm control_ = MPI_COMM_NULL; //!< collectives of the caller's thread
  MPI_Comm data_ = MPI_COMM_NULL;    //!< the proxies' point-to-point traffic
  std::uint32_t rank_ = 0;
  std::uint32_t size_ = 1;
  std::unique_ptr<runtime> runtime_;
  std::unique_ptr<cluster_directory> directory_;
  std::unique_ptr<mpi_proxy> proxy_;
  std::unique_ptr<survivors> survivors_;
  std::unique_ptr<host_inbox> inbox_; //!< the host's messages, sorted (made with runtime_, then never reset)
  bool started_ = false;
  bool start_failed_ = false; //!< a start() began and did not finish (see start())
  bool stopped_ = false;
  cluster_report last_report_; //!< what the shutdown that stopped the cluster reported

private:
  void free_comms() noexcept {
    if (data_ != MPI_COMM_NULL) MPI_Comm_free(&data_);
    if (control_ != MPI_COMM_NULL) MPI_Comm_free(&control_);
  }

  void exchange_directory() {
    const std::vector<std::byte> mine = directory_->published_bytes();
    const int my_bytes = static_cast<int>(mine.size());
    std::vector<int> bytes(size_), offsets(size_);
    MPI_Allgather(&my_bytes, 1, MPI_INT, bytes.data(), 1, MPI_INT, control_);
    std::exclusive_scan(bytes.begin(), bytes.end(), offsets.begin(), 0);
    std::vector<std::byte> all(static_cast<std::size_t>(offsets.back() + bytes.back()));
    MPI_Allgatherv(mine.data(), my_bytes, MPI_BYTE, all.data(), bytes.data(), offsets.data(), MPI_BYTE,
                   control_);
    for (std::uint32_t r = 0; r < size_; ++r)
      directory_->add_rank_names(r, std::span<const std::byte>(all).subspan(offsets[r], bytes[r]));
  }

  void announce() {
    int backend = static_cast<int>(runtime_->backend());
    std::vector<int> backends(size_);
    MPI_Gather(&backend, 1, MPI_INT, backends.data(), 1, MPI_INT, 0, control_);
    if (rank_ != 0 || !options_.announce) return;
    char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
    int length = 0;
    MPI_Get_library_version(version, &length);
    std::string library(version, static_cast<std::size_t>(length));
    library = library.substr(0, library.find_first_of(",\n"));
    const auto cuda = static_cast<std::size_t>(
        std::count(backends.begin(), backends.end(), static_cast<int>(backend::cuda)));
    std::fprintf(
        stderr,
        "rk::cluster: %u ranks, transport MPI (%s), %zu on the CUDA backend, %zu on the CPU backend\n", size_,
        library.c_str(), cuda, backends.size() - cuda);
  }

  // Steps of shutdown (survivors.hpp), in order.
  static constexpr std::uint32_t step_quiet = 0;
  static constexpr std::uint32_t step_sends = 1;
  static constexpr std::uint32_t step_collective = 2;        //!< allreduce, broadcast (not part of shutdown)
  static constexpr std::uint32_t step_collective_agreed = 3; //!< survivors::agreed_all_to_all's second
  static constexpr std::uint32_t step_sends_agreed = 4;

  //! This rank's row for step_quiet: [0] 1 when anything is queued or running here, [1] a count that
  //! changes whenever anything moves here, [2] 1 past the deadline, [3 + r] messages sent to rank r,
  //! [3 + n + r] messages received from rank r, [3 + 2n + r] 1 when rank r is gone here.
  std::vector<std::uint64_t> quiet_row(bool past_deadline) const {
    const proxy_counters& c = proxy_->counters();
    const std::uint64_t holding = c.holding.load();
    const runtime_stats s = runtime_->stats();
    std::uint64_t pending = s.gateway_parked;
    std::uint64_t handled = 0;
    for (const actor_stats& a : s.actors) {
      if (a.lifecycle == actor_lifecycle::alias) continue; // aliases and remote entries hold nothing
      pending += a.queued();
      handled += a.handled + a.discarded;
    }
    const bool ingress_busy = s.gateway_processed != remote::enqueued(*runtime_);
    const bool busy = holding != 0 || pending != 0 || ingress_busy ||
                      remote::outbound_pending(*runtime_) != 0 || remote::refusals_pending(*runtime_) != 0;
    std::vector<std::uint64_t> row(3 + 3 * std::size_t{size_});
    row[0] = busy ? 1 : 0;
    row[1] = c.sent.load() + c.received.load() + c.relayed.load() + c.unreachable.load() +
             c.notices_sent.load() + c.notices_unreachable.load() + c.refused_remotely.load() +
             s.gateway_processed + handled;
    row[2] = past_deadline ? 1 : 0;
    for (std::uint32_t r = 0; r < size_; ++r) {
      row[3 + r] = proxy_->sent_to(r);
      row[3 + size_ + r] = proxy_->received_from(r);
      row[3 + 2 * size_ + r] = proxy_->gone(r) ? 1 : 0;
    }
    return row;
  }

  //! The ranks gone for anyone who answered (`gone_at`: offset of the gone flags in a row) folded into
  //! `gone`; returns whether this rank is among them (another rank declared it gone: it is on its own).
  bool fold_gone(const exchange_result& x, std::size_t gone_at, std::vector<bool>& gone) const {
    for (std::uint32_t r = 0; r < size_; ++r) {
      gone[r] = gone[r] || proxy_->gone(r) || (!x.reported_gone.empty() && x.reported_gone[r]);
      for (const std::vector<std::uint64_t>& row : x.rows)
        if (!row.empty() && row[gone_at + r] != 0) gone[r] = true;
    }
    return gone[rank_];
  }

  //! Rounds of all_to_all among the live ranks until two in a row find nothing queued anywhere, as many
  //! messages received from each live rank as it sent, and nothing moved between them; or until
  //! drain_timeout, counted from the end of the first round (when every live rank has called shutdown:
  //! counted from this rank's own call, a rank that came late got no drain at all). Every rank that
  //! received the same rows decides the same.
  bool wait_until_quiet(std::uint64_t& in_flight, std::vector<bool>& gone) {
    std::optional<std::chrono::steady_clock::time_point> deadline;
    const std::size_t n = size_;
    std::optional<std::uint64_t> previous;
    backoff idle;
    for (;;) {
      const bool past = deadline && std::chrono::steady_clock::now() > *deadline;
      const exchange_result x = survivors_->all_to_all(step_quiet, quiet_row(past), false);
      if (!deadline) deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
      if (fold_gone(x, 3 + 2 * n, gone) || x.peer_left) return false;
      bool quiet = true;
      bool past_deadline = false;
      std::uint64_t moved = 0;
      in_flight = 0;
      for (std::uint32_t a = 0; a < size_; ++a) {
        const std::vector<std::uint64_t>& row = x.rows[a];
        if (gone[a] || row.empty()) continue;
        quiet = quiet && row[0] == 0;
        moved += row[1];
        past_deadline = past_deadline || row[2] != 0;
        for (std::uint32_t b = 0; b < size_; ++b) {
          if (b == a || gone[b] || x.rows[b].empty()) continue;
          const std::uint64_t sent = row[3 + b];
          const std::uint64_t arrived = x.rows[b][3 + n + a];
          in_flight += sent > arrived ? sent - arrived : 0;
        }
      }
      quiet = quiet && in_flight == 0;
      if (quiet && previous == moved) return true;
      if (past_deadline) return false;
      previous = quiet ? std::optional<std::uint64_t>(moved) : std::nullopt;
      idle.pause();
    }
  }

  //! After stop_carrying(): rounds until no live rank has a batch it sent unfinished (the proxies keep
  //! receiving, and dropping, meanwhile), or 10 s.
  void wait_for_sends_everywhere(std::vector<bool>& gone) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    backoff idle;
    for (;;) {
      std::vector<std::uint64_t> row(2 + size_);
      row[0] = proxy_->counters().holding.load();
      row[1] = std::chrono::steady_clock::now() > deadline ? 1u : 0u;
      for (std::uint32_t r = 0; r < size_; ++r) row[2 + r] = proxy_->gone(r) ? 1 : 0;
      // Agreed: a rank that fails in this last step must not leave the others deciding differently (one
      // stopping its proxy while another still waits for the failed rank, then holds the first gone).
      const exchange_result x = survivors_->agreed_all_to_all(step_sends, step_sends_agreed, row);
      if (fold_gone(x, 2, gone)) return;
      bool holding = false;
      bool past_deadline = false;
      for (std::uint32_t r = 0; r < size_; ++r) {
        if (gone[r] || x.rows[r].empty()) continue;
        holding = holding || x.rows[r][0] != 0;
        past_deadline = past_deadline || x.rows[r][1] != 0;
      }
      if (!holding || past_deadline) return;
      idle.pause();
    }
  }
};

} // namespace detail

cluster::cluster(cluster_options options)
    : impl_(std::make_unique<detail::cluster_impl>(std::move(options))) {}
cluster::~cluster() = default;

std::uint32_t cluster::rank() const noexcept {
  return impl_->rank_;
}
std::uint32_t cluster::size() const noexcept {
  return impl_->size_;
}
runtime& cluster::local() noexcept {
  return *impl_->runtime_;
}
void cluster::start() {
  impl_->start();
}
bool cluster::running() const noexcept {
  return impl_->started_ && !impl_->stopped_;
}

void cluster::require_before_start(const std::string& who) const {
  if (impl_->started_)
    throw error("rk::cluster::" + who + ": names are exchanged at start(); spawn before it");
}

void cluster::publish(const std::string& name, actor_index id, std::uint64_t tenant) {
  impl_->directory_->publish(name, id, tenant);
}

global_address cluster::find(std::string_view name) const {
  if (!impl_->started_)
    throw error("rk::cluster::find('" + std::string(name) + "'): names are known after start()");
  const std::optional<global_address> a = impl_->directory_->find(name);
  if (!a)
    throw error("rk::cluster::find('" + std::string(name) + "'): no rank spawned an actor of this name");
  return *a;
}

actor_index cluster::address_of(global_address a) {
  if (a.rank == rank() && a.actor != host_actor) {
    try {
      (void)local().name_of(a.actor);
    } catch (const error&) {
      throw error("rk::cluster::address_of(): " + std::to_string(a.actor) +
                  " is no actor or alias of this rank (rank " + std::to_string(a.rank) + ")");
    }
  }
  return impl_->directory_->address_of(a);
}

actor_index cluster::host_address(std::uint32_t rank, std::uint64_t tenant) {
  if (rank >= size())
    throw error("rk::cluster::host_address(): rank " + std::to_string(rank) +
                " is out of range (the cluster has " + std::to_string(size()) + " ranks)");
  if (!local().tenants().contains(tenant))
    throw error("rk::cluster::host_address(): tenant " + std::to_string(tenant) +
                " is not registered on this rank; add it (the same tenants on every rank) first");
  if (rank == this->rank()) return host_actor;
  return impl_->directory_->entry_for({rank, host_actor}, tenant);
}

global_address cluster::origin_of(const received_message& m) const {
  if (m.source() == host_actor) return {rank(), host_actor};
  if (const std::optional<global_address> far = impl_->directory_->target_of(m.source())) return *far;
  return {rank(), m.source()};
}

std::vector<std::uint32_t> cluster::gone_ranks() const {
  std::vector<std::uint32_t> gone;
  if (impl_->proxy_)
    for (std::uint32_t r = 0; r < size(); ++r)
      if (impl_->proxy_->gone(r)) gone.push_back(r);
  return gone;
}

bool detail::cluster_impl::rank_gone(std::uint32_t r) const noexcept {
  return proxy_ && r < size_ && r != rank_ && proxy_->gone(r);
}

status cluster::send(global_address to, std::uint32_t type, byte_view payload, const send_options& options) {
  if (impl_->rank_gone(to.rank)) return status::unreachable;
  return local().send(address_of(to), type, payload, options);
}

status cluster::send_blocking(global_address to, std::uint32_t type, byte_view payload,
                              std::chrono::milliseconds timeout, const send_options& options) {
  if (impl_->rank_gone(to.rank)) return status::unreachable;
  return local().send_blocking(address_of(to), type, payload, timeout, options);
}

std::optional<received_message> cluster::receive(std::chrono::milliseconds timeout) {
  return impl_->inbox_->receive(timeout);
}

void cluster::keep_for_collectives(std::uint32_t type, actor_index reducer) {
  impl_->inbox_->keep(type, reducer);
}
bool cluster::keeps_for_collectives(std::uint32_t type) const {
  return impl_->inbox_->keeps(type);
}

std::optional<received_message> cluster::take_kept(std::uint32_t type, std::uint64_t round,
                                                   std::chrono::milliseconds timeout) {
  return impl_->inbox_->take_partial(type, round, timeout);
}
void cluster::put_back_kept(received_message&& m) {
  impl_->inbox_->put_back(std::move(m));
}

namespace {
std::string name_of(cluster::collective_call call) {
  switch (call) {
  case cluster::collective_call::allreduce:
    return "rk::allreduce()";
  case cluster::collective_call::reduce:
    return "rk::reduce()";
  case cluster::collective_call::broadcast:
    return "rk::cluster::broadcast()";
  }
  return "a collective this rank does not know (" + std::to_string(static_cast<std::uint64_t>(call)) + ")";
}
} // namespace

std::vector<std::vector<std::uint64_t>>
cluster::begin_collective(collective_call call, std::span<const std::uint64_t> row, const std::string& who) {
  if (row.size() > first_row_words)
    throw error(who + ": a collective's first row holds at most " + std::to_string(first_row_words) +
                " words (got " + std::to_string(row.size()) + ")");
  // Every collective's first row has the same length, so that a rank in another collective is a row with
  // another first word here, not a row MPI cuts short or pads with zeros (and reads as another mistake).
  std::array<std::uint64_t, 1 + first_row_words> mine{};
  mine[0] = static_cast<std::uint64_t>(call);
  std::copy(row.begin(), row.end(), mine.begin() + 1);
  std::vector<std::vector<std::uint64_t>> rows = exchange_for_collective(mine);
  for (std::uint32_t r = 0; r < rows.size(); ++r) {
    if (rows[r].empty() || rows[r][0] == mine[0]) continue;
    // Every rank has the same rows (an agreed exchange), so every rank throws here, and none makes another
    // exchange of this call: the ranks stay in step for the next collective.
    throw error(who + ": rank " + std::to_string(r) + " called " +
                name_of(static_cast<collective_call>(rows[r][0])) + " while this rank called " +
                name_of(call) +
                "; every rank must make the same collective calls in the same order (this call changed "
                "nothing)");
  }
  for (std::vector<std::uint64_t>& theirs : rows)
    if (!theirs.empty()) {
      theirs.resize(1 + row.size());
      theirs.erase(theirs.begin());
    }
  return rows;
}

std::vector<std::vector<std::uint64_t>> cluster::exchange_for_collective(std::span<const std::uint64_t> row) {
  return impl_->exchange_for_collective(row);
}

std::uint64_t cluster::broadcast(std::uint32_t root, std::string_view group, std::uint32_t type,
                                 byte_view payload, std::chrono::milliseconds timeout) {
  const std::string who = "rk::cluster::broadcast('" + std::string(group) + "')";
  // Two exchanges: every rank's root with the root's length, then the root's bytes in 8-byte words. The
  // roots are checked after the first, on every rank alike, so a mistake on one rank is an error on all of
  // them (and none goes on to the second) instead of a rank that throws while the others wait for it.
  const bool at_root = rank() == root;
  const std::uint64_t mine[2] = {root, at_root ? payload.size : 0};
  const std::vector<std::vector<std::uint64_t>> lengths =
      begin_collective(collective_call::broadcast, mine, who);
  for (std::uint32_t r = 0; r < lengths.size(); ++r)
    if (!lengths[r].empty() && lengths[r][0] != root)
      throw error(who + ": rank " + std::to_string(r) + " names root " + std::to_string(lengths[r][0]) +
                  ", this rank " + std::to_string(root) + "; pass the same root on every rank");
  if (root >= size())
    throw error(who + ": root rank " + std::to_string(root) + " is out of range (the cluster has " +
                std::to_string(size()) + " ranks)");
  if (lengths[root].empty()) throw error(who + ": the root rank " + std::to_string(root) + " is gone");
  const std::uint64_t length = lengths[root][1];
  std::vector<std::uint64_t> words((length + 7) / 8, 0);
  if (at_root && length != 0) std::memcpy(words.data(), payload.data, length);
  const std::vector<std::vector<std::uint64_t>> all = exchange_for_collective(words);
  if (all[root].size() != words.size())
    throw error(who + ": the root rank " + std::to_string(root) + " is gone");
  std::vector<std::byte> bytes(length);
  if (length != 0) std::memcpy(bytes.data(), all[root].data(), length);

  address target = host_actor;
  try {
    target = local().group(group);
  } catch (const error&) {
    return 0; // no such group on this rank: nobody here
  }
  std::uint64_t enqueued = 0;
  for (const actor_index member : local().members(target))
    if (local().send_blocking(member, type, {bytes.data(), static_cast<std::uint32_t>(bytes.size())},
                              timeout) == status::enqueued)
      ++enqueued;
  return enqueued;
}

cluster_report cluster::shutdown() {
  return impl_->shutdown();
}
cluster_stats cluster::stats() const {
  return impl_->stats();
}

} // namespace rk
