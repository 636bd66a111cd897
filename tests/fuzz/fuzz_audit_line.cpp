// libFuzzer target: the audit-log line parser and the verifier. Oracles: a line the parser accepts is
// canonical (serialising the parsed entry gives back exactly its bytes) and carries a recomputable hash
// relation; a refusal always says why; the verifier never crashes, never calls a malformed log intact,
// and reads at most its line limit. Build and run: see tests/fuzz/README.md.

#include <ringkernel/host/audit.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace {
[[noreturn]] void violated(const char* oracle) {
  std::fprintf(stderr, "oracle violated: %s\n", oracle);
  std::abort();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string_view first_line = std::string_view(input).substr(0, input.find('\n'));
  std::string why;
  if (const std::optional<rk::audit_entry> e = rk::parse_audit_line(first_line, &why)) {
    std::string line = rk::audit_canonical_form(e->sequence, e->record);
    line.pop_back();
    line += ",\"prev\":\"" + e->prev + "\",\"hash\":\"" + e->hash + "\"}";
    if (line != first_line) violated("a parsed line is canonical");
    const rk::audit_entry rebuilt = rk::make_audit_entry(e->sequence, e->record, e->prev);
    if ((rebuilt.hash == e->hash) != (rebuilt.json == first_line))
      violated("the hash covers the whole entry");
  } else if (why.empty()) {
    violated("a refused line says why");
  }

  // The whole input as a log file.
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("rk_fuzz_audit_" + std::to_string(::getpid()) + ".jsonl"))
          .string();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(input.data(), static_cast<std::streamsize>(input.size()));
  }
  rk::audit_verify_options options;
  options.max_line_bytes = 1024;
  const rk::audit_verify_result r = rk::verify_audit_log(path, options);
  if (r.intact() && (input.empty() || input.back() != '\n')) violated("an intact log ends with a newline");
  if (r.verdict == rk::audit_verdict::tampered && r.bad_line == 0) violated("a tampered log names its line");
  return 0;
}
