// libFuzzer target: the snapshot file reader that runtime::restore() trusts. Oracles: a refused file
// throws rk::error with a message (never another exception, never a crash); an accepted file's actors
// carry states that tile the bytes after the header exactly, in order, each of its handler type's size;
// writing the accepted actors again and reading that file gives back the same actors. Half of the inputs
// have their header's states_bytes and states_sha256 set to the true values first, so that the fuzzer
// reaches the actor list instead of stopping at the checksum. Build and run: see tests/fuzz/README.md.

#include "snapshot_file.hpp"

#include <ringkernel/host/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>

#include <unistd.h>

namespace {
[[noreturn]] void violated(const char* oracle) {
  std::fprintf(stderr, "oracle violated: %s\n", oracle);
  std::abort();
}

//! The input made to pass the checksum, when its header is a JSON object: everything after the header is
//! taken for the states (version 1: their SHA-256 goes into the header; otherwise the checksum line of
//! the whole is appended).
std::string with_true_checksum(const std::string& input) {
  const std::size_t end = input.find('\n');
  if (end == std::string::npos) return input;
  nlohmann::json header = nlohmann::json::parse(input.substr(0, end), nullptr, false);
  if (header.is_discarded() || !header.is_object()) return input;
  const std::string_view states = std::string_view(input).substr(end + 1);
  const auto state_bytes = std::as_bytes(std::span<const char>(states.data(), states.size()));
  header["states_bytes"] = states.size();
  const bool version_1 = header.value("version", nlohmann::json()) == nlohmann::json(1);
  if (version_1) header["states_sha256"] = rk::detail::sha256_hex(state_bytes);
  const std::string line = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return line + std::string(states) + (version_1 ? "" : rk::detail::checksum_line(line, state_bytes));
}

//! How many bytes at the end of an accepted `input` are not states: version 2's checksum line.
std::size_t trailer_bytes(const std::string& input, std::size_t header_end) {
  const nlohmann::json header = nlohmann::json::parse(input.substr(0, header_end), nullptr, false);
  return header.value("version", nlohmann::json()) == nlohmann::json(1) ? 0 : 7 + 64 + 1;
}

bool same(const std::vector<rk::actor_snapshot>& a, const std::vector<rk::actor_snapshot>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].handler != b[i].handler || a[i].tenant != b[i].tenant ||
        a[i].mailbox.capacity != b[i].mailbox.capacity ||
        a[i].mailbox.slot_bytes != b[i].mailbox.slot_bytes || a[i].priority_lanes != b[i].priority_lanes ||
        a[i].dedicated_worker != b[i].dedicated_worker || a[i].state != b[i].state)
      return false;
  return true;
}

std::vector<rk::actor_snapshot> read_or_null(const std::filesystem::path& path, bool& accepted) {
  accepted = false;
  try {
    std::vector<rk::actor_snapshot> actors = rk::detail::read_snapshot_file(path);
    accepted = true;
    return actors;
  } catch (const rk::error& e) {
    if (std::strlen(e.what()) == 0) violated("a refusal says why");
  } catch (...) {
    violated("a refusal is an rk::error");
  }
  return {};
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) input = with_true_checksum(input);

  static const std::filesystem::path dir = std::filesystem::temp_directory_path();
  static const std::filesystem::path path = dir / ("rk_fuzz_snapshot_" + std::to_string(::getpid()));
  static const std::filesystem::path again = dir / ("rk_fuzz_snapshot_again_" + std::to_string(::getpid()));
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(input.data(), static_cast<std::streamsize>(input.size()));
  }
  bool accepted = false;
  const std::vector<rk::actor_snapshot> actors = read_or_null(path, accepted);
  if (!accepted) return 0;

  const std::size_t header_end = input.find('\n');
  if (header_end == std::string::npos) violated("an accepted file has a header line");
  std::string_view states = std::string_view(input).substr(header_end + 1);
  const std::size_t trailer = trailer_bytes(input, header_end);
  if (states.size() < trailer) violated("an accepted version 2 file ends with its checksum line");
  states.remove_suffix(trailer);
  std::size_t offset = 0;
  for (const rk::actor_snapshot& a : actors) {
    if (a.state.size() > states.size() - offset ||
        (!a.state.empty() && std::memcmp(a.state.data(), states.data() + offset, a.state.size()) != 0))
      violated("an actor's state is the next bytes of the file");
    offset += a.state.size();
  }
  if (offset != states.size()) violated("the states tile the bytes between the header and the checksum");

  rk::detail::write_snapshot_file(again, actors, "fuzz");
  const std::vector<rk::actor_snapshot> reread = read_or_null(again, accepted);
  if (!accepted || !same(actors, reread)) violated("a written snapshot reads back the same");
  return 0;
}
