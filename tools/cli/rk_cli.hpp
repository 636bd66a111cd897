#pragma once
// Command lines of the samples, benchmarks and tools: CLI11 (Debian's libcli11-dev) with the house rules.
//  - Counts are plain non-negative decimal integers within their type: CLI11 alone would read "-1" as
//    2^64 - 1 and clamp "18446744073709551616".
//  - Any error prints "<program>: <problem>" and the usage line to stderr and exits with status 2;
//    --help prints the options and exits 0.
//  - Standard output that could not be written (checked at exit) makes the program exit with status 1.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

namespace rk::cli {

//! `text` as a count no larger than `max`, or nullopt.
inline std::optional<std::uint64_t>
parse_count(const std::string& text, std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
  if (errno == ERANGE || v > max) return std::nullopt;
  return v;
}

namespace detail {
template <class T>
struct count_target {
  using type = T;
};
template <class T>
struct count_target<std::optional<T>> {
  using type = T;
};
} // namespace detail

//! Adds `--name N` storing into `target` (an unsigned integer, or a std::optional of one, set only when
//! given). Refuses anything but a decimal count that fits, counts above `max` (what the program can
//! hold: a count that sizes an allocation must not reach std::bad_alloc) and below `min` (a count that
//! must be positive says so instead of being quietly raised).
template <class Target>
CLI::Option* add_count(CLI::App& app, const std::string& name, Target& target, const std::string& help,
                       std::uint64_t max = std::numeric_limits<std::uint64_t>::max(), std::uint64_t min = 0) {
  using value_type = typename detail::count_target<Target>::type;
  static_assert(std::is_unsigned_v<value_type>, "counts are unsigned");
  const std::uint64_t limit = std::min<std::uint64_t>(max, std::numeric_limits<value_type>::max());
  return app
      .add_option_function<std::string>(
          name,
          [name, limit, min, &target](const std::string& text) {
            const auto v = parse_count(text, limit);
            if (!v || *v < min)
              throw CLI::ValidationError(name, "expected a count from " + std::to_string(min) + " to " +
                                                   std::to_string(limit) + ", got '" + text + "'");
            target = static_cast<value_type>(*v);
          },
          help)
      ->type_name("N");
}

namespace detail {
inline std::string& program_name() {
  static std::string name;
  return name;
}
//! At exit: output that could not be written (a full disk, a closed pipe) is an error, not a success.
inline void check_stdout_at_exit() {
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;
  const int why = errno;
  if (flushed && std::ferror(stdout) == 0) return;
  std::fprintf(stderr, "%s: writing the output failed%s%s\n", program_name().c_str(), why != 0 ? ": " : "",
               why != 0 ? std::strerror(why) : "");
  std::_Exit(1); // the exit status is the only report left; nothing after this may mask it
}
} // namespace detail

//! A problem with the command line: prints "<program>: <problem>" (unless `problem` is empty) and the usage
//! line to stderr, and exits with status 2. For problems found after parsing (flags that do not go
//! together, a value that does not fit another), so that they read as parse errors do.
[[noreturn]] inline void usage_error(const std::string& program, const std::string& usage,
                                     const std::string& problem) {
  if (!problem.empty()) std::fprintf(stderr, "%s: %s\n", program.c_str(), problem.c_str());
  std::fprintf(stderr, "usage: %s %s\n", program.c_str(), usage.c_str());
  std::exit(2);
}

//! Parses the command line; on any error prints the problem and `usage` and exits with status 2. Also
//! makes the program exit with status 1, saying so on stderr, when its standard output could not be
//! written (checked at exit).
inline void parse(CLI::App& app, int argc, char** argv, const std::string& usage) {
  detail::program_name() = app.get_name();
  static const bool checked_at_exit = std::atexit(detail::check_stdout_at_exit) == 0;
  (void)checked_at_exit;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    std::exit(0);
  } catch (const CLI::ParseError& e) {
    usage_error(app.get_name(), usage, e.what());
  }
}

} // namespace rk::cli
