// The rk-top publisher (see stats_publisher.hpp).

#include "stats_publisher.hpp"

#include <ringkernel/host/detail/thread_start.hpp>
#include <ringkernel/host/error.hpp>
#include <ringkernel/host/stats_shm.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csetjmp>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rk::detail {

namespace {

constexpr std::size_t snapshot_capacity = std::size_t{1} << 20; // a snapshot is a few KiB: ample
constexpr std::size_t top_actors = 10;
//! What a snapshot shows of a name, and of how many tenants and stuck actors: bounds that keep it far
//! under snapshot_capacity whatever the names and tables hold (one name of 120,000 bytes, or 12,000
//! tenants, made it too large, and the snapshot then showed nothing).
constexpr std::size_t shown_name_bytes = 256;
constexpr std::size_t shown_tenants = 256;
constexpr std::size_t shown_stuck = 64;

//! `name`, cut to shown_name_bytes (a cut UTF-8 sequence is written as U+FFFD by the dump) with "...".
std::string shown_name(const std::string& name) {
  return name.size() <= shown_name_bytes ? name : name.substr(0, shown_name_bytes) + "...";
}

std::uint64_t unix_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

//! Where a SIGBUS during a write to a snapshot object returns to, per thread (null: not writing one).
//! initial-exec: reading it in the handler must not make the C library allocate the thread's TLS.
__attribute__((tls_model("initial-exec"))) thread_local sigjmp_buf* bus_error_return = nullptr;
struct sigaction previous_bus_action {};
std::once_flag bus_handler_installed;

//! A SIGBUS in a guarded write: the object under the mapping shrank (any process of the runtime's user
//! may truncate it), so the pages past its end are gone. Any other SIGBUS goes where it went before.
extern "C" void on_bus_error(int signal, siginfo_t* info, void* context) {
  if (sigjmp_buf* back = bus_error_return) siglongjmp(*back, 1);
  const struct sigaction& was = previous_bus_action;
  if ((was.sa_flags & SA_SIGINFO) != 0 && was.sa_sigaction != nullptr) {
    was.sa_sigaction(signal, info, context);
    return;
  }
  if ((was.sa_flags & SA_SIGINFO) == 0 && was.sa_handler != SIG_DFL && was.sa_handler != SIG_IGN) {
    was.sa_handler(signal);
    return;
  }
  ::sigaction(SIGBUS, &was, nullptr);
  // A fault repeats its access on return, now under the previous action (by default, death); a signal
  // sent by a process is sent again.
  if (info == nullptr || info->si_code <= 0) ::raise(signal);
}

void install_bus_handler() {
  std::call_once(bus_handler_installed, [] {
    struct sigaction a {};
    a.sa_sigaction = on_bus_error;
    a.sa_flags = SA_SIGINFO;
    sigemptyset(&a.sa_mask);
    ::sigaction(SIGBUS, &a, &previous_bus_action);
  });
}

//! Runs `write` (stores into the mapping only: nothing that allocates or must be unwound); false when the
//! object shrank under it.
template <class Write>
bool guarded(Write&& write) noexcept {
  sigjmp_buf here;
  if (sigsetjmp(here, 1) != 0) {
    bus_error_return = nullptr;
    return false;
  }
  bus_error_return = &here;
  write();
  bus_error_return = nullptr;
  return true;
}

std::uint64_t refused(const status_counts& sent) {
  std::uint64_t n = 0;
  for (std::size_t k = 0; k < status_count; ++k)
    if (static_cast<status>(k) != status::delivered) n += sent[k];
  return n;
}

} // namespace

stats_publisher::stats_publisher(sources from, std::chrono::milliseconds interval)
    : from_(std::move(from)), interval_(interval) {
  const auto pid = static_cast<std::uint32_t>(::getpid());
  int fd = -1;
  for (std::uint32_t index = 0; index < 1024 && fd < 0; ++index) {
    name_ = stats_shm_name(pid, index);
    fd = ::shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST)
      throw error("start(): publish_stats: shm_open(" + name_ + ") failed: " + std::strerror(errno));
  }
  if (fd < 0)
    throw error(
        "start(): publish_stats: the names " + stats_shm_name(pid, 0) + " .. " + stats_shm_name(pid, 1023) +
        " are all taken: 1024 runtimes of this process publish already, or objects under those names were "
        "left by a gone process with this pid or made by another program (remove those in /dev/shm)");
  mapped_bytes_ = sizeof(stats_shm_header) + snapshot_capacity;
  void* p = MAP_FAILED;
  if (::ftruncate(fd, static_cast<off_t>(mapped_bytes_)) == 0)
    p = ::mmap(nullptr, mapped_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int saved = errno;
  if (p == MAP_FAILED) {
    ::close(fd);
    ::shm_unlink(name_.c_str());
    throw error("start(): publish_stats: cannot size or map " + name_ + ": " + std::strerror(saved));
  }
  // Held while the object exists: `rk-top --clean` removes only snapshots nobody holds locked, which
  // tells a live publisher in another PID namespace (a container sharing /dev/shm) from a crashed one.
  (void)::flock(fd, LOCK_SH | LOCK_NB);
  lock_fd_ = fd;
  mapping_ = p;
  pid_ = pid;
  install_bus_handler();
  (void)write_snapshot(nullptr); // the header: readers see "no complete snapshot yet" until the first
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    ::munmap(mapping_, mapped_bytes_);
    ::shm_unlink(name_.c_str());
    ::close(lock_fd_);
    throw thread_start_error("start(): publish_stats's thread", e);
  }
}

stats_publisher::~stats_publisher() {
  stop();
  ::munmap(mapping_, mapped_bytes_);
  ::shm_unlink(name_.c_str());
  ::close(lock_fd_); // after the unlink: never an unlocked moment under the name
}

void stats_publisher::stop() noexcept {
  {
    std::lock_guard lock(mutex_);
    if (stop_requested_ && !thread_.joinable()) return;
    stop_requested_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void stats_publisher::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    lock.unlock();
    publish();
    lock.lock();
    if (stop_requested_) return; // the last snapshot is the one just written
    // A timed wait on the stop request: the interval is the publishing rate, not synchronisation.
    wake_.wait_for(lock, interval_, [this] { return stop_requested_; });
  }
}

void stats_publisher::publish() noexcept {
  std::string text;
  try {
    text = snapshot_json();
  } catch (const std::exception& e) { // e.g. a device fault while reading: say so in the snapshot
    text = nlohmann::json({{"format", "ringkernel-top/1"}, {"error", e.what()}}).dump();
  }
  if (text.size() > snapshot_capacity) text = R"({"format":"ringkernel-top/1","error":"snapshot too large"})";
  (void)write_snapshot(&text);
}

namespace {
//! One write of the object under the seqlock (`text` null: the header only). Not instrumented by
//! ThreadSanitizer, and the seqlock word is written with builtins, not std::atomic_ref, for the same
//! reason: its atomics take a lock of its own around the access, and a SIGBUS unwound from inside one
//! (guarded) left that lock held, so the next write deadlocked. In this process only the publisher's
//! thread touches the mapping; the readers are other processes.
__attribute__((no_sanitize("thread"))) void write_object(void* mapping, const stats_shm_header& fields,
                                                         const std::string* text, std::uint64_t sequence) {
  auto* h = static_cast<stats_shm_header*>(mapping);
  // Odd while writing; the acquire half keeps the writes below after it.
  if (text != nullptr) (void)__atomic_exchange_n(&h->sequence, sequence + 1, __ATOMIC_ACQ_REL);
  std::memcpy(h->magic, stats_shm_magic, sizeof h->magic); // again every time: a truncation zeroes it
  h->version = fields.version;
  h->pid = fields.pid;
  h->capacity = fields.capacity;
  h->interval_ns = fields.interval_ns;
  if (text == nullptr) return;
  std::memcpy(static_cast<char*>(mapping) + sizeof(stats_shm_header), text->data(), text->size());
  h->length = text->size();
  h->published_ns = fields.published_ns;
  __atomic_store_n(&h->sequence, sequence + 2, __ATOMIC_RELEASE); // even: complete
}
} // namespace

bool stats_publisher::write_snapshot(const std::string* text) noexcept {
  stats_shm_header fields{};
  fields.version = 1;
  fields.pid = pid_;
  fields.capacity = snapshot_capacity;
  fields.interval_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(interval_).count());
  fields.published_ns = unix_ns();
  // Cut to a size inside the first page, the object raises no SIGBUS on a write there (the page stays),
  // yet readers see only its new size: its size back first, whenever it shrank.
  struct stat object {};
  if (::fstat(lock_fd_, &object) == 0 && object.st_size < static_cast<off_t>(mapped_bytes_) &&
      ::ftruncate(lock_fd_, static_cast<off_t>(mapped_bytes_)) != 0)
    return false;
  // Twice at most: a process that keeps truncating the object costs this interval's snapshot, nothing more.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (guarded([&] { write_object(mapping_, fields, text, sequence_); })) {
      if (text != nullptr) sequence_ += 2;
      return true;
    }
    // The object shrank: its size back (the pages come back zeroed), then everything is written again.
    if (::ftruncate(lock_fd_, static_cast<off_t>(mapped_bytes_)) != 0) return false;
  }
  return false;
}

std::string stats_publisher::snapshot_json() {
  const metrics_reading r = from_.read();
  const auto now = std::chrono::steady_clock::now();
  const double seconds = previous_at_ == std::chrono::steady_clock::time_point{}
                             ? 0.0
                             : std::chrono::duration<double>(now - previous_at_).count();
  const auto rate = [&](std::uint64_t current, std::uint64_t previous) {
    return seconds > 0 && current >= previous ? static_cast<double>(current - previous) / seconds : 0.0;
  };

  struct actor_row {
    const actor_stats* a;
    double per_s;
  };
  std::map<actor_index, std::uint64_t> by_actor;
  std::vector<actor_row> rows;
  for (const actor_stats& a : r.stats.actors) {
    if (a.lifecycle == actor_lifecycle::alias) continue;
    by_actor[a.id] = a.handled;
    const auto it = previous_by_actor_.find(a.id);
    rows.push_back({&a, rate(a.handled, it == previous_by_actor_.end() ? a.handled : it->second)});
  }
  nlohmann::json doc;
  doc["format"] = "ringkernel-top/1";
  doc["pid"] = ::getpid();
  doc["backend"] = r.backend;
  doc["backend_description"] = r.backend_description;
  doc["running"] = r.running;
  doc["faulted"] = r.faulted;
  doc["uptime_seconds"] = r.uptime_seconds;
  doc["rate_window_seconds"] = seconds;
  nlohmann::json hs = nlohmann::json::array();
  std::map<std::string, std::uint64_t> by_handler;
  for (const auto& [name, t] : group(r, false).by_handler) {
    const actor_stats& h = t.sums;
    by_handler[name] = h.handled;
    const auto it = previous_by_handler_.find(name);
    std::uint64_t faults = 0;
    if (const auto f = r.faults.by_handler.find(name); f != r.faults.by_handler.end())
      for (std::uint64_t n : f->second) faults += n;
    hs.push_back(
        {{"handler", shown_name(name)},
         {"actors", t.actors},
         {"received", h.received},
         {"handled", h.handled},
         {"handled_per_s", rate(h.handled, it == previous_by_handler_.end() ? h.handled : it->second)},
         {"queued", h.queued()},
         {"sent_delivered", h.sent[static_cast<std::size_t>(status::delivered)]},
         {"sent_refused", refused(h.sent)},
         {"faults", faults}});
  }
  doc["handler_types"] = std::move(hs);
  // All tenants in their order, or, when there are more than a view shows, those that sent most.
  std::vector<const tenant_usage*> tenants;
  for (const tenant_usage& u : r.tenants) tenants.push_back(&u);
  if (tenants.size() > shown_tenants) {
    std::partial_sort(
        tenants.begin(), tenants.begin() + static_cast<std::ptrdiff_t>(shown_tenants), tenants.end(),
        [](const tenant_usage* x, const tenant_usage* y) { return x->messages_sent > y->messages_sent; });
    tenants.resize(shown_tenants);
    std::sort(tenants.begin(), tenants.end(),
              [](const tenant_usage* x, const tenant_usage* y) { return x->tenant < y->tenant; });
  }
  nlohmann::json ts = nlohmann::json::array();
  for (const tenant_usage* u : tenants)
    ts.push_back({{"tenant", u->tenant},
                  {"actors", u->actors},
                  {"device_bytes", u->device_bytes},
                  {"messages_sent", u->messages_sent},
                  {"rate_rejections", u->rate_rejections},
                  {"budget_rejections", u->budget_rejections}});
  doc["tenants"] = std::move(ts);
  doc["tenants_total"] = r.tenants.size();
  const auto actor_json = [](const actor_row& row) {
    return nlohmann::json({{"id", row.a->id},
                           {"name", shown_name(row.a->name)},
                           {"handler", shown_name(row.a->handler)},
                           {"handled_per_s", row.per_s},
                           {"queued", row.a->queued()},
                           {"lifecycle", to_string(row.a->lifecycle)}});
  };
  const std::size_t top = std::min(rows.size(), top_actors);
  std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(top), rows.end(),
                    [](const actor_row& x, const actor_row& y) { return x.per_s > y.per_s; });
  nlohmann::json busiest = nlohmann::json::array();
  for (std::size_t i = 0; i < top; ++i) busiest.push_back(actor_json(rows[i]));
  doc["busiest"] = std::move(busiest);
  std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(top), rows.end(),
                    [](const actor_row& x, const actor_row& y) { return x.a->queued() > y.a->queued(); });
  nlohmann::json deepest = nlohmann::json::array();
  for (std::size_t i = 0; i < top && rows[i].a->queued() > 0; ++i) deepest.push_back(actor_json(rows[i]));
  doc["deepest"] = std::move(deepest);
  nlohmann::json stuck = nlohmann::json::array();
  for (const std::string& name : from_.stuck())
    if (stuck.size() < shown_stuck) stuck.push_back(shown_name(name));
  doc["stuck"] = std::move(stuck);
  doc["audit"] = {{"entries", r.audit.entries},
                  {"records_lost", r.audit.records_lost},
                  {"sink_failures", r.audit.sink_failures}};
  previous_at_ = now;
  previous_by_handler_ = std::move(by_handler);
  previous_by_actor_ = std::move(by_actor);
  // Names given at setup are checked to be UTF-8; other text (a handler type's own name) that is not is
  // written with U+FFFD in place of the bad bytes instead of throwing.
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace rk::detail
