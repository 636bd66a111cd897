// State dumps as text and JSON (see <ringkernel/host/state_dump.hpp>).

#include <ringkernel/host/detail/printable.hpp>
#include <ringkernel/host/state_dump.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <ctime>

namespace rk {

namespace {

std::string age_text(const std::optional<std::chrono::nanoseconds>& age) {
  if (!age) return "?";
  char buffer[32];
  const double ms = std::chrono::duration<double, std::milli>(*age).count();
  std::snprintf(buffer, sizeof buffer, ms < 10'000 ? "%.1f ms" : "%.0f s", ms < 10'000 ? ms : ms / 1e3);
  return buffer;
}

std::string utc(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return buffer;
}

nlohmann::json optional_ns(const std::optional<std::chrono::nanoseconds>& v) {
  return v ? nlohmann::json(v->count()) : nlohmann::json(nullptr);
}

} // namespace

std::string state_dump::text() const {
  using detail::printable; // names are the application's: no control character reaches the reader raw
  std::string out = "ringkernel state at " + utc(taken) + ": backend " + printable(backend) + ", " + phase +
                    (paused ? " (paused)" : "") + ", " + std::to_string(actors) + " actors, " +
                    std::to_string(workers.size()) + " workers, " + std::to_string(mailboxes.size()) +
                    " non-empty mailboxes\n";
  if (fault) out += "  FAULT: " + printable(*fault) + "\n";
  if (!ages_known) out += "  (ages need the watchdog: runtime_options::handler_timeout > 0 while running)\n";
  for (const worker_state& w : workers) {
    out += "  worker " + std::to_string(w.worker) + " [" + printable(w.serves) + "]: ";
    if (w.actor) {
      out += "handling actor '" + printable(w.actor_name) + "' (id " + std::to_string(*w.actor) +
             "), message type " + std::to_string(w.message_type) + ", for " + age_text(w.busy_for) +
             ", heartbeat still for " + age_text(w.heartbeat_age);
    } else {
      out += "idle, heartbeat still for " + age_text(w.heartbeat_age);
    }
    out += '\n';
  }
  for (const mailbox_state& m : mailboxes) {
    out += "  actor '" + printable(m.name) + "' (id " + std::to_string(m.actor) + ", handler '" +
           printable(m.handler) + "', tenant " + std::to_string(m.tenant) + ", " + m.lifecycle +
           "): " + std::to_string(m.queued) + " queued, lanes";
    for (std::uint32_t l = 0; l < m.lane_count; ++l) out += ' ' + std::to_string(m.lanes[l]);
    char words[64];
    std::snprintf(words, sizeof words, ", words host 0x%x device 0x%x\n", m.host_word, m.device_word);
    out += words;
  }
  return out;
}

std::string state_dump::json() const {
  nlohmann::json doc;
  doc["format"] = "ringkernel-state/1";
  doc["taken"] = utc(taken);
  doc["backend"] = backend;
  doc["phase"] = phase;
  doc["paused"] = paused;
  doc["fault"] = fault ? nlohmann::json(*fault) : nlohmann::json(nullptr);
  doc["ages_known"] = ages_known;
  doc["actors"] = actors;
  nlohmann::json ws = nlohmann::json::array();
  for (const worker_state& w : workers) {
    ws.push_back({{"worker", w.worker},
                  {"serves", w.serves},
                  {"scheduled", w.scheduled},
                  {"actor", w.actor ? nlohmann::json(*w.actor) : nlohmann::json(nullptr)},
                  {"actor_name", w.actor_name},
                  {"message_type", w.message_type},
                  {"heartbeat", w.heartbeat},
                  {"busy_for_ns", optional_ns(w.busy_for)},
                  {"heartbeat_age_ns", optional_ns(w.heartbeat_age)}});
  }
  doc["workers"] = std::move(ws);
  nlohmann::json ms = nlohmann::json::array();
  for (const mailbox_state& m : mailboxes) {
    nlohmann::json lanes = nlohmann::json::array();
    for (std::uint32_t l = 0; l < m.lane_count; ++l) lanes.push_back(m.lanes[l]);
    ms.push_back({{"actor", m.actor},
                  {"name", m.name},
                  {"handler", m.handler},
                  {"tenant", m.tenant},
                  {"lifecycle", m.lifecycle},
                  {"queued", m.queued},
                  {"lanes", std::move(lanes)},
                  {"host_word", m.host_word},
                  {"device_word", m.device_word}});
  }
  doc["mailboxes"] = std::move(ms);
  // Names given at setup are checked to be UTF-8; other text (a handler type's own name) that is not is
  // written with U+FFFD in place of the bad bytes instead of throwing.
  return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace rk
