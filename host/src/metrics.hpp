#pragma once
// Metrics rendering (the contract is <ringkernel/host/metrics.hpp>): one reading of the runtime's counters,
// taken by the coordinator, turned into Prometheus text or JSON. Pure functions: no facility, no lock.
// The HTTP endpoint that serves them is metrics_endpoint.hpp.

#include "faults.hpp"

#include <ringkernel/host/audit.hpp>
#include <ringkernel/host/metrics.hpp>
#include <ringkernel/host/stats.hpp>
#include <ringkernel/host/tenancy.hpp>

#include <map>
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

//! Sums of actor counters over a handler type or a tenant.
struct totals {
  std::uint64_t actors = 0; //!< current actors (forgotten ones are not counted)
  actor_stats sums;         //!< queued() of the sums is the sum of queued(): forgotten actors have none
  void add(const actor_stats& a, bool current);
};
struct grouped {
  std::map<std::string, totals> by_handler;
  std::map<std::uint64_t, totals> by_tenant;
};
//! The reading's actors (aliases aside) and forgotten counters summed per handler type and per tenant;
//! `fault_only_handlers` adds an empty row for a handler type known only from its faults.
grouped group(const metrics_reading& r, bool fault_only_handlers);

std::string prometheus_text(const metrics_reading& r, const metrics_options& options);
std::string metrics_json(const metrics_reading& r, const metrics_options& options);

} // namespace rk::detail
