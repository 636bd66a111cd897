// One rank's host messages (see inbox.hpp).

#include "inbox.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace rk::detail {
namespace {

std::chrono::steady_clock::time_point deadline_after(std::chrono::milliseconds timeout) {
  const auto now = std::chrono::steady_clock::now();
  if (timeout.count() <= 0) return now;
  const auto longest = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::time_point::max() - now);
  return timeout >= longest ? std::chrono::steady_clock::time_point::max() : now + timeout;
}

//! The round a partial is for (its payload starts with it); nothing for a payload too short to say.
std::optional<std::uint64_t> round_of(const received_message& m) {
  std::uint64_t round = 0;
  if (m.payload.size() < sizeof round) return std::nullopt;
  std::memcpy(&round, m.payload.data(), sizeof round);
  return round;
}

} // namespace

void host_inbox::keep(std::uint32_t type, actor_index reducer) {
  std::lock_guard lock(mutex_);
  if (kept_.contains(type))
    throw error("rk::cluster: message type " + std::to_string(type) +
                " is the reply type of another reduction already; give each reduction a reply type of its "
                "own (the same on every rank)");
  kept_[type].reducer = reducer;
}

bool host_inbox::keeps(std::uint32_t type) const {
  std::lock_guard lock(mutex_);
  return kept_.contains(type);
}

std::uint64_t host_inbox::stale() const {
  std::lock_guard lock(mutex_);
  return stale_;
}

void host_inbox::file(received_message&& m) {
  const auto k = kept_.find(m.type());
  if (k == kept_.end() || k->second.reducer == host_actor || m.source() != k->second.reducer) {
    for_application_.push_back(std::move(m));
    return;
  }
  const std::optional<std::uint64_t> round = round_of(m);
  if (!round || *round < k->second.first_wanted) {
    ++stale_;
    return;
  }
  k->second.partials.push_back(std::move(m));
}

template <class Found>
std::optional<received_message> host_inbox::wait_for(Found&& found, clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  // Past the deadline, how long to wait for another thread's puller to file what the runtime held then: it
  // takes a message in microseconds, so this only bounds the wait while the host is flooded.
  constexpr auto catching_up = std::chrono::milliseconds(100);
  for (;;) {
    if (std::optional<received_message> m = found()) return m;
    const clock::time_point now = clock::now();
    if (pulling_) {
      // Once the puller found the runtime empty, what comes is filed as soon as it is there, so a caller
      // at its deadline misses nothing that came before it; until then it waits for the puller to get
      // through what the runtime held (a message that came long ago is taken even with timeout 0).
      if (now >= deadline && (caught_up_ || now >= deadline + catching_up)) return std::nullopt;
      // Capped: a far deadline (time_point::max()) must not overflow the wait's clock conversion.
      filed_.wait_until(lock, now >= deadline ? deadline + catching_up
                                              : std::min(deadline, now + std::chrono::hours(1)));
      continue;
    }
    pulling_ = true;
    lock.unlock();
    std::optional<received_message> m;
    {
      struct release_on_exit { // also when receive() throws (a faulted runtime): waiters must not hang
        host_inbox& inbox;
        std::unique_lock<std::mutex>& lock;
        ~release_on_exit() {
          if (!lock.owns_lock()) lock.lock();
          inbox.pulling_ = false;
          inbox.caught_up_ = false;
          inbox.filed_.notify_all();
        }
      } release{*this, lock};
      // What the runtime holds first, without waiting (also past the deadline: timeout 0 takes it too).
      m = runtime_.receive(clock::duration::zero());
      if (!m && now < deadline) {
        lock.lock();
        caught_up_ = true;
        filed_.notify_all();
        lock.unlock();
        m = runtime_.receive(deadline - clock::now());
      }
      lock.lock();
      if (m) file(std::move(*m));
    }
    if (!m) return found(); // the runtime had nothing until the deadline (or it stopped)
  }
}

std::optional<received_message> host_inbox::receive(std::chrono::milliseconds timeout) {
  return wait_for(
      [this]() -> std::optional<received_message> {
        if (for_application_.empty()) return std::nullopt;
        received_message m = std::move(for_application_.front());
        for_application_.pop_front();
        return m;
      },
      deadline_after(timeout));
}

std::optional<received_message> host_inbox::take_partial(std::uint32_t type, std::uint64_t round,
                                                         std::chrono::milliseconds timeout) {
  const clock::time_point deadline = deadline_after(timeout);
  {
    std::lock_guard lock(mutex_);
    const auto k = kept_.find(type);
    if (k == kept_.end())
      throw error("rk::cluster::take_kept(): message type " + std::to_string(type) +
                  " is no reduction's reply type (keep_for_collectives first)");
    k->second.first_wanted = std::max(k->second.first_wanted, round);
    std::erase_if(k->second.partials, [&](const received_message& m) {
      const bool before = round_of(m).value_or(0) < round;
      stale_ += before ? 1 : 0;
      return before;
    });
  }
  return wait_for(
      [&]() -> std::optional<received_message> {
        std::deque<received_message>& q = kept_[type].partials;
        const auto it =
            std::find_if(q.begin(), q.end(), [&](const received_message& m) { return round_of(m) == round; });
        if (it == q.end()) return std::nullopt;
        received_message m = std::move(*it);
        q.erase(it);
        return m;
      },
      deadline);
}

void host_inbox::put_back(received_message&& m) {
  std::lock_guard lock(mutex_);
  const auto k = kept_.find(m.type());
  if (k == kept_.end()) return;
  if (const std::optional<std::uint64_t> round = round_of(m))
    k->second.first_wanted = std::min(k->second.first_wanted, *round);
  k->second.partials.push_front(std::move(m));
  filed_.notify_all();
}

} // namespace rk::detail
