#pragma once
// Helpers shared by the test suites.

#include <ringkernel/device/mailbox.cuh>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#ifndef RK_TEST_SCALE_DIVISOR
#define RK_TEST_SCALE_DIVISOR 1
#endif

namespace rk::test {

//! Loop counts shrink in sanitizer builds, where every access is instrumented.
constexpr std::uint64_t scaled(std::uint64_t n) {
  return n / RK_TEST_SCALE_DIVISOR ? n / RK_TEST_SCALE_DIVISOR : 1;
}

//! A full disk, as far as this process can tell: while it lives, files cannot grow past `bytes`
//! (RLIMIT_FSIZE; writes beyond fail with EFBIG instead of raising SIGXFSZ). Applies to every thread of
//! the process, so tests that use it write no other files meanwhile.
class file_size_limit {
public:
  explicit file_size_limit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &old_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = old_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~file_size_limit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  file_size_limit(const file_size_limit&) = delete;
  file_size_limit& operator=(const file_size_limit&) = delete;

private:
  rlimit old_{};
  void (*old_handler_)(int) = SIG_DFL;
};

//! Files beside `path` named as the temporaries a whole-file write (snapshot_all, write_trace) renames
//! over it: its name, cut to 240 bytes when longer, then ".partial.". None may stay behind.
inline std::size_t partial_files_beside(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  const std::string cut = name.substr(0, std::min<std::size_t>(name.size(), 240));
  std::size_t found = 0;
  for (const auto& entry : std::filesystem::directory_iterator(path.parent_path())) {
    const std::string other = entry.path().filename().string();
    if (other != name && other.rfind(cut, 0) == 0 && other.find(".partial.", cut.size()) != std::string::npos)
      ++found;
  }
  return found;
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
