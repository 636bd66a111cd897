// Grace periods (see grace.hpp).

#include "grace.hpp"

namespace rk::detail {

void grace_periods::defer(std::function<void()> release) {
  if (!running_) {
    release();
    return;
  }
  pending_.push_back({workers_.begin_grace(), std::move(release)});
}

bool grace_periods::collect() {
  bool ran = workers_.collect_exits() > 0;
  // Periods end in epoch order: the newest one that passed ends every older one too.
  while (!pending_.empty() && (!running_ || workers_.grace_passed(pending_.front().epoch))) {
    pending_release next = std::move(pending_.front());
    pending_.pop_front();
    next.release();
    ran = true;
  }
  return ran;
}

void grace_periods::run_all() noexcept {
  while (!pending_.empty()) {
    pending_release next = std::move(pending_.front());
    pending_.pop_front();
    next.release();
  }
}

} // namespace rk::detail
