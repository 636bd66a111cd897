#pragma once
// Quota changes while a tenant sends (tenancy_cases.hpp's suite, instantiated with it by
// test_runtime_cpu.cpp and test_runtime_cuda.cu): set_quota() neither hands out tokens nor takes them, and
// a raised rate refills from the change.

#include "tenancy_cases.hpp"

namespace rk_cases {

// Raising a drained tenant's rate capped its bucket at empty at the next send, however long after the
// change: a probe's tenant raised from 1/s to 1,000/s and idle for 3 s passed 0..2 of 100 sends.
TEST_P(TenancyCases, ARaisedRateHasRefilledAtTheNewRateByTheNextSend) {
  rk::runtime rt(options());
  rk::tenant_quota q = rk::tenant_quota::standard();
  q.max_messages_per_second = 1;
  q.burst = 4;
  rt.tenants().add(3, q);
  const actor_index sink = rt.spawn<counter>("sink", in_tenant(3, 1024));
  const actor_index b = rt.spawn<burster>("b3", in_tenant(3));
  rt.start();
  ASSERT_EQ(rt.send(b, msg_burst, rk::as_bytes(burst_request{sink, 8, 0, 0}), as_tenant(3)),
            status::enqueued);
  ASSERT_TRUE(handled(rt, b, 1));
  ASSERT_GT(rt.tenants().usage(3).rate_rejections, 0u) << "the bucket is drained";
  q.max_messages_per_second = 1'000;
  q.burst = 100;
  rt.tenants().set_quota(3, q);
  // What is measured is time passing: 200 ms refill 100 tokens at the new rate, a full bucket.
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(rt.send(b, msg_burst, rk::as_bytes(burst_request{sink, 50, 0, 0}), as_tenant(3)),
            status::enqueued);
  const auto reply = rt.receive(10s);
  ASSERT_TRUE(reply.has_value()) << "the host send or the report was refused for the rate";
  const burst_report r = reply->as<burst_report>();
  EXPECT_EQ(r.delivered, 50u);
  EXPECT_EQ(r.quota_exceeded, 0u);
  EXPECT_TRUE(rt.shutdown().drained);
}

// Lowering the rate handed out tokens: the bucket is a time, and the old debt was worth fewer tokens at
// the lower rate (a probe: 1,000/s lowered to 10/s passed 989 more at once). A change now keeps the tokens
// the bucket holds (at most the new burst), no more, no fewer.
TEST_P(TenancyCases, ALoweredRateKeepsTheBucketsTokensAndAddsNone) {
  rk::runtime rt(options());
  rk::tenant_quota q = rk::tenant_quota::standard();
  q.max_messages_per_second = 20;
  q.burst = 1'000;
  rt.tenants().add(3, q);
  const actor_index sink = rt.spawn<counter>("sink", in_tenant(3, 4096));
  const actor_index b = rt.spawn<burster>("b3", in_tenant(3));
  rt.start();
  // Every message of the tenant takes a token: the host's request, each of the burst, the report.
  ASSERT_EQ(rt.send(b, msg_burst, rk::as_bytes(burst_request{sink, 900, 0, 0}), as_tenant(3)),
            status::enqueued);
  ASSERT_TRUE(handled(rt, b, 1));
  q.max_messages_per_second = 10;
  rt.tenants().set_quota(3, q); // 98 tokens held
  ASSERT_EQ(rt.send(b, msg_burst, rk::as_bytes(burst_request{sink, 400, 0, 0}), as_tenant(3)),
            status::enqueued);
  ASSERT_TRUE(handled(rt, b, 2));
  const rk::runtime_stats s = rt.stats();
  const std::uint64_t second = s.find(sink)->received - 900;
  // 97 tokens were left for the burst, plus the refill before the change (20/s) and after it (10/s): a
  // slow machine may take a second for each. The debt of 902 tokens at 20/s was 451 at 10/s: 400 passed.
  EXPECT_GE(second, 97u) << "the tokens the bucket held were kept";
  EXPECT_LE(second, 150u) << "a lowered rate handed out tokens";
  EXPECT_TRUE(rt.shutdown().drained);
}

} // namespace rk_cases
