#pragma once
// The optional HTTP endpoint of runtime::serve_metrics (contract: <ringkernel/host/metrics.hpp>): cpp-httplib
// (Debian's libcpp-httplib) on a loopback address, a few server threads, GET /metrics and /metrics.json.
// Rendering is the caller's: the endpoint only calls `render(json)` on its thread. This is the only file
// that includes httplib.h, so its compile definitions stay with the library Debian built.

#include <ringkernel/host/metrics.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace rk::detail {

class metrics_endpoint {
public:
  using renderer = std::function<std::string(bool json)>;
  //! Binds and starts serving; throws rk::error for a non-loopback address or a port it cannot bind.
  metrics_endpoint(const metrics_endpoint_options& options, renderer render);
  //! Closes every connection, stops serving and joins the server's threads (promptly, whatever clients do).
  ~metrics_endpoint();
  metrics_endpoint(const metrics_endpoint&) = delete;
  metrics_endpoint& operator=(const metrics_endpoint&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  const std::string& address() const noexcept { return address_; }

private:
  struct server;
  void stop_reaper() noexcept;
  std::unique_ptr<server> server_;
  std::string address_;
  std::uint16_t port_ = 0;
};

//! True for "localhost", "::1" and 127.0.0.0/8 in dotted form.
bool is_loopback_address(const std::string& address);

} // namespace rk::detail
