// Files the runtime writes for the application (see file_output.hpp).

#include "file_output.hpp"

#include <ringkernel/host/error.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

namespace rk::detail {

void replace_file(const std::filesystem::path& path, std::initializer_list<std::string_view> parts,
                  const std::string& who) {
  std::filesystem::path partial = path;
  partial += ".partial";
  const auto fail = [&](const std::string& why) {
    std::error_code ignored;
    std::filesystem::remove(partial, ignored);
    throw error(who + ": cannot write '" + path.string() + "' (" + why + "); it was left as it was");
  };
  errno = 0; // what a failed open or write leaves in it says why
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    for (std::string_view part : parts)
      if (out) out.write(part.data(), static_cast<std::streamsize>(part.size()));
    out.close();
    if (!out) {
      const int why = errno;
      fail(why != 0 ? std::strerror(why) : "the write failed");
    }
  }
  std::error_code ec;
  std::filesystem::rename(partial, path, ec);
  if (ec) fail("renaming '" + partial.string() + "' over it: " + ec.message());
}

} // namespace rk::detail
