// The metrics HTTP endpoint (see metrics_endpoint.hpp).

#include "metrics_endpoint.hpp"

#include <ringkernel/host/detail/printable.hpp>
#include <ringkernel/host/detail/thread_start.hpp>
#include <ringkernel/host/error.hpp>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace rk::detail {

bool is_loopback_address(const std::string& address) {
  if (address.find('\0') != std::string::npos) return false; // "127.0.0.1\0..." is not what was asked
  if (address == "localhost" || address == "::1") return true;
  in_addr v4{};
  return inet_pton(AF_INET, address.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

namespace {

using clock = std::chrono::steady_clock;

//! Connections served at once; a client that holds one (idle, or sending a byte now and then) leaves the
//! others to the rest.
constexpr std::size_t server_threads = 4;
//! How long one read or write may wait, and an idle kept-alive connection.
constexpr int io_timeout_ms = 2000;
constexpr int keep_alive_ms = 1000;
//! The longest a connection lives, however slowly its client sends: then it is shut down.
constexpr std::chrono::seconds connection_lifetime{10};
constexpr std::chrono::milliseconds reaper_period{500};
//! Bytes one request may take, request line, headers and body together: a scrape is a few hundred.
//! httplib 0.11 limits neither the number of header lines nor (by default) a body, and keeps what it
//! read in memory: a client streaming headers grew the process by gigabytes in seconds.
constexpr std::size_t request_byte_limit = 64 * 1024;
//! Accepted connections waiting for a serving thread; more are closed at once (each holds a descriptor).
constexpr std::size_t queued_connection_limit = 64;

//! Waits until `fd` can be read (or written), at most `timeout_ms`.
bool ready(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

std::string address_text(const sockaddr_storage& a, int& port) {
  char text[INET6_ADDRSTRLEN] = {};
  port = 0;
  if (a.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
    inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
    port = ntohs(v4.sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
    inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
    port = ntohs(v6.sin6_port);
  }
  return text;
}

//! One accepted connection as httplib's request parser reads it: reads and writes wait at most
//! io_timeout_ms each; reads are buffered (the parser reads headers a byte at a time).
class connection_stream : public httplib::Stream {
public:
  explicit connection_stream(int fd) : fd_(fd) {}
  //! Whether a request begins within `timeout_ms`: bytes already read (a pipelined request) or on the socket.
  bool request_within(int timeout_ms) const { return next_ < end_ || ready(fd_, POLLIN, timeout_ms); }
  //! A new request may read request_byte_limit bytes.
  void begin_request() noexcept { read_in_request_ = 0; }
  bool is_readable() const override { return request_within(io_timeout_ms); }
  bool is_writable() const override { return ready(fd_, POLLOUT, io_timeout_ms); }
  ssize_t read(char* out, size_t size) override {
    if (read_in_request_ >= request_byte_limit) return -1; // the parser fails: the connection closes
    if (next_ == end_) {
      if (!ready(fd_, POLLIN, io_timeout_ms)) return -1;
      ssize_t n;
      do {
        n = ::recv(fd_, buffer_, sizeof buffer_, 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      next_ = 0;
      end_ = static_cast<std::size_t>(n);
    }
    const std::size_t n = std::min({size, end_ - next_, request_byte_limit - read_in_request_});
    std::memcpy(out, buffer_ + next_, n);
    next_ += n;
    read_in_request_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* data, size_t size) override {
    if (!ready(fd_, POLLOUT, io_timeout_ms)) return -1;
    ssize_t n;
    do {
      n = ::send(fd_, data, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t length = sizeof a;
    ip = ::getpeername(fd_, reinterpret_cast<sockaddr*>(&a), &length) == 0 ? address_text(a, port) : "";
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t length = sizeof a;
    ip = ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &length) == 0 ? address_text(a, port) : "";
  }
  socket_t socket() const override { return fd_; }

private:
  int fd_;
  char buffer_[4096];
  std::size_t next_ = 0, end_ = 0;
  std::size_t read_in_request_ = 0;
};

//! httplib's server serving each connection itself (httplib keeps its connections' sockets private and
//! waits for a request as long as its client trickles bytes; its stop() joins the threads serving them).
//! Every connection's socket is in `open_` from the moment it is served until it is closed, both under
//! `mutex_`, so shutting one down never reaches a descriptor that is not, or no longer, a connection of
//! this server: the reaper shuts down those past connection_lifetime, the endpoint's destructor all.
class endpoint_server : public httplib::Server {
public:
  //! Shuts down every open connection and, from now on, each new one at once.
  void close_connections() {
    std::lock_guard lock(mutex_);
    closing_ = true;
    for (const auto& [fd, since] : open_) ::shutdown(fd, SHUT_RDWR);
  }
  void close_older_than(clock::duration lifetime) {
    std::lock_guard lock(mutex_);
    const clock::time_point now = clock::now();
    for (const auto& [fd, since] : open_)
      if (now - since > lifetime) ::shutdown(fd, SHUT_RDWR);
  }

private:
  // The loop of httplib's own: requests while the server runs, the connection allows more (keep-alive,
  // at most keep_alive_max_count) and the client sends one within the keep-alive time.
  bool process_and_close_socket(socket_t fd) override {
    bool serve = false;
    {
      std::lock_guard lock(mutex_);
      if (!closing_) serve = open_.emplace(fd, clock::now()).second;
    }
    if (serve && !refuse_on_this_thread) {
      connection_stream stream(fd);
      for (std::size_t left = keep_alive_max_count_;
           svr_sock_ != INVALID_SOCKET && left > 0 && stream.request_within(keep_alive_ms); --left) {
        bool connection_closed = false;
        stream.begin_request();
        try {
          if (!process_request(stream, left == 1, connection_closed, nullptr) || connection_closed) break;
        } catch (...) { // out of memory building an answer: this connection ends, the process goes on
          break;
        }
      }
    }
    std::lock_guard lock(mutex_);
    open_.erase(fd);
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    return true;
  }

  std::mutex mutex_;
  bool closing_ = false;
  std::map<int, clock::time_point> open_; //!< by descriptor: when it was accepted

public:
  //! Set while the listening thread runs a connection's job itself because the queue is full
  //! (serving_threads::enqueue): the connection is closed unserved.
  static inline thread_local bool refuse_on_this_thread = false;
};

//! The threads that serve connections, started before the listening thread: httplib's own ThreadPool
//! starts them on that thread, where a failure to start one ended the process (std::terminate).
class serving_threads final : public httplib::TaskQueue {
public:
  explicit serving_threads(std::size_t count) {
    try {
      for (std::size_t i = 0; i < count; ++i) threads_.emplace_back([this] { work(); });
    } catch (const std::system_error& e) {
      shutdown();
      throw thread_start_error(
          "serve_metrics(): the endpoint's " + std::to_string(count) + " serving threads", e);
    }
  }
  ~serving_threads() override { shutdown(); }
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mutex_);
      if (jobs_.size() < queued_connection_limit) {
        jobs_.push_back(std::move(fn));
        fn = nullptr;
      }
    }
    if (!fn) {
      wake_.notify_one();
      return;
    }
    // Full: the job (which owns the connection's descriptor) runs here and only closes it.
    endpoint_server::refuse_on_this_thread = true;
    fn();
    endpoint_server::refuse_on_this_thread = false;
  }
  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : threads_)
      if (t.joinable()) t.join();
  }

private:
  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return; // stopping, nothing left
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
};

} // namespace

struct metrics_endpoint::server {
  endpoint_server http;
  //! Handed to the listening thread (which deletes it when it stops) or, if it never ran, stopped here.
  std::unique_ptr<serving_threads> serving;
  std::thread thread;
  std::thread reaper;
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool bound = false; //!< the listening thread may listen (it was started before the bind)
};

namespace {
//! What to tell a user whose bind failed with `reason` (an errno value; 0 when httplib left none).
std::string bind_failure_hint(int reason) {
  if (reason == EMFILE || reason == ENFILE)
    return std::string(": ") + std::strerror(reason) +
           " (this process is out of file descriptors: raise `ulimit -n` or close some)";
  const std::string why = reason == 0 ? std::string() : std::string(": ") + std::strerror(reason);
  if (reason == EADDRINUSE || reason == 0)
    return why + " (is the port in use? pass port = 0 for any free one)";
  return why;
}
} // namespace

metrics_endpoint::metrics_endpoint(const metrics_endpoint_options& options, renderer render)
    : server_(std::make_unique<server>()), address_(options.address) {
  if (!is_loopback_address(options.address))
    throw error(
        "serve_metrics(): address '" + printable(options.address) +
        "' is not a loopback address; the endpoint binds only loopback: 127.x.y.z, ::1 or localhost (put an "
        "authenticating proxy in front of it to expose the metrics further)");
  endpoint_server& http = server_->http;
  http.new_task_queue = [s = server_.get()] { return s->serving.release(); };
  // httplib's default sets SO_REUSEPORT, which lets a second server bind the same port and share the
  // scrapes; SO_REUSEADDR alone still allows a restart while old connections linger in TIME_WAIT.
  http.set_socket_options([](auto sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // Answers are sent as they are, never compressed: httplib compresses a text body for any client that
  // accepts it, and brotli took seconds of CPU per scrape of a large exposition (and held the runtime's
  // destruction that long); on loopback compression saves nothing. A body of known length from a content
  // provider is one httplib sends without compressing.
  const auto answer = [render](bool json) {
    return [render, json](const httplib::Request&, httplib::Response& res) {
      try {
        auto body = std::make_shared<const std::string>(render(json));
        res.set_header("Accept-Ranges", "none");
        res.set_content_provider(body->size(),
                                 json ? "application/json" : "text/plain; version=0.0.4; charset=utf-8",
                                 [body](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                                   return sink.write(body->data() + offset, length);
                                 });
      } catch (const std::exception& e) { // e.g. the runtime faulted: say so rather than drop the scrape
        res.status = 500;
        res.set_content(std::string("ringkernel metrics: ").append(e.what()), "text/plain");
      }
    };
  };
  http.Get("/metrics", answer(false));
  http.Get("/metrics.json", answer(true));
  // The Keep-Alive header says what the serving loop does: it waits keep_alive_ms for the next request.
  http.set_keep_alive_timeout(std::max(1, keep_alive_ms / 1000));
  // Requests are small; a body is never read into memory beyond this (413 instead).
  http.set_payload_max_length(request_byte_limit);
  // Ranges are not served: httplib builds a multipart answer holding the exposition once per range in
  // memory (one request with 2,666 ranges in an 8 KiB header asked for gigabytes).
  http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!req.has_header("Range")) return httplib::Server::HandlerResponse::Unhandled;
    res.status = 416;
    res.set_content("ringkernel metrics: ranges are not served; ask without a Range header\n", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  });
  // Every thread starts before the port is bound (the listening one waits for the bind), so a failure to
  // start one is an rk::error with nothing running and no socket left open.
  server_->serving = std::make_unique<serving_threads>(server_threads);
  try {
    server_->reaper = std::thread([s = server_.get()] {
      std::unique_lock lock(s->mutex);
      while (!s->wake.wait_for(lock, reaper_period, [s] { return s->stopping; }))
        s->http.close_older_than(connection_lifetime);
    });
  } catch (const std::system_error& e) {
    throw thread_start_error("serve_metrics(): the endpoint's connection reaper thread", e);
  }
  try {
    server_->thread = std::thread([s = server_.get()] {
      {
        std::unique_lock lock(s->mutex);
        s->wake.wait(lock, [s] { return s->bound || s->stopping; });
        if (!s->bound) return;
      }
      s->http.listen_after_bind();
    });
  } catch (const std::system_error& e) {
    stop_reaper();
    throw thread_start_error("serve_metrics(): the endpoint's listening thread", e);
  }
  const std::string host = options.address == "localhost" ? "127.0.0.1" : options.address;
  int port = options.port;
  errno = 0; // httplib returns no reason; the failing socket()/bind()/listen() leaves it in errno
  if (options.port == 0) {
    port = http.bind_to_any_port(host);
  } else if (!http.bind_to_port(host, options.port)) {
    port = -1;
  }
  if (port <= 0) {
    const int reason = errno;
    stop_reaper(); // also lets the listening thread go
    server_->thread.join();
    throw error("serve_metrics(): cannot bind " + options.address + ":" + std::to_string(options.port) +
                bind_failure_hint(reason));
  }
  port_ = static_cast<std::uint16_t>(port);
  {
    std::lock_guard lock(server_->mutex);
    server_->bound = true;
  }
  server_->wake.notify_all();
  // stop() only stops a server that is already listening: wait for that, so the destructor cannot miss it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!http.is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      // Unreachable unless the thread never got a core: the listen loop would then start after we gave
      // up; stop() below cannot reach it, so the thread is detached with its server (leaked, not hung).
      server_->thread.detach();
      stop_reaper();
      (void)server_.release();
      throw error("serve_metrics(): the server thread did not start within 10 s");
    }
    std::this_thread::yield();
  }
}

void metrics_endpoint::stop_reaper() noexcept {
  {
    std::lock_guard lock(server_->mutex);
    server_->stopping = true;
  }
  server_->wake.notify_all();
  if (server_->reaper.joinable()) server_->reaper.join();
}

metrics_endpoint::~metrics_endpoint() {
  if (!server_) return;
  stop_reaper();
  // Connections first: the threads serving them return at once, so stop() (which joins them, on the
  // listening thread) does not wait for any client.
  server_->http.close_connections();
  server_->http.stop();
  if (server_->thread.joinable()) server_->thread.join();
}

} // namespace rk::detail
