// Metrics (metrics.hpp) on the CPU backend, as a user scrapes them: the Prometheus text parses with the
// reference client's parser (prometheus_client, through tests/metrics/parse_prometheus.py) and its counters
// equal stats() and tenant usage; the endpoint serves the same over HTTP; bad options are refused.
#include "../runtime/test_handlers.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using namespace rk_cases;

rk::runtime_options cpu_options() {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  return o;
}

rk::send_options as_tenant(std::uint64_t tenant) {
  rk::send_options o;
  o.tenant = tenant;
  return o;
}

rk::actor_options in_tenant(std::uint64_t tenant) {
  rk::actor_options a;
  a.tenant = tenant;
  return a;
}

//! Busy for at least 300 µs per message (so its calls land above the 262 µs bucket), then counts.
struct slow {
  static constexpr const char* name = "slow";
  struct state {
    std::uint64_t count = 0;
  };
  template <class Ctx>
  void operator()(Ctx&, state& s, const rk::message&) {
    const auto until = std::chrono::steady_clock::now() + 300us;
    while (std::chrono::steady_clock::now() < until) {
    }
    ++s.count;
  }
};

//! The samples prometheus_client read from one exposition.
struct scrape {
  std::map<std::string, std::string> families; //!< name -> type
  nlohmann::json samples;                      //!< [[name, {labels}, value], ...]

  //! The value of the one sample `name` whose labels include `labels` (a failure unless exactly one).
  double value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    int matches = 0;
    double v = -1;
    for (const auto& s : samples) {
      if (s[0] != name) continue;
      bool all = true;
      for (const auto& [k, want] : labels) all = all && s[1].contains(k) && s[1][k] == want;
      if (!all) continue;
      ++matches;
      v = s[2].get<double>();
    }
    EXPECT_EQ(matches, 1) << name << " with the given labels";
    return v;
  }
  std::size_t count(const std::string& name) const {
    std::size_t n = 0;
    for (const auto& s : samples) n += s[0] == name ? 1 : 0;
    return n;
  }
};

//! Parses `text` with prometheus_client; a parse failure fails the test.
scrape parse(const std::string& text) {
  static int serial = 0;
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() /
      ("rk_metrics_" + std::to_string(::getpid()) + "_" + std::to_string(serial++) + ".txt");
  std::ofstream(file) << text;
  const std::string command =
      std::string("python3 " RK_SOURCE_DIR "/tests/metrics/parse_prometheus.py ").append(file.string());
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string out;
  if (pipe != nullptr) {
    char buffer[65536];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  }
  const int rc = pipe != nullptr ? ::pclose(pipe) : -1;
  std::filesystem::remove(file);
  scrape s;
  EXPECT_EQ(rc, 0) << "prometheus_client could not parse the exposition (exit " << rc << "); it begins:\n"
                   << text.substr(0, 2000);
  if (rc != 0) return s;
  const nlohmann::json j = nlohmann::json::parse(out);
  for (const auto& [name, type] : j["families"].items()) s.families[name] = type.get<std::string>();
  s.samples = j["samples"];
  return s;
}

double as_double(std::uint64_t v) {
  return static_cast<double>(v);
}

TEST(Metrics, TheTextParsesAndItsCountersEqualStatsAndUsage) {
  rk::runtime rt(cpu_options());
  rt.tenants().add(7, rk::tenant_quota::standard());
  const actor_index e1 = rt.spawn<echo>("e1", in_tenant(7));
  const actor_index e2 = rt.spawn<echo>("e2", in_tenant(7));
  const actor_index c1 = rt.spawn<counter>("c1");
  const actor_index s1 = rt.spawn<slow>("s1");
  rt.start();
  for (std::uint64_t i = 0; i < 50; ++i) {
    const ping_payload p{i, i};
    rk::send_options t7;
    t7.tenant = 7;
    ASSERT_EQ(rt.send(e1, msg_ping, rk::as_bytes(p), t7), status::enqueued);
    ASSERT_EQ(rt.send(e2, msg_ping, rk::as_bytes(p), t7), status::enqueued);
  }
  for (std::uint64_t i = 0; i < 30; ++i) ASSERT_EQ(rt.send(c1, msg_count, {}), status::enqueued);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(rt.send(s1, msg_count, {}), status::enqueued);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(rt.receive(10s).has_value()) << "reply " << i;
  ASSERT_TRUE(rt.shutdown().drained);

  const rk::runtime_stats st = rt.stats();
  const scrape m = parse(rt.metrics_text());
  EXPECT_EQ(m.families.at("ringkernel_handler_received"), "counter");
  EXPECT_EQ(m.families.at("ringkernel_handler_time_seconds"), "histogram");
  EXPECT_EQ(m.families.at("ringkernel_actor_queued"), "gauge");
  EXPECT_EQ(m.value("ringkernel_running"), 0.0);
  EXPECT_EQ(m.value("ringkernel_info", {{"backend", "cpu"}, {"description", rt.backend_description()}}), 1.0);

  for (const rk::actor_stats& a : st.actors) {
    const std::map<std::string, std::string> who{{"actor", a.name}, {"id", std::to_string(a.id)}};
    EXPECT_EQ(m.value("ringkernel_actor_received_total", who), as_double(a.received)) << a.name;
    EXPECT_EQ(m.value("ringkernel_actor_handled_total", who), as_double(a.handled)) << a.name;
    auto delivered = who;
    delivered["outcome"] = "delivered";
    EXPECT_EQ(m.value("ringkernel_actor_sent_total", delivered),
              as_double(a.sent[static_cast<int>(status::delivered)]))
        << a.name;
    EXPECT_EQ(m.value("ringkernel_actor_handler_time_seconds_count", who), as_double(a.handled)) << a.name;
    EXPECT_EQ(m.value("ringkernel_actor_queued", who), 0.0);
  }
  EXPECT_EQ(st.actors[e1].handled, 50u);
  EXPECT_EQ(m.value("ringkernel_handler_received_total", {{"handler", "echo"}}), 100.0);
  EXPECT_EQ(m.value("ringkernel_handler_sent_total", {{"handler", "echo"}, {"outcome", "delivered"}}), 100.0);
  EXPECT_EQ(m.value("ringkernel_handler_handled_total", {{"handler", "counter"}}), 30.0);
  EXPECT_EQ(m.value("ringkernel_handler_actors", {{"handler", "echo"}}), 2.0);
  EXPECT_EQ(m.value("ringkernel_handler_time_seconds_bucket", {{"handler", "echo"}, {"le", "+Inf"}}), 100.0);
  // The slow handler's calls all took over 300 µs: nothing in the buckets up to 262 µs.
  EXPECT_EQ(m.value("ringkernel_handler_time_seconds_bucket", {{"handler", "slow"}, {"le", "0.000262144"}}),
            0.0);
  EXPECT_EQ(m.value("ringkernel_handler_time_seconds_count", {{"handler", "slow"}}), 3.0);
  EXPECT_GE(m.value("ringkernel_handler_time_seconds_sum", {{"handler", "slow"}}), 3 * 300e-6);
  EXPECT_EQ(m.value("ringkernel_host_sends_total", {{"outcome", "enqueued"}}),
            as_double(st.host_sends[static_cast<int>(status::enqueued)]));
  EXPECT_EQ(m.value("ringkernel_gateway_verdicts_total", {{"outcome", "delivered"}}), 133.0);
  EXPECT_EQ(m.value("ringkernel_host_received_total"), 100.0);
  const rk::tenant_usage u7 = rt.tenants().usage(7);
  EXPECT_EQ(u7.messages_sent, 200u) << "100 host sends and 100 replies";
  EXPECT_EQ(m.value("ringkernel_tenant_messages_sent_total", {{"tenant", "7"}}), 200.0);
  EXPECT_EQ(m.value("ringkernel_tenant_actors", {{"tenant", "7"}}), 2.0);
  EXPECT_EQ(m.value("ringkernel_tenant_received_total", {{"tenant", "7"}}), 100.0);
  EXPECT_EQ(m.value("ringkernel_tenant_handled_total", {{"tenant", "0"}}), 33.0);

  // The JSON document holds the same values.
  const nlohmann::json j = nlohmann::json::parse(rt.metrics_json());
  EXPECT_EQ(j["format"], "ringkernel-metrics/1");
  bool seen_echo = false;
  for (const auto& h : j["handler_types"]) {
    if (h["handler"] != "echo") continue;
    seen_echo = true;
    EXPECT_EQ(h["received"], 100u);
    EXPECT_EQ(h["handler_time"]["count"], 100u);
    EXPECT_EQ(h["sent"]["delivered"], 100u);
  }
  EXPECT_TRUE(seen_echo);
  EXPECT_EQ(j["actors"].size(), 4u);
  EXPECT_EQ(j["host"]["received"], 100u);
}

TEST(Metrics, TheEndpointServesLiveAndFinalCountersOnLoopback) {
  rk::runtime rt(cpu_options());
  const actor_index e = rt.spawn<echo>("e");
  const std::uint16_t port = rt.serve_metrics();
  ASSERT_NE(port, 0);
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  {
    const auto before = client.Get("/metrics");
    ASSERT_TRUE(before) << "no answer from 127.0.0.1:" << port;
    EXPECT_EQ(before->status, 200);
    EXPECT_EQ(before->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(parse(before->body).value("ringkernel_running"), 0.0) << "served before start() too";
  }
  rt.start();
  for (std::uint64_t i = 0; i < 6; ++i) { // each scrape starts a Python parser: a few rounds suffice
    ASSERT_EQ(rt.send(e, msg_ping, rk::as_bytes(ping_payload{i, i})), status::enqueued);
    ASSERT_TRUE(rt.receive(10s).has_value());
    const auto live = client.Get("/metrics");
    ASSERT_TRUE(live);
    const scrape m = parse(live->body);
    EXPECT_EQ(m.value("ringkernel_running"), 1.0);
    // A reply the host received was counted before it was published.
    EXPECT_GE(m.value("ringkernel_actor_sent_total", {{"actor", "e"}, {"outcome", "delivered"}}),
              static_cast<double>(i + 1));
  }
  ASSERT_TRUE(rt.shutdown().drained);
  const auto final_text = client.Get("/metrics");
  ASSERT_TRUE(final_text) << "the endpoint serves until the runtime is destroyed";
  const scrape m = parse(final_text->body);
  const rk::runtime_stats st = rt.stats();
  EXPECT_EQ(m.value("ringkernel_actor_handled_total", {{"actor", "e"}}), as_double(st.actors[e].handled));
  EXPECT_EQ(st.actors[e].handled, 6u);
  const auto json = client.Get("/metrics.json");
  ASSERT_TRUE(json);
  EXPECT_EQ(json->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(nlohmann::json::parse(json->body)["actors"][0]["handled"], 6u);
  const auto missing = client.Get("/other");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

//! A TCP connection to 127.0.0.1:`port` (-1 when it cannot connect).
int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) return fd;
  if (fd >= 0) ::close(fd);
  return -1;
}

//! A client that sends a request one byte every 500 ms (under the endpoint's 2 s read timeout) until the
//! server closes the connection or the request is out; `lived` is how long the connection lasted.
struct trickling_client {
  explicit trickling_client(std::uint16_t port) : fd(connect_to(port)) {
    thread = std::thread([this] {
      const auto began = std::chrono::steady_clock::now();
      const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 'a');
      for (const char c : request) {
        pollfd p{fd, POLLIN, 0};
        char byte;
        if (::poll(&p, 1, 0) == 1 && ::recv(fd, &byte, 1, MSG_DONTWAIT) <= 0) break; // closed by the server
        if (::send(fd, &c, 1, MSG_NOSIGNAL) != 1) break;
        std::this_thread::sleep_for(500ms); // the pace of the client under test, not synchronisation
      }
      lived = std::chrono::steady_clock::now() - began;
    });
  }
  ~trickling_client() {
    if (thread.joinable()) thread.join();
    if (fd >= 0) ::close(fd);
  }
  int fd;
  std::thread thread;
  std::chrono::steady_clock::duration lived{};
};

// Clients that stall or trickle bytes hold one connection for a bounded time, never the others, and never
// the runtime's destruction. (One server thread once served one connection at a time, waited for a
// trickling client as long as it kept sending, and made ~runtime wait for it.)
TEST(Metrics, StallingAndTricklingClientsHoldTheEndpointForABoundedTime) {
  std::vector<int> silent;
  std::optional<trickling_client> second;
  std::chrono::steady_clock::time_point destroying;
  {
    rk::runtime rt(cpu_options());
    (void)rt.spawn<echo>("e");
    const std::uint16_t port = rt.serve_metrics();
    for (int i = 0; i < 8; ++i) silent.push_back(connect_to(port)); // never send a byte
    {
      trickling_client first(port);
      ASSERT_GE(first.fd, 0);
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(15, 0);
      const auto asked = std::chrono::steady_clock::now();
      const auto answer = client.Get("/metrics");
      ASSERT_TRUE(answer) << "no answer behind 8 silent connections and a trickling one";
      EXPECT_EQ(answer->status, 200);
      EXPECT_LT(std::chrono::steady_clock::now() - asked, 10s);
      first.thread.join(); // the server closes it after the 10 s a connection may live
      EXPECT_GE(first.lived, 9s);
      EXPECT_LT(first.lived, 20s) << "the 200-byte request takes 100 s at its pace";
    }
    second.emplace(port);
    ASSERT_GE(second->fd, 0);
    destroying = std::chrono::steady_clock::now();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - destroying, 3s) << "~runtime waited for a client";
  second.reset(); // its connection was closed with the endpoint
  for (const int fd : silent) ::close(fd);
}

//! Reads what the server sends on `fd` until it closes the connection or `until` holds for what came, at
//! most 10 s; `closed` says whether it closed.
std::string read_answers(int fd, bool& closed, const std::function<bool(const std::string&)>& until) {
  std::string got;
  closed = false;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!until(got) && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    char buffer[4096];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) {
      closed = true;
      break;
    }
    got.append(buffer, static_cast<std::size_t>(n));
  }
  return got;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A local client cannot make the endpoint hold much memory, and requests that arrive together are all
// answered. Headers streamed without end used to be kept (gigabytes in seconds, then std::bad_alloc ended
// the process: the connection was only closed by the 10 s lifetime); one Range header with many ranges
// built the exposition once per range in memory; pipelined requests after the first were dropped.
TEST(Metrics, ClientsCannotGrowTheProcessAndPipelinedRequestsAreAnswered) {
  rk::runtime rt(cpu_options());
  (void)rt.spawn<echo>("e");
  const std::uint16_t port = rt.serve_metrics();
  bool closed = false;
  {
    const int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    const auto began = std::chrono::steady_clock::now();
    std::string flood = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    while (flood.size() < (std::size_t{1} << 20)) flood += "a: b\r\n";
    std::size_t sent = 0;
    while (sent < flood.size()) { // until the server closes it (or all is sent: the socket buffers took it)
      const ssize_t n = ::send(fd, flood.data() + sent, flood.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    const std::string answer = read_answers(fd, closed, [](const std::string&) { return false; });
    EXPECT_TRUE(closed);
    EXPECT_LT(std::chrono::steady_clock::now() - began, 5s) << "closed by its lifetime, not its size";
    EXPECT_EQ(answer.find("200 OK"), std::string::npos) << answer;
    ::close(fd);
  }
  {
    httplib::Client client("127.0.0.1", port);
    std::string ranges = "bytes=0-";
    for (int i = 0; i < 1000; ++i) ranges += ",0-";
    const auto answer = client.Get("/metrics", {{"Range", ranges}});
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 416);
    EXPECT_LT(answer->body.size(), 1u << 20) << "the exposition once per range";
  }
  {
    const int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    const std::string request = "GET /metrics.json HTTP/1.1\r\nHost: x\r\n\r\n";
    const std::string three = request + request + request;
    ASSERT_EQ(::send(fd, three.data(), three.size(), MSG_NOSIGNAL), static_cast<ssize_t>(three.size()));
    const std::string answers =
        read_answers(fd, closed, [](const std::string& got) { return count_of(got, "HTTP/1.1 200") == 3; });
    EXPECT_EQ(count_of(answers, "HTTP/1.1 200"), 3u) << answers.substr(0, 300);
    ::close(fd);
  }
}

// Answers go out as they are, whatever Accept-Encoding asks: httplib compressed them with brotli for any
// client that accepted it (curl --compressed), which took seconds of CPU per scrape of 1,000 actors'
// series and held the runtime's destruction as long. The headers say what the endpoint does.
TEST(Metrics, AnswersAreNeverCompressedAndTheHeadersSayWhatTheEndpointDoes) {
  rk::runtime rt(cpu_options());
  (void)rt.spawn<echo>("e");
  const std::uint16_t port = rt.serve_metrics();
  const std::string expected = rt.metrics_text();
  for (const char* path : {"/metrics", "/metrics.json"}) {
    const int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    const std::string request = std::string("GET ") + path +
                                " HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip, deflate\r\n"
                                "Connection: close\r\n\r\n";
    ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    bool closed = false;
    const std::string answer = read_answers(fd, closed, [](const std::string&) { return false; });
    ::close(fd);
    ASSERT_NE(answer.find("HTTP/1.1 200"), std::string::npos) << answer.substr(0, 300);
    const std::size_t body_at = answer.find("\r\n\r\n");
    ASSERT_NE(body_at, std::string::npos);
    const std::string head = answer.substr(0, body_at);
    EXPECT_EQ(head.find("Content-Encoding"), std::string::npos) << head;
    EXPECT_NE(head.find("Content-Length: " + std::to_string(answer.size() - body_at - 4)), std::string::npos)
        << head;
    EXPECT_EQ(head.find("Accept-Ranges: bytes"), std::string::npos) << head;
    if (std::string(path) == "/metrics") {
      EXPECT_EQ(answer.substr(body_at + 4, 40), expected.substr(0, 40)) << "the exposition itself";
    }
  }
  const int fd = connect_to(port); // kept alive: the header gives the idle time the endpoint allows
  ASSERT_GE(fd, 0);
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  bool closed = false;
  const std::string answer = read_answers(
      fd, closed, [](const std::string& got) { return got.find("\r\n\r\n") != std::string::npos; });
  ::close(fd);
  EXPECT_NE(answer.find("Keep-Alive: timeout=1,"), std::string::npos) << answer.substr(0, 300);
}

// The endpoint acts on its own connections only. (It once found them among all the process's descriptors,
// each through a duplicate it then closed, which released the application's fcntl locks on any file.)
TEST(Metrics, TheEndpointLeavesTheApplicationsDescriptorsAlone) {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("rk_metrics_lock_" + std::to_string(::getpid()));
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  flock lock{};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  ASSERT_EQ(::fcntl(fd, F_SETLK, &lock), 0);
  // Whether another process sees the lock (a process's own locks never conflict with it).
  const auto held = [&] {
    const pid_t child = ::fork();
    if (child == 0) {
      const int mine = ::open(file.c_str(), O_RDWR);
      flock probe{};
      probe.l_type = F_WRLCK;
      probe.l_whence = SEEK_SET;
      ::_exit(mine >= 0 && ::fcntl(mine, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK ? 0 : 1);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  };
  ASSERT_TRUE(held());
  std::optional<trickling_client> client; // a connection still open when the runtime goes away
  {
    rk::runtime rt(cpu_options());
    (void)rt.spawn<echo>("e");
    const std::uint16_t port = rt.serve_metrics();
    client.emplace(port);
    ASSERT_GE(client->fd, 0);
    httplib::Client scraper("127.0.0.1", port);
    ASSERT_TRUE(scraper.Get("/metrics"));
    EXPECT_TRUE(held());
  }
  EXPECT_TRUE(held()) << "the endpoint released the application's lock";
  client.reset(); // the endpoint closed its connection: the client sees it at once
  ::close(fd);
  std::filesystem::remove(file);
}

TEST(Metrics, BadEndpointOptionsAreRefusedWithAClearError) {
  rk::runtime rt(cpu_options());
  using namespace std::string_literals;
  for (const std::string& address :
       {"0.0.0.0"s, "192.168.1.10"s, "::"s, "example.com"s, ""s, "127.0.0.1\0.example.com"s}) {
    rk::metrics_endpoint_options o;
    o.address = address;
    try {
      rt.serve_metrics(o);
      ADD_FAILURE() << "bound " << address;
    } catch (const rk::error& e) {
      EXPECT_NE(std::string(e.what()).find("loopback"), std::string::npos) << e.what();
    }
  }
  const std::uint16_t port = rt.serve_metrics();
  try {
    rt.serve_metrics();
    ADD_FAILURE() << "a second endpoint";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("already serves"), std::string::npos) << e.what();
  }
  rk::runtime other(cpu_options());
  rk::metrics_endpoint_options same;
  same.port = port;
  try {
    other.serve_metrics(same);
    ADD_FAILURE() << "bound a port in use";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot bind"), std::string::npos) << e.what();
  }
  same.address = "localhost";
  same.port = 0;
  EXPECT_NE(other.serve_metrics(same), 0) << "after a refusal the runtime can still serve";
}

TEST(Metrics, ForgottenActorsStayInTheirHandlerTypesSums) {
  rk::runtime rt(cpu_options());
  const actor_index gone = rt.spawn<echo>("gone");
  const actor_index kept = rt.spawn<echo>("kept");
  rt.start();
  for (std::uint64_t i = 0; i < 5; ++i) {
    ASSERT_EQ(rt.send(gone, msg_ping, rk::as_bytes(ping_payload{i, i})), status::enqueued);
    ASSERT_EQ(rt.send(kept, msg_ping, rk::as_bytes(ping_payload{i, i})), status::enqueued);
  }
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(rt.receive(10s).has_value());
  ASSERT_TRUE(rt.stop(gone, 5s));
  rt.forget(gone);
  const scrape m = parse(rt.metrics_text());
  EXPECT_EQ(m.value("ringkernel_handler_received_total", {{"handler", "echo"}}), 10.0);
  EXPECT_EQ(m.value("ringkernel_handler_handled_total", {{"handler", "echo"}}), 10.0);
  EXPECT_EQ(m.value("ringkernel_handler_time_seconds_count", {{"handler", "echo"}}), 10.0);
  EXPECT_EQ(m.value("ringkernel_handler_actors", {{"handler", "echo"}}), 1.0);
  EXPECT_EQ(m.count("ringkernel_actor_received_total"), 1u) << "only 'kept' has series of its own";
  EXPECT_TRUE(rt.shutdown().drained);
}

// A tenant removed and added again starts all its series from zero (its usage does): its earlier actors'
// counts stay in their handler type's series only. They once stayed in the re-added tenant's received and
// handled series while its messages_sent started again from zero.
TEST(Metrics, ATenantAddedAgainStartsEveryTenantSeriesFromZero) {
  rk::runtime rt(cpu_options());
  rt.tenants().add(7, rk::tenant_quota::standard());
  const actor_index gone = rt.spawn<echo>("gone", in_tenant(7));
  rt.start();
  for (std::uint64_t i = 0; i < 5; ++i)
    ASSERT_EQ(rt.send_wait(gone, msg_ping, rk::as_bytes(ping_payload{i, i}), 10s, as_tenant(7)),
              status::delivered);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(rt.receive(10s).has_value());
  ASSERT_TRUE(rt.stop(gone, 5s));
  rt.forget(gone);
  const std::map<std::string, std::string> seven{{"tenant", "7"}};
  EXPECT_EQ(parse(rt.metrics_text()).value("ringkernel_tenant_handled_total", seven), 5.0);
  rt.tenants().remove(7);
  rt.tenants().add(7, rk::tenant_quota::standard());
  const actor_index fresh = rt.spawn<echo>("fresh", in_tenant(7));
  ASSERT_EQ(rt.send_wait(fresh, msg_ping, rk::as_bytes(ping_payload{9, 9}), 10s, as_tenant(7)),
            status::delivered);
  ASSERT_TRUE(rt.receive(10s).has_value());
  const scrape m = parse(rt.metrics_text());
  EXPECT_EQ(m.value("ringkernel_tenant_received_total", seven), 1.0);
  EXPECT_EQ(m.value("ringkernel_tenant_handled_total", seven), 1.0);
  EXPECT_EQ(m.value("ringkernel_tenant_messages_sent_total", seven), 2.0) << "the host's send and the reply";
  EXPECT_EQ(m.value("ringkernel_handler_handled_total", {{"handler", "echo"}}), 6.0) << "all of them";
  const rk::runtime_stats st = rt.stats();
  ASSERT_EQ(st.forgotten_by_handler_and_tenant.size(), 1u);
  EXPECT_TRUE(st.forgotten_by_handler_and_tenant[0].tenant_removed);
  EXPECT_EQ(st.forgotten_by_handler_and_tenant[0].handled, 5u);
  EXPECT_TRUE(rt.shutdown().drained);
}

// The counts of removed tenants' forgotten actors are kept once per handler type, not once per removed
// tenant: a service that added and removed 20,000 tenants held 20,001 entries (2.5 KB each), and stats()
// and metrics_text() slowed from 0.1 to 15-33 ms.
TEST(Metrics, RemovedTenantsShareOneForgottenEntryPerHandlerType) {
  rk::runtime rt(cpu_options());
  rt.prepare<echo>();
  (void)rt.spawn<counter>("kept");
  rt.start();
  const std::uint64_t tenants = 40;
  for (std::uint64_t t = 100; t < 100 + tenants; ++t) {
    rt.tenants().add(t, rk::tenant_quota::standard());
    const actor_index a = rt.spawn<echo>(std::to_string(t), in_tenant(t));
    ASSERT_EQ(rt.send_wait(a, msg_ping, rk::as_bytes(ping_payload{t, t}), 10s, as_tenant(t)),
              status::delivered);
    ASSERT_TRUE(rt.receive(10s).has_value());
    ASSERT_TRUE(rt.stop(a, 5s));
    rt.forget(a);
    rt.tenants().remove(t);
  }
  const rk::runtime_stats st = rt.stats();
  ASSERT_EQ(st.forgotten_by_handler_and_tenant.size(), 1u);
  const rk::actor_stats& removed = st.forgotten_by_handler_and_tenant[0];
  EXPECT_TRUE(removed.tenant_removed);
  EXPECT_EQ(removed.tenant, 0u) << "of no tenant: of every one removed";
  EXPECT_EQ(removed.handler, "echo");
  EXPECT_EQ(removed.handled, tenants);
  EXPECT_EQ(st.forgotten.handled, tenants);
  EXPECT_EQ(parse(rt.metrics_text()).value("ringkernel_handler_handled_total", {{"handler", "echo"}}),
            static_cast<double>(tenants));
  EXPECT_TRUE(rt.shutdown().drained);
}

TEST(Metrics, FaultsAreCountedPerHandlerTypeKindAndActor) {
  rk::runtime rt(cpu_options());
  const actor_index t = rt.spawn<trapper>("t");
  rt.start();
  ASSERT_EQ(rt.send(t, msg_trap, {}), status::enqueued);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (rt.lifecycle(t) != rk::actor_lifecycle::faulted && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  ASSERT_EQ(rt.lifecycle(t), rk::actor_lifecycle::faulted);
  const scrape m = parse(rt.metrics_text());
  EXPECT_EQ(m.value("ringkernel_faults_total", {{"handler", "trapper"}, {"kind", "trap"}}), 1.0);
  EXPECT_EQ(m.value("ringkernel_faults_total", {{"handler", "trapper"}, {"kind", "exception"}}), 0.0);
  EXPECT_EQ(m.value("ringkernel_actor_faults_total", {{"actor", "t"}}), 1.0);
  EXPECT_EQ(m.value("ringkernel_actor_lifecycle", {{"actor", "t"}, {"lifecycle", "faulted"}}), 1.0);
  rt.shutdown();
}

TEST(Metrics, NamesAreEscapedAndActorSeriesAreBounded) {
  rk::runtime rt(cpu_options());
  // Control characters other than the line feed are legal in a label value as they are. (NUL is too, but
  // names may not hold one: it ends them early wherever they are C strings.)
  const std::string odd = std::string("we\"ird\\na\nme\r\t\x1b\x7f").append("end");
  rt.spawn<counter>(odd);
  rt.spawn<counter>("b");
  rt.spawn<counter>("c");
  rk::metrics_options one;
  one.max_actor_series = 1;
  const scrape m = parse(rt.metrics_text(one));
  EXPECT_EQ(m.value("ringkernel_actor_received_total", {{"actor", odd}}), 0.0) << "the raw name comes back";
  EXPECT_EQ(m.count("ringkernel_actor_received_total"), 1u);
  EXPECT_EQ(m.value("ringkernel_actor_series_omitted"), 2.0);
  rk::metrics_options none;
  none.max_actor_series = 0;
  const scrape n = parse(rt.metrics_text(none));
  EXPECT_EQ(n.count("ringkernel_actor_received_total"), 0u);
  EXPECT_EQ(n.value("ringkernel_actor_series_omitted"), 3.0);
  EXPECT_EQ(n.value("ringkernel_handler_actors", {{"handler", "counter"}}), 3.0);
  EXPECT_EQ(nlohmann::json::parse(rt.metrics_json(none))["actor_series_omitted"], 3u);
}

TEST(Metrics, HandlerTimeBucketsHaveInclusiveUpperBounds) {
  using rk::detail::handler_time_bucket;
  EXPECT_EQ(handler_time_bucket(0), 0u);
  EXPECT_EQ(handler_time_bucket(1024), 0u);
  EXPECT_EQ(handler_time_bucket(1025), 1u);
  EXPECT_EQ(handler_time_bucket(4096), 1u);
  EXPECT_EQ(handler_time_bucket(4097), 2u);
  for (std::size_t k = 0; k + 1 < rk::handler_time_bucket_count; ++k) {
    EXPECT_EQ(handler_time_bucket(rk::handler_time_bucket_bound_ns(k)), k);
    EXPECT_EQ(handler_time_bucket(rk::handler_time_bucket_bound_ns(k) + 1), k + 1);
  }
  EXPECT_EQ(handler_time_bucket(UINT64_MAX), rk::handler_time_bucket_count - 1);
  EXPECT_EQ(rk::handler_time_bucket_bound_ns(rk::handler_time_bucket_count - 1), UINT64_MAX);
}

} // namespace
