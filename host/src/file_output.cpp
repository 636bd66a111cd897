// Files the runtime writes for the application (see file_output.hpp).

#include "file_output.hpp"

#include <ringkernel/host/error.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ext/stdio_filebuf.h>
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

//! Six characters no other call of this process has used (a counter) and unlikely in another process
//! (its pid and the clock); a name taken anyway is retried (O_EXCL).
std::string unique_suffix() {
  static std::atomic<std::uint64_t> calls{0};
  std::uint64_t bits = calls.fetch_add(1, std::memory_order_relaxed) * 0x9e3779b97f4a7c15ull;
  bits ^= static_cast<std::uint64_t>(::getpid()) << 32;
  bits ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string out(6, '0');
  for (char& c : out) {
    c = alphabet[bits % (sizeof alphabet - 1)];
    bits /= sizeof alphabet - 1;
  }
  return out;
}

} // namespace

void replace_file(const std::filesystem::path& given, std::initializer_list<std::string_view> parts,
                  const std::string& who) {
  const auto fail = [&](const std::string& why) {
    throw error(who + ": cannot write '" + given.string() + "' (" + why + "); it was left as it was");
  };
  // A symbolic link is followed: the file it leads to is replaced, not the link (a dangling one is).
  std::error_code ignored;
  std::filesystem::path path = given;
  if (std::filesystem::is_symlink(given, ignored))
    if (std::filesystem::path target = std::filesystem::canonical(given, ignored); !ignored) path = target;
  // Renamed over, a FIFO or a device would become a regular file (as root, /dev/null too).
  const char* special = nullptr;
  switch (std::filesystem::status(path, ignored).type()) {
  case std::filesystem::file_type::fifo:
    special = "a FIFO";
    break;
  case std::filesystem::file_type::socket:
    special = "a socket";
    break;
  case std::filesystem::file_type::character:
  case std::filesystem::file_type::block:
    special = "a device";
    break;
  default:
    break;
  }
  if (special != nullptr)
    fail(std::string("it is ") + special + "; give the path of a regular file or a new one");
  // A file there keeps its permissions (a 0600 file of handler states became 0644), and one this process
  // may not write is refused, as writing it in place would be (a rename needs only the directory's).
  struct stat existing {};
  const bool exists = ::stat(path.c_str(), &existing) == 0 && S_ISREG(existing.st_mode);
  if (exists && ::access(path.c_str(), W_OK) != 0)
    fail(std::string("it is not writable by this process: ") + std::strerror(errno));
  // A name of its own beside `path`: two calls writing the same path at once each rename a
  // whole file of their own, the later rename wins, and neither truncates or removes the other's.
  // The name is cut where `path`'s own is too long to take the suffix (NAME_MAX, 255 bytes here).
  constexpr std::size_t suffix_bytes = sizeof(".partial.XXXXXX") - 1;
  std::string name = path.filename().string();
  if (const long most =
          ::pathconf(path.parent_path().empty() ? "." : path.parent_path().c_str(), _PC_NAME_MAX);
      most > static_cast<long>(suffix_bytes) && name.size() + suffix_bytes > static_cast<std::size_t>(most))
    name.resize(static_cast<std::size_t>(most) - suffix_bytes);
  std::string temporary;
  int fd = -1;
  // Created with O_EXCL under a fresh suffix (mode 0666: the kernel applies the umask; mkstemp's 0600
  // would need the umask read through umask(), which changes it for every thread meanwhile).
  for (int attempt = 0; fd < 0 && attempt < 100; ++attempt) {
    temporary = (path.parent_path() / (name + ".partial." + unique_suffix())).string();
    fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) fail(std::string("creating a temporary file beside it: ") + std::strerror(errno));
  const auto fail_removing = [&](const std::string& why) {
    ::unlink(temporary.c_str());
    fail(why);
  };
  if (exists && ::fchmod(fd, existing.st_mode & 07777) != 0) {
    const int e = errno;
    ::close(fd);
    fail_removing(std::string("giving the new file the old one's permissions: ") + std::strerror(e));
  }
  bool written = true;
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

file_reader::file_reader(const std::filesystem::path& path) {
  // O_NONBLOCK: a FIFO opens at once (and is refused below) instead of waiting for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    refusal_ = std::string("cannot open it: ") + std::strerror(errno);
    return;
  }
  struct stat opened {};
  const char* kind = nullptr;
  if (::fstat(fd, &opened) != 0)
    kind = "a file that cannot be examined (fstat failed)";
  else if (S_ISFIFO(opened.st_mode))
    kind = "a FIFO";
  else if (S_ISSOCK(opened.st_mode))
    kind = "a socket";
  else if (S_ISCHR(opened.st_mode))
    kind = "a character device";
  else if (S_ISBLK(opened.st_mode))
    kind = "a block device";
  else if (S_ISDIR(opened.st_mode))
    kind = "a directory";
  else if (!S_ISREG(opened.st_mode))
    kind = "no regular file";
  if (kind != nullptr) {
    ::close(fd);
    refusal_ = std::string("it is ") + kind + ", not a regular file";
    if (!S_ISDIR(opened.st_mode)) refusal_ += " (reading it could wait for ever or not end)";
    return;
  }
  // Reads of a regular file never wait anyway; cleared so that nothing depends on it.
  (void)::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  try {
    buffer_ = std::make_unique<__gnu_cxx::stdio_filebuf<char>>(fd, std::ios::in | std::ios::binary);
  } catch (...) {
    ::close(fd);
    throw;
  }
  stream_ = std::make_unique<std::istream>(buffer_.get());
}

file_reader::~file_reader() = default; // the filebuf closes the descriptor

} // namespace rk::detail
