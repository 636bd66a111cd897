// Files the runtime writes for the application (see file_output.hpp).

#include "file_output.hpp"

#include <ringkernel/host/error.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace rk::detail {

namespace {
//! Writes all of `bytes` to `fd`; false with errno set when a write fails.
bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t wrote = ::write(fd, bytes.data(), bytes.size());
    if (wrote < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(wrote));
  }
  return true;
}
} // namespace

void replace_file(const std::filesystem::path& path, std::initializer_list<std::string_view> parts,
                  const std::string& who) {
  const auto fail = [&](const std::string& why) {
    throw error(who + ": cannot write '" + path.string() + "' (" + why + "); it was left as it was");
  };
  // A name of its own beside `path` (mkstemp): two calls writing the same path at once each rename a
  // whole file of their own, the later rename wins, and neither truncates or removes the other's.
  // The name is cut where `path`'s own is too long to take the suffix (NAME_MAX, 255 bytes here).
  constexpr std::size_t suffix_bytes = sizeof(".partial.XXXXXX") - 1;
  std::string name = path.filename().string();
  if (const long most =
          ::pathconf(path.parent_path().empty() ? "." : path.parent_path().c_str(), _PC_NAME_MAX);
      most > static_cast<long>(suffix_bytes) && name.size() + suffix_bytes > static_cast<std::size_t>(most))
    name.resize(static_cast<std::size_t>(most) - suffix_bytes);
  std::string temporary = (path.parent_path() / (name + ".partial.XXXXXX")).string();
  const int fd = ::mkostemp(temporary.data(), O_CLOEXEC);
  if (fd < 0) fail(std::string("creating a temporary file beside it: ") + std::strerror(errno));
  const auto fail_removing = [&](const std::string& why) {
    ::unlink(temporary.c_str());
    fail(why);
  };
  // mkstemp creates the file 0600; give it what a plain create would (0666 less the umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  bool written = ::fchmod(fd, 0666 & ~mask) == 0;
  for (std::string_view part : parts)
    if (written) written = write_all(fd, part);
  const int write_error = written ? 0 : errno;
  if (::close(fd) != 0 && written) {
    written = false;
    fail_removing(std::strerror(errno));
  }
  if (!written) fail_removing(write_error != 0 ? std::strerror(write_error) : "the write failed");
  if (::rename(temporary.c_str(), path.c_str()) != 0)
    fail_removing("renaming '" + temporary + "' over it: " + std::strerror(errno));
}

} // namespace rk::detail
