// The metrics HTTP endpoint (see metrics_endpoint.hpp).

#include "metrics_endpoint.hpp"

#include <ringkernel/host/error.hpp>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

namespace rk::detail {

bool is_loopback_address(const std::string& address) {
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
constexpr std::chrono::seconds io_timeout{2};
constexpr time_t keep_alive_seconds = 1;
//! The longest a connection lives, however slowly its client sends: then it is shut down.
constexpr std::chrono::seconds connection_lifetime{10};
constexpr std::chrono::milliseconds reaper_period{500};

//! A socket address as text, and its port.
std::string address_text(const sockaddr_storage& a) {
  char text[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, text, sizeof text);
  else if (a.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, text, sizeof text);
  return text;
}
std::uint16_t port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return 0;
}

//! Calls `act(fd, peer)` for every connection this process accepted on `address`:`port` (the endpoint's:
//! its listening socket is bound there without SO_REUSEPORT, so nothing else of the process is). httplib
//! keeps its connections' sockets to itself, so they are found among the process's descriptors. Each one
//! is examined and acted on through a duplicate of it, so a descriptor number closed and reused meanwhile
//! is never mistaken for a connection.
void for_each_connection(const std::string& address, std::uint16_t port,
                         const std::function<void(int, const std::string&)>& act) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long number = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != 0 || number == ::dirfd(dir)) continue;
    const int fd = ::fcntl(static_cast<int>(number), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) continue;
    int type = 0;
    socklen_t type_length = sizeof type;
    sockaddr_storage local{}, peer{};
    socklen_t local_length = sizeof local, peer_length = sizeof peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) == 0 && type == SOCK_STREAM &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) == 0 &&
        port_of(local) == port && address_text(local) == address &&
        ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) == 0)
      act(fd, address_text(peer) + "/" + std::to_string(port_of(peer)));
    ::close(fd);
  }
  ::closedir(dir);
}

//! `host` (an IPv4 or IPv6 literal) as inet_ntop spells it, which is how getsockname() reports it.
std::string canonical_address(const std::string& host) {
  sockaddr_storage a{};
  if (inet_pton(AF_INET, host.c_str(), &reinterpret_cast<sockaddr_in&>(a).sin_addr) == 1) {
    a.ss_family = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), &reinterpret_cast<sockaddr_in6&>(a).sin6_addr) == 1) {
    a.ss_family = AF_INET6;
  }
  return address_text(a);
}

//! httplib's thread pool, counting the connections it holds (queued or being served), so that the reaper
//! looks for old connections only while there are some.
class counting_pool : public httplib::TaskQueue {
public:
  counting_pool(std::size_t threads, std::atomic<int>& held) : pool_(threads), held_(held) {}
  void enqueue(std::function<void()> serve) override {
    held_.fetch_add(1);
    pool_.enqueue([this, serve = std::move(serve)] {
      serve();
      held_.fetch_sub(1);
    });
  }
  void shutdown() override { pool_.shutdown(); }

private:
  httplib::ThreadPool pool_;
  std::atomic<int>& held_;
};

} // namespace

// httplib alone waits for a request as long as its client trickles bytes, and its stop() joins the
// threads serving them: the reaper shuts down connections older than connection_lifetime, and the
// destructor every connection.
struct metrics_endpoint::server {
  httplib::Server http;
  std::string local_address; //!< as getsockname() spells it
  std::atomic<int> held{0};
  std::thread thread;
  std::thread reaper;
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool listening_ended = false;
  std::map<std::string, clock::time_point> first_seen; //!< by peer; the reaper's only

  void reap() {
    std::unique_lock lock(mutex);
    while (!wake.wait_for(lock, reaper_period, [this] { return stopping; })) {
      if (held.load() == 0) {
        first_seen.clear();
        continue;
      }
      const clock::time_point now = clock::now();
      std::map<std::string, clock::time_point> seen;
      for_each_connection(local_address, port, [&](int fd, const std::string& peer) {
        const auto it = first_seen.find(peer);
        const clock::time_point since = it == first_seen.end() ? now : it->second;
        seen.emplace(peer, since);
        if (now - since > connection_lifetime) ::shutdown(fd, SHUT_RDWR);
      });
      first_seen = std::move(seen);
    }
  }
  std::uint16_t port = 0;
};

metrics_endpoint::metrics_endpoint(const metrics_endpoint_options& options, renderer render)
    : server_(std::make_unique<server>()), address_(options.address) {
  if (!is_loopback_address(options.address))
    throw error("serve_metrics(): address '" + options.address +
                "' is not a loopback address; the endpoint binds only 127.0.0.1, ::1 or localhost (put an "
                "authenticating proxy in front of it to expose the metrics further)");
  httplib::Server& http = server_->http;
  http.new_task_queue = [s = server_.get()] { return new counting_pool(server_threads, s->held); };
  http.set_read_timeout(io_timeout);
  http.set_write_timeout(io_timeout);
  http.set_keep_alive_timeout(keep_alive_seconds);
  // httplib's default sets SO_REUSEPORT, which lets a second server bind the same port and share the
  // scrapes; SO_REUSEADDR alone still allows a restart while old connections linger in TIME_WAIT.
  http.set_socket_options([](auto sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  const auto answer = [render](bool json) {
    return [render, json](const httplib::Request&, httplib::Response& res) {
      try {
        res.set_content(render(json), json ? "application/json" : "text/plain; version=0.0.4; charset=utf-8");
      } catch (const std::exception& e) { // e.g. the runtime faulted: say so rather than drop the scrape
        res.status = 500;
        res.set_content(std::string("ringkernel metrics: ").append(e.what()), "text/plain");
      }
    };
  };
  http.Get("/metrics", answer(false));
  http.Get("/metrics.json", answer(true));
  const std::string host = options.address == "localhost" ? "127.0.0.1" : options.address;
  int port = options.port;
  if (options.port == 0) {
    port = http.bind_to_any_port(host);
  } else if (!http.bind_to_port(host, options.port)) {
    port = -1;
  }
  if (port <= 0)
    throw error("serve_metrics(): cannot bind " + options.address + ":" + std::to_string(options.port) +
                " (is the port in use? pass port = 0 for any free one)");
  port_ = static_cast<std::uint16_t>(port);
  server_->port = port_;
  server_->local_address = canonical_address(host);
  server_->thread = std::thread([s = server_.get()] {
    s->http.listen_after_bind();
    std::lock_guard lock(s->mutex);
    s->listening_ended = true;
    s->wake.notify_all();
  });
  server_->reaper = std::thread([s = server_.get()] { s->reap(); });
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
  server_->http.stop(); // no new connection; the listening thread then joins the ones being served
  // ... which end as soon as their sockets are shut down; a connection accepted just before stop() may
  // show up a moment later, hence the rounds until the listening thread is done.
  std::unique_lock lock(server_->mutex);
  while (!server_->listening_ended) {
    for_each_connection(server_->local_address, server_->port,
                        [](int fd, const std::string&) { ::shutdown(fd, SHUT_RDWR); });
    server_->wake.wait_for(lock, std::chrono::milliseconds(50), [this] { return server_->listening_ended; });
  }
  lock.unlock();
  server_->thread.join();
}

} // namespace rk::detail
