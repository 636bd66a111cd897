#pragma once
//! \file
//! The message type registry: id, name, routable flag and category for each message type.
//!
//! A type registered with `routable = false` may be sent by the host to an actor and by an actor to the
//! host, but never from actor to actor: the device refuses such K2K sends with `not_routable` (it keeps
//! a bitmap of the non-routable ids below runtime_options::max_message_types). Types that were never
//! registered are routable.
//!
//! Static registration, at namespace scope in a header or source file:
//!   RK_REGISTER_MESSAGE_TYPE(order_placed, 100, true, "trading");
//! defines `inline constexpr std::uint32_t order_placed = 100;` and registers {100, "order_placed",
//! routable, "trading"} in rk::global_message_types() before main(). Every rk::runtime starts with a copy
//! of the global registry; runtime::register_message_type adds types to one runtime while it runs.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rk {

struct message_type_info {
  std::uint32_t id = 0;
  std::string name;
  bool routable = true;
  std::string category;
};

class message_type_registry {
public:
  message_type_registry() = default;
  message_type_registry(const message_type_registry& other);
  message_type_registry& operator=(const message_type_registry&) = delete;

  //! Adds a type. Registering the identical type again is a no-op; an id or a name that is already taken
  //! by a different type throws rk::error naming both.
  void add(const message_type_info& info);
  //! Whether add(info) would add something: false when the identical type is already there; throws
  //! rk::error exactly where add() would. Lets a caller prepare for a new type before adding it.
  [[nodiscard]] bool would_add(const message_type_info& info) const;
  std::optional<message_type_info> find(std::uint32_t id) const;
  std::optional<message_type_info> find(std::string_view name) const;
  std::vector<message_type_info> in_category(std::string_view category) const;
  std::vector<message_type_info> all() const;

private:
  bool would_add_locked(const message_type_info& info) const;

  mutable std::mutex mutex_;
  std::map<std::uint32_t, message_type_info> by_id_;
  std::map<std::string, std::uint32_t, std::less<>> by_name_;
};

//! The process-wide registry that RK_REGISTER_MESSAGE_TYPE fills.
message_type_registry& global_message_types();

struct message_type_registrar {
  explicit message_type_registrar(const message_type_info& info) { global_message_types().add(info); }
};

} // namespace rk

#define RK_REGISTER_MESSAGE_TYPE(identifier, type_id, is_routable, category_name)                            \
  inline constexpr std::uint32_t identifier = (type_id);                                                     \
  inline const ::rk::message_type_registrar rk_message_type_registrar_##identifier {                         \
    ::rk::message_type_info {                                                                                \
      (type_id), #identifier, (is_routable), (category_name)                                                 \
    }                                                                                                        \
  }
