#pragma once
// Helpers shared by the test suites.

#include <ringkernel/device/mailbox.cuh>

#include <cstdint>
#include <cstdlib>
#include <memory>

#ifndef RK_TEST_SCALE_DIVISOR
#define RK_TEST_SCALE_DIVISOR 1
#endif

namespace rk::test {

//! Loop counts shrink in sanitizer builds, where every access is instrumented.
constexpr std::uint64_t scaled(std::uint64_t n) {
  return n / RK_TEST_SCALE_DIVISOR ? n / RK_TEST_SCALE_DIVISOR : 1;
}

//! A ring in ordinary host memory, initialised empty: what the CPU backend uses for mailboxes.
class host_ring {
public:
  explicit host_ring(ring_geometry g) : geometry_(g) {
    memory_.reset(static_cast<std::byte*>(std::aligned_alloc(256, (g.total_bytes() + 255) / 256 * 256)));
    init_ring_image(memory_.get(), g);
    view_ = make_ring_view(memory_.get(), g);
  }
  const ring_view& view() const { return view_; }
  const ring_geometry& geometry() const { return geometry_; }

private:
  struct free_deleter {
    void operator()(std::byte* p) const { std::free(p); }
  };
  ring_geometry geometry_;
  std::unique_ptr<std::byte, free_deleter> memory_;
  ring_view view_{};
};

} // namespace rk::test
