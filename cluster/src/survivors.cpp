// Collective steps among the ranks still alive (see survivors.hpp).

#include "survivors.hpp"

#include <memory>

namespace rk::detail {
namespace {

constexpr int first_step_tag = 8100;

void let_go(MPI_Request& request, std::vector<std::uint64_t>&& buffer) {
  (void)MPI_Cancel(&request);
  (void)MPI_Request_free(&request);
  new std::vector<std::uint64_t>(std::move(buffer)); // NOLINT: deliberately leaked, see survivors.hpp
}

} // namespace

exchange_result survivors::all_to_all(std::uint32_t step, std::span<const std::uint64_t> mine, bool last_step,
                                      std::optional<std::uint32_t> elsewhere_step) {
  const int tag = first_step_tag + static_cast<int>(step);
  const int count = static_cast<int>(mine.size());
  exchange_result result;
  result.rows.resize(size_);
  result.rows[rank_].assign(mine.begin(), mine.end());
  std::vector<MPI_Request> sends(size_, MPI_REQUEST_NULL), receives(size_, MPI_REQUEST_NULL);
  std::vector<std::vector<std::uint64_t>> buffers(size_);
  auto outgoing = std::make_unique<std::vector<std::uint64_t>>(mine.begin(), mine.end());
  for (std::uint32_t r = 0; r < size_; ++r) {
    if (r == rank_ || gone_(r)) continue;
    buffers[r].resize(mine.size());
    (void)MPI_Irecv(buffers[r].data(), count, MPI_UINT64_T, static_cast<int>(r), tag, comm_, &receives[r]);
    (void)MPI_Isend(outgoing->data(), count, MPI_UINT64_T, static_cast<int>(r), tag, comm_, &sends[r]);
  }
  backoff idle;
  for (bool waiting = true; waiting;) {
    waiting = false;
    for (std::uint32_t r = 0; r < size_; ++r) {
      if (receives[r] == MPI_REQUEST_NULL) continue;
      int done = 0;
      const int rc = MPI_Test(&receives[r], &done, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) { // a row of another length: a rank called a different step; its row is empty
        receives[r] = MPI_REQUEST_NULL;
        continue;
      }
      if (done != 0) {
        result.rows[r] = std::move(buffers[r]);
        idle.reset();
        continue;
      }
      int moved_on = 0;
      if (!last_step) (void)MPI_Iprobe(static_cast<int>(r), tag + 1, comm_, &moved_on, MPI_STATUS_IGNORE);
      int elsewhere = 0;
      if (elsewhere_step && moved_on == 0)
        (void)MPI_Iprobe(static_cast<int>(r), first_step_tag + static_cast<int>(*elsewhere_step), comm_,
                         &elsewhere, MPI_STATUS_IGNORE);
      // A peer that moved on sent its row for this step first: the probe's progress may have just
      // completed our receive of it (seen in CI: one rank of four concluded `peer_left` with the row there).
      if ((moved_on != 0 || elsewhere != 0) &&
          MPI_Test(&receives[r], &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done != 0) {
        result.rows[r] = std::move(buffers[r]);
        idle.reset();
        continue;
      }
      if (moved_on != 0) result.peer_left = true;
      if (elsewhere != 0 && !result.peer_elsewhere) result.peer_elsewhere = r;
      if (moved_on != 0 || elsewhere != 0 || gone_(r)) {
        let_go(receives[r], std::move(buffers[r]));
        continue;
      }
      waiting = true;
    }
    if (waiting) idle.pause();
  }
  bool abandoned = false;
  for (std::uint32_t r = 0; r < size_; ++r) { // small messages: MPI finishes them at once (eager)
    while (sends[r] != MPI_REQUEST_NULL) {
      int done = 0;
      if (MPI_Test(&sends[r], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done != 0) break;
      if (gone_(r)) {
        (void)MPI_Cancel(&sends[r]);
        (void)MPI_Request_free(&sends[r]);
        abandoned = true;
        break;
      }
      idle.pause();
    }
  }
  if (abandoned) (void)outgoing.release(); // MPI may read it until the cancel takes effect: never freed
  return result;
}

exchange_result survivors::agreed_all_to_all(std::uint32_t step, std::uint32_t agree_step,
                                             std::span<const std::uint64_t> mine,
                                             std::optional<std::uint32_t> elsewhere_step) {
  // Both steps are taken by every rank, in order, so neither needs to look for ranks that moved on; a
  // rank found in `elsewhere_step` instead never takes either (every rank that waits for its row finds it
  // there), so the second is skipped.
  exchange_result result = all_to_all(step, mine, true, elsewhere_step);
  if (result.peer_elsewhere) return result;
  std::vector<std::uint64_t> seen(2 * std::size_t{size_});
  for (std::uint32_t r = 0; r < size_; ++r) {
    seen[r] = result.rows[r].empty() ? 0 : 1;
    seen[size_ + r] = gone_(r) ? 1 : 0;
  }
  const exchange_result views = all_to_all(agree_step, seen, true);
  result.reported_gone.assign(size_, false);
  for (const std::vector<std::uint64_t>& view : views.rows) {
    if (view.size() != seen.size()) continue; // a rank that did not answer: gone here
    for (std::uint32_t r = 0; r < size_; ++r) {
      if (view[r] == 0) result.rows[r].clear();
      if (view[size_ + r] != 0) result.reported_gone[r] = true;
    }
  }
  return result;
}

} // namespace rk::detail
