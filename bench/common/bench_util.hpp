#pragma once
// Shared benchmark plumbing: repetitions with median and spread, the machine's name, JSON escaping, and
// a common command line (--json, --smoke, --repetitions N).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace rk::bench {

struct summary {
  double median = 0;
  double min = 0;
  double max = 0;
};

inline summary summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  summary s;
  if (samples.empty()) return s;
  s.min = samples.front();
  s.max = samples.back();
  const std::size_t n = samples.size();
  s.median = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
  return s;
}

inline std::string json_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += c;
      }
    }
  }
  return out;
}

//! "AMD EPYC 7B13 (2 hardware threads)" from /proc/cpuinfo.
inline std::string cpu_description() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) model = line.substr(colon + 2);
      break;
    }
  }
  return model + " (" + std::to_string(std::max(1u, std::thread::hardware_concurrency())) +
         " hardware threads)";
}

struct common_args {
  bool json = false;
  bool smoke = false;
  int repetitions = 5;
};

//! Parses the flags every benchmark takes; unknown flags are an error (exit 2).
inline common_args parse_common(int argc, char** argv, const char* name) {
  common_args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      a.json = true;
    } else if (arg == "--smoke") {
      a.smoke = true;
      a.repetitions = 1;
    } else if (arg == "--repetitions" && i + 1 < argc) {
      a.repetitions = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s'\nusage: %s [--json] [--smoke] [--repetitions N]\n",
                   name, arg.c_str(), name);
      std::exit(2);
    }
  }
  return a;
}

} // namespace rk::bench
