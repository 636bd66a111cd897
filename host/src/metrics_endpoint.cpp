// The metrics HTTP endpoint (see metrics_endpoint.hpp).

#include "metrics_endpoint.hpp"

#include <ringkernel/host/error.hpp>

#include <arpa/inet.h>
#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

namespace rk::detail {

bool is_loopback_address(const std::string& address) {
  if (address == "localhost" || address == "::1") return true;
  in_addr v4{};
  return inet_pton(AF_INET, address.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

struct metrics_endpoint::server {
  httplib::Server http;
  std::thread thread;
};

metrics_endpoint::metrics_endpoint(const metrics_endpoint_options& options, renderer render)
    : server_(std::make_unique<server>()), address_(options.address) {
  if (!is_loopback_address(options.address))
    throw error("serve_metrics(): address '" + options.address +
                "' is not a loopback address; the endpoint binds only 127.0.0.1, ::1 or localhost (put an "
                "authenticating proxy in front of it to expose the metrics further)");
  httplib::Server& http = server_->http;
  http.new_task_queue = [] { return new httplib::ThreadPool(1); };
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
  server_->thread = std::thread([this] { server_->http.listen_after_bind(); });
  // stop() only stops a server that is already listening: wait for that, so the destructor cannot miss it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!http.is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      // Unreachable unless the thread never got a core: the listen loop would then start after we gave
      // up; stop() below cannot reach it, so the thread is detached with its server (leaked, not hung).
      server_->thread.detach();
      (void)server_.release();
      throw error("serve_metrics(): the server thread did not start within 10 s");
    }
    std::this_thread::yield();
  }
}

metrics_endpoint::~metrics_endpoint() {
  if (!server_) return;
  server_->http.stop();
  if (server_->thread.joinable()) server_->thread.join();
}

} // namespace rk::detail
