// The message type registry and its static-registration macro.
#include <ringkernel/ringkernel.hpp>

#include <gtest/gtest.h>

RK_REGISTER_MESSAGE_TYPE(order_placed, 100, true, "trading");
RK_REGISTER_MESSAGE_TYPE(order_cancelled, 101, true, "trading");
RK_REGISTER_MESSAGE_TYPE(session_secret, 102, false, "internal");

namespace {

TEST(MessageTypes, StaticRegistrationHappensBeforeMain) {
  static_assert(order_placed == 100);
  const auto info = rk::global_message_types().find(order_placed);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->name, "order_placed");
  EXPECT_TRUE(info->routable);
  EXPECT_EQ(info->category, "trading");
  EXPECT_FALSE(rk::global_message_types().find("session_secret")->routable);
}

TEST(MessageTypes, LookupByIdNameAndCategory) {
  rk::message_type_registry r;
  r.add({1, "a", true, "x"});
  r.add({2, "b", false, "x"});
  r.add({3, "c", true, "y"});
  EXPECT_EQ(r.find(2)->name, "b");
  EXPECT_EQ(r.find("c")->id, 3u);
  EXPECT_FALSE(r.find(4).has_value());
  EXPECT_FALSE(r.find("zzz").has_value());
  const auto x = r.in_category("x");
  ASSERT_EQ(x.size(), 2u);
  EXPECT_EQ(x[0].id, 1u);
  EXPECT_EQ(x[1].id, 2u);
  EXPECT_EQ(r.all().size(), 3u);
  EXPECT_TRUE(r.in_category("none").empty());
}

TEST(MessageTypes, ConflictsAreErrorsButRepeatsAreNot) {
  rk::message_type_registry r;
  r.add({1, "a", true, "x"});
  EXPECT_NO_THROW(r.add({1, "a", true, "x"})) << "registering the same type twice is harmless";
  EXPECT_THROW(r.add({1, "other", true, "x"}), rk::error) << "id taken by another name";
  EXPECT_THROW(r.add({1, "a", false, "x"}), rk::error) << "same id, different routable flag";
  EXPECT_THROW(r.add({2, "a", true, "x"}), rk::error) << "name taken by another id";
  EXPECT_THROW(r.add({3, "", true, "x"}), rk::error) << "types need a name";
}

TEST(MessageTypes, ARuntimeStartsWithTheGlobalRegistryAndAddsItsOwn) {
  rk::runtime_options o;
  o.backend = rk::backend::cpu;
  o.announce_backend = false;
  o.max_message_types = 128;
  rk::runtime rt(o);
  EXPECT_TRUE(rt.message_types().find(order_cancelled).has_value());
  rt.register_message_type({50, "local", false, "mine"});
  EXPECT_TRUE(rt.message_types().find("local").has_value());
  EXPECT_FALSE(rk::global_message_types().find("local").has_value()) << "runtime additions stay local";
  try {
    rt.register_message_type({500, "too_high", false, ""});
    ADD_FAILURE() << "a non-routable id beyond max_message_types must be refused";
  } catch (const rk::error& e) {
    EXPECT_NE(std::string(e.what()).find("max_message_types"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(rt.register_message_type({500, "high_but_routable", true, ""}));
}

} // namespace
