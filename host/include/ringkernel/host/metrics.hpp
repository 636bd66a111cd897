#pragma once
//! \file
//! Metrics of a runtime in the formats people scrape: runtime::metrics_text() (Prometheus text exposition
//! format 0.0.4), runtime::metrics_json() and, when asked for, an HTTP endpoint on a loopback address
//! (runtime::serve_metrics). docs/observability.md lists every series.
//!
//! Contract:
//!  - Every value comes from the counters runtime::stats(), tenants().all(), audit_stats() and the
//!    fault reports hold, read once per exposition. Counters (`_total`, histograms) never go down while
//!    the runtime lives: a forgotten actor's counts stay in its handler type's and tenant's series (a
//!    tenant removed and added again starts its series from zero; see docs/observability.md).
//!  - Series per runtime (uptime, host sends and gateway verdicts by outcome, audit records and losses,
//!    faults by handler type and kind), per handler type and per tenant (sums over their actors), and per
//!    actor for at most metrics_options::max_actor_series actors (lowest ids first; how many were left
//!    out is `ringkernel_actor_series_omitted`). Handler time is a histogram with the fixed buckets of
//!    handler_time_bucket_bound_ns().
//!  - Actor and handler names appear only as label values, escaped as the format requires.
//!  - The endpoint answers GET /metrics (text) and GET /metrics.json, binds only loopback addresses (names
//!    and tenant ids are in the series: put an authenticating proxy in front to expose them further), and
//!    serves until the runtime is destroyed (after shutdown() it shows the final counters). It serves 4
//!    connections at once; a read or write waits at most 2 s, an idle kept-alive connection 1 s, and no
//!    connection lives longer than 10 s, so clients that stall or trickle bytes hold a connection for a
//!    bounded time and never delay the runtime's destruction. A request (line, headers and body) may
//!    take 64 KiB, more closes its connection; a Range header is answered 416; at most 64 accepted
//!    connections wait for a serving thread, more are closed at once. Answers are never compressed
//!    (Accept-Encoding is ignored: brotli cost seconds of CPU per large scrape). Local clients can still keep
//!    scrapes waiting (4 connections each held up to 10 s): the limits bound memory and descriptors,
//!    not who gets served first.

#include <cstdint>
#include <string>

namespace rk {

struct metrics_options {
  //! Per-actor series for at most this many actors, lowest ids first (0: none). Every actor counts in its
  //! handler type's and tenant's series either way: a runtime of 10^5 actors would otherwise expose
  //! millions of series, more than a scraper wants. Tenant series are not capped: each registered tenant
  //! adds about 2.4 KB of text (a million tenants, 2.5 GB in 23 s), so size max_tenants for what is scraped.
  std::uint32_t max_actor_series = 1000;
};

struct metrics_endpoint_options {
  //! A loopback address to bind: "127.0.0.1" (or any 127.x.y.z), "::1" or "localhost".
  std::string address = "127.0.0.1";
  //! 0: a free port chosen by the system (serve_metrics returns it).
  std::uint16_t port = 0;
  metrics_options metrics;
};

} // namespace rk
