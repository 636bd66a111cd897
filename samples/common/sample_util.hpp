#pragma once
// Small helpers shared by the sample launchers: a flag parser with clear errors, latency percentiles,
// JSON string escaping, and reliable host sends.

#include <ringkernel/ringkernel.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace rk::samples {

//! `--name value` and `--flag` parsing. Unknown flags, missing values and bad numbers exit with status 2
//! and the usage line.
class flags {
public:
  flags(std::string program, std::string usage) : program_(std::move(program)), usage_(std::move(usage)) {}

  void count(const std::string& name, std::uint64_t& target) { counts_[name] = &target; }
  void choice(const std::string& name, std::function<bool(const std::string&)> apply) {
    choices_[name] = std::move(apply);
  }
  void toggle(const std::string& name, bool& target) { toggles_[name] = &target; }
  //! --backend auto|cpu|cuda
  void backend(rk::backend& target) {
    choice("--backend", [&target](const std::string& v) {
      if (v == "auto")
        target = rk::backend::automatic;
      else if (v == "cpu")
        target = rk::backend::cpu;
      else if (v == "cuda")
        target = rk::backend::cuda;
      else
        return false;
      return true;
    });
  }

  void parse(int argc, char** argv) const {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") fail("");
      if (const auto t = toggles_.find(arg); t != toggles_.end()) {
        *t->second = true;
        continue;
      }
      if (i + 1 >= argc) fail(arg + " needs a value");
      const std::string value = argv[++i];
      if (const auto c = counts_.find(arg); c != counts_.end()) {
        char* end = nullptr;
        const unsigned long long v = std::strtoull(value.c_str(), &end, 10);
        if (end == value.c_str() || *end != '\0') fail("invalid number for " + arg + ": " + value);
        *c->second = v;
      } else if (const auto ch = choices_.find(arg); ch != choices_.end()) {
        if (!ch->second(value)) fail("invalid value for " + arg + ": " + value);
      } else {
        fail("unknown argument " + arg);
      }
    }
  }

  [[noreturn]] void fail(const std::string& problem) const {
    if (!problem.empty()) std::fprintf(stderr, "%s: %s\n", program_.c_str(), problem.c_str());
    std::fprintf(stderr, "usage: %s %s\n", program_.c_str(), usage_.c_str());
    std::exit(2);
  }

private:
  std::string program_, usage_;
  std::map<std::string, std::uint64_t*> counts_;
  std::map<std::string, std::function<bool(const std::string&)>> choices_;
  std::map<std::string, bool*> toggles_;
};

//! Percentile (0..1) of sorted nanosecond samples, in microseconds.
inline double percentile_us(const std::vector<double>& sorted_ns, double p) {
  if (sorted_ns.empty()) return 0;
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted_ns.size() - 1) + 0.5);
  return sorted_ns[std::min(rank, sorted_ns.size() - 1)] / 1'000.0;
}

inline std::string json_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}

//! Sends, waiting (up to 30 s) while there is no room for another host message; any refusal, or
//! timed_out, is returned.
inline rk::status send_retrying(rk::runtime& rt, rk::address to, std::uint32_t type, rk::byte_view payload,
                                const rk::send_options& options = {}) {
  return rt.send_blocking(to, type, payload, std::chrono::seconds(30), options);
}

} // namespace rk::samples
