#pragma once
// A rank's proxy: one thread that carries messages between this rank's runtime and the other ranks over
// MPI point-to-point messages on its own communicator, and watches whether the other ranks are alive.
//
// Departures: it drains the runtime's outbound ring, maps each message's remote entry to (rank, actor),
// and appends it to that rank's batch; a batch goes out (MPI_Issend) when the next message would not fit
// in batch_bytes, or when the ring has nothing more. At most max_batches_in_flight unfinished sends per
// rank: when the oldest outbound message is for a rank at that limit, the proxy holds it and stops
// draining (the ring fills; senders see it). Sends are synchronous-mode, so "unfinished" means "not yet
// taken by the receiving proxy": a slow receiver holds at most that many batches per sender in MPI.
// Arrivals: when it holds no earlier arrivals, it takes one batch (MPI_Iprobe, MPI_Recv), turns each
// sender into its remote entry here, and hands the messages to the gateway in order (remote::relay); a
// full ingress ring keeps the rest until there is room, and no new batch is taken meanwhile.
// A message whose sender cannot get a stand-in here (its tenant is not registered on this rank, the actor
// table is full) is refused by the proxy itself, and noticed back like a gateway refusal (tenant_mismatch,
// queue_full); no batch is taken while such notices wait.
// Refusal notices (refusal_notice.cuh): the proxy takes the records of relays its gateway refused, and
// sends each back to the sender's rank on a channel of its own (tag, batches, max_in_flight unfinished
// sends per rank). Arriving notices are taken on every turn, whatever the proxy still holds: so a peer's
// notice sends always finish, and no rank's relays wait on a sender here that waits on them (a sender that
// defers keeps its notices out of its mailbox). Each is counted and audited (remote_refusal); one whose
// send asked for it (envelope_flags::notify_refusal) also becomes a message of type refusal_notice_type
// to the sender, at urgent priority (relayed with drop_if_unroutable: a stopped sender drops it, and a
// notice about a notice is never made). Those wait here, one FIFO queue per sender, so a sender whose
// mailbox stays full holds back only its own; past notice_backlog held in all, a notice is dropped and
// counted (its refusal stays counted and audited).
// Liveness: every heartbeat_interval it sends each live rank an empty heartbeat message. A rank from
// which nothing (heartbeat or batch) arrived for failure_timeout is *gone* from then on (fail-stop: later
// arrivals from it are dropped and counted): its remote entries here are marked unreachable (sends to
// them end as status::unreachable on the device), the audit log gets a rank_unreachable record, what the
// proxy holds for it is counted as unreachable, and its unfinished MPI sends are cancelled (counted as
// abandoned: they may or may not have reached it before it failed).
// Shutdown: stop_carrying() makes it drop (and count) what it still holds (batches it was filling too, and
// what is left in the outbound ring) or receives while its own sends finish; stop() ends the thread. Counters
// are atomics any thread may read.

#include "directory.hpp"
#include "wire.hpp"

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

namespace rk::detail {

//! Whether any proxy in this process declared a rank gone (process-wide; once true, stays true). MPI
//! without fault tolerance cannot finalise after that: MPI_Finalize waits for every rank, the dead one too.
bool rank_failure_seen() noexcept;
//! Another rank told this one of a failure its own proxy did not see (shutdown folds the ranks' views).
void note_rank_failure() noexcept;

struct proxy_counters {
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> sent_batches{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> received_batches{0};
  std::atomic<std::uint64_t> relayed{0};
  std::atomic<std::uint64_t> relay_waits{0};
  std::atomic<std::uint64_t> refused{0};     //!< arrivals this rank could not take (unknown tenant, no room)
  std::atomic<std::uint64_t> dropped{0};     //!< held or arriving after stop_carrying(), or from a gone rank
  std::atomic<std::uint64_t> unreachable{0}; //!< for a gone rank, never handed to MPI
  std::atomic<std::uint64_t> abandoned{0};   //!< in MPI sends to a gone rank that were cancelled
  std::atomic<std::uint64_t> unsent{0};      //!< taken from the outbound ring, never handed to MPI (shutdown)
  std::atomic<std::uint64_t> holding{0};     //!< messages and batches inside the proxy now (0: it holds none)
  std::atomic<std::uint64_t> notices_sent{0};        //!< refusals of this rank's gateway sent back to senders
  std::atomic<std::uint64_t> refused_remotely{0};    //!< notices that came back about this rank's sends
  std::atomic<std::uint64_t> notices_relayed{0};     //!< of those, handed to the gateway for their sender
  std::atomic<std::uint64_t> notices_unreachable{0}; //!< refusal notices for a gone rank (not in unreachable)
  std::atomic<std::uint64_t> notices_dropped{0};     //!< notices for senders here past notice_backlog
};

struct proxy_options {
  std::uint32_t batch_bytes = 0;
  std::uint32_t max_in_flight = 0;
  std::uint32_t max_payload = 0;
  std::chrono::milliseconds heartbeat_interval{100};
  std::chrono::milliseconds failure_timeout{10'000};
  std::uint32_t notice_backlog = 65'536; //!< refusal notices held for senders here, at most
};

class mpi_proxy {
public:
  mpi_proxy(runtime& rt, cluster_directory& directory, MPI_Comm comm, std::uint32_t rank, std::uint32_t size,
            const proxy_options& options);
  ~mpi_proxy();
  mpi_proxy(const mpi_proxy&) = delete;
  mpi_proxy& operator=(const mpi_proxy&) = delete;

  void start();
  void stop_carrying() noexcept { carrying_.store(false); }
  void stop() noexcept;
  //! After stop_carrying(): takes what is left in the outbound ring, counting it as unsent; returns how
  //! many. The proxy calls it while it runs, shutdown() once more when the runtime stopped (after the
  //! proxy thread ended), so what handlers sent meanwhile is counted too.
  std::uint64_t discard_outbound() noexcept;
  const proxy_counters& counters() const noexcept { return counters_; }
  //! Messages and notices appended to a batch for rank `r`, and those that arrived from it (any thread).
  std::uint64_t sent_to(std::uint32_t r) const noexcept { return sent_to_[r].load(); }
  std::uint64_t received_from(std::uint32_t r) const noexcept { return received_from_[r].load(); }
  //! Whether rank `r` was declared gone (any thread; once true, stays true).
  bool gone(std::uint32_t r) const noexcept { return gone_[r].load(); }

private:
  using clock = std::chrono::steady_clock;
  struct in_flight_batch {
    MPI_Request request = MPI_REQUEST_NULL;
    std::vector<std::byte> bytes;
    std::uint32_t messages = 0;
  };
  //! Batches to one rank on one tag: the one being filled, and those MPI has not finished sending.
  struct channel {
    wire::batch_builder building;
    std::deque<in_flight_batch> in_flight;
  };
  struct peer {
    channel messages;
    channel notices;
    clock::time_point last_heard{};
    MPI_Request heartbeat = MPI_REQUEST_NULL;
  };
  struct arrival {
    envelope header{};
    std::vector<std::byte> payload;
  };

  //! A refusal on its way back to the sender's rank (wire format: see drain_refusals).
  struct outgoing_notice {
    std::uint32_t rank = 0;
    envelope header{};
    std::uint64_t verdict = 0;
  };
  static outgoing_notice make_notice(std::uint32_t rank, std::uint64_t tenant, std::uint64_t correlation_id,
                                     std::uint32_t type_id, actor_index refused_destination,
                                     actor_index sender, std::uint16_t flags, status why);
  //! Appends `n` to its rank's notice batch and counts it; false when that channel is at its limit.
  bool send_notice(const outgoing_notice& n);

  void loop();
  //! After stop_carrying(): drops (and counts) the arrivals, notices and stalled messages it holds and the
  //! batches it was filling; returns whether there were any.
  bool drop_held();
  bool complete_sends();
  bool drain_outbound();
  //! Sends the batch `c` of rank `r` is filling, if it has one and may; returns whether it went (or
  //! there was none).
  bool flush(std::uint32_t r, channel& c, int tag);
  //! Appends a message to `c`'s batch for rank `r`, sending that batch first when it would not fit;
  //! false (nothing appended) when the batch cannot go yet.
  bool append(std::uint32_t r, channel& c, int tag, const envelope& header,
              std::span<const std::byte> payload);
  bool relay(std::deque<arrival>& queue, std::atomic<std::uint64_t>& relayed);
  //! Hands held notices to the gateway, each sender's in order until its mailbox has no room.
  bool relay_notices();
  //! Holds `notice` for its sender (drops and counts it past notice_backlog).
  void hold_notice(arrival&& notice);
  //! Receives one batch of `tag` if one is waiting, into decoded_ (empty when malformed: said on stderr).
  struct received_batch {
    bool received = false;
    std::uint32_t from = 0;
  };
  received_batch receive_batch(int tag);
  bool take_batch();
  bool drain_refusals();
  bool take_notices();
  //! Heartbeats out and in; declares ranks silent for failure_timeout gone.
  bool watch_peers();
  void declare_gone(std::uint32_t r, clock::duration silent);
  void publish_holding();

  runtime& rt_;
  cluster_directory& directory_;
  MPI_Comm comm_;
  std::uint32_t rank_;
  proxy_options options_;
  std::vector<peer> peers_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> sent_to_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> received_from_;
  std::unique_ptr<std::atomic<bool>[]> gone_;
  clock::time_point next_heartbeat_{};
  std::optional<received_message> stalled_; //!< taken from the ring, waiting for its rank to have room
  std::deque<arrival> arrivals_;
  std::optional<refusal_record> stalled_refusal_; //!< taken, waiting for its rank to have room
  //! Refusals this proxy made itself (take_batch: no stand-in for the sender could be made), waiting for
  //! their rank's notice channel. Bounded: no batch is taken while any wait (as for arrivals), so at most
  //! one batch's messages.
  std::deque<outgoing_notice> direct_notices_;
  //! Refusal notices for senders here (by sender, each in arrival order), the senders with any in the
  //! order they got their first, and how many are held in all.
  std::unordered_map<actor_index, std::deque<arrival>> notices_by_sender_;
  std::vector<actor_index> notice_senders_;
  std::size_t notices_held_ = 0;
  std::vector<std::byte> batch_bytes_;         //!< the batch last received
  std::vector<wire::decoded_message> decoded_; //!< its messages (pointing into batch_bytes_)
  proxy_counters counters_;
  std::atomic<bool> carrying_{true};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace rk::detail
