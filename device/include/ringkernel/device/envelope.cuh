#pragma once
//! \file
//! The envelope: the fixed 64-byte header at the front of every mailbox and host-ring slot.
//!
//! | offset | size | field            | set by                                                     |
//! |-------:|-----:|------------------|------------------------------------------------------------|
//! |      0 |    8 | tenant           | runtime, from the sending actor (handlers cannot forge it)  |
//! |      8 |    8 | correlation_id   | sender; replies copy it from the request                   |
//! |     16 |   16 | timestamp (HLC)  | runtime, at send                                           |
//! |     32 |    4 | type_id          | sender                                                     |
//! |     36 |    4 | source           | runtime: the sending actor, or host_actor                  |
//! |     40 |    4 | destination      | sender (final destination; routing never rewrites it)       |
//! |     44 |    4 | payload_length   | runtime: bytes of inline payload after the header          |
//! |     48 |    2 | flags            | sender (envelope_flags)                                    |
//! |     50 |    1 | priority         | sender (rk::priority)                                      |
//! |     51 |    1 | hops             | runtime: forwards taken so far                             |
//! |     52 |    4 | tenant_slot      | runtime: the sending tenant's slot in the device tenant table |
//! |     56 |    8 | route_key        | sender, for keyed group sends (envelope_flags::keyed)      |

#include <ringkernel/device/hlc.cuh>

namespace rk {

enum class priority : std::uint8_t { low = 0, normal = 1, high = 2, urgent = 3 };

//! The byte a send stamps for `p`: a value beyond `urgent` (a cast from an integer) is sent as `urgent`,
//! the lane it is queued in, so receivers and replies never see a priority outside the enum.
RK_HOST_DEVICE constexpr std::uint8_t priority_byte(priority p) noexcept {
  const auto v = static_cast<std::uint8_t>(p);
  return v < priority_levels ? v : static_cast<std::uint8_t>(priority_levels - 1);
}

namespace envelope_flags {
inline constexpr std::uint16_t none = 0;
//! Payload is a zero-copy region descriptor rather than inline bytes.
inline constexpr std::uint16_t descriptor = 1u << 0;
//! Undeliverable (unknown destination) sends are dropped and counted as `dropped` instead of
//! returning `not_found` (ZeroMQ ROUTER without the "mandatory" option).
inline constexpr std::uint16_t drop_if_unroutable = 1u << 1;
//! A group destination picks its member by hash of `route_key` (a stable member) instead of round-robin.
inline constexpr std::uint16_t keyed = 1u << 2;
//! Host sends only: when the destination mailbox is full the gateway refuses the message (a counted
//! `queue_full` verdict) instead of parking it until there is room. Without it no host message is lost
//! to a full mailbox.
inline constexpr std::uint16_t drop_if_full = 1u << 3;
//! Sends to an actor on another cluster rank: if that rank refuses the message, the sender gets a message
//! of type rk::refusal_notice_type saying why (refusal_notice.cuh). Without it the refusal is only
//! counted and audited on the sender's rank.
inline constexpr std::uint16_t notify_refusal = 1u << 4;
//! Flags the runtime sets itself; a sender's bits here are cleared.
inline constexpr std::uint16_t runtime_only = 0xF000u;
//! Set by runtime::send_wait: the gateway writes the verdict into the ingress slot's receipt.
inline constexpr std::uint16_t wants_receipt = 1u << 15;
//! Set by a cluster proxy on a message it carries in from another rank: the gateway keeps its source (a
//! remote entry standing for the sender) instead of making it the host, and decides it as a K2K send.
inline constexpr std::uint16_t relayed = 1u << 14;
//! A mailbox slot claimed by a send that then found its actor stopping (deliver.cuh: the stop protocol):
//! published empty, dropped by the worker unseen and uncounted; the sender was told not_found.
inline constexpr std::uint16_t cancelled = 1u << 13;
} // namespace envelope_flags

struct envelope {
  std::uint64_t tenant = 0;
  std::uint64_t correlation_id = 0;
  hlc_timestamp timestamp{};
  std::uint32_t type_id = 0;
  actor_index source = host_actor;
  actor_index destination = host_actor;
  std::uint32_t payload_length = 0;
  std::uint16_t flags = envelope_flags::none;
  std::uint8_t priority = static_cast<std::uint8_t>(rk::priority::normal);
  std::uint8_t hops = 0;
  std::uint32_t tenant_slot = 0xFFFF'FFFFu; //!< no slot: the tenant is not registered
  std::uint64_t route_key = 0;
};

inline constexpr std::uint32_t envelope_bytes = 64;
static_assert(sizeof(envelope) == envelope_bytes, "the envelope must stay exactly 64 bytes");
static_assert(alignof(envelope) == 8);

} // namespace rk
