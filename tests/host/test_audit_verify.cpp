// The audit log verifier: rk::verify_audit_log against untouched and edited logs (SHA-256 and keyed
// chains), and the rk-audit-verify command line.
#include "audit_test_support.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <future>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {
using namespace audit_test;

// --- verification ----------------------------------------------------------------------------------------

//! Writes a closed log of `device` device records, 3 host records, one overflow report and the closing
//! entry. Returns the drain's final statistics.
rk::audit_drain_stats write_log(const std::filesystem::path& path, std::uint64_t device = 8,
                                const std::string& key = {}) {
  test_ring t(16);
  auto file = std::make_shared<rk::audit_file_sink>(path);
  rk::audit_drain_options options;
  options.key = key;
  rk::audit_drain drain(t.ring.view(), t.overflow_reader(), {file}, options);
  for (std::uint64_t i = 0; i < device; ++i)
    EXPECT_EQ(rk::emit_audit(t.channel, make_record(audit_event::cross_tenant_attempt, i, 2, 7)),
              status::delivered);
  EXPECT_EQ(drain.flush(), rk::wait_result::ready);
  for (std::uint64_t i = 0; i < 3; ++i)
    EXPECT_EQ(drain.record_host(make_record(audit_event::actor_spawn, i, 50 + i, 9)), status::enqueued);
  cuda::atomic_ref<std::uint64_t, rk::peer_scope>(t.overflow).fetch_add(2, cuda::std::memory_order_relaxed);
  return drain.stop();
}

class AuditVerify : public ::testing::Test {
protected:
  void SetUp() override {
    stats_ = write_log(log_);
    lines_ = read_lines(log_);
    ASSERT_EQ(lines_.size(), 13u); // 8 device + 3 host + overflow + closing
  }
  rk::audit_verify_result verify_edited(const std::vector<std::string>& lines,
                                        const rk::audit_verify_options& options = {}) {
    write_lines(edited_, lines);
    return rk::verify_audit_log(edited_, options);
  }
  static std::string replace_once(std::string s, const std::string& from, const std::string& to) {
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from << " not in " << s;
    return at == std::string::npos ? s : s.replace(at, from.size(), to);
  }

  scratch_dir dir_;
  std::filesystem::path log_ = dir_.file("audit.jsonl");
  std::filesystem::path edited_ = dir_.file("edited.jsonl");
  rk::audit_drain_stats stats_;
  std::vector<std::string> lines_;
};

TEST_F(AuditVerify, AnUntouchedLogIsIntact) {
  const rk::audit_verify_result v = rk::verify_audit_log(log_);
  EXPECT_EQ(v.verdict, rk::audit_verdict::intact) << v.reason;
  EXPECT_EQ(v.entries, 13u);
  EXPECT_EQ(v.bad_line, 0u);
  EXPECT_TRUE(v.closed);
  EXPECT_EQ(v.head, stats_.head);
  rk::audit_verify_options anchored;
  anchored.expected_head = stats_.head;
  EXPECT_TRUE(rk::verify_audit_log(log_, anchored).intact());
}

TEST_F(AuditVerify, EditingAnyFieldIsDetectedAtThatLine) {
  const std::vector<std::pair<std::string, std::string>> edits = {
      {R"("tenant":7)", R"("tenant":8)"},
      {R"("event":"cross_tenant_attempt")", R"("event":"quota_exceeded")"},
      {R"("level":"warning")", R"("level":"info")"},
      {R"("origin":"device")", R"("origin":"host")"},
      {R"("value":3)", R"("value":4)"},
      {R"("time_ns":1003)", R"("time_ns":1002)"},
      {R"("actor":2)", R"("actor":3)"},
      {R"("org_id":11)", R"("org_id":1)"},
      {R"("seq":3)", R"("seq":4)"},
  };
  for (const auto& [from, to] : edits) {
    std::vector<std::string> lines = lines_;
    lines[3] = replace_once(lines[3], from, to);
    const rk::audit_verify_result v = verify_edited(lines);
    EXPECT_EQ(v.verdict, rk::audit_verdict::tampered) << from;
    EXPECT_EQ(v.bad_line, 4u) << from << ": " << v.reason;
    EXPECT_NE(v.reason.find("edited"), std::string::npos) << v.reason;
    EXPECT_EQ(v.entries, 3u);
  }
}

TEST_F(AuditVerify, AnEditWithARecomputedHashBreaksTheNextLine) {
  std::vector<std::string> lines = lines_;
  std::optional<audit_entry> e = rk::parse_audit_line(lines[3]);
  ASSERT_TRUE(e);
  e->record.tenant = 99;
  lines[3] = rk::make_audit_entry(e->sequence, e->record, e->prev).json; // a forger who knows the format
  const rk::audit_verify_result v = verify_edited(lines);
  EXPECT_EQ(v.verdict, rk::audit_verdict::tampered);
  EXPECT_EQ(v.bad_line, 5u) << v.reason;
  EXPECT_NE(v.reason.find("prev"), std::string::npos) << v.reason;
}

TEST_F(AuditVerify, DeletingALineIsDetected) {
  std::vector<std::string> lines = lines_;
  lines.erase(lines.begin() + 2);
  rk::audit_verify_result v = verify_edited(lines);
  EXPECT_EQ(v.verdict, rk::audit_verdict::tampered);
  EXPECT_EQ(v.bad_line, 3u) << v.reason;
  EXPECT_NE(v.reason.find("deleted"), std::string::npos) << v.reason;

  lines = lines_;
  lines.erase(lines.begin()); // the first line
  v = verify_edited(lines);
  EXPECT_EQ(v.bad_line, 1u) << v.reason;

  lines = lines_;
  lines.pop_back(); // the closing entry
  v = verify_edited(lines);
  EXPECT_EQ(v.verdict, rk::audit_verdict::tampered);
  EXPECT_EQ(v.bad_line, 13u) << v.reason;
  EXPECT_NE(v.reason.find("audit_closed"), std::string::npos) << v.reason;

  rk::audit_verify_options open;
  open.require_closed = false; // a log still being written: only the head anchor can tell
  EXPECT_TRUE(verify_edited(lines, open).intact());
  open.expected_head = stats_.head;
  v = verify_edited(lines, open);
  EXPECT_EQ(v.verdict, rk::audit_verdict::tampered);
  EXPECT_EQ(v.bad_line, 12u) << v.reason;
}

TEST_F(AuditVerify, NothingFollowsTheClosingEntryNotEvenAnIncompleteLine) {
  // An open log may end in a line still being written; a closed one is no longer written, so bytes after
  // its audit_closed entry were added. They were ignored with a note when the log was allowed to be open.
  {
    std::ofstream out(edited_, std::ios::binary);
    for (const std::string& line : lines_) out << line << '\n';
    out << "xyz"; // no newline
  }
  rk::audit_verify_options open;
  open.require_closed = false;
  for (const rk::audit_verify_options& options : {rk::audit_verify_options{}, open}) {
    const rk::audit_verify_result v = rk::verify_audit_log(edited_, options);
    EXPECT_EQ(v.verdict, rk::audit_verdict::tampered) << v.reason;
    EXPECT_EQ(v.bad_line, lines_.size() + 1) << v.reason;
    EXPECT_NE(v.reason.find("follows the audit_closed entry"), std::string::npos) << v.reason;
  }
}

TEST_F(AuditVerify, InsertingOrReorderingLinesIsDetected) {
  std::vector<std::string> lines = lines_;
  lines.insert(lines.begin() + 2, lines[1]); // a replayed line
  rk::audit_verify_result v = verify_edited(lines);
  EXPECT_EQ(v.verdict, rk::audit_verdict::tampered);
  EXPECT_EQ(v.bad_line, 3u) << v.reason;

  lines = lines_;
  std::swap(lines[4], lines[5]);
  v = verify_edited(lines);
  EXPECT_EQ(v.verdict, rk::audit_verdict::tampered);
  EXPECT_EQ(v.bad_line, 5u) << v.reason;
  EXPECT_NE(v.reason.find("reordered"), std::string::npos) << v.reason;

  lines = lines_;
  lines.push_back(lines[0]); // something after the closing entry
  v = verify_edited(lines);
  EXPECT_EQ(v.bad_line, 14u) << v.reason;
}

TEST_F(AuditVerify, TruncatingTheHashOrTheFileIsDetected) {
  std::vector<std::string> lines = lines_;
  lines[5] = replace_once(lines[5], "\"}", "");
  lines[5].pop_back();
  lines[5] += "\"}"; // hash now 63 digits
  rk::audit_verify_result v = verify_edited(lines);
  EXPECT_EQ(v.verdict, rk::audit_verdict::tampered);
  EXPECT_EQ(v.bad_line, 6u) << v.reason;
  EXPECT_NE(v.reason.find("hash"), std::string::npos) << v.reason;

  // The file cut in the middle of line 7.
  std::string text;
  for (std::size_t i = 0; i < 6; ++i) text += lines_[i] + "\n";
  text += lines_[6].substr(0, 40);
  {
    std::ofstream out(edited_, std::ios::trunc);
    out << text;
  }
  v = rk::verify_audit_log(edited_);
  EXPECT_EQ(v.verdict, rk::audit_verdict::tampered);
  EXPECT_EQ(v.bad_line, 7u) << v.reason;

  lines = lines_;
  lines[8] = "";
  v = verify_edited(lines);
  EXPECT_EQ(v.bad_line, 9u) << v.reason;
}

TEST_F(AuditVerify, AMissingFileIsUnreadableNotTampered) {
  const rk::audit_verify_result v = rk::verify_audit_log(dir_.file("missing.jsonl"));
  EXPECT_EQ(v.verdict, rk::audit_verdict::unreadable);
  EXPECT_NE(v.reason.find("missing.jsonl"), std::string::npos) << v.reason;
}

// A FIFO is refused at once, never waited on: by the verifier (which waited for a writer for ever) and by
// the file sink (which waited for a reader).
TEST_F(AuditVerify, AFifoIsRefusedWithoutWaiting) {
  const std::filesystem::path fifo = dir_.file("audit.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  // A waiter of the code before the fix is let go (a FIFO opened both ways never waits), so that the test
  // fails instead of hanging in the future's destructor.
  const auto release_waiters = [&] { ::close(::open(fifo.c_str(), O_RDWR | O_NONBLOCK)); };
  auto verified = std::async(std::launch::async, [&] { return rk::verify_audit_log(fifo); });
  if (verified.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    release_waiters();
    FAIL() << "verify_audit_log waited on a FIFO";
  }
  const rk::audit_verify_result v = verified.get();
  EXPECT_EQ(v.verdict, rk::audit_verdict::unreadable);
  EXPECT_NE(v.reason.find("a FIFO, not a regular file"), std::string::npos) << v.reason;
  auto sink = std::async(std::launch::async, [&]() -> std::string {
    try {
      rk::audit_file_sink opened(fifo);
      return "accepted";
    } catch (const rk::error& e) {
      return e.what();
    }
  });
  if (sink.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    release_waiters();
    FAIL() << "audit_file_sink waited on a FIFO";
  }
  const std::string refused = sink.get();
  EXPECT_NE(refused.find("is a FIFO"), std::string::npos) << refused;
  EXPECT_NE(refused.find("regular file"), std::string::npos) << refused;
}

// --- the CLI ---------------------------------------------------------------------------------------------

struct cli_result {
  int exit_code = -1;
  std::string output;
};

//! Runs a shell command; its output (stderr too) and exit code (-1: it did not run or exit).
cli_result run_command(const std::string& command) {
  cli_result r;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[512];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) r.output += buffer;
  const int st = ::pclose(pipe);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

cli_result run_cli(const std::string& arguments) {
#ifdef RK_AUDIT_VERIFY_EXE
  return run_command(std::string("'") + RK_AUDIT_VERIFY_EXE + "' " + arguments);
#else
  (void)arguments;
  return {};
#endif
}

TEST_F(AuditVerify, CliExitCodes) {
#ifndef RK_AUDIT_VERIFY_EXE
  GTEST_SKIP() << "rk-audit-verify is not built (RK_ENABLE_TOOLS=OFF)";
#endif
  cli_result r = run_cli("'" + log_.string() + "'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("intact: 13 entries, closed"), std::string::npos) << r.output;

  std::vector<std::string> lines = lines_;
  lines[3] = replace_once(lines[3], R"("tenant":7)", R"("tenant":8)");
  write_lines(edited_, lines);
  r = run_cli("'" + edited_.string() + "'");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(edited_.string() + ":4: tampered"), std::string::npos) << r.output;

  lines = lines_;
  lines.pop_back();
  write_lines(edited_, lines);
  EXPECT_EQ(run_cli("'" + edited_.string() + "'").exit_code, 1);
  EXPECT_EQ(run_cli("--allow-open '" + edited_.string() + "'").exit_code, 0);
  EXPECT_EQ(run_cli("--allow-open --head " + stats_.head + " '" + edited_.string() + "'").exit_code, 1);

  r = run_cli("'" + dir_.file("missing.jsonl").string() + "'");
  EXPECT_EQ(r.exit_code, 2) << r.output;

  // A file named to forge a verdict line: printed escaped, so the output is one line that says tampered.
  const std::filesystem::path forging = dir_.file("log.jsonl: intact: 13 entries, closed\nx");
  lines = lines_;
  lines[3] = replace_once(lines[3], R"("tenant":7)", R"("tenant":8)");
  write_lines(forging, lines);
  r = run_cli("'" + forging.string() + "'");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find("closed\\x0ax:4: tampered"), std::string::npos) << r.output;
  EXPECT_EQ(run_cli("--allow-open '" + forging.string() + "'").exit_code, 1);
  EXPECT_EQ(run_cli("").exit_code, 2);
  EXPECT_EQ(run_cli("--bogus x").exit_code, 2);
  EXPECT_EQ(run_cli("a b").exit_code, 2);
}

// --- the Python verifier printed in docs/audit.md -------------------------------------------------------

//! Runs the doc's snippet (tests/host/audit_doc_verifier.py extracts it from docs/audit.md) on `log`:
//! 0 accepted, 1 rejected, 2 no snippet in the doc, 3 the snippet crashed; -1 python3 did not run.
cli_result run_doc_verifier(const std::filesystem::path& log, bool allow_open = false) {
  return run_command(std::string("python3 '" RK_SOURCE_DIR
                                 "/tests/host/audit_doc_verifier.py' '" RK_SOURCE_DIR "/docs/audit.md' '") +
                     log.string() + "'" + (allow_open ? " --allow-open" : ""));
}

TEST_F(AuditVerify, ThePythonVerifierInTheDocsAgreesWithTheCxxOne) {
  cli_result r = run_doc_verifier(log_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("accepted: 13 entries, head " + stats_.head), std::string::npos) << r.output;

  // Each forgery is refused by both verifiers (the snippet with a verdict, not a crash).
  std::vector<std::pair<std::string, std::vector<std::string>>> forged;
  std::vector<std::string> lines = lines_;
  lines[3].insert(lines[3].size() - 1, R"(,"note":"x")");
  forged.emplace_back("a member appended after hash", lines);
  lines = lines_;
  lines[3] = replace_once(lines[3], R"(,"hash":)", R"(,"tenant":999,"hash":)");
  forged.emplace_back("a member repeated between prev and hash", lines);
  lines = lines_;
  lines.pop_back();
  lines.back().insert(lines.back().size() - 1, R"(,"event":"audit_closed","origin":"drain")");
  forged.emplace_back("a truncated log closed by a repeated event member", lines);
  lines = lines_;
  lines[3] = replace_once(lines[3], R"("tenant":7)", R"("tenant":8)");
  forged.emplace_back("an edited field", lines);
  lines = lines_;
  lines[3] = replace_once(lines[3], R"("seq":3,)", R"("seq": 3,)");
  forged.emplace_back("whitespace", lines);
  for (const auto& [what, content] : forged) {
    write_lines(edited_, content);
    EXPECT_EQ(rk::verify_audit_log(edited_).verdict, rk::audit_verdict::tampered) << what;
    r = run_doc_verifier(edited_);
    EXPECT_EQ(r.exit_code, 1) << what << ": " << r.output;
  }

  // Truncated: refused unless the log may still be open; empty: the same, without crashing.
  lines = lines_;
  lines.pop_back();
  write_lines(edited_, lines);
  EXPECT_EQ(run_doc_verifier(edited_).exit_code, 1);
  EXPECT_EQ(run_doc_verifier(edited_, true).exit_code, 0);
  {
    std::ofstream out(edited_, std::ios::binary); // closed, then an incomplete line
    for (const std::string& line : lines_) out << line << '\n';
    out << "xyz";
  }
  EXPECT_EQ(run_doc_verifier(edited_, true).exit_code, 1);
  write_lines(edited_, {});
  r = run_doc_verifier(edited_);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(run_doc_verifier(edited_, true).exit_code, 0);
  EXPECT_EQ(rk::verify_audit_log(edited_).verdict, rk::audit_verdict::tampered);
}

TEST_F(AuditVerify, TheExpectedHeadMatchesInEitherCase) {
  std::string upper = stats_.head;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_NE(upper, stats_.head);
  rk::audit_verify_options options;
  options.expected_head = upper;
  const rk::audit_verify_result v = rk::verify_audit_log(log_, options);
  EXPECT_EQ(v.verdict, rk::audit_verdict::intact) << v.reason;
  EXPECT_EQ(v.head, stats_.head) << "the head is reported in lower case";
  options.expected_head = std::string(64, 'A');
  EXPECT_EQ(rk::verify_audit_log(log_, options).verdict, rk::audit_verdict::tampered);
}

// --- the keyed chain -----------------------------------------------------------------------------------

TEST(AuditKeyedChain, IsHmacSha256UnderTheKey) {
  // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
  EXPECT_EQ(rk::audit_chain_hash("what do ya ", "want for nothing?", "Jefe"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_NE(rk::audit_chain_hash("a", "b", "k1"), rk::audit_chain_hash("a", "b", "k2"));
  EXPECT_NE(rk::audit_chain_hash("a", "b", "k1"), rk::audit_chain_hash("a", "b"));
}

TEST(AuditKeyedChain, AnEditedAndRehashedLogFailsTheKeyedCheck) {
  scratch_dir dir;
  const std::filesystem::path log = dir.file("keyed.jsonl"), edited = dir.file("edited.jsonl");
  const std::string key = "a secret the host keeps";
  const rk::audit_drain_stats stats = write_log(log, 8, key);
  rk::audit_verify_options keyed;
  keyed.key = key;
  const rk::audit_verify_result ok = rk::verify_audit_log(log, keyed);
  EXPECT_TRUE(ok.intact()) << ok.reason;
  EXPECT_EQ(ok.head, stats.head);
  const rk::audit_verify_result unkeyed = rk::verify_audit_log(log);
  EXPECT_EQ(unkeyed.verdict, rk::audit_verdict::tampered) << "a keyed log does not pass as a plain chain";
  EXPECT_NE(unkeyed.reason.find("keyed"), std::string::npos) << unkeyed.reason;

  // A forger who can rewrite the file, knows the format and recomputes every hash, but not the key.
  std::vector<std::string> lines = read_lines(log);
  std::string prev(rk::audit_genesis_hash);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::optional<audit_entry> e = rk::parse_audit_line(lines[i]);
    ASSERT_TRUE(e);
    if (i == 3) e->record.tenant = 99;
    const audit_entry forged = rk::make_audit_entry(e->sequence, e->record, prev);
    lines[i] = forged.json;
    prev = forged.hash;
  }
  write_lines(edited, lines);
  EXPECT_TRUE(rk::verify_audit_log(edited).intact())
      << "an unkeyed chain cannot tell: this is what keys are for";
  const rk::audit_verify_result caught = rk::verify_audit_log(edited, keyed);
  EXPECT_EQ(caught.verdict, rk::audit_verdict::tampered);
  EXPECT_EQ(caught.bad_line, 1u) << caught.reason;
  rk::audit_verify_options wrong = keyed;
  wrong.key = "another key";
  EXPECT_EQ(rk::verify_audit_log(log, wrong).verdict, rk::audit_verdict::tampered);

#ifdef RK_AUDIT_VERIFY_EXE
  const std::filesystem::path key_file = dir.file("key");
  {
    std::ofstream out(key_file, std::ios::binary | std::ios::trunc);
    out << key;
  }
  EXPECT_EQ(run_cli("--key-file '" + key_file.string() + "' '" + log.string() + "'").exit_code, 0);
  EXPECT_EQ(run_cli("--key-file '" + key_file.string() + "' '" + edited.string() + "'").exit_code, 1);
  EXPECT_EQ(run_cli("--key-file '" + dir.file("no_such_key").string() + "' '" + log.string() + "'").exit_code,
            2);
  // A key file written with `echo` ends with a newline the key did not have: tampered, with a hint.
  const std::filesystem::path echoed = dir.file("key_echoed");
  {
    std::ofstream out(echoed, std::ios::binary | std::ios::trunc);
    out << key << '\n';
  }
  const cli_result hinted = run_cli("--key-file '" + echoed.string() + "' '" + log.string() + "'");
  EXPECT_EQ(hinted.exit_code, 1);
  EXPECT_NE(hinted.output.find("hint: the key file ends with a line break"), std::string::npos)
      << hinted.output;
  // A key file that cannot be read (EIO from /proc/self/mem) or does not end (/dev/zero): exit 2, saying
  // so. They aborted on an uncaught stream exception, and read without end.
  const cli_result unreadable = run_cli("--key-file /proc/self/mem '" + log.string() + "'");
  EXPECT_EQ(unreadable.exit_code, 2) << unreadable.output;
  EXPECT_NE(unreadable.output.find("cannot read the key file"), std::string::npos) << unreadable.output;
  const cli_result endless = run_cli("--key-file /dev/zero '" + log.string() + "'");
  EXPECT_EQ(endless.exit_code, 2) << endless.output;
  EXPECT_NE(endless.output.find("is longer than"), std::string::npos) << endless.output;
#endif
}

TEST(AuditVerifyInput, ALineWithoutEndIsReadOnlyUpToTheLimit) {
  scratch_dir dir;
  const std::filesystem::path junk = dir.file("junk.jsonl");
  {
    std::ofstream out(junk, std::ios::binary);
    out << std::string(1 << 20, 'x'); // a megabyte without a newline
  }
  rk::audit_verify_options small;
  small.max_line_bytes = 4096;
  const rk::audit_verify_result v = rk::verify_audit_log(junk, small);
  EXPECT_EQ(v.verdict, rk::audit_verdict::tampered);
  EXPECT_EQ(v.bad_line, 1u);
  EXPECT_NE(v.reason.find("longer than 4096 bytes"), std::string::npos) << v.reason;
}

} // namespace
