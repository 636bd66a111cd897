// rk-audit-verify: checks that a JSON-lines audit log written by rk::audit_file_sink was not edited.
//
//   rk-audit-verify [--allow-open] [--head HASH] [--key-file KEY] FILE
//
// Exit status: 0 the log is intact; 1 it was tampered with (the first bad line is named); 2 usage error or
// the file cannot be read.

#include <ringkernel/host/audit.hpp>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

namespace {

constexpr int exit_intact = 0;
constexpr int exit_tampered = 1;
constexpr int exit_usage = 2;

void usage(std::FILE* to) {
  std::fputs(
      "usage: rk-audit-verify [--allow-open] [--head HASH] [--key-file KEY] FILE\n"
      "Verifies the hash chain of a ringkernel JSON-lines audit log (SHA-256, or HMAC-SHA256 with a key).\n"
      "  --allow-open    accept a log without the closing audit_closed entry (still being written)\n"
      "  --head HASH     also require the last entry's hash to be HASH (recorded elsewhere)\n"
      "  --key-file KEY  the log is keyed: verify HMAC-SHA256 with the bytes of file KEY as the key\n"
      "Lines longer than 64 KiB are refused (an audit line is a few hundred bytes).\n"
      "Exit status: 0 intact, 1 tampered (names the first bad line), 2 usage or I/O error.\n",
      to);
}

} // namespace

int main(int argc, char** argv) {
  rk::audit_verify_options options;
  const char* file = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return exit_intact;
    }
    if (arg == "--allow-open") {
      options.require_closed = false;
    } else if (arg == "--head" && i + 1 < argc) {
      options.expected_head = argv[++i];
    } else if (arg == "--key-file" && i + 1 < argc) {
      std::ifstream key(argv[++i], std::ios::binary);
      options.key.assign(std::istreambuf_iterator<char>(key), std::istreambuf_iterator<char>());
      if (!key.good() && !key.eof()) {
        std::fprintf(stderr, "rk-audit-verify: cannot read the key file '%s'\n", argv[i]);
        return exit_usage;
      }
      if (options.key.empty()) {
        std::fprintf(stderr, "rk-audit-verify: the key file '%s' is empty\n", argv[i]);
        return exit_usage;
      }
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "rk-audit-verify: unknown or incomplete option '%s'\n", argv[i]);
      usage(stderr);
      return exit_usage;
    } else if (file == nullptr) {
      file = argv[i];
    } else {
      std::fputs("rk-audit-verify: give exactly one FILE\n", stderr);
      usage(stderr);
      return exit_usage;
    }
  }
  if (file == nullptr) {
    usage(stderr);
    return exit_usage;
  }

  const rk::audit_verify_result r = rk::verify_audit_log(file, options);
  switch (r.verdict) {
  case rk::audit_verdict::intact:
    std::printf("%s: intact: %llu entries, %s, head %s\n", file, static_cast<unsigned long long>(r.entries),
                r.closed ? "closed" : "open", r.head.c_str());
    if (!r.reason.empty()) std::printf("%s: note: %s\n", file, r.reason.c_str());
    return exit_intact;
  case rk::audit_verdict::tampered:
    std::printf("%s:%llu: tampered: %s\n", file, static_cast<unsigned long long>(r.bad_line),
                r.reason.c_str());
    return exit_tampered;
  case rk::audit_verdict::unreadable:
    break;
  }
  std::fprintf(stderr, "rk-audit-verify: %s\n", r.reason.c_str());
  return exit_usage;
}
