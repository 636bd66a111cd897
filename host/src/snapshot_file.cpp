// The snapshot file format (see snapshot_file.hpp).

#include "snapshot_file.hpp"

#include "file_output.hpp"

#include <ringkernel/host/detail/printable.hpp>
#include <ringkernel/host/error.hpp>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <istream>
#include <iterator>
#include <limits>
#include <map>
#include <new>
#include <set>

namespace rk::detail {

namespace {

constexpr const char* format_name = "ringkernel-snapshot";
constexpr std::size_t max_header_bytes = std::size_t{1} << 30;
constexpr std::string_view checksum_prefix = "sha256 "; //!< version 2's last line: this, 64 hex digits, '\n'

} // namespace

sha256_digest::sha256_digest() : context_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
  if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1)
    throw error("snapshot: OpenSSL SHA-256 failed");
}

sha256_digest& sha256_digest::update(std::span<const std::byte> bytes) {
  if (EVP_DigestUpdate(context_.get(), bytes.data(), bytes.size()) != 1)
    throw error("snapshot: OpenSSL SHA-256 failed");
  return *this;
}

std::string sha256_digest::hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(context_.get(), digest, &length) != 1)
    throw error("snapshot: OpenSSL SHA-256 failed");
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += digits[digest[i] >> 4];
    out += digits[digest[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::span<const std::byte> bytes) {
  return sha256_digest().update(bytes).hex();
}

namespace {
//! Version 2's last line for what `digest` has seen.
std::string checksum_line_of(sha256_digest& digest) {
  return std::string(checksum_prefix) + digest.hex() + '\n';
}
} // namespace

std::string checksum_line(std::string_view header_line, std::span<const std::byte> states) {
  sha256_digest digest;
  return checksum_line_of(digest.update(std::as_bytes(std::span(header_line))).update(states));
}

namespace {

//! The header's JSON text: the actors' list is written one small JSON object at a time, not built as one
//! big value. (nlohmann's destructor allocates a stack as large as an array: for a million actors, after
//! running out of memory, destroying the list allocated again and ended the process.)
std::string snapshot_header(const std::vector<actor_snapshot>& actors, const std::string& backend,
                            std::uint64_t states_bytes) {
  std::map<std::string, std::size_t> types;
  for (const actor_snapshot& a : actors) types.emplace(a.handler, a.state.size());
  nlohmann::json fixed;
  fixed["format"] = format_name;
  fixed["version"] = snapshot_format_version;
  fixed["backend"] = backend;
  nlohmann::json handler_types = nlohmann::json::array();
  for (const auto& [name, bytes] : types) handler_types.push_back({{"name", name}, {"state_bytes", bytes}});
  fixed["handler_types"] = std::move(handler_types);
  fixed["states_bytes"] = states_bytes;
  std::string text = fixed.dump();
  text.pop_back(); // the closing brace: the actors follow
  text += ",\"actors\":[";
  for (std::size_t i = 0; i < actors.size(); ++i) {
    const actor_snapshot& a = actors[i];
    if (i != 0) text += ',';
    text += nlohmann::json{{"name", a.name},
                           {"handler", a.handler},
                           {"tenant", a.tenant},
                           {"mailbox_slots", a.mailbox.capacity},
                           {"slot_bytes", a.mailbox.slot_bytes},
                           {"priority_lanes", a.priority_lanes},
                           {"dedicated_worker", a.dedicated_worker},
                           {"state_bytes", a.state.size()}}
                .dump();
  }
  text += "]}\n";
  return text;
}

} // namespace

void write_snapshot_file(const std::filesystem::path& path, const std::vector<actor_snapshot>& actors,
                         const std::string& backend) {
  std::string header, checksum;
  std::vector<std::byte> states;
  try {
    for (const actor_snapshot& a : actors) states.insert(states.end(), a.state.begin(), a.state.end());
    header = snapshot_header(actors, backend, states.size());
    // restore() reads a header line of at most max_header_bytes: a longer one would be written but refused.
    if (header.size() - 1 > max_header_bytes)
      throw error("snapshot_all(): the file's header would be " + std::to_string(header.size() - 1) +
                  " bytes, more than restore() reads (" + std::to_string(max_header_bytes) +
                  "): the actors' names are too long for one snapshot; nothing was written to '" +
                  path.string() + "'");
    checksum = checksum_line(header, states);
  } catch (const std::bad_alloc&) {
    throw error("snapshot_all(): out of host memory for " + std::to_string(actors.size()) +
                " actors' snapshot; nothing was written to '" + path.string() + "'");
  }
  replace_file(
      path, {header, std::string_view(reinterpret_cast<const char*>(states.data()), states.size()), checksum},
      "snapshot_all()");
}

namespace {
//! Member `key` of `j` as a T, refused unless it is an integer T holds (JSON numbers like 1.9 or 2^32 + 1
//! would otherwise be narrowed silently into a different value).
template <class T>
T integer_member(const nlohmann::json& j, const char* key, const std::string& who) {
  const nlohmann::json& v = j.at(key);
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() > std::numeric_limits<T>::max())
    throw error(who + "header member '" + key + "' is " + v.dump() + ", not an integer from 0 to " +
                std::to_string(std::numeric_limits<T>::max()));
  return static_cast<T>(v.get<std::uint64_t>());
}
} // namespace

namespace {

//! An actor's entry of the header, converted as the parser meets it; its state comes from the states part.
actor_snapshot actor_entry(const nlohmann::json& a, std::uint64_t& state_bytes, const std::string& who) {
  actor_snapshot s;
  s.name = a.at("name").get<std::string>();
  s.handler = a.at("handler").get<std::string>();
  s.tenant = integer_member<std::uint64_t>(a, "tenant", who);
  s.mailbox.capacity = integer_member<std::uint32_t>(a, "mailbox_slots", who);
  s.mailbox.slot_bytes = integer_member<std::uint32_t>(a, "slot_bytes", who);
  s.priority_lanes = a.at("priority_lanes").get<bool>();
  s.dedicated_worker = a.at("dedicated_worker").get<bool>();
  state_bytes = integer_member<std::uint64_t>(a, "state_bytes", who);
  return s;
}

//! The header line, parsed without keeping its lists as JSON values: each entry of `actors` is converted
//! into `actors` (its state size into `state_bytes`), each of `handler_types` into `types`, and dropped. (A
//! million entries cost ~1 GB as JSON, and destroying that value allocates: after running out of memory it
//! ended the process.) Nothing else is kept but the scalar members read: nlohmann's callback parser scans a
//! list after each object it keeps in it (a 600 KB header of 200,000 empty objects took 16-26 s), and a
//! kept value costs ~30 times its text (a 120 MB header of nested objects took 3.4 GB). Unknown members
//! are dropped unread; a list entry that is not an object makes the header refused.
nlohmann::json parse_header(const std::string& line, std::vector<actor_snapshot>& actors,
                            std::vector<std::uint64_t>& state_bytes,
                            std::vector<std::pair<std::string, std::uint64_t>>& types,
                            const std::string& who) {
  using ev = nlohmann::json::parse_event_t;
  static const std::set<std::string, std::less<>> top_level = {"format", "version",      "handler_types",
                                                               "actors", "states_bytes", "states_sha256"};
  static const std::set<std::string, std::less<>> actor_members = {
      "name",       "handler",        "tenant",           "mailbox_slots",
      "slot_bytes", "priority_lanes", "dedicated_worker", "state_bytes"};
  static const std::set<std::string, std::less<>> type_members = {"name", "state_bytes"};
  std::string member; // the top-level member being parsed
  bool actors_seen = false;
  bool types_seen = false;
  std::string odd_list; // a list with an entry that is not an object (or not a list at all)
  const auto keep = [&](int depth, ev event, nlohmann::json& parsed) {
    const bool list = member == "actors" || member == "handler_types";
    if (depth == 1 && event == ev::key) {
      member = parsed.get<std::string>();
      if (member == "actors") {
        if (actors_seen) throw error(who + "the header has two 'actors' members");
        actors_seen = true;
      }
      if (member == "handler_types") {
        if (types_seen) throw error(who + "the header has two 'handler_types' members");
        types_seen = true;
      }
      return top_level.count(member) != 0;
    }
    const bool opens = event == ev::object_start || event == ev::array_start;
    // Depth 1: the members' values (only the lists may be structured); 2: list entries (objects only);
    // 3: their members' values (scalars only: a structured one is dropped, and refused as missing).
    if (opens &&
        ((depth == 1 && (!list || event == ev::object_start)) || (depth == 2 && event == ev::array_start))) {
      if (list && odd_list.empty()) odd_list = member;
      return false;
    }
    if (depth == 3 && event == ev::key)
      return (member == "actors" ? actor_members : type_members).count(parsed.get<std::string>()) != 0;
    if (depth == 3 && opens) return false;
    if (depth != 2 || event != ev::object_end || !list) return true;
    if (member == "actors") {
      state_bytes.push_back(0);
      actors.push_back(actor_entry(parsed, state_bytes.back(), who));
    } else {
      types.emplace_back(parsed.at("name").get<std::string>(),
                         integer_member<std::uint64_t>(parsed, "state_bytes", who));
    }
    return false;
  };
  try {
    nlohmann::json header = nlohmann::json::parse(line, keep);
    if (!odd_list.empty()) throw error(who + "header member '" + odd_list + "' is not a list of objects");
    return header;
  } catch (const nlohmann::json::parse_error& e) {
    throw error(who + "the header is not JSON (" + e.what() + "): not a snapshot file");
  }
}

//! The states, refused when they are not `expected` bytes (read no further than that, so a file appended to
//! cannot make it allocate more). `end_the_file` (version 1): they are the rest of `in`, and one byte more
//! is read to tell a file appended to; otherwise the checksum line follows them.
std::vector<std::byte> read_states(std::istream& in, std::uint64_t expected, bool end_the_file,
                                   const std::string& who) {
  std::vector<std::byte> states;
  std::uint64_t held = 0;
  constexpr std::uint64_t chunk = std::uint64_t{1} << 24;
  // (No byte past 2^64 - 1: the file ends first.)
  const std::uint64_t limit = end_the_file && expected != ~std::uint64_t{0} ? expected + 1 : expected;
  while (held < limit) {
    const std::uint64_t want = std::min(chunk, limit - held);
    states.resize(held + want);
    in.read(reinterpret_cast<char*>(states.data() + held), static_cast<std::streamsize>(want));
    held += static_cast<std::uint64_t>(in.gcount());
    if (in.gcount() < static_cast<std::streamsize>(want)) break;
  }
  states.resize(held);
  if (held != expected)
    throw error(who + "the file holds " +
                (held > expected ? "more than " + std::to_string(expected) : std::to_string(held)) +
                " bytes of states, the header says " + std::to_string(expected) +
                ": truncated or appended to");
  return states;
}

//! Version 2: the file's last line, checked against `digest`, which has seen the header line and the states
//! (what follows the line, or a line cut short, is refused too).
void check_checksum_line(std::istream& in, sha256_digest& digest, const std::string& who) {
  const std::size_t line_bytes = checksum_prefix.size() + 64 + 1;
  std::string line(line_bytes + 1, '\0'); // one byte more, to tell a file appended to
  in.read(line.data(), static_cast<std::streamsize>(line.size()));
  line.resize(static_cast<std::size_t>(in.gcount()));
  if (line.size() > line_bytes)
    throw error(who + "bytes follow the file's last line (its SHA-256): appended to");
  if (line.size() < line_bytes || !line.starts_with(checksum_prefix))
    throw error(who + "the file's last line is not its SHA-256 line: truncated or damaged");
  if (line != checksum_line_of(digest))
    throw error(who + "the file's SHA-256 (its last line) does not match the header and states: the file " +
                "was damaged or edited");
}

std::vector<actor_snapshot> read_checked(const std::filesystem::path& path) {
  const std::string who = "restore('" + path.string() + "'): ";
  file_reader file(path);
  if (!file.refusal().empty()) throw error(who + file.refusal() + "; pass a file snapshot_all() wrote");
  std::istream& in = file.stream();
  // The header line, read no further than its limit (std::getline of /dev/zero grew until memory ran out).
  std::string line;
  for (std::streambuf* buffer = in.rdbuf();;) {
    const int c = buffer->sbumpc();
    if (c == std::char_traits<char>::eof() && line.empty())
      throw error(who + "no header line (a JSON line of at most " + std::to_string(max_header_bytes) +
                  " bytes): not a snapshot file");
    if (line.size() == max_header_bytes && c != '\n')
      throw error(who + "the header line is longer than " + std::to_string(max_header_bytes) +
                  " bytes, which no snapshot_all() writes: not a snapshot file");
    if (c == std::char_traits<char>::eof()) // the writer always ends the header with a newline
      throw error(who + "the header line has no newline after it: a truncated file, not a whole snapshot");
    if (c == '\n') break;
    line.push_back(static_cast<char>(c));
  }
  std::vector<actor_snapshot> actors;
  std::vector<std::uint64_t> state_bytes;
  try {
    sha256_digest digest; // version 2's checksum covers the header line too
    digest.update(std::as_bytes(std::span(line))).update(std::as_bytes(std::span("\n", 1)));
    std::vector<std::pair<std::string, std::uint64_t>> type_list;
    const nlohmann::json header = parse_header(line, actors, state_bytes, type_list, who);
    std::string().swap(line);
    if (!header.is_object() || header.value("format", std::string()) != format_name)
      throw error(who + "not a ringkernel snapshot file");
    const auto version = integer_member<std::uint32_t>(header, "version", who);
    if (version != 1 && version != snapshot_format_version)
      throw error(who + "format version " + std::to_string(version) + ", this library reads versions 1 to " +
                  std::to_string(snapshot_format_version));
    for (const char* list : {"actors", "handler_types"}) { // what parse_header kept: entries not objects
      const nlohmann::json& left = header.at(list);
      if (!left.is_array() || !left.empty())
        throw error(who + "header member '" + list + "' is not a list of objects");
    }
    const bool checksum_in_header = version == 1; // of the states only
    const std::vector<std::byte> states =
        read_states(in, integer_member<std::uint64_t>(header, "states_bytes", who), checksum_in_header, who);
    if (!checksum_in_header)
      check_checksum_line(in, digest.update(states), who);
    else if (sha256_hex({states}) != header.at("states_sha256").get<std::string>())
      throw error(who + "the states' SHA-256 does not match the header: the file was damaged or edited");
    const std::map<std::string, std::uint64_t> types(type_list.begin(), type_list.end());
    std::size_t offset = 0;
    for (std::size_t i = 0; i < actors.size(); ++i) {
      actor_snapshot& s = actors[i];
      const std::uint64_t bytes = state_bytes[i];
      const auto type = types.find(s.handler);
      if (type == types.end())
        throw error(who + "actor '" + printable(s.name) + "': its handler type '" + printable(s.handler) +
                    "' is not in the file's handler_types");
      if (type->second != bytes)
        throw error(who + "actor '" + printable(s.name) +
                    "': its state size does not match its handler type's entry");
      if (bytes > states.size() - offset)
        throw error(who + "actor '" + printable(s.name) + "': its state runs past the file");
      s.state.assign(states.begin() + static_cast<std::ptrdiff_t>(offset),
                     states.begin() + static_cast<std::ptrdiff_t>(offset + bytes));
      offset += bytes;
    }
    if (offset != states.size()) throw error(who + "the states do not add up to the file's size");
    return actors;
  } catch (const nlohmann::json::exception& e) {
    throw error(who + "a header member is missing or has the wrong type (" + e.what() + ")");
  }
}

} // namespace

std::vector<actor_snapshot> read_snapshot_file(const std::filesystem::path& path) {
  try {
    return read_checked(path);
  } catch (const std::bad_alloc&) {
    throw error("restore('" + path.string() + "'): out of host memory reading the file");
  } catch (const std::ios_base::failure& e) { // e.g. a directory, or a read error (the stream throws)
    throw error("restore('" + path.string() + "'): cannot read the file: " + e.what());
  }
}

} // namespace rk::detail
