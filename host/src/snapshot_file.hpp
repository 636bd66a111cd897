#pragma once
// The snapshot file format (contract: <ringkernel/host/snapshot.hpp>): one JSON header line, then the
// actors' states back to back. Pure file I/O: no facility, no lock.

#include <ringkernel/host/snapshot.hpp>

#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace rk::detail {

//! Writes `actors` to `path` (through a temporary file renamed into place, so a reader never sees half a
//! file). Throws rk::error naming the path on any I/O failure.
void write_snapshot_file(const std::filesystem::path& path, const std::vector<actor_snapshot>& actors,
                         const std::string& backend);
//! Reads and checks a whole file (format, version, member types, sizes, SHA-256 of the states). Throws
//! rk::error saying what is wrong.
std::vector<actor_snapshot> read_snapshot_file(const std::filesystem::path& path);
//! The SHA-256 of `bytes` in lower-case hex, as the header's states_sha256 holds it.
std::string sha256_hex(std::span<const std::byte> bytes);

} // namespace rk::detail
