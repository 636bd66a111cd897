// rk::cluster (see cluster.hpp): joining the job, the directory exchange, and the collective shutdown.

#include "directory.hpp"
#include "proxy.hpp"

#include <ringkernel/cluster/cluster.hpp>
#include <ringkernel/host/detail/remote.hpp>

#include <mpi.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <thread>

namespace rk {
namespace detail {
namespace {

void finalize_mpi_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized == 0) MPI_Finalize();
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
  const std::size_t one_message = wire::header_bytes + wire::message_bytes(o.outbound.payload_capacity());
  if (o.batch_bytes < one_message || o.batch_bytes > (64u << 20))
    throw error("cluster_options::batch_bytes must hold one outbound message (" +
                std::to_string(one_message) + " bytes) and be at most 64 MiB; got " +
                std::to_string(o.batch_bytes));
  if (o.max_batches_in_flight < 1 || o.max_batches_in_flight > 1024)
    throw error("cluster_options::max_batches_in_flight must be 1 .. 1024; got " +
                std::to_string(o.max_batches_in_flight));
  if (o.drain_timeout.count() <= 0 || o.drain_timeout > std::chrono::hours(24))
    throw error("cluster_options::drain_timeout must be positive and at most 24 hours; got " +
                std::to_string(o.drain_timeout.count()) + " ms");
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
    validate(options_);
    options_.runtime.cluster_outbound = options_.outbound;
    join_mpi();
    MPI_Comm_dup(MPI_COMM_WORLD, &control_);
    MPI_Comm_dup(MPI_COMM_WORLD, &data_);
    int rank = 0, size = 0;
    MPI_Comm_rank(control_, &rank);
    MPI_Comm_size(control_, &size);
    rank_ = static_cast<std::uint32_t>(rank);
    size_ = static_cast<std::uint32_t>(size);
    std::exception_ptr failure;
    try {
      runtime_ = std::make_unique<runtime>(options_.runtime);
      directory_ = std::make_unique<cluster_directory>(*runtime_, rank_, size_);
    } catch (...) {
      failure = std::current_exception();
    }
    try {
      agree_or_throw(control_, "creating the rank's runtime", failure);
    } catch (...) {
      directory_.reset();
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
    runtime_.reset();
    free_comms();
  }

  void start() {
    if (started_) throw error("rk::cluster::start(): the cluster was started already");
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
    proxy_ =
        std::make_unique<mpi_proxy>(*runtime_, *directory_, data_, rank_, size_, options_.batch_bytes,
                                    options_.max_batches_in_flight, options_.outbound.payload_capacity());
    proxy_->start();
    started_ = true;
    announce();
    MPI_Barrier(control_);
  }

  cluster_report shutdown() {
    cluster_report report;
    if (!started_ || stopped_) {
      report.drained = true;
      if (runtime_) report.local = runtime_->shutdown();
      return report;
    }
    stopped_ = true;
    report.drained = wait_until_quiet(report.in_flight);
    // Whatever is still held is dropped (counted); every rank's sends finish before the proxies stop.
    proxy_->stop_carrying();
    wait_for_sends_everywhere();
    proxy_->stop();
    report.local = runtime_->shutdown();
    MPI_Barrier(control_);
    return report;
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
    }
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
  bool started_ = false;
  bool stopped_ = false;

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

  //! This rank's activity: [0] messages sent to other ranks, [1] received from them, [2] a count that
  //! changes whenever anything moves here, [3] 1 when anything is queued or running here.
  std::array<std::uint64_t, 4> local_activity() const {
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
    const bool busy =
        holding != 0 || pending != 0 || ingress_busy || remote::outbound_pending(*runtime_) != 0;
    const std::uint64_t moved =
        c.sent.load() + c.received.load() + c.relayed.load() + s.gateway_processed + handled;
    return {c.sent.load(), c.received.load() + c.dropped.load(), moved, busy ? 1u : 0u};
  }

  //! Rounds of MPI_Allreduce until two in a row find nothing queued anywhere, as many messages received as
  //! sent cluster-wide, and nothing moved between them; or until drain_timeout (decided together: every
  //! rank leaves in the same round).
  bool wait_until_quiet(std::uint64_t& in_flight) {
    const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
    std::array<std::uint64_t, 2> previous{~0ull, ~0ull};
    backoff idle;
    for (;;) {
      const std::array<std::uint64_t, 4> mine = local_activity();
      std::array<std::uint64_t, 3> sums{};
      MPI_Allreduce(mine.data(), sums.data(), 3, MPI_UINT64_T, MPI_SUM, control_);
      const std::array<std::uint64_t, 2> flags_mine{mine[3],
                                                    std::chrono::steady_clock::now() > deadline ? 1u : 0u};
      std::array<std::uint64_t, 2> flags{};
      MPI_Allreduce(flags_mine.data(), flags.data(), 2, MPI_UINT64_T, MPI_MAX, control_);
      in_flight = sums[0] > sums[1] ? sums[0] - sums[1] : 0;
      const bool quiet = flags[0] == 0 && sums[0] == sums[1];
      if (quiet && previous[0] == sums[2] && previous[1] == sums[0]) return true;
      if (flags[1] != 0) return false;
      previous =
          quiet ? std::array<std::uint64_t, 2>{sums[2], sums[0]} : std::array<std::uint64_t, 2>{~0ull, ~0ull};
      idle.pause();
    }
  }

  //! After stop_carrying(): rounds until no rank has a batch it sent unfinished (the proxies keep
  //! receiving, and dropping, meanwhile), or 10 s.
  void wait_for_sends_everywhere() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    backoff idle;
    for (;;) {
      const std::array<std::uint64_t, 2> mine{proxy_->counters().holding.load(),
                                              std::chrono::steady_clock::now() > deadline ? 1u : 0u};
      std::array<std::uint64_t, 2> all{};
      MPI_Allreduce(mine.data(), all.data(), 2, MPI_UINT64_T, MPI_MAX, control_);
      if (all[0] == 0 || all[1] != 0) return;
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
  return impl_->directory_->address_of(a);
}

global_address cluster::origin_of(const received_message& m) const {
  if (m.source() == host_actor) return {rank(), host_actor};
  if (const std::optional<global_address> far = impl_->directory_->target_of(m.source())) return *far;
  return {rank(), m.source()};
}

status cluster::send(global_address to, std::uint32_t type, byte_view payload, const send_options& options) {
  return local().send(address_of(to), type, payload, options);
}

status cluster::send_blocking(global_address to, std::uint32_t type, byte_view payload,
                              std::chrono::milliseconds timeout, const send_options& options) {
  return local().send_blocking(address_of(to), type, payload, timeout, options);
}

std::optional<received_message> cluster::receive(std::chrono::milliseconds timeout) {
  return local().receive(timeout);
}

cluster_report cluster::shutdown() {
  return impl_->shutdown();
}
cluster_stats cluster::stats() const {
  return impl_->stats();
}

} // namespace rk
