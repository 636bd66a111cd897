#pragma once
// What a runtime is built from: its options, checked before anything is allocated (so a rejected option
// costs nothing), and its backend, chosen as runtime_options::backend asks and announced on one line.
// Called once, by the coordinator's constructor.

#include <ringkernel/runtime/detail/backend.hpp>

#include <memory>
#include <string>

namespace rk::detail {

//! The largest runtime_options::scheduled_workers.
inline constexpr std::uint32_t max_scheduled_workers = 4096;
//! The largest runtime_options::device_idle_sleep_max_ns: one `__nanosleep` sleeps at most about 1 ms.
inline constexpr std::uint32_t max_device_idle_sleep_ns = 1'000'000;
//! Worker entries kept for scheduled pools beside one per actor (all handler types' pools together).
inline constexpr std::uint32_t scheduled_worker_entries = 8192;

//! `options` with defaults filled in (max_group_members); throws rk::error naming the first bad option.
runtime_options validated(runtime_options options);
//! The backend `options.backend` asks for; `description` says which GPU, or why the CPU backend.
std::unique_ptr<backend_impl> choose_backend(const runtime_options& options, std::string& description);

} // namespace rk::detail
