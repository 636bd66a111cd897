// Reading and verifying JSON-lines audit logs (the format is specified in docs/audit.md).

#include <ringkernel/host/audit.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <limits>

namespace rk {
namespace {

//! A strict left-to-right reader over one line: the log format has one spelling per entry, so the
//! parser expects each member in order and re-serialisation confirms the canonical form.
class line_cursor {
public:
  explicit line_cursor(std::string_view text) : text_(text) {}

  std::size_t position() const noexcept { return at_; }
  bool at_end() const noexcept { return at_ == text_.size(); }

  bool literal(std::string_view expected) noexcept {
    if (text_.substr(at_, expected.size()) != expected) return false;
    at_ += expected.size();
    return true;
  }

  //! An unsigned decimal integer no larger than `max`.
  bool number(std::uint64_t& out, std::uint64_t max) noexcept {
    const char* first = text_.data() + at_;
    const char* last = text_.data() + text_.size();
    if (first == last || *first < '0' || *first > '9') return false;
    const auto r = std::from_chars(first, last, out);
    if (r.ec != std::errc{} || out > max) return false;
    at_ += static_cast<std::size_t>(r.ptr - first);
    return true;
  }

  //! Characters [a-z0-9_] up to the closing quote (which it consumes).
  bool token(std::string_view& out) noexcept {
    const std::size_t start = at_;
    while (at_ < text_.size() && ((text_[at_] >= 'a' && text_[at_] <= 'z') ||
                                  (text_[at_] >= '0' && text_[at_] <= '9') || text_[at_] == '_'))
      ++at_;
    if (at_ == start || at_ == text_.size() || text_[at_] != '"') return false;
    out = text_.substr(start, at_ - start);
    ++at_;
    return true;
  }

  //! 64 lower-case hex digits.
  bool hash(std::string& out) {
    if (text_.size() - at_ < 64) return false;
    const std::string_view digits = text_.substr(at_, 64);
    if (!std::all_of(digits.begin(), digits.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
      return false;
    out = std::string(digits);
    at_ += 64;
    return true;
  }

private:
  std::string_view text_;
  std::size_t at_ = 0;
};

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

bool parse_into(std::string_view line, audit_entry& e, std::string* why) {
  line_cursor c(line);
  auto expect = [&](std::string_view lit) {
    return c.literal(lit) ||
           fail(why, "expected '" + std::string(lit) + "' at column " + std::to_string(c.position() + 1));
  };
  constexpr std::uint64_t u32_max = std::numeric_limits<std::uint32_t>::max();
  constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();
  auto number = [&](const char* field, std::uint64_t& out, std::uint64_t max) {
    return c.number(out, max) ||
           fail(why, std::string("'") + field + "' is not a decimal number in range at column " +
                         std::to_string(c.position() + 1));
  };
  auto name = [&](const char* field, std::string_view& out) {
    return c.token(out) || fail(why, std::string("'") + field + "' is not a name at column " +
                                         std::to_string(c.position() + 1));
  };

  audit_record& r = e.record;
  std::string_view event_name, level_name, origin_name;
  std::uint64_t logical = 0, actor = 0, other_actor = 0, detail = 0;
  if (!(expect("{\"seq\":") && number("seq", e.sequence, u64_max) && expect(",\"event\":\"") &&
        name("event", event_name) && expect(",\"level\":\"") && name("level", level_name) &&
        expect(",\"origin\":\"") && name("origin", origin_name) && expect(",\"time_ns\":") &&
        number("time_ns", r.time.physical_ns, u64_max) && expect(",\"time_logical\":") &&
        number("time_logical", logical, u32_max) && expect(",\"tenant\":") &&
        number("tenant", r.tenant, u64_max) && expect(",\"other_tenant\":") &&
        number("other_tenant", r.other_tenant, u64_max) && expect(",\"actor\":") &&
        number("actor", actor, u32_max) && expect(",\"other_actor\":") &&
        number("other_actor", other_actor, u32_max) && expect(",\"org_id\":") &&
        number("org_id", r.tag.org_id, u64_max) && expect(",\"engagement_id\":") &&
        number("engagement_id", r.tag.engagement_id, u64_max) && expect(",\"detail\":") &&
        number("detail", detail, u32_max) && expect(",\"value\":") && number("value", r.value, u64_max)))
    return false;
  const std::size_t canonical_end = c.position();
  if (!(expect(",\"prev\":\"") && (c.hash(e.prev) || fail(why, "'prev' is not 64 lower-case hex digits")) &&
        expect("\",\"hash\":\"") && (c.hash(e.hash) || fail(why, "'hash' is not 64 lower-case hex digits")) &&
        expect("\"}")))
    return false;
  if (!c.at_end())
    return fail(why, "unexpected text after the entry at column " + std::to_string(c.position() + 1));

  r.time.logical = static_cast<std::uint32_t>(logical);
  r.actor = static_cast<actor_index>(actor);
  r.other_actor = static_cast<actor_index>(other_actor);
  r.detail = static_cast<std::uint32_t>(detail);
  if (!code_from_name(event_name, "event_", 0xFFFF, known_event, r.event))
    return fail(why, "unknown event name '" + std::string(event_name) + "'");
  if (!code_from_name(level_name, "level_", 0xFF, known_level, r.level))
    return fail(why, "unknown level name '" + std::string(level_name) + "'");
  if (!code_from_name(origin_name, "origin_", 0xFF, known_origin, r.origin))
    return fail(why, "unknown origin name '" + std::string(origin_name) + "'");

  // One spelling per entry: what we parsed must serialise back to the same bytes.
  const std::string canonical = audit_canonical_form(e.sequence, r);
  if (line.substr(0, canonical_end) != std::string_view(canonical).substr(0, canonical.size() - 1))
    return fail(why, "the entry is not in canonical form (e.g. a leading zero, or a numeric name for a "
                     "known code)");
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
  result.head = std::string(audit_genesis_hash);
  auto tampered = [&](std::uint64_t line, std::string reason) {
    result.verdict = audit_verdict::tampered;
    result.bad_line = line;
    result.reason = std::move(reason);
    return result;
  };
  try {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      result.reason = "cannot open '" + path.string() + "': " + std::strerror(errno);
      return result;
    }
    std::string line;
    std::uint64_t line_number = 0;
    for (;;) {
      const line_read got = read_line(in, line, options.max_line_bytes);
      if (got == line_read::end) break;
      ++line_number;
      if (got == line_read::too_long)
        return tampered(line_number, "the line is longer than " + std::to_string(options.max_line_bytes) +
                                         " bytes (audit_verify_options::max_line_bytes): not an audit entry");
      if (got == line_read::last_without_newline) {
        if (options.require_closed)
          return tampered(line_number, "the last line has no newline: the log was cut short");
        result.reason = "ignored an incomplete last line (the log may still be being written)";
        break;
      }
      if (result.closed)
        return tampered(line_number, "a line follows the audit_closed entry that ends the log");
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
    if (!options.expected_head.empty() && result.head != options.expected_head)
      return tampered(std::max<std::uint64_t>(result.entries, 1),
                      "the last entry's hash is " + result.head + ", expected " + options.expected_head +
                          ": the end of the log was removed or rewritten");
    result.verdict = audit_verdict::intact;
    return result;
  } catch (const std::exception& e) {
    result.verdict = audit_verdict::unreadable;
    result.bad_line = 0;
    result.reason = std::string("verification failed: ") + e.what();
    return result;
  }
}

} // namespace rk
