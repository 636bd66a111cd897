// rk-top: a live view of a running libringkernel runtime from another process. It maps the snapshot the
// runtime publishes (runtime_options::publish_stats; layout in <ringkernel/host/stats_shm.hpp>) read-only
// and shows per handler type rates and queue depths, tenant usage, the busiest actors, the deepest
// mailboxes, stuck actors and audit losses, refreshing in place. `--once` prints one view, `--once --json`
// the snapshot as published (for scripts).
//
//   rk-top [--pid PID [--index K] | --name NAME] [--once] [--json] [--interval-ms N]
//
// Without --pid or --name it attaches to the only runtime publishing on this machine. The live view
// follows its name (a runtime destroyed and another started under the same name is shown) and says
// PROCESS GONE, RUNTIME DESTROYED, or NOT UPDATING when a "running" snapshot has not been rewritten for
// 5 intervals (2 s at least): a process killed without cleaning up whose pid was reused.

#include <ringkernel/host/detail/printable.hpp>
#include <ringkernel/host/stats_shm.hpp>
#include <rk_cli.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

constexpr int exit_ok = 0;
constexpr int exit_usage = 2;

std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) {
  interrupted.store(true);
}

//! Text from the snapshot (names are the application's, or anyone's who can write the object) as the
//! terminal may show it: control characters escaped, at most `limit` bytes.
std::string shown(const std::string& text, std::size_t limit = 4096) {
  std::string out = rk::detail::printable(text);
  if (out.size() > limit) out.resize(limit); // may cut an escape or a UTF-8 sequence: still nothing raw
  return out;
}

//! Deepest nesting of a snapshot rk-top reads: a runtime's nests 4 levels. Parsing is iterative, but writing
//! a document again recurses once per level (100,000 levels, 200 KB, overflowed the stack).
constexpr std::size_t deepest_nesting = 64;

//! How deeply `text` nests arrays and objects, counted without parsing (brackets inside strings skipped).
std::size_t nesting_depth(const std::string& text) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

//! Largest object taken for a snapshot: a runtime's is a header and 1 MiB (a sparse object of gigabytes
//! would otherwise be copied whole).
constexpr std::uint64_t largest_object = std::uint64_t{64} << 20;

//! Where a SIGBUS in a guarded copy returns to: the object under a mapping shrank (another process
//! truncated it), so the pages past its end are gone. rk-top reads on one thread.
sigjmp_buf* bus_error_return = nullptr;
extern "C" void on_bus_error(int signal) {
  if (bus_error_return != nullptr) siglongjmp(*bus_error_return, 1);
  std::signal(signal, SIG_DFL); // a SIGBUS outside a guarded copy is a bug: die of it
  std::raise(signal);
}

//! Runs `copy` (loads and memcpy from the mapping only: nothing that allocates or must be unwound);
//! false if the mapping's object shrank under it.
template <class Copy>
bool guarded(Copy&& copy) {
  sigjmp_buf here;
  if (sigsetjmp(here, 1) != 0) {
    bus_error_return = nullptr;
    return false;
  }
  bus_error_return = &here;
  copy();
  bus_error_return = nullptr;
  return true;
}

//! A read-only mapping of one published snapshot. Every read of it is a guarded copy: the publisher, or
//! anyone who may write the object, can truncate it while it is mapped.
class snapshot_source {
public:
  explicit snapshot_source(const std::string& name) : name_(name) {
    // Non-blocking: anyone may put a FIFO under a ringkernel.* name in /dev/shm, and opening it would wait.
    const int fd = ::shm_open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
    if (fd < 0) throw std::runtime_error("cannot open " + shown(name) + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<std::size_t>(st.st_size) < sizeof(rk::stats_shm_header)) {
      ::close(fd);
      throw std::runtime_error(shown(name) + " is not a ringkernel snapshot (too small)");
    }
    if (static_cast<std::uint64_t>(st.st_size) > largest_object) { // a runtime's is 1 MiB and a header
      ::close(fd);
      throw std::runtime_error(shown(name) + " is not a ringkernel snapshot (" + std::to_string(st.st_size) +
                               " bytes)");
    }
    bytes_ = static_cast<std::size_t>(st.st_size);
    device_ = st.st_dev;
    inode_ = st.st_ino;
    base_ = ::mmap(nullptr, bytes_, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (base_ == MAP_FAILED)
      throw std::runtime_error("cannot map " + shown(name) + ": " + std::strerror(errno));
    rk::stats_shm_header h{};
    if (!copy_header(h) || std::memcmp(h.magic, rk::stats_shm_magic, sizeof rk::stats_shm_magic) != 0 ||
        h.version != 1) {
      ::munmap(base_, bytes_);
      throw std::runtime_error(shown(name) + " is not a version-1 ringkernel snapshot");
    }
    text_.resize(bytes_ - sizeof(rk::stats_shm_header));
  }
  ~snapshot_source() { ::munmap(base_, bytes_); }
  snapshot_source(const snapshot_source&) = delete;
  snapshot_source& operator=(const snapshot_source&) = delete;

  //! A copy of the header (its words may change as it is copied: only the seqlock read below is whole).
  rk::stats_shm_header header() const {
    rk::stats_shm_header h{};
    if (!copy_header(h)) throw shrank();
    return h;
  }

  enum class under_its_name { same, replaced, removed };
  //! What the name refers to now: this object, another one (a runtime destroyed and another started
  //! under the same name), or nothing (the runtime was destroyed).
  under_its_name now() const {
    const int fd = ::shm_open(name_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0); // a FIFO: see above
    if (fd < 0) return errno == ENOENT ? under_its_name::removed : under_its_name::same;
    struct stat st {};
    const bool same = ::fstat(fd, &st) != 0 || (st.st_dev == device_ && st.st_ino == inode_);
    ::close(fd);
    return same ? under_its_name::same : under_its_name::replaced;
  }

  //! The JSON text of a consistent snapshot (seqlock), or nullopt when none could be read in 1,000 tries.
  std::optional<std::string> read() const {
    auto* mapped = static_cast<rk::stats_shm_header*>(base_);
    const std::atomic_ref<std::uint64_t> sequence(mapped->sequence);
    const std::uint64_t capacity = text_.size();
    for (int attempt = 0; attempt < 1000; ++attempt) {
      std::uint64_t before = 0, after = 0, length = 0;
      if (!guarded([&] {
            before = sequence.load(std::memory_order_acquire);
            if (before == 0 || (before & 1) != 0) return; // nothing yet, or being written
            length = std::min<std::uint64_t>(mapped->length, capacity);
            std::memcpy(text_.data(), reinterpret_cast<const char*>(mapped + 1), length);
            after = sequence.load(std::memory_order_acquire);
          }))
        throw shrank();
      if (before != 0 && (before & 1) == 0 && after == before) return std::string(text_.data(), length);
      std::this_thread::yield();
    }
    return std::nullopt;
  }

private:
  //! False when the object shrank under the mapping.
  bool copy_header(rk::stats_shm_header& h) const {
    return guarded([&] { std::memcpy(&h, base_, sizeof h); });
  }
  std::runtime_error shrank() const {
    return std::runtime_error(shown(name_) +
                              " shrank while it was read (truncated by another process): not a "
                              "snapshot a runtime publishes");
  }

  std::string name_;
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  mutable std::vector<char> text_; //!< the copy's buffer, allocated outside the guarded copies
};

//! A running runtime rewrites its snapshot every interval_ns; one that has not for this long is not
//! running any more, whatever the snapshot says (a process killed without cleaning up, whose pid now
//! belongs to another process).
bool stale(const rk::stats_shm_header& h, std::uint64_t& age_ns) {
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  age_ns = now > 0 && static_cast<std::uint64_t>(now) > h.published_ns
               ? static_cast<std::uint64_t>(now) - h.published_ns
               : 0;
  const std::uint64_t patience = std::max<std::uint64_t>(5 * h.interval_ns, 2'000'000'000ull);
  return age_ns > patience;
}

//! Every snapshot name in /dev/shm.
std::vector<std::string> published() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec))
    if (const std::string f = entry.path().filename().string();
        f.starts_with("ringkernel.") && entry.is_regular_file(ec))
      names.push_back("/" + f);
  return names;
}

//! Whether process `pid` still runs. kill(0, ...) would ask about our own process group: a snapshot
//! naming pid 0 has no live owner.
bool process_alive(pid_t pid) {
  return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
}

//! Whether a publisher holds snapshot `name` open: runtimes keep a shared flock on it while it exists,
//! which holds across PID namespaces (a container sharing /dev/shm), where kill() cannot see the process.
bool held_by_publisher(const std::string& name) {
  const int fd = ::shm_open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0) return errno != ENOENT; // unreadable: assume held
  const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
  ::close(fd); // also lets go of the lock taken to look
  return held;
}

//! The publisher's pid when snapshot `name` was left by a publisher that is gone: no process holds it
//! (held_by_publisher), and its pid names no process here either (a publisher of an older version holds
//! no lock). Throws when `name` is not a snapshot it can read.
std::optional<pid_t> gone_publisher(const std::string& name) {
  const auto owner = static_cast<pid_t>(snapshot_source(name).header().pid);
  if (process_alive(owner) || held_by_publisher(name)) return std::nullopt;
  return owner;
}

//! " (process gone: rk-top --clean removes it)" for a snapshot whose publisher is gone, else "".
const char* gone_note(const std::string& name) {
  try {
    if (gone_publisher(name)) return " (process gone: rk-top --clean removes it)";
  } catch (const std::exception&) {
  }
  return "";
}

//! The pid a snapshot's name gives ("/ringkernel.<pid>.<k>", stats_shm_name), if it has that form.
std::optional<pid_t> pid_in_name(const std::string& name) {
  unsigned pid = 0, index = 0;
  int end = 0;
  if (std::sscanf(name.c_str(), "/ringkernel.%u.%u%n", &pid, &index, &end) != 2 ||
      static_cast<std::size_t>(end) != name.size() || rk::stats_shm_name(pid, index) != name)
    return std::nullopt;
  return static_cast<pid_t>(pid);
}

//! The pid in `name` when it is an object shorter than a snapshot's header under a snapshot's name, left
//! by a process that is gone: one truncated after its publisher died (a live publisher gives a truncated
//! object its size back).
std::optional<pid_t> gone_and_truncated(const std::string& name) {
  const std::optional<pid_t> owner = pid_in_name(name);
  if (!owner || process_alive(*owner) || held_by_publisher(name)) return std::nullopt;
  const int fd = ::shm_open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  const bool truncated = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                         static_cast<std::uint64_t>(st.st_size) < sizeof(rk::stats_shm_header);
  ::close(fd);
  return truncated ? owner : std::nullopt;
}

//! --clean: removes the snapshots whose publishing process is gone (left by a process that crashed or
//! was killed), also those truncated since. Live owners' snapshots and files that are not snapshots are
//! left alone.
int clean() {
  int failed = 0;
  std::size_t removed = 0;
  for (const std::string& name : published()) {
    std::optional<pid_t> owner;
    try {
      owner = gone_publisher(name);
    } catch (const std::exception&) { // not a snapshot, or not ours to read: not ours to remove
      owner = gone_and_truncated(name);
    }
    if (!owner) continue;
    if (::shm_unlink(name.c_str()) == 0) {
      std::printf("removed %s (process %d is gone)\n", shown(name).c_str(), static_cast<int>(*owner));
      ++removed;
    } else if (errno != ENOENT) { // ENOENT: removed by someone else meanwhile
      std::fprintf(stderr, "rk-top: cannot remove %s: %s\n", shown(name).c_str(), std::strerror(errno));
      failed = 1;
    }
  }
  if (removed == 0 && failed == 0) std::printf("no snapshot of a gone process\n");
  return failed != 0 ? exit_usage : exit_ok;
}

std::string number(double v, int decimals = 1) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
  return buffer;
}

//! The screen for one snapshot. A snapshot without a field this view shows (a runtime of another version,
//! or a file that is not a snapshot) throws nlohmann::json::exception naming the field.
//! `condition`, when not empty, replaces the state the snapshot itself claims (running, stopped, faulted).
std::string view(const nlohmann::json& s, const std::string& name, const std::string& condition) {
  if (s.contains("error"))
    return "rk-top: " + shown(name) + ": the runtime says: " + shown(s.at("error").get<std::string>(), 500) +
           "\n";
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "ringkernel %s  pid %lld  %s backend (%s)  %s  up %s s  audit lost %llu\n",
                shown(name).c_str(), s.value("pid", 0LL), shown(s.value("backend", std::string("?"))).c_str(),
                shown(s.value("backend_description", std::string())).c_str(),
                !condition.empty()          ? condition.c_str()
                : s.value("faulted", false) ? "FAULTED"
                : s.value("running", false) ? "running"
                                            : "stopped",
                number(s.value("uptime_seconds", 0.0)).c_str(),
                static_cast<unsigned long long>(s.at("audit").value("records_lost", 0ULL)));
  out += line;
  std::snprintf(line, sizeof line, "\n%-24s %8s %12s %10s %14s %14s %10s %7s\n", "HANDLER", "ACTORS",
                "HANDLED/s", "QUEUED", "HANDLED", "DELIVERED", "REFUSED", "FAULTS");
  out += line;
  for (const auto& h : s.at("handler_types")) {
    std::snprintf(line, sizeof line, "%-24.24s %8llu %12s %10llu %14llu %14llu %10llu %7llu\n",
                  shown(h.at("handler").get<std::string>()).c_str(), h.at("actors").get<unsigned long long>(),
                  number(h.at("handled_per_s").get<double>()).c_str(),
                  h.at("queued").get<unsigned long long>(), h.at("handled").get<unsigned long long>(),
                  h.at("sent_delivered").get<unsigned long long>(),
                  h.at("sent_refused").get<unsigned long long>(), h.at("faults").get<unsigned long long>());
    out += line;
  }
  std::snprintf(line, sizeof line, "\n%-10s %8s %14s %10s %10s %14s\n", "TENANT", "ACTORS", "SENT",
                "RATE-REJ", "BUDGET-REJ", "DEVICE-BYTES");
  out += line;
  for (const auto& t : s.at("tenants")) {
    std::snprintf(
        line, sizeof line, "%-10llu %8llu %14llu %10llu %10llu %14llu\n",
        t.at("tenant").get<unsigned long long>(), t.at("actors").get<unsigned long long>(),
        t.at("messages_sent").get<unsigned long long>(), t.at("rate_rejections").get<unsigned long long>(),
        t.at("budget_rejections").get<unsigned long long>(), t.at("device_bytes").get<unsigned long long>());
    out += line;
  }
  const auto actors = [&](const char* title, const nlohmann::json& list) {
    out += std::string("\n") + title + "\n";
    if (list.empty()) out += "  (none)\n";
    for (const auto& a : list) {
      std::snprintf(line, sizeof line, "  %-28.28s id %-10llu %-16.16s %12s/s  queued %-8llu %s\n",
                    shown(a.at("name").get<std::string>()).c_str(), a.at("id").get<unsigned long long>(),
                    shown(a.at("handler").get<std::string>()).c_str(),
                    number(a.at("handled_per_s").get<double>()).c_str(),
                    a.at("queued").get<unsigned long long>(),
                    shown(a.at("lifecycle").get<std::string>()).c_str());
      out += line;
    }
  };
  actors("BUSIEST ACTORS (handled per second)", s.at("busiest"));
  actors("DEEPEST MAILBOXES", s.at("deepest"));
  out += "\nSTUCK (watchdog):";
  if (s.at("stuck").empty()) out += " none";
  for (const auto& n : s.at("stuck")) out += "\n  " + shown(n.get<std::string>(), 200);
  out += '\n';
  return out;
}

} // namespace

int main(int argc, char** argv) {
  std::optional<std::uint32_t> pid;
  std::uint32_t index = 0;
  std::string name;
  bool once = false, json = false, remove_gone = false;
  std::uint32_t interval_ms = 500;
  CLI::App app("A live view of a running libringkernel runtime (runtime_options::publish_stats).", "rk-top");
  CLI::Option* pid_option = rk::cli::add_count(app, "--pid", pid, "the process that runs the runtime");
  rk::cli::add_count(app, "--index", index, "with --pid: which of its publishing runtimes (default 0)")
      ->needs(pid_option); // alone it would pick nothing
  app.add_option("--name", name, "the shared-memory name, e.g. /ringkernel.1234.0");
  app.add_flag("--once", once, "print one view and exit");
  app.add_flag("--json", json, "with --once: the snapshot as published (JSON)");
  app.add_flag("--clean", remove_gone,
               "remove the snapshots of processes that are gone (crashed or killed) and exit");
  rk::cli::add_count(app, "--interval-ms", interval_ms, "refresh period of the live view (default 500)")
      ->check(CLI::Range(10u, 60'000u));
  const std::string usage =
      "[--pid PID [--index K] | --name NAME] [--once] [--json] [--interval-ms N] | --clean";
  rk::cli::parse(app, argc, argv, usage);
  // Every read of a mapped snapshot is guarded (snapshot_source): a truncated object is an error.
  struct sigaction bus_error {};
  bus_error.sa_handler = on_bus_error;
  sigemptyset(&bus_error.sa_mask);
  ::sigaction(SIGBUS, &bus_error, nullptr);
  if (remove_gone) {
    // Options CLI11 accepted that do not go together: refused as the parser refuses, with the usage line.
    if (pid || !name.empty() || once || json)
      rk::cli::usage_error(app.get_name(), usage,
                           "--clean takes no other option (it looks at every snapshot)");
    return clean();
  }
  if (json && !once)
    rk::cli::usage_error(app.get_name(), usage, "--json needs --once (the live view is for people)");
  if (pid && !name.empty()) rk::cli::usage_error(app.get_name(), usage, "give --pid or --name, not both");
  if (pid) name = rk::stats_shm_name(*pid, index);
  if (name.empty()) {
    const std::vector<std::string> all = published();
    if (all.size() != 1) {
      std::fprintf(stderr, "rk-top: %s; choose one with --pid or --name\n",
                   all.empty() ? "no runtime publishes its counters here (runtime_options::publish_stats)"
                               : "several runtimes publish here");
      for (const std::string& n : all) std::fprintf(stderr, "  %s%s\n", shown(n).c_str(), gone_note(n));
      return exit_usage;
    }
    name = all.front();
  }
  try {
    auto source = std::make_unique<snapshot_source>(name);
    bool removed = false;
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    for (;;) {
      // The live view follows its name: a runtime destroyed and another started under it is shown.
      if (!once) {
        const snapshot_source::under_its_name now = source->now();
        if (now == snapshot_source::under_its_name::replaced) {
          try {
            source = std::make_unique<snapshot_source>(name);
            removed = false;
          } catch (const std::exception&) { // being created: its header comes next time
          }
        } else {
          removed = now == snapshot_source::under_its_name::removed;
        }
      }
      const std::optional<std::string> text = source->read();
      const bool alive = process_alive(static_cast<pid_t>(source->header().pid)) || held_by_publisher(name);
      if (text && nesting_depth(*text) > deepest_nesting)
        throw std::runtime_error(shown(name) +
                                 " does not hold a snapshot this rk-top reads (its JSON nests " +
                                 std::to_string(nesting_depth(*text)) + " levels deep; a snapshot nests " +
                                 "at most " + std::to_string(deepest_nesting) + ")");
      if (!text) {
        // A publisher that is gone stopped in the middle of a write (or never finished one): no snapshot
        // will come. A live one is between writes of a large snapshot, or just started.
        const std::string why = alive ? shown(name) + " has no complete snapshot yet"
                                      : shown(name) +
                                            " has no complete snapshot, and its process is gone (it " +
                                            "stopped while writing one; rk-top --clean removes it)";
        if (once) {
          std::fprintf(stderr, "rk-top: %s\n", why.c_str());
          return exit_usage;
        }
        std::printf("\x1b[H\x1b[J%s\n", why.c_str());
        std::fflush(stdout);
      } else if (once && json) {
        // Checked to be JSON. Passed through as published unless it holds bytes a terminal acts on
        // (JSON escapes C0 controls in strings, but may carry DEL and C1 controls raw): then written
        // again with every non-ASCII character escaped, the same document.
        nlohmann::json document;
        try {
          document = nlohmann::json::parse(*text);
        } catch (const nlohmann::json::exception&) {
          std::fprintf(stderr, "rk-top: %s does not hold JSON text\n", shown(name).c_str());
          return exit_usage;
        }
        const bool terminal_controls = [&] {
          for (std::size_t i = 0; i < text->size(); ++i) {
            const auto c = static_cast<unsigned char>((*text)[i]);
            if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) return true;
            if (c == 0xc2 && i + 1 < text->size() && static_cast<unsigned char>((*text)[i + 1]) <= 0x9f)
              return true;
          }
          return false;
        }();
        // A snapshot saying "error" (the runtime could not say: too large, a device fault) is printed as
        // it is, and the exit status says so, as without --json.
        const int status = document.is_object() && document.contains("error") ? exit_usage : exit_ok;
        if (terminal_controls) {
          std::string tamed = document.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
          std::printf("%s\n", tamed.c_str());
          return status;
        }
        std::printf("%s\n", text->c_str());
        return status;
      } else {
        std::string screen;
        bool failed = false;
        try {
          const nlohmann::json snapshot = nlohmann::json::parse(*text);
          std::uint64_t age_ns = 0;
          std::string condition;
          if (!alive) {
            condition = "PROCESS GONE";
          } else if (removed) {
            condition = "RUNTIME DESTROYED";
          } else if (snapshot.value("running", false) && stale(source->header(), age_ns)) {
            condition = "NOT UPDATING for " + number(static_cast<double>(age_ns) / 1e9, 0) + " s";
          }
          screen = view(snapshot, name, condition);
          failed = snapshot.contains("error"); // the runtime could not say (too large, a device fault)
        } catch (const nlohmann::json::exception& e) {
          throw std::runtime_error(shown(name) + " does not hold a snapshot this rk-top reads (" +
                                   shown(e.what(), 500) + ")");
        }
        if (once) {
          std::fputs(screen.c_str(), failed ? stderr : stdout);
          return failed ? exit_usage : exit_ok;
        }
        std::printf("\x1b[H\x1b[J%s", screen.c_str()); // home, clear, redraw
        std::fflush(stdout);
      }
      // The refresh period paces a display for people; nothing waits on it.
      for (std::uint32_t waited = 0; waited < interval_ms && !interrupted.load(); waited += 10)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (interrupted.load()) return exit_ok;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rk-top: %s\n", shown(e.what(), 2000).c_str());
    return exit_usage;
  }
}
