// Smallest useful cluster program against the installed package (run with two or more ranks): rank 0's
// host sends a number to the echo actor of the last rank and gets it back across ranks.
#include <ringkernel/cluster/cluster.hpp>

#include <cstdio>
#include <string>

struct echo {
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    (void)ctx.reply(m, m.payload());
  }
};

int main() {
  rk::cluster_options options;
  options.announce = false;
  rk::cluster c(options);
  (void)c.spawn<echo>("echo" + std::to_string(c.rank()));
  c.start();
  bool ok = c.size() >= 2;
  if (ok && c.rank() == 0) {
    const int value = 7;
    const rk::global_address last = c.find("echo" + std::to_string(c.size() - 1));
    const rk::status s = c.send_blocking(last, 1, rk::as_bytes(value), std::chrono::seconds(10));
    const auto reply = c.receive(std::chrono::seconds(10));
    ok = s == rk::status::enqueued && reply && reply->as<int>() == value && c.origin_of(*reply) == last;
    std::printf("cluster consumer: %u ranks, send -> %s, reply %d from rank %u\n", c.size(), rk::to_string(s),
                reply ? reply->as<int>() : -1, reply ? c.origin_of(*reply).rank : 0u);
  }
  const rk::cluster_report report = c.shutdown();
  return ok && report.drained ? 0 : 1;
}
