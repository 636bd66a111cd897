#pragma once
// The snapshot file format (contract: <ringkernel/host/snapshot.hpp>): one JSON header line, the actors'
// states back to back, then (version 2) a line with the SHA-256 of all that. Pure file I/O: no facility, no
// lock.

#include <ringkernel/host/snapshot.hpp>

#include <openssl/types.h>

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rk::detail {

//! Writes `actors` to `path` (through a temporary file renamed into place, so a reader never sees half a
//! file). Throws rk::error naming the path on any I/O failure.
void write_snapshot_file(const std::filesystem::path& path, const std::vector<actor_snapshot>& actors,
                         const std::string& backend);
//! Reads and checks a whole file (format, version, member types, sizes, the SHA-256: of the whole file in
//! version 2, of the states in version 1). Throws rk::error saying what is wrong.
std::vector<actor_snapshot> read_snapshot_file(const std::filesystem::path& path);

//! A SHA-256 fed in parts (OpenSSL), read once as lower-case hex.
class sha256_digest {
public:
  sha256_digest();
  sha256_digest& update(std::span<const std::byte> bytes);
  std::string hex();

private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> context_;
};
//! The SHA-256 of `bytes` in lower-case hex (version 1's states_sha256).
std::string sha256_hex(std::span<const std::byte> bytes);
//! Version 2's last line: "sha256 ", the SHA-256 of `header_line` (with its newline) and `states`, '\n'.
std::string checksum_line(std::string_view header_line, std::span<const std::byte> states);

} // namespace rk::detail
