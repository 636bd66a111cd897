// rk-audit-verify: checks that a JSON-lines audit log written by rk::audit_file_sink was not edited.
//
//   rk-audit-verify [--allow-open] [--head HASH] [--key-file KEY] FILE
//
// Exit status: 0 the log is intact; 1 it was tampered with (the first bad line is named); 2 usage error or
// the file cannot be read. The command line is CLI11 (tools/cli/rk_cli.hpp).

#include <ringkernel/host/audit.hpp>
#include <ringkernel/host/detail/printable.hpp>
#include <rk_cli.hpp>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>

namespace {

constexpr int exit_intact = 0;
constexpr int exit_tampered = 1;
constexpr int exit_usage = 2;

//! Longest key file read: far beyond any real key, and a device such as /dev/zero ends here.
constexpr std::size_t max_key_bytes = std::size_t{1} << 20;

enum class key_read { ok, failed, too_large };

//! Reads the key file's bytes into `key` (libstdc++'s streams throw on a read error such as EIO).
key_read read_key(const std::string& path, std::string& key) {
  try {
    std::ifstream in(path, std::ios::binary);
    if (!in) return key_read::failed;
    char chunk[4096];
    while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
      key.append(chunk, static_cast<std::size_t>(in.gcount()));
      if (key.size() > max_key_bytes) return key_read::too_large;
    }
    return in.eof() ? key_read::ok : key_read::failed;
  } catch (const std::exception&) {
    return key_read::failed;
  }
}

} // namespace

int main(int argc, char** argv) {
  rk::audit_verify_options options;
  std::string file;
  std::string key_file;
  bool allow_open = false;
  CLI::App app(
      "Verifies the hash chain of a ringkernel JSON-lines audit log (SHA-256, or HMAC-SHA256 with a key).",
      "rk-audit-verify");
  app.add_flag("--allow-open", allow_open,
               "accept a log without the closing audit_closed entry (still being written)");
  app.add_option("--head", options.expected_head,
                 "also require the last entry's hash to be HASH (recorded elsewhere)")
      ->type_name("HASH")
      ->transform(CLI::Validator(
          [](std::string& v) {
            if (v.size() != 64 || v.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
              return std::string("a hash is 64 hexadecimal digits");
            for (char& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            return std::string();
          },
          "HASH"));
  app.add_option("--key-file", key_file,
                 "the log is keyed: verify HMAC-SHA256 with the bytes of file KEY as the key")
      ->type_name("KEY")
      ->check(CLI::ExistingFile); // a directory or an empty name is refused here, not read as a key
  app.add_option("FILE", file, "the audit log")->required();
  app.footer("Exit status: 0 intact, 1 tampered (names the first bad line), 2 usage or I/O error.\n"
             "Lines longer than 64 KiB are refused (an audit line is a few hundred bytes).");
  rk::cli::parse(app, argc, argv, "[--allow-open] [--head HASH] [--key-file KEY] FILE");
  options.require_closed = !allow_open;
  // Paths and reasons are printed with control characters escaped: a file named to look like a verdict
  // ("log: intact: ...\n") cannot forge a line of the output.
  const std::string shown_key_file = rk::detail::printable(key_file);
  if (!key_file.empty()) {
    switch (read_key(key_file, options.key)) {
    case key_read::ok:
      break;
    case key_read::failed:
      std::fprintf(stderr, "rk-audit-verify: cannot read the key file '%s'\n", shown_key_file.c_str());
      return exit_usage;
    case key_read::too_large:
      std::fprintf(stderr,
                   "rk-audit-verify: the key file '%s' is longer than %zu bytes: is it the key? (a runtime's "
                   "audit key is a few dozen bytes)\n",
                   shown_key_file.c_str(), max_key_bytes);
      return exit_usage;
    }
    if (options.key.empty()) {
      std::fprintf(stderr, "rk-audit-verify: the key file '%s' is empty\n", shown_key_file.c_str());
      return exit_usage;
    }
  }

  const rk::audit_verify_result r = rk::verify_audit_log(file, options);
  const std::string shown_file = rk::detail::printable(file);
  const std::string reason = rk::detail::printable(r.reason);
  const char* name = shown_file.c_str();
  switch (r.verdict) {
  case rk::audit_verdict::intact:
    std::printf("%s: intact: %llu entries, %s, head %s\n", name, static_cast<unsigned long long>(r.entries),
                r.closed ? "closed" : "open", r.head.c_str());
    if (!reason.empty()) std::printf("%s: note: %s\n", name, reason.c_str());
    return exit_intact;
  case rk::audit_verdict::tampered:
    std::printf("%s:%llu: tampered: %s\n", name, static_cast<unsigned long long>(r.bad_line), reason.c_str());
    if (!options.key.empty() && (options.key.back() == '\n' || options.key.back() == '\r'))
      std::printf("%s: hint: the key file ends with a line break, which is part of the key; if the "
                  "runtime's key did not have it, write the file without it (printf '%%s' KEY > FILE)\n",
                  name);
    return exit_tampered;
  case rk::audit_verdict::unreadable:
    break;
  }
  std::fprintf(stderr, "rk-audit-verify: %s\n", reason.c_str());
  return exit_usage;
}
