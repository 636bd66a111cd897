// Reading and verifying JSON-lines audit logs (the format is specified in docs/audit.md).

#include <ringkernel/host/audit.hpp>

#include "file_output.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <istream>
#include <limits>

namespace rk {
namespace {

//! Maps a name written by audit_canonical_form back to its code: a built-in name, or `<prefix><code>`.
template <class Enum>
bool code_from_name(std::string_view name, std::string_view prefix, std::uint64_t max_code,
                    const char* (*name_of)(Enum), Enum& out) {
  if (name.starts_with(prefix)) {
    std::uint64_t code = 0;
    const std::string_view digits = name.substr(prefix.size());
    const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), code);
    if (r.ec != std::errc{} || r.ptr != digits.data() + digits.size() || code > max_code) return false;
    out = static_cast<Enum>(code);
    return true;
  }
  for (std::uint64_t code = 0; code <= max_code; ++code) {
    const char* known = name_of(static_cast<Enum>(code));
    if (known != nullptr && name == known) {
      out = static_cast<Enum>(code);
      return true;
    }
  }
  return false;
}

const char* known_level(audit_level l) {
  return l <= audit_level::critical ? to_string(l) : nullptr;
}
const char* known_origin(audit_origin o) {
  return o <= audit_origin::drain ? to_string(o) : nullptr;
}
const char* known_event(audit_event e) {
  return audit_event_name(e);
}

bool fail(std::string* why, std::string text) {
  if (why != nullptr) *why = std::move(text);
  return false;
}

//! `head` (lower-case hex, as the chain writes it) and a hash given in either case (audit_verify_options).
bool same_hash(std::string_view head, std::string_view given) {
  return head.size() == given.size() &&
         std::equal(head.begin(), head.end(), given.begin(), [](char a, char b) {
           return a == (b >= 'A' && b <= 'F' ? static_cast<char>(b - 'A' + 'a') : b);
         });
}

bool is_hash(const std::string& h) {
  return h.size() == 64 && std::all_of(h.begin(), h.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

//! Parses with nlohmann-json, reads every member by name and type, then requires the line to be exactly
//! the canonical serialisation of what was read (one spelling per entry: member order, no whitespace, no
//! leading zeros, no numeric name for a known code, no duplicate or extra members).
bool parse_into(std::string_view line, audit_entry& e, std::string* why) {
  // An entry is one flat object: anything nested deeper is refused while parsing, so hostile input
  // cannot build deep trees.
  struct too_deep {};
  const nlohmann::json::parser_callback_t flat = [](int depth, nlohmann::json::parse_event_t,
                                                    nlohmann::json&) {
    if (depth > 1) throw too_deep{};
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line.begin(), line.end(), flat);
  } catch (const nlohmann::json::exception& error) { // parse_error, and out_of_range for a number overflow
    return fail(why, std::string("not canonical JSON (the JSON parser says: ") + error.what() + ")");
  } catch (const too_deep&) {
    return fail(why, "a nested value: an audit entry is one flat object");
  }
  if (!j.is_object()) return fail(why, "not a JSON object");
  constexpr std::uint64_t u32_max = std::numeric_limits<std::uint32_t>::max();
  const auto member = [&](const char* field) -> const nlohmann::json* {
    const auto it = j.find(field);
    if (it == j.end()) {
      fail(why, std::string("'") + field + "' is missing");
      return nullptr;
    }
    return &*it;
  };
  const auto number = [&](const char* field, std::uint64_t& out, std::uint64_t max) {
    const nlohmann::json* v = member(field);
    if (v == nullptr) return false;
    if (!v->is_number_unsigned() || v->get<std::uint64_t>() > max)
      return fail(why, std::string("'") + field + "' is not a decimal number in range");
    out = v->get<std::uint64_t>();
    return true;
  };
  const auto text = [&](const char* field, std::string& out) {
    const nlohmann::json* v = member(field);
    if (v == nullptr) return false;
    if (!v->is_string()) return fail(why, std::string("'") + field + "' is not a string");
    out = v->get<std::string>();
    return true;
  };

  audit_record& r = e.record;
  std::string event_name, level_name, origin_name;
  std::uint64_t logical = 0, actor = 0, other_actor = 0, detail = 0;
  const std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();
  if (!(number("seq", e.sequence, u64_max) && text("event", event_name) && text("level", level_name) &&
        text("origin", origin_name) && number("time_ns", r.time.physical_ns, u64_max) &&
        number("time_logical", logical, u32_max) && number("tenant", r.tenant, u64_max) &&
        number("other_tenant", r.other_tenant, u64_max) && number("actor", actor, u32_max) &&
        number("other_actor", other_actor, u32_max) && number("org_id", r.tag.org_id, u64_max) &&
        number("engagement_id", r.tag.engagement_id, u64_max) && number("detail", detail, u32_max) &&
        number("value", r.value, u64_max) && text("prev", e.prev) && text("hash", e.hash)))
    return false;
  if (!is_hash(e.prev)) return fail(why, "'prev' is not 64 lower-case hex digits");
  if (!is_hash(e.hash)) return fail(why, "'hash' is not 64 lower-case hex digits");

  r.time.logical = static_cast<std::uint32_t>(logical);
  r.actor = static_cast<actor_index>(actor);
  r.other_actor = static_cast<actor_index>(other_actor);
  r.detail = static_cast<std::uint32_t>(detail);
  if (!code_from_name(std::string_view(event_name), "event_", 0xFFFF, known_event, r.event))
    return fail(why, "unknown event name '" + event_name + "'");
  if (!code_from_name(std::string_view(level_name), "level_", 0xFF, known_level, r.level))
    return fail(why, "unknown level name '" + level_name + "'");
  if (!code_from_name(std::string_view(origin_name), "origin_", 0xFF, known_origin, r.origin))
    return fail(why, "unknown origin name '" + origin_name + "'");

  // One spelling per entry: what we read must serialise back to exactly the same bytes.
  std::string canonical = audit_canonical_form(e.sequence, r);
  canonical.pop_back(); // the closing brace: prev and hash follow
  canonical.append(",\"prev\":\"").append(e.prev).append("\",\"hash\":\"").append(e.hash).append("\"}");
  if (line != canonical)
    return fail(why, "the entry is not in canonical form (member order, whitespace, a leading zero, an extra "
                     "or repeated member, or a numeric name for a known code)");
  e.json = std::string(line);
  return true;
}

enum class line_read { line, last_without_newline, too_long, end };

//! The next line without its newline, reading at most `limit` bytes of it.
line_read read_line(std::istream& in, std::string& line, std::size_t limit) {
  line.clear();
  for (;;) {
    const int c = in.get();
    if (c == std::char_traits<char>::eof())
      return line.empty() ? line_read::end : line_read::last_without_newline;
    if (c == '\n') return line_read::line;
    if (line.size() == limit) return line_read::too_long;
    line.push_back(static_cast<char>(c));
  }
}

} // namespace

std::optional<audit_entry> parse_audit_line(std::string_view line, std::string* why) {
  audit_entry e;
  if (!parse_into(line, e, why)) return std::nullopt;
  return e;
}

audit_verify_result verify_audit_log(const std::filesystem::path& path, const audit_verify_options& options) {
  audit_verify_result result;
  auto tampered = [&](std::uint64_t line, std::string reason) {
    result.verdict = audit_verdict::tampered;
    result.bad_line = line;
    result.reason = std::move(reason);
    return result;
  };
  try {
    result.head = std::string(audit_genesis_hash);
    detail::file_reader file(path);
    if (!file.refusal().empty()) {
      result.reason = "'" + path.string() + "': " + file.refusal() + "; an audit log is a regular file";
      return result;
    }
    std::istream& in = file.stream();
    std::string line;
    std::uint64_t line_number = 0;
    std::uint32_t last_closing_detail = 0; //!< of the audit_closed entry that ends the log
    for (;;) {
      const line_read got = read_line(in, line, options.max_line_bytes);
      if (got == line_read::end) break;
      ++line_number;
      if (result.closed) // also an incomplete line: a closed log is no longer being written
        return tampered(line_number, "a line follows the audit_closed entry that ends the log");
      if (got == line_read::too_long)
        return tampered(line_number, "the line is longer than " + std::to_string(options.max_line_bytes) +
                                         " bytes (audit_verify_options::max_line_bytes): not an audit entry");
      if (got == line_read::last_without_newline) {
        if (options.require_closed)
          return tampered(line_number, "the last line has no newline: the log was cut short");
        result.reason = "ignored an incomplete last line (the log may still be being written)";
        break;
      }
      std::string why;
      const std::optional<audit_entry> e = parse_audit_line(line, &why);
      if (!e) return tampered(line_number, "not a well-formed audit entry: " + why);
      if (audit_chain_hash(e->prev, audit_canonical_form(e->sequence, e->record), options.key) != e->hash)
        return tampered(line_number,
                        options.key.empty()
                            ? "the hash does not match the entry: the line was edited (or the log is keyed: "
                              "verify it with its key)"
                            : "the keyed hash does not match the entry: the line was edited, or the log was "
                              "rehashed without the key (or written with another key)");
      if (e->sequence != result.entries)
        return tampered(line_number, "the sequence number is " + std::to_string(e->sequence) + ", expected " +
                                         std::to_string(result.entries) +
                                         ": lines were deleted, inserted or reordered here");
      if (e->prev != result.head)
        return tampered(line_number, "'prev' is not the hash of the previous line: lines were deleted, "
                                     "inserted or reordered here");
      result.head = e->hash;
      ++result.entries;
      result.closed = e->record.event == audit_event::audit_closed && e->record.origin == audit_origin::drain;
      last_closing_detail = result.closed ? e->record.detail : 0;
    }
    if (in.bad()) {
      result.verdict = audit_verdict::unreadable;
      result.reason = "reading '" + path.string() + "' failed: " + std::strerror(errno);
      return result;
    }
    if (options.require_closed && !result.closed)
      return tampered(
          result.entries + 1,
          result.entries == 0
              ? std::string("the log is empty; a complete log ends with an audit_closed entry")
              : "the log ends after line " + std::to_string(result.entries) +
                    " without the audit_closed entry: lines were removed from the end, or the writer "
                    "did not stop cleanly");
    if (!options.expected_head.empty() && !same_hash(result.head, options.expected_head))
      return tampered(std::max<std::uint64_t>(result.entries, 1),
                      "the last entry's hash is " + result.head + ", expected " + options.expected_head +
                          ": the end of the log was removed or rewritten");
    result.verdict = audit_verdict::intact;
    if (last_closing_detail == audit_closed_producers_running && result.closed && result.reason.empty())
      result.reason = "closed while the runtime's workers were still running (they did not stop at "
                      "shutdown): records they made after the audit_closed entry are not in the log";
    return result;
  } catch (const std::exception& e) {
    result.verdict = audit_verdict::unreadable;
    result.bad_line = 0;
    try {
      result.reason = std::string("verification failed: ") + e.what();
    } catch (const std::bad_alloc&) {
      result.reason.clear(); // out of memory: the verdict says it could not be read
    }
    return result;
  }
}

} // namespace rk
