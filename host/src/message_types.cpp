// The message type registry (see message_types.hpp).

#include "support.hpp"

#include <ringkernel/host/error.hpp>
#include <ringkernel/host/message_types.hpp>

#include <ringkernel/device/refusal_notice.cuh>

namespace rk {

message_type_registry::message_type_registry(const message_type_registry& other) {
  std::lock_guard lock(other.mutex_);
  by_id_ = other.by_id_;
  by_name_ = other.by_name_;
}

bool message_type_registry::would_add_locked(const message_type_info& info) const {
  if (info.name.empty())
    throw error("register_message_type(" + std::to_string(info.id) + "): the type needs a name");
  if (!detail::valid_utf8(info.name) || !detail::valid_utf8(info.category))
    throw error("register_message_type(" + std::to_string(info.id) +
                "): the name and category must be valid UTF-8 text (they appear in JSON exports)");
  if (info.name.find('\0') != std::string::npos || info.category.find('\0') != std::string::npos)
    throw error("register_message_type(" + std::to_string(info.id) +
                "): the name or category contains a NUL byte, which would end it early in C strings, logs "
                "and metrics labels; remove it");
  if (const auto it = by_id_.find(info.id); it != by_id_.end()) {
    const message_type_info& existing = it->second;
    if (existing.name == info.name && existing.routable == info.routable &&
        existing.category == info.category)
      return false;
    throw error("register_message_type('" + info.name + "'): id " + std::to_string(info.id) +
                " is already registered as '" + existing.name + "' with different properties");
  }
  if (const auto it = by_name_.find(info.name); it != by_name_.end())
    throw error("register_message_type('" + info.name + "', id " + std::to_string(info.id) +
                "): the name is already registered with id " + std::to_string(it->second));
  return true;
}

bool message_type_registry::would_add(const message_type_info& info) const {
  std::lock_guard lock(mutex_);
  return would_add_locked(info);
}

void message_type_registry::add(const message_type_info& info) {
  std::lock_guard lock(mutex_);
  if (!would_add_locked(info)) return;
  by_id_.emplace(info.id, info);
  by_name_.emplace(info.name, info.id);
}

std::optional<message_type_info> message_type_registry::find(std::uint32_t id) const {
  std::lock_guard lock(mutex_);
  const auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<message_type_info> message_type_registry::find(std::string_view name) const {
  std::lock_guard lock(mutex_);
  const auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return by_id_.at(it->second);
}

std::vector<message_type_info> message_type_registry::in_category(std::string_view category) const {
  std::lock_guard lock(mutex_);
  std::vector<message_type_info> out;
  for (const auto& [id, info] : by_id_)
    if (info.category == category) out.push_back(info);
  return out;
}

std::vector<message_type_info> message_type_registry::all() const {
  std::lock_guard lock(mutex_);
  std::vector<message_type_info> out;
  for (const auto& [id, info] : by_id_) out.push_back(info);
  return out;
}

message_type_registry& global_message_types() {
  static message_type_registry registry = [] {
    message_type_registry reserved;
    reserved.add({refusal_notice_type, "rk.refusal_notice", true, "ringkernel"}); // refusal_notice.cuh
    return reserved;
  }();
  return registry;
}

} // namespace rk
