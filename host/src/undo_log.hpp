#pragma once
// What makes a multi-step setup call transactional: each step that changed something pushes its undo;
// an exception unwinds them newest first, and commit() keeps the changes. Each undo gives back exactly
// what its step took. An undo runs during unwinding and so cannot report a failure: one that throws
// (the device is gone, which the fault monitor reports) is skipped and the others still run.

#include <functional>
#include <utility>
#include <vector>

namespace rk::detail {

class undo_log {
public:
  undo_log() = default;
  undo_log(const undo_log&) = delete;
  undo_log& operator=(const undo_log&) = delete;
  ~undo_log() {
    if (committed_) return;
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
      try {
        (*it)();
      } catch (...) {
      }
    }
  }

  template <class Undo>
  void push(Undo&& undo) {
    steps_.emplace_back(std::forward<Undo>(undo));
  }
  void commit() noexcept { committed_ = true; }

private:
  std::vector<std::function<void()>> steps_;
  bool committed_ = false;
};

} // namespace rk::detail
