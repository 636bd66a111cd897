// Smallest useful program against the installed package: one echo actor, one round trip.
#include <ringkernel/ringkernel.hpp>

#include <cstdio>

struct echo {
  template <class Ctx>
  RK_HOST_DEVICE void operator()(Ctx& ctx, rk::no_state&, const rk::message& m) {
    (void)ctx.reply(m, m.payload());
  }
};

int main() {
  rk::runtime rt;
  const rk::actor_index a = rt.spawn<echo>("echo");
  rt.start();
  const int value = 5;
  const rk::status s = rt.send_wait(a, 1, rk::as_bytes(value), std::chrono::seconds(5));
  const auto reply = rt.receive(std::chrono::seconds(5));
  std::printf("consumer: send_wait -> %s, reply %d\n", rk::to_string(s), reply ? reply->as<int>() : -1);
  return s == rk::status::delivered && reply && reply->as<int>() == value ? 0 : 1;
}
