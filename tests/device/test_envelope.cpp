// The envelope's size and field offsets are part of the wire format (documented in envelope.cuh).
#include <ringkernel/device/envelope.cuh>
#include <ringkernel/device/status.cuh>

#include <gtest/gtest.h>

#include <cstddef>
#include <set>
#include <string>

namespace {

TEST(Envelope, IsExactly64BytesAndEightByteAligned) {
  EXPECT_EQ(sizeof(rk::envelope), 64u);
  EXPECT_EQ(alignof(rk::envelope), 8u);
  EXPECT_EQ(rk::envelope_bytes, 64u);
}

TEST(Envelope, FieldOffsetsMatchTheDocumentedTable) {
  EXPECT_EQ(offsetof(rk::envelope, tenant), 0u);
  EXPECT_EQ(offsetof(rk::envelope, correlation_id), 8u);
  EXPECT_EQ(offsetof(rk::envelope, timestamp), 16u);
  EXPECT_EQ(offsetof(rk::envelope, type_id), 32u);
  EXPECT_EQ(offsetof(rk::envelope, source), 36u);
  EXPECT_EQ(offsetof(rk::envelope, destination), 40u);
  EXPECT_EQ(offsetof(rk::envelope, payload_length), 44u);
  EXPECT_EQ(offsetof(rk::envelope, flags), 48u);
  EXPECT_EQ(offsetof(rk::envelope, priority), 50u);
  EXPECT_EQ(offsetof(rk::envelope, hops), 51u);
  EXPECT_EQ(offsetof(rk::envelope, tenant_slot), 52u);
  EXPECT_EQ(offsetof(rk::envelope, route_key), 56u);
}

TEST(Envelope, IsTriviallyCopyableAndDefaultsAreSafe) {
  static_assert(std::is_trivially_copyable_v<rk::envelope>);
  const rk::envelope e;
  EXPECT_EQ(e.tenant, 0u);
  EXPECT_EQ(e.source, rk::host_actor);
  EXPECT_EQ(e.destination, rk::host_actor);
  EXPECT_EQ(e.priority, static_cast<std::uint8_t>(rk::priority::normal));
  EXPECT_EQ(e.hops, 0u);
}

TEST(Status, NamesAreStableAndDistinct) {
  std::set<std::string> names;
  for (std::uint32_t i = 0; i < rk::status_count; ++i) {
    const std::string name = rk::to_string(static_cast<rk::status>(i));
    EXPECT_NE(name, "unknown") << "status " << i << " has no name";
    names.insert(name);
  }
  EXPECT_EQ(names.size(), rk::status_count);
  EXPECT_STREQ(rk::to_string(rk::status::queue_full), "queue_full");
  EXPECT_TRUE(rk::is_ok(rk::status::delivered));
  EXPECT_TRUE(rk::is_ok(rk::status::enqueued));
  EXPECT_FALSE(rk::is_ok(rk::status::not_found));
}

} // namespace
