// SIGUSR1 → state dumps (see dump_signal.hpp).

#include "dump_signal.hpp"

#include <ringkernel/host/detail/thread_start.hpp>
#include <ringkernel/host/error.hpp>

#include <atomic>
#include <cerrno>
#include <condition_variable>
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
  //! Guards `dumps`, `running` and `installed`. Not held while a dump runs: a dump may shut down another
  //! runtime, whose deregistration takes it (and that runtime's setup lock, which a start() holds while it
  //! registers: holding this one across dumps ordered the two locks both ways).
  std::mutex mutex;
  std::condition_variable finished; //!< a dump returned (`running` changed)
  std::map<std::uint64_t, std::function<void()>> dumps;
  std::uint64_t running = 0; //!< the registration whose dump runs now, or 0
  bool installed = false;    //!< the handler, the pipe and the reader exist
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
      std::unique_lock lock(mutex);
      for (std::uint64_t next = 0;;) { // by id: registrations may come and go while a dump runs
        const auto it = dumps.lower_bound(next);
        if (it == dumps.end()) break;
        next = it->first + 1;
        running = it->first;
        const std::function<void()>& dump = it->second; // kept: its destructor waits while it runs
        lock.unlock();
        dump(); // each catches its own failures
        lock.lock();
        running = 0;
        finished.notify_all();
      }
    }
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
  if (!h.installed) {
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
    h.installed = true;
  }
  id_ = h.next_id++;
  h.dumps.emplace(id_, std::move(dump));
}

dump_signal_registration::~dump_signal_registration() {
  signal_hub& h = hub();
  std::lock_guard serial(h.setup);
  std::unique_lock lock(h.mutex);
  // In another registration's dump (one runtime's on_state_dump shutting down another) this is the reader:
  // its own dump is not the one running (a runtime's callback never destroys its own registration: see
  // ~runtime), and the reader cannot be joined from itself, so it stays for the next registration.
  const bool on_reader = std::this_thread::get_id() == h.reader.get_id();
  if (!on_reader) h.finished.wait(lock, [&] { return h.running != id_; }); // a dump in progress
  h.dumps.erase(id_);
  if (!h.dumps.empty() || on_reader) return;
  h.installed = false;
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
