#pragma once
// A rank's proxy: one thread that carries messages between this rank's runtime and the other ranks over
// MPI point-to-point messages on its own communicator.
//
// Departures: it drains the runtime's outbound ring, maps each message's remote entry to (rank, actor),
// and appends it to that rank's batch; a batch goes out (MPI_Isend) when the next message would not fit
// in batch_bytes, or when the ring has nothing more. At most max_batches_in_flight unfinished sends per
// rank: when the oldest outbound message is for a rank at that limit, the proxy holds it and stops
// draining (the ring fills; senders see it).
// Arrivals: when it holds no earlier arrivals, it takes one batch (MPI_Iprobe, MPI_Recv), turns each
// sender into its remote entry here, and hands the messages to the gateway in order (remote::relay); a
// full ingress ring keeps the rest until there is room, and no new batch is taken meanwhile.
// Shutdown: stop_carrying() makes it drop (and count) what it still holds or receives while its own
// sends finish; stop() ends the thread. Counters are atomics any thread may read.

#include "directory.hpp"
#include "wire.hpp"

#include <mpi.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <thread>
#include <vector>

namespace rk::detail {

struct proxy_counters {
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> sent_batches{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> received_batches{0};
  std::atomic<std::uint64_t> relayed{0};
  std::atomic<std::uint64_t> relay_waits{0};
  std::atomic<std::uint64_t> refused{0}; //!< arrivals this rank could not take (unknown tenant, no room)
  std::atomic<std::uint64_t> dropped{0}; //!< held or arriving after stop_carrying()
  std::atomic<std::uint64_t> holding{0}; //!< messages and batches inside the proxy now (0: it holds none)
};

class mpi_proxy {
public:
  mpi_proxy(runtime& rt, cluster_directory& directory, MPI_Comm comm, std::uint32_t rank, std::uint32_t size,
            std::uint32_t batch_bytes, std::uint32_t max_in_flight, std::uint32_t max_payload);
  ~mpi_proxy();
  mpi_proxy(const mpi_proxy&) = delete;
  mpi_proxy& operator=(const mpi_proxy&) = delete;

  void start();
  void stop_carrying() noexcept { carrying_.store(false); }
  void stop() noexcept;
  const proxy_counters& counters() const noexcept { return counters_; }

private:
  struct in_flight_batch {
    MPI_Request request = MPI_REQUEST_NULL;
    std::vector<std::byte> bytes;
  };
  struct peer {
    wire::batch_builder building;
    std::deque<in_flight_batch> in_flight;
  };
  struct arrival {
    envelope header{};
    std::vector<std::byte> payload;
  };

  void loop();
  bool complete_sends();
  bool drain_outbound();
  //! Sends `p`'s batch if it has one and may; returns whether it went (or there was none).
  bool flush(std::uint32_t p);
  bool relay_arrivals();
  bool take_batch();
  void publish_holding();

  runtime& rt_;
  cluster_directory& directory_;
  MPI_Comm comm_;
  std::uint32_t rank_;
  std::uint32_t batch_bytes_;
  std::uint32_t max_in_flight_;
  std::uint32_t max_payload_;
  std::vector<peer> peers_;
  std::optional<received_message> stalled_; //!< taken from the ring, waiting for its rank to have room
  std::deque<arrival> arrivals_;
  std::vector<wire::decoded_message> decoded_;
  proxy_counters counters_;
  std::atomic<bool> carrying_{true};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace rk::detail
