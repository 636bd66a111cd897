// snapshot_all() and restore() on the CPU backend: states and options round-trip into a new runtime, and
// every mismatch (handler type, state size, damaged or foreign file, tenant, name, phase) is refused with
// nothing restored. Copies of one running actor: test_snapshot.cpp.
#include "snapshot_test_support.hpp"

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using namespace rk_snapshot_test;

//! Same name as `counter`, another state type: a handler whose state changed between releases.
struct counter_v2 {
  static constexpr const char* name = "counter";
  struct state {
    std::uint64_t count = 0, sum = 0, extra = 0;
  };
  template <class Ctx>
  void operator()(Ctx&, state& s, const rk::message&) {
    ++s.count;
  }
};

TEST(Snapshot, SnapshotAllAndRestoreRoundTripStatesAndOptions) {
  const std::filesystem::path file = temp_file("round_trip");
  counter::state c1_state, c2_state;
  {
    rk::runtime rt(cpu_options());
    rt.tenants().add(3, rk::tenant_quota::standard());
    rk::actor_options big;
    big.mailbox = {64, 512};
    big.priority_lanes = true;
    big.tenant = 3;
    const actor_index c1 = rt.spawn<counter>("c1", big);
    const actor_index c2 = rt.spawn<counter>("c2");
    const actor_index e = rt.spawn<echo>("e");
    rt.start();
    send_counts(rt, c1, 1, 30, 3);
    send_counts(rt, c2, 100, 7);
    ASSERT_EQ(rt.send(e, msg_ping, rk::as_bytes(ping_payload{1, 1})), status::enqueued);
    ASSERT_TRUE(rt.receive(10s).has_value());
    ASSERT_TRUE(handled(rt, c1, 30) && handled(rt, c2, 7));
    EXPECT_EQ(rt.snapshot_all(file), 3u) << "while running";
    {
      // A full disk: refused, saying so, with the file written before left whole and nothing beside it.
      const auto size = std::filesystem::file_size(file);
      const rk::test::file_size_limit full_disk(100);
      try {
        (void)rt.snapshot_all(file);
        ADD_FAILURE() << "a write beyond the file size limit succeeded";
      } catch (const rk::error& e) {
        EXPECT_NE(std::string(e.what()).find("left as it was"), std::string::npos) << e.what();
      }
      EXPECT_EQ(std::filesystem::file_size(file), size);
      EXPECT_EQ(rk::test::partial_files_beside(file), 0u);
    }
    c1_state = rt.snapshot_state<counter>(c1);
    c2_state = rt.snapshot_state<counter>(c2);
    EXPECT_TRUE(rt.running()) << "running again after the snapshot";
    send_counts(rt, c1, 31, 5, 3);
    ASSERT_TRUE(handled(rt, c1, 35)) << "resumed after snapshot_all";
    EXPECT_TRUE(rt.shutdown().drained);
  }
  rk::runtime restored(cpu_options());
  restored.tenants().add(3, rk::tenant_quota::standard());
  restored.prepare<counter>();
  restored.prepare<echo>();
  EXPECT_EQ(restored.restore(file), 3u);
  const actor_index c1 = restored.find("c1");
  const actor_index c2 = restored.find("c2");
  const rk::actor_snapshot c1_back = restored.snapshot(c1);
  EXPECT_EQ(c1_back.tenant, 3u);
  EXPECT_EQ(c1_back.mailbox.capacity, 64u);
  EXPECT_EQ(c1_back.mailbox.slot_bytes, 512u);
  EXPECT_TRUE(c1_back.priority_lanes);
  ASSERT_EQ(restored.flush_audit(10s), rk::wait_result::ready);
  std::size_t spawn_records = 0;
  for (const rk::audit_entry& entry : restored.audit_records()) {
    if (entry.record.event != rk::audit_event::actor_spawn) continue;
    ++spawn_records;
    EXPECT_EQ(entry.record.tenant, entry.record.actor == c1 ? 3u : 0u) << "each with its own tenant";
    EXPECT_EQ(entry.record.detail, 0u);
  }
  EXPECT_EQ(spawn_records, 3u) << "one actor_spawn record per restored actor";
  restored.start();
  EXPECT_EQ(restored.snapshot_state<counter>(c1).count, c1_state.count);
  EXPECT_EQ(restored.snapshot_state<counter>(c1).sum, c1_state.sum);
  EXPECT_EQ(restored.snapshot_state<counter>(c2).sum, c2_state.sum);
  send_counts(restored, c2, 1, 1);
  ASSERT_TRUE(handled(restored, c2, 1));
  EXPECT_EQ(restored.snapshot_state<counter>(c2).count, c2_state.count + 1) << "it goes on from the state";
  const auto e = restored.find("e");
  ASSERT_EQ(restored.send(e, msg_ping, rk::as_bytes(ping_payload{2, 2})), status::enqueued);
  EXPECT_TRUE(restored.receive(10s).has_value());
  EXPECT_TRUE(restored.shutdown().drained);
  std::filesystem::remove(file);
}

std::string expect_refused(const std::filesystem::path& file,
                           const std::function<void(rk::runtime&)>& setup) {
  rk::runtime rt(cpu_options());
  setup(rt);
  const std::size_t before = rt.stats().actors.size();
  try {
    (void)rt.restore(file);
  } catch (const rk::error& e) {
    EXPECT_EQ(rt.stats().actors.size(), before) << "nothing half-restored: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "restore() accepted it";
  return {};
}

TEST(Snapshot, MismatchesAndDamagedFilesAreRefusedWithNothingRestored) {
  const std::filesystem::path file = temp_file("refusals");
  {
    rk::runtime rt(cpu_options());
    rt.tenants().add(3, rk::tenant_quota::standard());
    rk::actor_options t3;
    t3.tenant = 3;
    rt.spawn<counter>("c1");
    rt.spawn<counter>("c2", t3);
    ASSERT_EQ(rt.snapshot_all(file), 2u) << "before start() too";
  }
  const auto has = [](const std::string& what, const char* part) {
    EXPECT_NE(what.find(part), std::string::npos) << what;
  };
  has(expect_refused(file, [](rk::runtime&) {}), "does not know");
  has(expect_refused(file,
                     [](rk::runtime& rt) {
                       rt.tenants().add(3, rk::tenant_quota::standard());
                       rt.prepare<counter_v2>();
                     }),
      "state type changed");
  has(expect_refused(file, [](rk::runtime& rt) { rt.prepare<counter>(); }), "nothing was restored");
  has(expect_refused(file,
                     [](rk::runtime& rt) {
                       rt.tenants().add(3, rk::tenant_quota::standard());
                       rt.spawn<counter>("c2");
                     }),
      "exists already");

  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const auto rewrite = [&](const std::string& content) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << content;
  };
  const auto known = [](rk::runtime& rt) {
    rt.tenants().add(3, rk::tenant_quota::standard());
    rt.prepare<counter>();
  };
  std::string damaged = bytes;
  damaged.back() = static_cast<char>(damaged.back() ^ 1);
  rewrite(damaged);
  has(expect_refused(file, known), "SHA-256");
  rewrite(bytes.substr(0, bytes.size() - 3));
  has(expect_refused(file, known), "truncated");
  rewrite(bytes + "appended");
  has(expect_refused(file, known), "appended to");
  { // One flipped bit in the header (a name, a tenant) is refused like damaged state: the last line's
    // SHA-256 covers the whole file. (Version 1's covered the states only: such files restored.)
    for (const char* from_to : {"\"c1\"|\"c3\"", "\"tenant\":3|\"tenant\":2"}) {
      const std::string_view pair(from_to);
      const std::string from(pair.substr(0, pair.find('|'))), to(pair.substr(pair.find('|') + 1));
      std::string flipped = bytes;
      ASSERT_NE(flipped.find(from), std::string::npos) << from;
      flipped.replace(flipped.find(from), from.size(), to);
      rewrite(flipped);
      has(expect_refused(file, known), "SHA-256");
    }
  }
  { // A version 1 file (no last line; the header's states_sha256) still restores and is still checked.
    const std::size_t header_end = bytes.find('\n');
    const std::size_t checksum_bytes = 7 + 64 + 1; // "sha256 ", 64 hex digits, '\n'
    ASSERT_GT(bytes.size(), header_end + checksum_bytes);
    const std::string states = bytes.substr(header_end + 1, bytes.size() - checksum_bytes - header_end - 1);
    nlohmann::json header = nlohmann::json::parse(bytes.substr(0, header_end));
    header["version"] = 1;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    ASSERT_EQ(EVP_Digest(states.data(), states.size(), digest, &length, EVP_sha256(), nullptr), 1);
    std::string hex;
    for (unsigned int i = 0; i < length; ++i) {
      char two[3];
      std::snprintf(two, sizeof two, "%02x", digest[i]);
      hex += two;
    }
    header["states_sha256"] = hex;
    const std::string v1 = header.dump() + "\n" + states;
    rewrite(v1);
    rk::runtime old(cpu_options());
    known(old);
    EXPECT_EQ(old.restore(file), 2u) << "a version 1 file restores";
    std::string damaged_v1 = v1;
    damaged_v1.back() = static_cast<char>(damaged_v1.back() ^ 1);
    rewrite(damaged_v1);
    has(expect_refused(file, known), "states' SHA-256");
    rewrite(v1 + "appended");
    const std::string appended = expect_refused(file, known);
    // "holds more than N bytes of states, the header says N": the same N (it said N + 1 first)
    const std::size_t more = appended.find("more than ");
    const std::size_t says = appended.find("the header says ");
    ASSERT_NE(more, std::string::npos) << appended;
    ASSERT_NE(says, std::string::npos) << appended;
    EXPECT_EQ(std::stoull(appended.substr(more + 10)), std::stoull(appended.substr(says + 16))) << appended;
    // Version 1's header is not under the checksum: a crafted one. A name with a NUL cut the refusal at
    // the NUL ("restore(): actor 'e"); names from the file are shown escaped.
    nlohmann::json crafted = header;
    crafted["actors"][0]["name"] = std::string("e\0x", 3);
    rewrite(crafted.dump() + "\n" + states);
    has(expect_refused(file, known), "actor 'e\\x00x'");
    has(expect_refused(file, known), "contains a NUL byte");
    // An actor whose handler type the file does not list: it said the state size did not match.
    crafted = header;
    crafted["handler_types"] = nlohmann::json::array();
    rewrite(crafted.dump() + "\n" + states);
    has(expect_refused(file, known), "is not in the file's handler_types");
    // Unknown members are dropped unread, also a list of a million objects and structured members of the
    // entries. nlohmann's callback parser scans a list after each object it keeps in it: a probe's 600 KB
    // of empty objects took 16-26 s, and this list took minutes (the ctest timeout stands for the bound).
    crafted = header;
    nlohmann::json pad = nlohmann::json::array();
    for (int i = 0; i < 1'000'000; ++i) pad.push_back(nlohmann::json::object());
    crafted["pad"] = std::move(pad);
    crafted["actors"][0]["notes"] =
        nlohmann::json::array({nlohmann::json::array({nlohmann::json::object()})});
    crafted["handler_types"][0]["notes"] = nlohmann::json::object({{"a", nlohmann::json::object()}});
    rewrite(crafted.dump() + "\n" + states);
    {
      rk::runtime padded(cpu_options());
      known(padded);
      EXPECT_EQ(padded.restore(file), 2u) << "unknown members do not matter";
    }
    crafted = header;
    crafted["actors"][0]["name"] = nlohmann::json::array({"c"});
    rewrite(crafted.dump() + "\n" + states);
    has(expect_refused(file, known), "missing or has the wrong type");
    crafted = header;
    crafted["handler_types"][0] = nlohmann::json::array({nlohmann::json::object()});
    rewrite(crafted.dump() + "\n" + states);
    has(expect_refused(file, known), "'handler_types' is not a list of objects");
  }
  std::string newer = bytes;
  newer.replace(newer.find("\"version\":2"), 11, "\"version\":9");
  rewrite(newer);
  has(expect_refused(file, known), "format version 9");
  // Header numbers are integers in range, never narrowed: 2^32 + 1 is not version 1, 1.0 not an integer,
  // 2^32 + 8 mailbox slots not 8.
  for (const char* version : {"4294967297", "1.0", "-1"}) {
    std::string narrowed = bytes;
    narrowed.replace(narrowed.find("\"version\":2"), 11, std::string("\"version\":") + version);
    rewrite(narrowed);
    has(expect_refused(file, known), "not an integer from 0 to 4294967295");
  }
  {
    std::string narrowed = bytes;
    const std::size_t at = narrowed.find("\"mailbox_slots\":") + 16;
    narrowed.replace(at, narrowed.find(',', at) - at, "4294967304");
    rewrite(narrowed);
    has(expect_refused(file, known), "'mailbox_slots' is 4294967304");
  }
  { // The actors' list is read entry by entry: a second list, or entries that are not objects, are refused.
    const std::size_t list = bytes.find(",\"actors\":[");
    ASSERT_NE(list, std::string::npos);
    std::string twice = bytes;
    twice.insert(list, ",\"actors\":[]");
    rewrite(twice);
    has(expect_refused(file, known), "two 'actors' members");
    std::string numbers = bytes;
    numbers.insert(list + 11, "1,");
    rewrite(numbers);
    has(expect_refused(file, known), "'actors' is not a list of objects");
  }
  rewrite("{\"something\": \"else\"}\n");
  has(expect_refused(file, known), "not a ringkernel snapshot");
  rewrite("not json at all\n");
  has(expect_refused(file, known), "not JSON");
  rewrite("{\"format\": \"ringkernel-snapshot\"}"); // cut before the header's newline (found by the fuzzer)
  has(expect_refused(file, known), "no newline");
  has(expect_refused(temp_file("missing"), known), "cannot open");
  has(expect_refused(std::filesystem::temp_directory_path(), known), "is a directory, not a regular file");

  rewrite(bytes);
  rk::runtime started(cpu_options());
  known(started);
  started.spawn<counter>("other");
  started.start();
  EXPECT_THROW((void)started.restore(file), rk::error) << "only before start()";
  started.shutdown();
  rk::runtime fine(cpu_options());
  known(fine);
  EXPECT_EQ(fine.restore(file), 2u) << "the intact file still restores";
  std::filesystem::remove(file);
}

// A FIFO or a device is refused unread: restore() of a FIFO waited for a writer for ever, and of /dev/zero
// read until its header limit (a gigabyte).
TEST(Snapshot, AFifoOrADeviceIsRefusedWithoutReadingIt) {
  const std::filesystem::path fifo = temp_file("fifo");
  std::filesystem::remove(fifo);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  auto refused = std::async(std::launch::async, [&] { return expect_refused(fifo, [](rk::runtime&) {}); });
  if (refused.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    ::close(::open(fifo.c_str(), O_RDWR | O_NONBLOCK)); // lets the waiting open go: a failure, not a hang
    FAIL() << "restore() waited on a FIFO";
  }
  const std::string fifo_refusal = refused.get();
  EXPECT_NE(fifo_refusal.find("is a FIFO, not a regular file"), std::string::npos) << fifo_refusal;
  std::filesystem::remove(fifo);
  const std::string device_refusal = expect_refused("/dev/zero", [](rk::runtime&) {});
  EXPECT_NE(device_refusal.find("is a character device"), std::string::npos) << device_refusal;
}

// A path is judged by what was opened, not by an earlier look at it: with a symbolic link flipped between a
// regular file and a FIFO, restore() and verify_audit_log() looked (a regular file), then opened (the
// FIFO) and waited for a writer, within the first few calls. Timing-dependent; each call checks it.
TEST(Snapshot, APathSwappedForAFifoIsRefusedNotWaitedOn) {
  const std::filesystem::path regular = temp_file("swap_regular");
  const std::filesystem::path fifo = temp_file("swap_fifo");
  const std::filesystem::path link = temp_file("swap_link");
  const std::filesystem::path next_link = temp_file("swap_link_next");
  for (const auto& p : {regular, fifo, link, next_link}) std::filesystem::remove(p);
  std::ofstream(regular) << "not a snapshot\n";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  std::atomic<bool> flipping{true};
  std::thread flipper([&] {
    for (bool to_fifo = true; flipping.load(); to_fifo = !to_fifo) {
      ::unlink(next_link.c_str());
      if (::symlink((to_fifo ? fifo : regular).c_str(), next_link.c_str()) == 0)
        (void)::rename(next_link.c_str(), link.c_str());
    }
  });
  auto calls = std::async(std::launch::async, [&] {
    rk::runtime rt(cpu_options());
    for (int call = 0; call < 200; ++call) {
      EXPECT_THROW((void)rt.restore(link), rk::error);
      EXPECT_NE(rk::verify_audit_log(link).verdict, rk::audit_verdict::intact);
    }
  });
  const bool waited = calls.wait_for(std::chrono::seconds(30)) != std::future_status::ready;
  flipping = false;
  flipper.join();
  // A waiting open of the code before the fix is let go (a FIFO opened both ways never waits), so that the
  // test fails instead of hanging in the future's destructor.
  while (calls.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready)
    ::close(::open(fifo.c_str(), O_RDWR | O_NONBLOCK));
  EXPECT_FALSE(waited) << "restore() or verify_audit_log() waited on the FIFO a swapped path led to";
  for (const auto& p : {regular, fifo, link, next_link}) std::filesystem::remove(p);
}

// snapshot_all() (and write_trace(), through the same writer) renamed its file over whatever was at the
// path: a FIFO became a regular file, and a symbolic link was replaced while the file it led to stayed old.
TEST(Snapshot, SnapshotAllFollowsALinkAndRefusesAFifo) {
  const std::filesystem::path target = temp_file("link_target");
  const std::filesystem::path link = temp_file("link");
  const std::filesystem::path fifo = temp_file("write_fifo");
  for (const auto& p : {target, link, fifo}) std::filesystem::remove(p);
  std::ofstream(target) << "old\n";
  std::filesystem::create_symlink(target, link);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  rk::runtime rt(cpu_options());
  rt.spawn<counter>("c");
  EXPECT_EQ(rt.snapshot_all(link), 1u);
  EXPECT_TRUE(std::filesystem::is_symlink(link)) << "the link stays a link";
  rk::runtime restored(cpu_options());
  restored.prepare<counter>();
  EXPECT_EQ(restored.restore(target), 1u) << "the file the link leads to holds the snapshot";
  try {
    (void)rt.snapshot_all(fifo);
    ADD_FAILURE() << "snapshot_all() over a FIFO";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("it is a FIFO"), std::string::npos) << e.what();
  }
  EXPECT_EQ(std::filesystem::status(fifo).type(), std::filesystem::file_type::fifo) << "the FIFO stays";
  EXPECT_THROW(rt.write_trace(fifo), rk::error);
  for (const auto& p : {target, link, fifo}) std::filesystem::remove(p);
}

// A file replaced kept nothing of the old one: a 0600 file of handler states became 0644 (readable by
// everyone), and a read-only one was replaced. Now it keeps its mode, and one this process may not write is
// refused (as root every file may be written: that part is checked only as another user).
TEST(Snapshot, AReplacedFileKeepsItsPermissions) {
  const std::filesystem::path file = temp_file("private");
  std::filesystem::remove(file);
  std::ofstream(file) << "old\n";
  std::filesystem::permissions(file,
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  rk::runtime rt(cpu_options());
  rt.spawn<counter>("c");
  EXPECT_EQ(rt.snapshot_all(file), 1u);
  EXPECT_EQ(std::filesystem::status(file).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  rt.write_trace(file);
  EXPECT_EQ(std::filesystem::status(file).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  if (::geteuid() != 0) {
    std::filesystem::permissions(file, std::filesystem::perms::owner_read);
    try {
      (void)rt.snapshot_all(file);
      ADD_FAILURE() << "a read-only file was replaced";
    } catch (const rk::error& e) {
      EXPECT_NE(std::string(e.what()).find("not writable"), std::string::npos) << e.what();
    }
    std::filesystem::permissions(file, std::filesystem::perms::owner_all);
  }
  std::filesystem::remove(file);
}

// snapshot_all() with a timeout of 0 blamed "a handler call is still running" on an idle runtime.
TEST(Snapshot, SnapshotAllWithATimeoutOfZeroSaysSo) {
  rk::runtime rt(cpu_options());
  rt.spawn<counter>("c");
  rt.start();
  try {
    (void)rt.snapshot_all(temp_file("zero"), std::chrono::seconds(0));
    // Workers that confirmed at once: allowed, and nothing to check.
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("a timeout of 0 gives them no time"), std::string::npos) << e.what();
  }
  std::filesystem::remove(temp_file("zero"));
  EXPECT_TRUE(rt.shutdown().drained);
}

// restore() racing start() in another thread: either the actors are restored before start() and run, or
// restore() is refused and nothing is added. (It once checked the phase before taking the lock start()
// takes, and spawned into the running runtime.) Timing-dependent: it checks the outcome each round.
TEST(Snapshot, ARestoreRacingStartEitherRestoresBeforeItOrIsRefused) {
  const std::filesystem::path file = temp_file("race");
  {
    rk::runtime rt(cpu_options());
    rt.spawn<counter>("c1");
    rt.spawn<counter>("c2");
    ASSERT_EQ(rt.snapshot_all(file), 2u);
  }
  int restored_rounds = 0;
  for (int round = 0; round < 50; ++round) {
    rk::runtime rt(cpu_options());
    rt.spawn<counter>("other");
    std::atomic<bool> go{false};
    std::thread starter([&] {
      rk::backoff wait;
      while (!go.load()) wait.pause();
      rt.start();
    });
    bool restored = false;
    go = true;
    try {
      restored = rt.restore(file) == 2;
    } catch (const rk::error& e) {
      EXPECT_NE(std::string(e.what()).find("only before start()"), std::string::npos) << e.what();
    }
    starter.join();
    restored_rounds += restored;
    ASSERT_EQ(rt.stats().actors.size(), restored ? 3u : 1u) << "round " << round;
    if (restored) {
      for (const char* name : {"c1", "c2"}) {
        const actor_index a = rt.find(name);
        ASSERT_EQ(rt.send(a, 1, {}), rk::status::enqueued);
        ASSERT_TRUE(handled(rt, a, 1))
            << "round " << round << ": restored actor " << name << " is not served";
      }
    }
    rt.shutdown();
  }
  std::filesystem::remove(file);
  RecordProperty("restored_rounds", restored_rounds);
}

TEST(Snapshot, ARestoreThatFailsHalfWayLeavesTheRuntimeAsItWas) {
  const std::filesystem::path file = temp_file("halfway");
  {
    rk::runtime rt(cpu_options());
    rt.tenants().add(7, rk::tenant_quota::standard());
    rk::actor_options t7;
    t7.tenant = 7;
    for (int i = 0; i < 4; ++i) rt.spawn<counter>("c" + std::to_string(i));
    rt.spawn<counter>("t7a", t7);
    rt.spawn<counter>("t7b", t7);
    ASSERT_EQ(rt.snapshot_all(file), 6u);
  }
  const auto prepared = [](rk::runtime& rt, std::uint64_t tenant_7_actors) {
    rk::tenant_quota q = rk::tenant_quota::standard();
    q.max_actors = tenant_7_actors;
    rt.tenants().add(7, q);
    rt.prepare<counter>();
  };
  rk::runtime fresh(cpu_options());
  prepared(fresh, 1);
  const actor_index fresh_id = fresh.spawn<counter>("next");

  rk::runtime rt(cpu_options());
  prepared(rt, 1); // the sixth actor exceeds tenant 7's quota
  try {
    (void)rt.restore(file);
    ADD_FAILURE() << "restore() exceeded tenant 7's max_actors";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing was restored"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rt.tables().actors.used, 0u);
  EXPECT_EQ(rt.tenants().usage(7).actors, 0u);
  EXPECT_EQ(rt.spawn<counter>("next"), fresh_id) << "the next spawn gets the id a fresh runtime gives";
  const rk::runtime_stats s = rt.stats();
  EXPECT_TRUE(s.forgotten_by_handler_and_tenant.empty()) << "nothing was spawned and forgotten";
  EXPECT_EQ(rt.flush_audit(10s), rk::wait_result::ready);
  std::uint64_t spawns = 0, stops = 0;
  for (const rk::audit_entry& e : rt.audit_records()) {
    spawns += e.record.event == rk::audit_event::actor_spawn;
    stops += e.record.event == rk::audit_event::actor_stop;
  }
  EXPECT_EQ(spawns, 1u) << "only the spawn after it";
  EXPECT_EQ(stops, 0u);
  std::filesystem::remove(file);
}

// Two snapshot_all() calls writing one path at once: both succeed and the path holds the whole file of
// one. (They shared one temporary name: one renamed the other's half-written file, which then failed.)
TEST(Snapshot, TwoSnapshotAllsToOnePathAtOnceEachWriteAWholeFile) {
  const std::filesystem::path file = temp_file("two_writers");
  const auto base = static_cast<std::uint32_t>(rk::test::scaled(20'000));
  const std::uint32_t sizes[2] = {base + 2, base + 5};
  rk::runtime_options options = cpu_options();
  options.max_actors = 32'768;
  rk::runtime a(options), b(options);
  (void)a.spawn_many<counter>("a", sizes[0]);
  (void)b.spawn_many<counter>("b", sizes[1]);
  for (int round = 0; round < 8; ++round) {
    std::promise<void> go;
    std::shared_future<void> started = go.get_future().share();
    auto write = [&](rk::runtime& rt) {
      started.wait();
      return rt.snapshot_all(file);
    };
    auto from_a = std::async(std::launch::async, write, std::ref(a));
    auto from_b = std::async(std::launch::async, write, std::ref(b));
    go.set_value();
    EXPECT_EQ(from_a.get(), sizes[0]) << "round " << round;
    EXPECT_EQ(from_b.get(), sizes[1]) << "round " << round;
    rk::runtime reader(options);
    reader.prepare<counter>();
    const std::uint64_t restored = reader.restore(file);
    EXPECT_TRUE(restored == sizes[0] || restored == sizes[1]) << "round " << round << ": " << restored;
    EXPECT_EQ(rk::test::partial_files_beside(file), 0u) << "round " << round;
  }
  std::filesystem::remove(file);
}

//! A state larger than a thread's whole stack (8 MiB by default).
struct large_state_handler {
  static constexpr const char* name = "large_state_handler";
  struct state {
    std::uint64_t count = 0;
    std::array<std::byte, (std::size_t{16} << 20) - 8> bytes{};
  };
  template <class Ctx>
  void operator()(Ctx&, state& s, const rk::message&) {
    ++s.count;
  }
};

// spawn<H>(name) with a state of megabytes: its default state is made on the heap (it was a default
// argument on the caller's stack, and a 16 MiB state crashed the caller), and snapshot() and restore()
// carry it whole.
TEST(Snapshot, AStateLargerThanTheStackSpawnsSnapshotsAndRestores) {
  const std::filesystem::path file = temp_file("large_state");
  rk::runtime rt(cpu_options());
  const actor_index a = rt.spawn<large_state_handler>("default");
  auto given = std::make_unique<large_state_handler::state>();
  given->bytes.back() = std::byte{7};
  const actor_index b = rt.spawn<large_state_handler>("given", {}, *given);
  rt.start();
  ASSERT_EQ(rt.send_blocking(a, msg_count, rk::as_bytes(ping_payload{1, 1}), 10s), status::enqueued);
  ASSERT_TRUE(handled(rt, a, 1));
  const rk::actor_snapshot copy = rt.snapshot(b);
  ASSERT_EQ(copy.state.size(), sizeof(large_state_handler::state));
  EXPECT_EQ(copy.state.back(), std::byte{7});
  EXPECT_EQ(rt.snapshot_all(file), 2u);
  EXPECT_TRUE(rt.shutdown().drained);
  std::uint64_t count = 0;
  std::memcpy(&count, rt.snapshot(a).state.data(), sizeof count);
  EXPECT_EQ(count, 1u);
  rk::runtime restored(cpu_options());
  restored.prepare<large_state_handler>();
  EXPECT_EQ(restored.restore(file), 2u);
  EXPECT_EQ(restored.snapshot(b).state.back(), std::byte{7}) << "as restored, before start()";
  std::filesystem::remove(file);
}

} // namespace
