#pragma once
// Metrics rendering (the contract is <ringkernel/host/metrics.hpp>): one reading of the runtime's counters,
// taken by the coordinator, turned into Prometheus text or JSON. Pure functions: no facility, no lock.
// The HTTP endpoint that serves them is metrics_endpoint.hpp.

#include "faults.hpp"

#include <ringkernel/host/audit.hpp>
#include <ringkernel/host/metrics.hpp>
#include <ringkernel/host/stats.hpp>
#include <ringkernel/host/tenancy.hpp>

#include <string>
#include <vector>

namespace rk::detail {

//! Everything one exposition shows, read once.
struct metrics_reading {
  std::string backend;             //!< "cpu" or "cuda"
  std::string backend_description; //!< runtime::backend_description()
  bool running = false;
  bool faulted = false;      //!< the runtime faulted as a whole (a device fault on CUDA)
  double uptime_seconds = 0; //!< since start() (0 before)
  runtime_stats stats;       //!< runtime::stats()
  std::vector<tenant_usage> tenants;
  audit_drain_stats audit;
  fault_counts faults;
};

std::string prometheus_text(const metrics_reading& r, const metrics_options& options);
std::string metrics_json(const metrics_reading& r, const metrics_options& options);

} // namespace rk::detail
