// SIGUSR1 → state dumps (see dump_signal.hpp).

#include "dump_signal.hpp"

#include <ringkernel/host/detail/thread_start.hpp>
#include <ringkernel/host/error.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace rk::detail {

namespace {

constexpr char dump_request = 'd';
constexpr char stop_request = 's';

std::atomic<int> signal_pipe_write{-1}; // read by the signal handler (lock-free atomics are signal-safe)

extern "C" void on_sigusr1(int) {
  const int saved = errno;
  if (const int fd = signal_pipe_write.load(); fd >= 0) (void)!::write(fd, &dump_request, 1);
  errno = saved;
}

struct signal_hub {
  std::mutex setup; //!< serialises registrations and their removal (never taken by the reader)
  std::mutex mutex; //!< guards `dumps`; held while dumps run
  std::map<std::uint64_t, std::function<void()>> dumps;
  bool removed_during_dumps = false; //!< entries emptied by a dump (see the destructor); guarded by mutex
  std::uint64_t next_id = 1;
  int pipe_read = -1;
  int pipe_write = -1;
  struct sigaction previous {};
  std::thread reader;

  void run() {
    char c = 0;
    for (;;) {
      const ssize_t n = ::read(pipe_read, &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || c == stop_request) return;
      std::lock_guard lock(mutex);
      for (auto& [id, dump] : dumps)
        if (dump) dump(); // each catches its own failures
      if (removed_during_dumps) {
        removed_during_dumps = false;
        std::erase_if(dumps, [](const auto& entry) { return !entry.second; });
        if (dumps.empty()) { // the last registration went in a dump: this thread ends itself
          uninstall();
          reader.detach();
          return;
        }
      }
    }
  }

  //! Restores the previous SIGUSR1 handler and closes the pipe (the reader no longer reads it).
  void uninstall() noexcept {
    ::sigaction(SIGUSR1, &previous, nullptr);
    signal_pipe_write.store(-1);
    ::close(pipe_read);
    ::close(pipe_write);
    pipe_read = pipe_write = -1;
  }
};

signal_hub& hub() {
  static signal_hub* h = new signal_hub; // never destroyed: no joinable thread is torn down at exit
  return *h;
}

} // namespace

dump_signal_registration::dump_signal_registration(std::function<void()> dump) {
  signal_hub& h = hub();
  std::lock_guard serial(h.setup);
  std::lock_guard lock(h.mutex);
  if (h.dumps.empty()) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw error(std::string("start(): dump_state_on_sigusr1: pipe failed: ") + std::strerror(errno));
    // The write end never blocks the signal handler: a full pipe already holds a pending request.
    ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    h.pipe_read = fds[0];
    h.pipe_write = fds[1];
    try {
      h.reader = std::thread([&h] { h.run(); });
    } catch (const std::system_error& e) {
      ::close(fds[0]);
      ::close(fds[1]);
      throw thread_start_error("start(): dump_state_on_sigusr1's reader thread", e);
    }
    signal_pipe_write.store(h.pipe_write);
    struct sigaction action {};
    action.sa_handler = on_sigusr1;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGUSR1, &action, &h.previous);
  }
  id_ = h.next_id++;
  h.dumps.emplace(id_, std::move(dump));
}

dump_signal_registration::~dump_signal_registration() {
  signal_hub& h = hub();
  std::lock_guard serial(h.setup);
  if (std::this_thread::get_id() == h.reader.get_id()) {
    // In a dump (one runtime's on_state_dump shutting down or destroying another): this thread holds the
    // mutex and walks `dumps`. The entry is emptied now, so it never runs again, and erased after the
    // walk; taking the mutex here deadlocked.
    h.dumps[id_] = nullptr;
    h.removed_during_dumps = true;
    return;
  }
  std::unique_lock lock(h.mutex); // waits for a dump in progress
  h.dumps.erase(id_);
  if (!h.dumps.empty()) return;
  ::sigaction(SIGUSR1, &h.previous, nullptr);
  signal_pipe_write.store(-1);
  // Blocking write of the stop byte (the pipe may hold pending dump requests ahead of it).
  ::fcntl(h.pipe_write, F_SETFL, ::fcntl(h.pipe_write, F_GETFL) & ~O_NONBLOCK);
  lock.unlock(); // the reader may be waiting for the mutex to run a pending request
  (void)!::write(h.pipe_write, &stop_request, 1);
  h.reader.join();
  ::close(h.pipe_read);
  ::close(h.pipe_write);
  h.pipe_read = h.pipe_write = -1;
}

} // namespace rk::detail
