// A rank's proxy over MPI (see proxy.hpp).

#include "proxy.hpp"

#include <ringkernel/host/detail/remote.hpp>

#include <cstdio>
#include <cstring>

namespace rk::detail {
namespace {

constexpr int batch_tag = 7001;
constexpr int heartbeat_tag = 7002;
constexpr int notice_tag = 7003;

//! Outbound messages taken per loop turn before the proxy looks at arrivals again.
constexpr int drain_budget = 4096;

std::atomic<bool> failure_seen{false};

template <class T>
std::unique_ptr<std::atomic<T>[]> atomics(std::size_t n) {
  auto a = std::make_unique<std::atomic<T>[]>(n);
  for (std::size_t i = 0; i < n; ++i) a[i].store(T{});
  return a;
}

//! Lets go of a send MPI may still be carrying: cancelled, its request freed, its buffer never freed (MPI
//! may read it until the cancel takes effect).
void abandon(MPI_Request& request, std::vector<std::byte>&& bytes) {
  if (request != MPI_REQUEST_NULL) {
    (void)MPI_Cancel(&request);
    (void)MPI_Request_free(&request);
  }
  new std::vector<std::byte>(std::move(bytes)); // NOLINT: deliberately leaked, see above
}

} // namespace

bool rank_failure_seen() noexcept {
  return failure_seen.load();
}
void note_rank_failure() noexcept {
  failure_seen.store(true);
}

mpi_proxy::mpi_proxy(runtime& rt, cluster_directory& directory, MPI_Comm comm, std::uint32_t rank,
                     std::uint32_t size, const proxy_options& options)
    : rt_(rt), directory_(directory), comm_(comm), rank_(rank), options_(options), peers_(size),
      sent_to_(atomics<std::uint64_t>(size)), received_from_(atomics<std::uint64_t>(size)),
      gone_(atomics<bool>(size)) {}

mpi_proxy::~mpi_proxy() {
  stop();
}

void mpi_proxy::start() {
  const clock::time_point now = clock::now();
  for (peer& p : peers_) p.last_heard = now;
  next_heartbeat_ = now;
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
    moved = watch_peers() || moved;
    if (carrying_.load()) {
      moved = drain_outbound() || moved;
      moved = drain_refusals() || moved;
      moved = relay(arrivals_, counters_.relayed) || moved;
      moved = relay_notices() || moved;
    } else {
      moved = drop_held() || moved;
    }
    if (arrivals_.empty() && direct_notices_.empty()) moved = take_batch() || moved;
    moved = take_notices() || moved;
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
    for (channel* c : {&p.messages, &p.notices}) {
      for (in_flight_batch& b : c->in_flight) abandon(b.request, std::move(b.bytes));
      c->in_flight.clear();
    }
    abandon(p.heartbeat, {});
  }
}

bool mpi_proxy::drop_held() {
  // Arrivals and notices: dropped. Messages taken from the outbound ring that never went (the one waiting
  // for its rank's sends, batches being filled meanwhile): unsent.
  std::uint64_t dropped =
      arrivals_.size() + notices_held_ + direct_notices_.size() + (stalled_refusal_ ? 1 : 0);
  std::uint64_t unsent = stalled_ ? 1 : 0;
  arrivals_.clear();
  notices_by_sender_.clear();
  notice_senders_.clear();
  notices_held_ = 0;
  direct_notices_.clear();
  stalled_.reset();
  stalled_refusal_.reset();
  for (peer& p : peers_) {
    unsent += p.messages.building.count();
    dropped += p.notices.building.count();
    (void)p.messages.building.take();
    (void)p.notices.building.take();
  }
  counters_.dropped.fetch_add(dropped);
  counters_.unsent.fetch_add(unsent);
  return discard_outbound() + dropped + unsent != 0;
}

std::uint64_t mpi_proxy::discard_outbound() noexcept {
  std::uint64_t discarded = 0;
  received_message m;
  while (remote::take_outbound(rt_, m)) ++discarded;
  counters_.unsent.fetch_add(discarded);
  return discarded;
}

bool mpi_proxy::complete_sends() {
  bool any = false;
  for (std::uint32_t r = 0; r < peers_.size(); ++r) {
    peer& p = peers_[r];
    for (channel* c : {&p.messages, &p.notices}) {
      while (!c->in_flight.empty()) {
        int done = 0;
        if (MPI_Test(&c->in_flight.front().request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
          declare_gone(r, clock::now() - p.last_heard); // MPI says the rank cannot be reached
          return true;
        }
        if (done == 0) break;
        c->in_flight.pop_front();
        any = true;
      }
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
    if (gone(to->rank)) { // sent before its entry was marked, or waiting for room when the rank went
      counters_.unreachable.fetch_add(1);
      moved = true;
      continue;
    }
    const actor_index entry = m.header.destination;
    m.header.destination = to->actor;
    if (!append(to->rank, peers_[to->rank].messages, batch_tag, m.header, m.payload)) {
      m.header.destination = entry; // resolved again when it is retried
      stalled_ = std::move(m);      // its rank has max_in_flight batches unfinished: stop draining
      return moved;
    }
    sent_to_[to->rank].fetch_add(1); // counted in `sent` when its batch goes (flush)
    moved = true;
  }
  for (std::uint32_t r = 0; r < peers_.size(); ++r)
    (void)flush(r, peers_[r].messages, batch_tag); // nothing more for now: send what there is
  return moved;
}

bool mpi_proxy::append(std::uint32_t r, channel& c, int tag, const envelope& header,
                       std::span<const std::byte> payload) {
  if (c.building.count() != 0 &&
      c.building.bytes() + wire::message_bytes(header.payload_length) > options_.batch_bytes &&
      !flush(r, c, tag))
    return false;
  c.building.add(header, payload);
  return true;
}

bool mpi_proxy::flush(std::uint32_t r, channel& c, int tag) {
  if (c.building.count() == 0) return true;
  if (c.in_flight.size() >= options_.max_in_flight) return false;
  in_flight_batch b;
  b.messages = c.building.count();
  b.bytes = c.building.take();
  // Synchronous mode: the send completes only once the receiving proxy took the batch (its MPI_Recv
  // matched it). A standard-mode send of a small batch completes as soon as MPI copied it out (eager
  // protocol), so max_in_flight would bound nothing: a slow receiver's MPI would queue every batch the
  // sender can make (and its probes slow down with the length of that queue).
  const int rc = MPI_Issend(b.bytes.data(), static_cast<int>(b.bytes.size()), MPI_BYTE, static_cast<int>(r),
                            tag, comm_, &b.request);
  c.in_flight.push_back(std::move(b)); // the vector's buffer does not move with it
  if (rc != MPI_SUCCESS) declare_gone(r, clock::now() - peers_[r].last_heard); // cancels, counts abandoned
  if (tag == batch_tag) {
    counters_.sent.fetch_add(b.messages);
    counters_.sent_batches.fetch_add(1);
  }
  return true;
}

bool mpi_proxy::relay(std::deque<arrival>& queue, std::atomic<std::uint64_t>& relayed) {
  bool moved = false;
  while (!queue.empty()) {
    const arrival& a = queue.front();
    const status s =
        remote::relay(rt_, a.header, {a.payload.data(), static_cast<std::uint32_t>(a.payload.size())});
    if (s == status::queue_full) { // the gateway has no room now: keep it (and everything after it)
      counters_.relay_waits.fetch_add(1);
      break;
    }
    if (s == status::enqueued) {
      relayed.fetch_add(1);
    } else {
      counters_.refused.fetch_add(1); // not_running, too_large: the gateway cannot take it at all
    }
    queue.pop_front();
    moved = true;
  }
  return moved;
}

mpi_proxy::received_batch mpi_proxy::receive_batch(int tag) {
  int waiting = 0;
  MPI_Status st;
  MPI_Iprobe(MPI_ANY_SOURCE, tag, comm_, &waiting, &st);
  if (waiting == 0) return {};
  int bytes = 0;
  MPI_Get_count(&st, MPI_BYTE, &bytes);
  std::vector<std::byte>& batch = batch_bytes_; // decoded_ points into it until the next batch
  batch.resize(static_cast<std::size_t>(bytes));
  MPI_Recv(batch.data(), bytes, MPI_BYTE, st.MPI_SOURCE, tag, comm_, MPI_STATUS_IGNORE);
  counters_.received_batches.fetch_add(1);
  const auto from = static_cast<std::uint32_t>(st.MPI_SOURCE);
  if (!gone(from)) peers_[from].last_heard = clock::now();
  const std::string problem = wire::decode_batch(batch, options_.max_payload, decoded_);
  if (!problem.empty()) // a peer never sends one: say so once per batch, and count nothing as delivered
    std::fprintf(stderr, "rk::cluster rank %u: dropped a batch from rank %u: %s\n", rank_, from,
                 problem.c_str());
  return {true, from};
}

bool mpi_proxy::take_batch() {
  const received_batch got = receive_batch(batch_tag);
  if (!got.received) return false;
  const std::uint32_t from = got.from;
  const bool from_gone = gone(from);
  for (const wire::decoded_message& m : decoded_) {
    counters_.received.fetch_add(1);
    received_from_[from].fetch_add(1);
    if (!carrying_.load() || from_gone) { // a gone rank stays gone: what it still sends is not taken
      counters_.dropped.fetch_add(1);
      continue;
    }
    arrival a;
    a.header = m.header;
    try { // the sender's stand-in here: its remote entry, made on first contact
      a.header.source = directory_.entry_for({from, m.header.source}, m.header.tenant);
    } catch (const error& e) {
      // No stand-in (a tenant not registered here, a full actor table): refused here, and the sender's rank
      // hears of it like of a gateway refusal (counted and audited there; a message when asked for).
      counters_.refused.fetch_add(1);
      std::fprintf(stderr, "rk::cluster rank %u: refused a message from rank %u: %s\n", rank_, from,
                   e.what());
      if (m.header.type_id != refusal_notice_type) { // a notice about a notice is never made
        const status why =
            rt_.tenants().contains(m.header.tenant) ? status::queue_full : status::tenant_mismatch;
        direct_notices_.push_back(
            make_notice(from, m.header.tenant, m.header.correlation_id, m.header.type_id,
                        m.header.destination, m.header.source,
                        static_cast<std::uint16_t>(m.header.flags & ~envelope_flags::runtime_only), why));
      }
      continue;
    }
    a.payload.assign(m.payload.begin(), m.payload.end());
    arrivals_.push_back(std::move(a));
  }
  return true;
}

// On the wire a notice is the refused message's envelope, with source = the destination as addressed on
// the refusing rank and destination = the sender on its own rank, and 8 bytes of payload: the verdict.
mpi_proxy::outgoing_notice mpi_proxy::make_notice(std::uint32_t rank, std::uint64_t tenant,
                                                  std::uint64_t correlation_id, std::uint32_t type_id,
                                                  actor_index refused_destination, actor_index sender,
                                                  std::uint16_t flags, status why) {
  outgoing_notice n;
  n.rank = rank;
  n.header.tenant = tenant;
  n.header.correlation_id = correlation_id;
  n.header.type_id = type_id;
  n.header.source = refused_destination;
  n.header.destination = sender;
  n.header.flags = flags;
  n.header.payload_length = sizeof n.verdict;
  n.verdict = static_cast<std::uint64_t>(why);
  return n;
}

bool mpi_proxy::send_notice(const outgoing_notice& n) {
  if (!append(n.rank, peers_[n.rank].notices, notice_tag, n.header,
              std::as_bytes(std::span<const std::uint64_t, 1>(&n.verdict, 1))))
    return false;
  counters_.notices_sent.fetch_add(1);
  sent_to_[n.rank].fetch_add(1);
  return true;
}

bool mpi_proxy::drain_refusals() {
  bool moved = false;
  while (!direct_notices_.empty()) { // refusals made by this proxy itself (take_batch), oldest first
    const outgoing_notice& n = direct_notices_.front();
    if (gone(n.rank)) {
      counters_.notices_unreachable.fetch_add(1);
    } else if (!send_notice(n)) {
      break; // its rank's notice channel is at its limit: later
    }
    direct_notices_.pop_front();
    moved = true;
  }
  for (int taken = 0; taken < drain_budget; ++taken) {
    refusal_record r;
    if (stalled_refusal_) {
      r = *stalled_refusal_;
      stalled_refusal_.reset();
    } else if (!remote::take_refusal(rt_, r)) {
      break;
    }
    moved = true;
    const std::optional<global_address> sender = directory_.target_of(r.source);
    if (!sender) { // the gateway records only relays from remote entries, which are never removed
      counters_.dropped.fetch_add(1);
      continue;
    }
    if (gone(sender->rank)) {
      counters_.notices_unreachable.fetch_add(1);
      continue;
    }
    if (!send_notice(make_notice(sender->rank, r.tenant, r.correlation_id, r.type_id, r.destination,
                                 sender->actor, r.flags, static_cast<status>(r.verdict)))) {
      stalled_refusal_ = r;
      return moved;
    }
  }
  for (std::uint32_t p = 0; p < peers_.size(); ++p) (void)flush(p, peers_[p].notices, notice_tag);
  return moved;
}

bool mpi_proxy::take_notices() {
  const received_batch got = receive_batch(notice_tag);
  if (!got.received) return false;
  const std::uint32_t from = got.from;
  for (const wire::decoded_message& m : decoded_) {
    received_from_[from].fetch_add(1);
    if (!carrying_.load() || gone(from) || m.payload.size() != 8) {
      counters_.dropped.fetch_add(1);
      continue;
    }
    std::uint64_t verdict = 0;
    std::memcpy(&verdict, m.payload.data(), sizeof verdict);
    const envelope& h = m.header;
    remote::audit(rt_, audit_event::remote_refusal, audit_level::warning, static_cast<std::uint32_t>(verdict),
                  (std::uint64_t{from} << 32) | h.source, h.destination, h.tenant);
    counters_.refused_remotely.fetch_add(1); // after the record: who sees the count finds it audited
    if ((h.flags & envelope_flags::notify_refusal) == 0) continue;
    arrival a;
    a.header.tenant = h.tenant;
    a.header.correlation_id = h.correlation_id;
    a.header.type_id = refusal_notice_type;
    a.header.destination = h.destination;
    a.header.flags = envelope_flags::drop_if_unroutable; // a sender that stopped meanwhile: dropped, counted
    // Urgent: a sender with priority lanes takes it ahead of, not behind, a message it deferred.
    a.header.priority = priority_byte(priority::urgent);
    try { // from the refused destination: the sender's id for it
      a.header.source = directory_.entry_for({from, h.source}, h.tenant);
    } catch (const error& e) {
      counters_.refused.fetch_add(1);
      std::fprintf(stderr, "rk::cluster rank %u: could not notice a refusal by rank %u: %s\n", rank_, from,
                   e.what());
      continue;
    }
    const refusal_notice notice{from, h.source, h.type_id, static_cast<std::uint32_t>(verdict),
                                h.correlation_id};
    const auto* bytes = reinterpret_cast<const std::byte*>(&notice);
    a.payload.assign(bytes, bytes + sizeof notice);
    a.header.payload_length = sizeof notice;
    hold_notice(std::move(a));
  }
  return true;
}

void mpi_proxy::hold_notice(arrival&& notice) {
  if (notices_held_ >= options_.notice_backlog) {
    counters_.notices_dropped.fetch_add(1);
    return;
  }
  std::deque<arrival>& queue = notices_by_sender_[notice.header.destination];
  if (queue.empty()) notice_senders_.push_back(notice.header.destination);
  queue.push_back(std::move(notice));
  ++notices_held_;
}

bool mpi_proxy::relay_notices() {
  bool moved = false;
  std::size_t waiting = 0; // senders still holding notices, kept at the front in their order
  for (const actor_index sender : notice_senders_) {
    std::deque<arrival>& queue = notices_by_sender_[sender];
    const std::size_t before = queue.size();
    moved = relay(queue, counters_.notices_relayed) || moved;
    notices_held_ -= before - queue.size();
    if (queue.empty()) {
      notices_by_sender_.erase(sender);
    } else {
      notice_senders_[waiting++] = sender;
    }
  }
  notice_senders_.resize(waiting);
  return moved;
}

bool mpi_proxy::watch_peers() {
  bool moved = false;
  const clock::time_point now = clock::now();
  for (;;) { // heartbeats in
    int waiting = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, heartbeat_tag, comm_, &waiting, &st) != MPI_SUCCESS || waiting == 0) break;
    (void)MPI_Recv(nullptr, 0, MPI_BYTE, st.MPI_SOURCE, heartbeat_tag, comm_, MPI_STATUS_IGNORE);
    const auto from = static_cast<std::uint32_t>(st.MPI_SOURCE);
    if (!gone(from)) peers_[from].last_heard = now;
  }
  if (now >= next_heartbeat_) { // heartbeats out: at most one unfinished per rank
    next_heartbeat_ = now + options_.heartbeat_interval;
    for (std::uint32_t r = 0; r < peers_.size(); ++r) {
      peer& p = peers_[r];
      if (r == rank_ || gone(r)) continue;
      int done = 1;
      if (p.heartbeat != MPI_REQUEST_NULL &&
          MPI_Test(&p.heartbeat, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        declare_gone(r, now - p.last_heard);
        continue;
      }
      if (done == 0) continue;
      if (MPI_Isend(nullptr, 0, MPI_BYTE, static_cast<int>(r), heartbeat_tag, comm_, &p.heartbeat) !=
          MPI_SUCCESS)
        declare_gone(r, now - p.last_heard);
    }
  }
  for (std::uint32_t r = 0; r < peers_.size(); ++r) {
    if (r == rank_ || gone(r)) continue;
    const clock::duration silent = now - peers_[r].last_heard;
    if (silent > options_.failure_timeout) {
      declare_gone(r, silent);
      moved = true;
    }
  }
  return moved;
}

void mpi_proxy::declare_gone(std::uint32_t r, clock::duration silent) {
  if (gone(r)) return;
  peer& p = peers_[r];
  // Refusal notices have their own count: unreachable and abandoned account for handlers' sends.
  for (channel* c : {&p.messages, &p.notices}) {
    const bool notices = c == &p.notices;
    (notices ? counters_.notices_unreachable : counters_.unreachable).fetch_add(c->building.count());
    (void)c->building.take();
    for (in_flight_batch& b : c->in_flight) {
      (notices ? counters_.notices_unreachable : counters_.abandoned).fetch_add(b.messages);
      abandon(b.request, std::move(b.bytes));
    }
    c->in_flight.clear();
  }
  abandon(p.heartbeat, {});
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(silent).count();
  // Audited before anyone can see the rank gone: who sees it gone finds the record.
  remote::audit(rt_, audit_event::rank_unreachable, audit_level::error, r, static_cast<std::uint64_t>(ms));
  gone_[r].store(true);
  failure_seen.store(true);
  std::fprintf(
      stderr,
      "rk::cluster rank %u: rank %u is gone (nothing heard from it for %lld ms); sends to its actors "
      "now end as unreachable\n",
      rank_, r, static_cast<long long>(ms));
  try {
    directory_.mark_rank_gone(r);
  } catch (const std::exception& e) { // the runtime refused: say so; the proxy drops what is for r anyway
    std::fprintf(stderr, "rk::cluster rank %u: could not mark rank %u's entries unreachable: %s\n", rank_, r,
                 e.what());
  }
}

void mpi_proxy::publish_holding() {
  std::uint64_t n = arrivals_.size() + notices_held_ + direct_notices_.size() + (stalled_ ? 1 : 0) +
                    (stalled_refusal_ ? 1 : 0);
  for (const peer& p : peers_)
    for (const channel* c : {&p.messages, &p.notices}) n += c->building.count() + c->in_flight.size();
  counters_.holding.store(n);
}

} // namespace rk::detail
