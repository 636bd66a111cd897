#pragma once
// Files the runtime writes for the application (snapshot_all, write_trace): all or nothing. And what a
// reader of a whole file (restore, verify_audit_log) checks first.

#include <filesystem>
#include <initializer_list>
#include <istream>
#include <memory>
#include <string>
#include <string_view>

namespace rk::detail {

//! Writes `parts`, one after the other, to a new file of its own beside `path` (`path`.partial.XXXXXX,
//! created with O_EXCL; `path`'s name cut to fit NAME_MAX) and renames it to `path`, so a reader of
//! `path` sees its old contents or the whole new ones, never a torn file, and calls writing one path at
//! once each leave a whole file (the last rename wins). The file gets the permissions of the file it
//! replaces, or those a plain create would (0666 less the umask); a file there this process may not write
//! (access(W_OK)) is refused. On failure (a full disk, no permission, a directory at `path`) removes
//! its own temporary file and throws rk::error for `who`, saying why (errno) and that `path` was left as
//! it was. A symbolic link at `path` is followed (the file it leads to is replaced; a dangling link itself
//! is); a FIFO, socket or device there is refused (renamed over, it would become a regular file).
void replace_file(const std::filesystem::path& path, std::initializer_list<std::string_view> parts,
                  const std::string& who);

//! A whole file opened for reading (restore, verify_audit_log): a regular file only. A FIFO, socket,
//! device or directory is refused unread (opening a FIFO waits for a writer, a device may never end). The
//! path is opened without waiting and judged by the open descriptor, so a path swapped for a FIFO after
//! any earlier look at it cannot block the reader.
class file_reader {
public:
  explicit file_reader(const std::filesystem::path& path);
  ~file_reader();
  file_reader(const file_reader&) = delete;
  file_reader& operator=(const file_reader&) = delete;

  //! Empty when the file is open; else why not: "it is a FIFO, not a regular file (reading it could wait
  //! for ever or not end)", "it is a directory, not a regular file", "cannot open it: <errno text>".
  const std::string& refusal() const noexcept { return refusal_; }
  //! The file's bytes (only when refusal() is empty).
  std::istream& stream() noexcept { return *stream_; }

private:
  std::string refusal_;
  std::unique_ptr<std::streambuf> buffer_;
  std::unique_ptr<std::istream> stream_;
};

} // namespace rk::detail
