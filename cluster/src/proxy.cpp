// A rank's proxy over MPI (see proxy.hpp).

#include "proxy.hpp"

#include <ringkernel/host/detail/remote.hpp>

#include <cstdio>

namespace rk::detail {
namespace {

constexpr int batch_tag = 7001;

//! Outbound messages taken per loop turn before the proxy looks at arrivals again.
constexpr int drain_budget = 4096;

} // namespace

mpi_proxy::mpi_proxy(runtime& rt, cluster_directory& directory, MPI_Comm comm, std::uint32_t rank,
                     std::uint32_t size, std::uint32_t batch_bytes, std::uint32_t max_in_flight,
                     std::uint32_t max_payload)
    : rt_(rt), directory_(directory), comm_(comm), rank_(rank), batch_bytes_(batch_bytes),
      max_in_flight_(max_in_flight), max_payload_(max_payload), peers_(size) {}

mpi_proxy::~mpi_proxy() {
  stop();
}

void mpi_proxy::start() {
  thread_ = std::thread([this] { loop(); });
}

void mpi_proxy::stop() noexcept {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void mpi_proxy::loop() {
  backoff idle;
  while (!stop_.load()) {
    bool moved = complete_sends();
    if (carrying_.load()) {
      moved = drain_outbound() || moved;
      moved = relay_arrivals() || moved;
    } else if (stalled_ || !arrivals_.empty()) { // shutting down: what is held is dropped, and counted
      counters_.dropped.fetch_add(arrivals_.size() + (stalled_ ? 1 : 0));
      arrivals_.clear();
      stalled_.reset();
      moved = true;
    }
    if (arrivals_.empty()) moved = take_batch() || moved;
    publish_holding();
    if (moved) {
      idle.reset();
    } else {
      idle.pause();
    }
  }
  // shutdown() stops the proxies once every rank's sends completed (cluster.cpp); only when it gave up
  // waiting can some be unfinished. MPI may still read their buffers: those are let go of, never freed.
  for (peer& p : peers_) {
    for (in_flight_batch& b : p.in_flight) {
      MPI_Request_free(&b.request);
      new std::vector<std::byte>(std::move(b.bytes)); // NOLINT: deliberately leaked, see above
    }
    p.in_flight.clear();
  }
}

bool mpi_proxy::complete_sends() {
  bool any = false;
  for (peer& p : peers_) {
    while (!p.in_flight.empty()) {
      int done = 0;
      MPI_Test(&p.in_flight.front().request, &done, MPI_STATUS_IGNORE);
      if (done == 0) break;
      p.in_flight.pop_front();
      any = true;
    }
  }
  return any;
}

bool mpi_proxy::drain_outbound() {
  bool moved = false;
  for (int taken = 0; taken < drain_budget; ++taken) {
    received_message m;
    if (stalled_) {
      m = std::move(*stalled_);
      stalled_.reset();
    } else if (!remote::take_outbound(rt_, m)) {
      break;
    }
    const std::optional<global_address> to = directory_.target_of(m.header.destination);
    if (!to) { // a remote entry the directory does not know: cannot happen while entries are never removed
      counters_.dropped.fetch_add(1);
      continue;
    }
    peer& p = peers_[to->rank];
    if (p.building.count() != 0 &&
        p.building.bytes() + wire::message_bytes(m.header.payload_length) > batch_bytes_ &&
        !flush(to->rank)) {
      stalled_ = std::move(m); // its rank has max_in_flight batches unfinished: stop draining
      return moved;
    }
    m.header.destination = to->actor;
    p.building.add(m.header, m.payload);
    counters_.sent.fetch_add(1);
    moved = true;
  }
  for (std::uint32_t r = 0; r < peers_.size(); ++r)
    (void)flush(r); // nothing more for now: send what there is
  return moved;
}

bool mpi_proxy::flush(std::uint32_t r) {
  peer& p = peers_[r];
  if (p.building.count() == 0) return true;
  if (p.in_flight.size() >= max_in_flight_) return false;
  in_flight_batch b;
  b.bytes = p.building.take();
  MPI_Isend(b.bytes.data(), static_cast<int>(b.bytes.size()), MPI_BYTE, static_cast<int>(r), batch_tag, comm_,
            &b.request);
  p.in_flight.push_back(std::move(b)); // the vector's buffer does not move with it
  counters_.sent_batches.fetch_add(1);
  return true;
}

bool mpi_proxy::relay_arrivals() {
  bool moved = false;
  while (!arrivals_.empty()) {
    const arrival& a = arrivals_.front();
    const status s =
        remote::relay(rt_, a.header, {a.payload.data(), static_cast<std::uint32_t>(a.payload.size())});
    if (s == status::queue_full) { // the gateway has no room now: keep it (and everything after it)
      counters_.relay_waits.fetch_add(1);
      break;
    }
    if (s == status::enqueued) {
      counters_.relayed.fetch_add(1);
    } else {
      counters_.refused.fetch_add(1); // not_running, too_large: the gateway cannot take it at all
    }
    arrivals_.pop_front();
    moved = true;
  }
  return moved;
}

bool mpi_proxy::take_batch() {
  int waiting = 0;
  MPI_Status st;
  MPI_Iprobe(MPI_ANY_SOURCE, batch_tag, comm_, &waiting, &st);
  if (waiting == 0) return false;
  int bytes = 0;
  MPI_Get_count(&st, MPI_BYTE, &bytes);
  std::vector<std::byte> batch(static_cast<std::size_t>(bytes));
  MPI_Recv(batch.data(), bytes, MPI_BYTE, st.MPI_SOURCE, batch_tag, comm_, MPI_STATUS_IGNORE);
  counters_.received_batches.fetch_add(1);
  const std::string problem = wire::decode_batch(batch, max_payload_, decoded_);
  if (!problem.empty()) { // a peer never sends one: say so once per batch, and count nothing as delivered
    std::fprintf(stderr, "rk::cluster rank %u: dropped a batch from rank %d: %s\n", rank_, st.MPI_SOURCE,
                 problem.c_str());
    return true;
  }
  const auto from = static_cast<std::uint32_t>(st.MPI_SOURCE);
  for (const wire::decoded_message& m : decoded_) {
    counters_.received.fetch_add(1);
    if (!carrying_.load()) {
      counters_.dropped.fetch_add(1);
      continue;
    }
    arrival a;
    a.header = m.header;
    try { // the sender's stand-in here: its remote entry, made on first contact
      a.header.source = directory_.entry_for({from, m.header.source}, m.header.tenant);
    } catch (const error& e) {
      counters_.refused.fetch_add(1);
      std::fprintf(stderr, "rk::cluster rank %u: refused a message from rank %u: %s\n", rank_, from,
                   e.what());
      continue;
    }
    a.payload.assign(m.payload.begin(), m.payload.end());
    arrivals_.push_back(std::move(a));
  }
  return true;
}

void mpi_proxy::publish_holding() {
  std::uint64_t n = arrivals_.size() + (stalled_ ? 1 : 0);
  for (const peer& p : peers_) n += p.building.count() + p.in_flight.size();
  counters_.holding.store(n);
}

} // namespace rk::detail
