#pragma once
// Files the runtime writes for the application (snapshot_all, write_trace): all or nothing. And what a
// reader of a whole file (restore, verify_audit_log) checks first.

#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>

namespace rk::detail {

//! Writes `parts`, one after the other, to a new file of its own beside `path` (`path`.partial.XXXXXX,
//! created with O_EXCL; `path`'s name cut to fit NAME_MAX) and renames it to `path`, so a reader of
//! `path` sees its old contents or the whole new ones, never a torn file, and calls writing one path at
//! once each leave a whole file (the last rename wins). The file gets the permissions a plain create
//! would (0666 less the umask). On failure (a full disk, no permission, a directory at `path`) removes
//! its own temporary file and throws rk::error for `who`, saying why (errno) and that `path` was left as
//! it was.
void replace_file(const std::filesystem::path& path, std::initializer_list<std::string_view> parts,
                  const std::string& who);

//! What kind of special file `path` names ("a FIFO", "a socket", "a character device", "a block device"),
//! following symbolic links; empty for anything else (a regular file, a directory, a missing path: the
//! caller's own open and read say what is wrong with those). A reader of a whole file refuses a special
//! one: opening a FIFO waits for a writer, and a device may never end.
std::string special_file_kind(const std::filesystem::path& path);

} // namespace rk::detail
