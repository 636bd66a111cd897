#pragma once
// One rank's host messages, sorted into the application's (cluster::receive) and the partial results its
// reductions wait for (cluster::take_kept, collectives.hpp).
//
// A message is a partial only when it has a reduction's reply type *and* comes from this rank's reducer of
// that reduction: the source of a message is set by the runtime, not by the sender, so no other actor (of
// any tenant, on any rank) can pass one off as a partial; its messages of that type are the application's.
//
// Threads: any number may call receive() and take_partial() at once. At most one of them takes from the
// runtime at a time (`pulling_`) and files what it takes; the others wait on `filed_` for what it files.
// So a partial a receive() thread takes is found by take_partial() at once (and the other way round),
// and the application's messages are filed in the order the host ring had them. runtime::receive cannot
// also wait on a condition variable; with one puller, nothing but the puller's filing changes what the
// others wait for, so neither it nor they need to look again in slices.

#include <ringkernel/cluster/cluster.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>

namespace rk::detail {

class host_inbox {
public:
  explicit host_inbox(runtime& rt) : runtime_(rt) {}

  //! Messages of `type` from `reducer` are partials (reducer host_actor: this rank has no reducer, so none
  //! is). Throws rk::error when `type` is some reduction's already.
  void keep(std::uint32_t type, actor_index reducer);
  bool keeps(std::uint32_t type) const;

  //! The application's next message, waiting up to `timeout`.
  std::optional<received_message> receive(std::chrono::milliseconds timeout);
  //! The partial of reply type `type` for `round`, waiting up to `timeout`; what the runtime holds already is
  //! looked at even when `timeout` is 0. Partials of earlier rounds are dropped from here on (stale()):
  //! the rounds of a reduction are asked for in increasing order, so no call will want them.
  std::optional<received_message> take_partial(std::uint32_t type, std::uint64_t round,
                                               std::chrono::milliseconds timeout);
  //! Files a partial take_partial() returned back in front, for a round asked for again.
  void put_back(received_message&& m);
  //! Partials dropped as stale: of a round that had ended (failed for want of them) when they came.
  std::uint64_t stale() const;

private:
  using clock = std::chrono::steady_clock;
  struct kept_type {
    actor_index reducer = host_actor;
    std::uint64_t first_wanted = 0; //!< the round last asked for: earlier ones are stale
    std::deque<received_message> partials;
  };

  //! Waits until `found` (called with mutex_ held) gives a message, taking from the runtime itself when no
  //! other thread does; nothing once `deadline` passed and the runtime has nothing more.
  template <class Found>
  std::optional<received_message> wait_for(Found&& found, clock::time_point deadline);
  void file(received_message&& m); //!< with mutex_ held

  runtime& runtime_;
  mutable std::mutex mutex_;      //!< guards every field below (the callers' threads read and write them)
  std::condition_variable filed_; //!< something was filed, or pulling_ or caught_up_ changed
  bool pulling_ = false;          //!< a thread waits in runtime::receive (at most one)
  bool caught_up_ = false;        //!< the puller found the runtime empty and waits for what comes next
  std::map<std::uint32_t, kept_type> kept_;      //!< by reply type
  std::deque<received_message> for_application_; //!< taken from the runtime, not yet returned
  std::uint64_t stale_ = 0;
};

} // namespace rk::detail
