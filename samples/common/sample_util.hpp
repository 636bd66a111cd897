#pragma once
// Small helpers shared by the sample launchers: command lines (CLI11), latency percentiles and reliable
// host sends. JSON output goes through nlohmann-json.

#include <ringkernel/ringkernel.hpp>
#include <rk_cli.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace rk::samples {

//! The samples' command lines, on CLI11 (tools/cli/rk_cli.hpp): `--name N` counts, `--name value` choices
//! and `--flag` toggles. Unknown flags, missing values and bad numbers exit with status 2 and the usage
//! line; --help lists the options. Each adder returns the option, for `->description("what (default)")`.
class flags {
public:
  flags(std::string program, std::string usage)
      : app_("ringkernel sample", std::move(program)), usage_(std::move(usage)) {
    app_.footer("usage: " + app_.get_name() + " " + usage_ +
                "\n(see the comment at the top of the sample's source)");
  }

  //! `--name N` from `min` to `max`; an error names that range.
  CLI::Option* count(const std::string& name, std::uint64_t& target,
                     std::uint64_t max = std::numeric_limits<std::uint64_t>::max(), std::uint64_t min = 0) {
    return rk::cli::add_count(app_, name, target, "", max, min);
  }
  //! `--name value` where `apply` accepts the value (returns false for anything else); `values` names them
  //! in --help (e.g. "auto|cpu|cuda").
  CLI::Option* choice(const std::string& name, std::function<bool(const std::string&)> apply,
                      const std::string& values = "VALUE") {
    return app_
        .add_option_function<std::string>(name,
                                          [name, apply = std::move(apply)](const std::string& v) {
                                            if (!apply(v))
                                              throw CLI::ValidationError(name, "invalid value '" + v + "'");
                                          })
        ->type_name(values);
  }
  CLI::Option* toggle(const std::string& name, bool& target) { return app_.add_flag(name, target); }
  //! `--name FILE`: a non-empty path that does not begin with '-', in a directory that exists, naming a
  //! regular file or nothing yet (the samples write a trace or an audit log, which the library writes and
  //! verifies as regular files only). All checked now, not after the whole run the file is for.
  //! (`--trace --json` once wrote the trace to a file named "--json" and printed text where JSON was asked
  //! for.) A file whose name begins with '-' is given as ./-name.
  CLI::Option* file(const std::string& name, std::string& target) {
    return app_.add_option(name, target)
        ->check(CLI::Validator(
            [](const std::string& v) {
              if (v.empty()) return std::string("must not be empty");
              if (v.front() == '-')
                return "'" + v + "' looks like an option, not a file name (write ./" + v + " for a file)";
              const std::filesystem::path dir = std::filesystem::path(v).parent_path();
              std::error_code ec;
              if (!dir.empty() && !std::filesystem::is_directory(dir, ec))
                return "the directory '" + dir.string() + "' does not exist";
              const std::filesystem::file_status st = std::filesystem::status(v, ec);
              if (std::filesystem::exists(st) && !std::filesystem::is_regular_file(st))
                return "'" + v +
                       "' is not a regular file (a directory, device or FIFO); give a regular file " +
                       "or a new one";
              return std::string();
            },
            ""))
        ->type_name("FILE");
  }
  //! --backend auto|cpu|cuda
  CLI::Option* backend(rk::backend& target) {
    return choice(
               "--backend",
               [&target](const std::string& v) {
                 if (v == "auto")
                   target = rk::backend::automatic;
                 else if (v == "cpu")
                   target = rk::backend::cpu;
                 else if (v == "cuda")
                   target = rk::backend::cuda;
                 else
                   return false;
                 return true;
               },
               "auto|cpu|cuda")
        ->description("where the actors run (default auto: the GPU when one is usable, else the CPU backend; "
                      "the sample says which)");
  }

  void parse(int argc, char** argv) { rk::cli::parse(app_, argc, argv, usage_); }

  //! A problem found after parsing (e.g. two flags that do not go together): exits with status 2.
  [[noreturn]] void fail(const std::string& problem) const {
    rk::cli::usage_error(app_.get_name(), usage_, problem);
  }

private:
  CLI::App app_;
  std::string usage_;
};

//! Bytes of memory the kernel says are available now (MemAvailable in /proc/meminfo), or 0 if unknown.
inline std::uint64_t available_host_memory() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];
  unsigned long long kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
  std::fclose(f);
  return static_cast<std::uint64_t>(kib) * 1024;
}

//! Percentile (0..1) of sorted nanosecond samples, in microseconds.
inline double percentile_us(const std::vector<double>& sorted_ns, double p) {
  if (sorted_ns.empty()) return 0;
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted_ns.size() - 1) + 0.5);
  return sorted_ns[std::min(rank, sorted_ns.size() - 1)] / 1'000.0;
}

//! Sends, waiting (up to 30 s) while there is no room for another host message; any refusal, or
//! timed_out, is returned.
inline rk::status send_retrying(rk::runtime& rt, rk::address to, std::uint32_t type, rk::byte_view payload,
                                const rk::send_options& options = {}) {
  return rt.send_blocking(to, type, payload, std::chrono::seconds(30), options);
}

} // namespace rk::samples
