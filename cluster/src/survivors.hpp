#pragma once
// The collective steps after start() (shutdown) among the ranks still alive. MPI's own collectives wait
// for ever for a rank that died, so these are built from point-to-point messages that stop waiting for a
// rank once the proxy declared it gone (proxy.hpp: heartbeats and failure_timeout).
//
// all_to_all(step, mine): every rank not gone gets `mine` (the same length on every rank), and this rank
// gets theirs. A step is a series of calls with one MPI tag; a rank that has moved on to the next step
// (its message with the next step's tag is waiting) has left this one, and the call says so instead of
// waiting for it. Receives and sends to a rank that is gone are cancelled; their buffers are let go of,
// never freed (MPI may still touch them until the cancel takes effect), a few bytes per failure.

#include <ringkernel/ringkernel.hpp>

#include <mpi.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

namespace rk::detail {

struct exchange_result {
  std::vector<std::vector<std::uint64_t>> rows; //!< per rank: what it sent (empty: gone, or left)
  bool peer_left = false;                       //!< some rank had moved on to the next step
  //! agreed_all_to_all: ranks some rank that answered its second step holds gone (else empty).
  std::vector<bool> reported_gone;
  //! A rank whose row had not come and that was found in the `elsewhere_step` instead (its row is empty).
  std::optional<std::uint32_t> peer_elsewhere;
};

class survivors {
public:
  survivors(MPI_Comm comm, std::uint32_t rank, std::uint32_t size, std::function<bool(std::uint32_t)> gone)
      : comm_(comm), rank_(rank), size_(size), gone_(std::move(gone)) {}

  //! Steps are numbered 0, 1, ...; `last_step`: no step follows this one. `elsewhere_step`: a step a rank
  //! may be in instead of this one (a collective call meeting a rank in shutdown): such a rank is not
  //! waited for (exchange_result::peer_elsewhere).
  exchange_result all_to_all(std::uint32_t step, std::span<const std::uint64_t> mine, bool last_step,
                             std::optional<std::uint32_t> elsewhere_step = std::nullopt);

  //! all_to_all(step) and then all_to_all(agree_step), in which each rank tells the others whose rows it
  //! received and whom it holds gone; each rank keeps only the rows that every rank it heard from in the
  //! second step received. A rank that fails during the first step, its row reaching some ranks and not
  //! others, is so left out alike on every survivor, and every survivor learns that it is gone from the
  //! others (reported_gone) even if its own row came. Not covered: a rank that fails while sending its
  //! second step's row leaves the survivors disagreeing when its first step missed a row others have.
  exchange_result agreed_all_to_all(std::uint32_t step, std::uint32_t agree_step,
                                    std::span<const std::uint64_t> mine,
                                    std::optional<std::uint32_t> elsewhere_step = std::nullopt);

private:
  MPI_Comm comm_;
  std::uint32_t rank_;
  std::uint32_t size_;
  std::function<bool(std::uint32_t)> gone_;
};

} // namespace rk::detail
