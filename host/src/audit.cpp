// The audit chain (canonical form, SHA-256 through OpenSSL) and the sinks. The drain thread is in
// audit_drain.cpp; parsing and verification of logs are in audit_verify.cpp.

#include <ringkernel/host/audit.hpp>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rk {

// --- the chain ---------------------------------------------------------------------------------------

namespace {

void append_number(std::string& out, std::uint64_t value) {
  char digits[24];
  const auto r = std::to_chars(digits, digits + sizeof(digits), value);
  out.append(digits, r.ptr);
}

void append_name(std::string& out, const char* name, const char* fallback_prefix, std::uint64_t code) {
  out += '"';
  if (name != nullptr) {
    out += name;
  } else {
    out += fallback_prefix;
    append_number(out, code);
  }
  out += '"';
}

const char* level_name(audit_level l) noexcept {
  return l <= audit_level::critical ? to_string(l) : nullptr;
}
const char* origin_name(audit_origin o) noexcept {
  return o <= audit_origin::drain ? to_string(o) : nullptr;
}

struct md_ctx_deleter {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

[[noreturn]] void throw_crypto_error(const char* what) {
  char text[256] = "no OpenSSL error queued";
  if (const unsigned long code = ERR_get_error(); code != 0) ERR_error_string_n(code, text, sizeof(text));
  throw error(std::string("audit chain: OpenSSL ") + what + " failed (" + text + ")");
}

} // namespace

std::string audit_canonical_form(std::uint64_t sequence, const audit_record& r) {
  std::string out;
  out.reserve(320);
  out += "{\"seq\":";
  append_number(out, sequence);
  out += ",\"event\":";
  append_name(out, audit_event_name(r.event), "event_", static_cast<std::uint16_t>(r.event));
  out += ",\"level\":";
  append_name(out, level_name(r.level), "level_", static_cast<std::uint8_t>(r.level));
  out += ",\"origin\":";
  append_name(out, origin_name(r.origin), "origin_", static_cast<std::uint8_t>(r.origin));
  out += ",\"time_ns\":";
  append_number(out, r.time.physical_ns);
  out += ",\"time_logical\":";
  append_number(out, r.time.logical);
  out += ",\"tenant\":";
  append_number(out, r.tenant);
  out += ",\"other_tenant\":";
  append_number(out, r.other_tenant);
  out += ",\"actor\":";
  append_number(out, r.actor);
  out += ",\"other_actor\":";
  append_number(out, r.other_actor);
  out += ",\"org_id\":";
  append_number(out, r.tag.org_id);
  out += ",\"engagement_id\":";
  append_number(out, r.tag.engagement_id);
  out += ",\"detail\":";
  append_number(out, r.detail);
  out += ",\"value\":";
  append_number(out, r.value);
  out += '}';
  return out;
}

std::string audit_chain_hash(std::string_view prev_hash, std::string_view canonical, std::string_view key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (key.empty()) {
    const std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> ctx(EVP_MD_CTX_new());
    if (!ctx) throw_crypto_error("EVP_MD_CTX_new");
    if (EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
      throw_crypto_error("EVP_DigestInit_ex(sha256)");
    if (EVP_DigestUpdate(ctx.get(), prev_hash.data(), prev_hash.size()) != 1 ||
        EVP_DigestUpdate(ctx.get(), canonical.data(), canonical.size()) != 1)
      throw_crypto_error("EVP_DigestUpdate");
    if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1 || length != 32)
      throw_crypto_error("EVP_DigestFinal_ex");
  } else {
    std::string message;
    message.reserve(prev_hash.size() + canonical.size());
    message.append(prev_hash).append(canonical);
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest,
             &length) == nullptr ||
        length != 32)
      throw_crypto_error("HMAC(sha256)");
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (unsigned int i = 0; i < 32; ++i) {
    out[2 * i] = hex[digest[i] >> 4];
    out[2 * i + 1] = hex[digest[i] & 0xF];
  }
  return out;
}

audit_entry make_audit_entry(std::uint64_t sequence, const audit_record& record, std::string_view prev_hash,
                             std::string_view key) {
  audit_entry e;
  e.sequence = sequence;
  e.record = record;
  e.prev = std::string(prev_hash);
  std::string canonical = audit_canonical_form(sequence, record);
  e.hash = audit_chain_hash(e.prev, canonical, key);
  // The line is the canonical object with prev and hash appended as its last two members.
  canonical.pop_back(); // the closing brace
  canonical += ",\"prev\":\"";
  canonical += e.prev;
  canonical += "\",\"hash\":\"";
  canonical += e.hash;
  canonical += "\"}";
  e.json = std::move(canonical);
  return e;
}

// --- sinks -------------------------------------------------------------------------------------------

audit_memory_sink::audit_memory_sink(std::size_t capacity) : capacity_(capacity) {
  if (capacity == 0) throw error("audit_memory_sink: capacity must be at least 1 entry");
}

void audit_memory_sink::write(const audit_entry& entry) {
  std::lock_guard lock(mutex_);
  if (kept_.size() == capacity_) {
    kept_.pop_front();
    ++evicted_;
  }
  kept_.push_back(entry);
  ++written_;
}

std::vector<audit_entry> audit_memory_sink::entries() const {
  std::lock_guard lock(mutex_);
  return {kept_.begin(), kept_.end()};
}
std::uint64_t audit_memory_sink::written() const {
  std::lock_guard lock(mutex_);
  return written_;
}
std::uint64_t audit_memory_sink::evicted() const {
  std::lock_guard lock(mutex_);
  return evicted_;
}

audit_file_sink::audit_file_sink(std::filesystem::path path) : path_(std::move(path)) {
  // O_CLOEXEC: child processes do not inherit it. O_NONBLOCK: opening a FIFO does not wait for a reader
  // (it is refused below; without a reader the open fails with ENXIO).
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0666);
  constexpr const char* regular_only =
      "the sink writes a file it can cut back to its last whole line after a "
      "failed write; give it a regular file (or write an audit_sink of your "
      "own for a pipe)";
  if (fd_ < 0 && errno == ENXIO) // a FIFO nobody reads
    throw error("audit_file_sink: '" + path_.string() + "' is a FIFO: " + regular_only);
  if (fd_ < 0)
    throw error("audit_file_sink: cannot create '" + path_.string() + "': " + std::strerror(errno) +
                "; check that the directory exists and is writable");
  struct stat opened {};
  const bool stream = ::fstat(fd_, &opened) == 0 && (S_ISFIFO(opened.st_mode) || S_ISSOCK(opened.st_mode));
  if (stream || ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK) != 0) {
    ::close(fd_);
    throw error("audit_file_sink: '" + path_.string() +
                (stream ? std::string("' is a FIFO or socket: ") + regular_only
                        : std::string("': cannot make its writes blocking")));
  }
}

audit_file_sink::~audit_file_sink() {
  try {
    write_out();
  } catch (const error&) { // nothing to report to: the drain's last flush() already said so
  }
  ::close(fd_);
}

void audit_file_sink::write_out() {
  std::size_t done = 0;
  while (done < pending_.size()) {
    const ssize_t n = ::write(fd_, pending_.data() + done, pending_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int why = n < 0 ? errno : ENOSPC;
      // The whole lines that reached the file stay there (a nearly full disk still takes what fits); the
      // torn rest is cut back, so later lines never follow half a line.
      const std::size_t last_newline = done == 0 ? std::string::npos : pending_.rfind('\n', done - 1);
      const std::size_t whole = last_newline == std::string::npos ? 0 : last_newline + 1;
      size_ += whole;
      pending_.erase(0, whole);
      done -= whole;
      if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0 ||
          ::lseek(fd_, static_cast<off_t>(size_), SEEK_SET) < 0) {
        size_ += done; // the torn part stays in the file: the bytes after it continue it
        pending_.erase(0, done);
        throw error("audit_file_sink: writing '" + path_.string() + "' failed (" + std::strerror(why) +
                    ") and cutting it back to its last whole line failed too (" + std::strerror(errno) + ")");
      }
      throw error("audit_file_sink: writing '" + path_.string() + "' failed: " + std::strerror(why) + "; " +
                  std::to_string(pending_.size()) + " bytes of whole lines stay buffered for the next try");
    }
    done += static_cast<std::size_t>(n);
  }
  size_ += pending_.size();
  pending_.clear();
}

void audit_file_sink::write(const audit_entry& entry) {
  const auto keep = [&] {
    pending_.reserve(pending_.size() + entry.json.size() + 1); // out of memory here, never between the two
    pending_.append(entry.json).push_back('\n');
  };
  if (pending_.size() >= pending_limit) {
    try {
      write_out(); // throws while the disk refuses
    } catch (const error& e) {
      if (pending_.size() < pending_limit) { // the disk took some lines: room for this one, kept
        keep();
        throw;
      }
      refused_.fetch_add(1, std::memory_order_relaxed);
      throw error(std::string(e.what()) + "; more than pending_limit bytes wait, so entry " +
                  std::to_string(entry.sequence) + " was refused: it is missing from the file");
    }
  }
  keep();
  if (pending_.size() >= std::size_t{64} << 10) write_out();
}

void audit_file_sink::flush() {
  write_out();
}

audit_callback_sink::audit_callback_sink(callback fn) : fn_(std::move(fn)) {
  if (!fn_) throw error("audit_callback_sink: the callback is empty");
}

} // namespace rk
