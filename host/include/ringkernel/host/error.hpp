#pragma once
//! \file
//! rk::error: thrown by setup and resource APIs. The message says what was wrong and what to do.

#include <stdexcept>
#include <string>

namespace rk {

class error : public std::runtime_error {
public:
  explicit error(const std::string& what) : std::runtime_error(what) {}
};

} // namespace rk
