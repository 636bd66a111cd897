#pragma once
// Small helpers shared by the host facilities.

#include <ringkernel/device/backoff.cuh>
#include <ringkernel/device/detail/system.cuh>
#include <ringkernel/host/error.hpp>
#include <ringkernel/host/stats.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace rk::detail {

//! rk::error for a full table or an exhausted running arena. Slots and memory given back wait for a grace
//! period, so the coordinator retries a call that failed with it once those have ended.
class out_of_room : public error {
public:
  using error::error;
};

//! One timeout shared by the successive waits of one call: left() is what remains of it (a timeout too long
//! for 64-bit nanoseconds, which timeout_ns turns into wait_forever, stays as given).
class call_timeout {
public:
  explicit call_timeout(std::chrono::nanoseconds timeout) noexcept
      : timeout_(timeout), limit_ns_(timeout_ns(timeout)), begin_ns_(physical_clock_ns()) {}
  std::chrono::nanoseconds left() const noexcept {
    if (limit_ns_ == wait_forever) return timeout_;
    const std::uint64_t spent = physical_clock_ns() - begin_ns_;
    return std::chrono::nanoseconds(static_cast<std::int64_t>(limit_ns_ - std::min(limit_ns_, spent)));
  }

private:
  std::chrono::nanoseconds timeout_;
  std::uint64_t limit_ns_;
  std::uint64_t begin_ns_;
};

//! Host read of a word that workers write in mapped memory.
template <class T>
T load_acquire(const T& word) noexcept {
  return cuda::atomic_ref<T, pcie_scope>(const_cast<T&>(word)).load(cuda::std::memory_order_acquire);
}

//! Names beginning with this are the runtime's own (remote entries of a cluster: "rk:rank 1/actor 5"), so
//! that no name an application gives can take one.
//! The public call the calling thread is in, as its errors name it ("stop()"), set by a public_call scope
//! in runtime.cpp. Lookups deep inside such a call name it instead of themselves when the id they were
//! given became unknown meanwhile (forgotten by another thread after the call checked it).
inline thread_local const char* public_call_name = nullptr;
class public_call {
public:
  explicit public_call(const char* name) noexcept : previous_(public_call_name) { public_call_name = name; }
  ~public_call() { public_call_name = previous_; }
  public_call(const public_call&) = delete;
  public_call& operator=(const public_call&) = delete;

private:
  const char* previous_;
};
//! `who`, or the public call the thread is in when there is one.
inline std::string call_name(std::string_view who) {
  return std::string(public_call_name != nullptr ? std::string_view(public_call_name) : who);
}

inline constexpr std::string_view reserved_name_prefix = "rk:";

//! Whether `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF).
inline bool valid_utf8(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++p;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) <= n) return false;
    for (std::size_t i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    constexpr std::uint32_t smallest[] = {0, 0x80, 0x800, 0x10000};
    if (cp < smallest[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += n + 1;
  }
  return true;
}

//! Throws (`who: ...`) for a name an application may not give: empty, with a NUL byte, not UTF-8 (every
//! export of the runtime is JSON, which holds UTF-8 text only), or in the runtime's reserved range.
inline void check_user_name(const std::string& name, const std::string& who, const char* what) {
  if (name.empty()) throw error(who + ": the " + what + " must not be empty");
  if (name.find('\0') != std::string::npos) {
    std::string shown; // `who` quotes the name: its NUL, left as it is, would end the message there
    for (const char c : who) {
      if (c == '\0')
        shown += "\\0";
      else
        shown += c;
    }
    throw error(shown + ": the " + what +
                " contains a NUL byte, which would end it early in C strings, logs and metrics labels; "
                "remove it");
  }
  if (!valid_utf8(name))
    throw error(who + ": the " + what +
                " is not valid UTF-8 text (metrics, traces and state dumps are JSON); "
                "use UTF-8");
  if (name.starts_with(reserved_name_prefix))
    throw error(who + ": names beginning with '" + std::string(reserved_name_prefix) +
                "' are reserved for the runtime's own entries; choose another " + what);
}

inline std::string geometry_text(const ring_geometry& g) {
  return "capacity=" + std::to_string(g.capacity) + ", slot_bytes=" + std::to_string(g.slot_bytes);
}

inline std::string tenant_text(std::uint64_t tenant) {
  return "tenant " + std::to_string(tenant);
}

inline std::size_t round_up(std::size_t n, std::size_t to) {
  return (n + to - 1) / to * to;
}

//! Whether `a` reached `b` on a wrapping 32-bit counter.
inline bool reached(std::uint32_t a, std::uint32_t b) noexcept {
  return static_cast<std::int32_t>(a - b) >= 0;
}

//! Adds the counts of `from` (one actor, or a group of them) to `into`: sends by outcome, received, handled,
//! discarded, interrupted, deferred, reservations and handler time.
inline void add_counts(actor_stats& into, const actor_stats& from) noexcept {
  for (std::size_t k = 0; k < status_count; ++k) into.sent[k] += from.sent[k];
  into.received += from.received;
  into.handled += from.handled;
  into.discarded += from.discarded;
  into.interrupted += from.interrupted;
  into.deferred += from.deferred;
  into.reservations += from.reservations;
  into.handler_ns += from.handler_ns;
  for (std::size_t k = 0; k < handler_time_bucket_count; ++k) into.handler_time[k] += from.handler_time[k];
}

} // namespace rk::detail
