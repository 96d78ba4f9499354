// storcrypt: the XFRM interface the controller depends on.
//
// XfrmApi is implemented by the netlink backend (open_xfrm(), libnl3 over
// NETLINK_XFRM) and by FakeXfrm (in memory, for unit tests; test-only, in
// tests/support: storcrypt::netlink_fake, storcrypt/testing/fake_xfrm.h).
// Every instance is bound to one network namespace and one Ownership scope;
// it never modifies or reports objects outside that scope and never flushes.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/netlink/xfrm_types.h"

namespace storcrypt::netlink {

using XfrmEvent = std::variant<AcquireEvent, SaExpireEvent, PolicyExpireEvent>;

/// Which event groups to join.
struct EventMask {
  bool acquire = true;
  bool expire = true;         ///< SA soft + hard expiry
  bool policy_expire = true;  ///< XFRM_MSG_POLEXPIRE
};

/// A stream of kernel XFRM events (its own netlink socket).
class EventSubscription {
 public:
  virtual ~EventSubscription() = default;
  /// Wait up to `timeout` for the next event; nullopt on timeout.
  /// Events outside the owner's scope (by reqid) are skipped.
  virtual Result<std::optional<XfrmEvent>> next(std::chrono::milliseconds timeout) = 0;
  /// A pollable file descriptor (readable when next() may return at once); -1 if none.
  virtual int fd() const = 0;
};

/// Outcome of a bulk operation: every item was attempted; `failures` holds
/// (index into the input, error) for the ones the kernel refused.
struct BatchResult {
  std::size_t succeeded = 0;
  std::vector<std::pair<std::size_t, Error>> failures;
  bool ok() const { return failures.empty(); }
  /// The first failure as a Status (ok when none).
  Status first_error() const;
};

/// SPI allocation request (XFRM_MSG_ALLOCSPI): creates a larval inbound SA.
struct SpiRequest {
  IpAddress src;  ///< peer (sender of the inbound SA)
  IpAddress dst;  ///< us
  XfrmProto proto = XfrmProto::kEsp;
  Mode mode = Mode::kTunnel;
  std::uint32_t reqid = 0;
  std::uint32_t min = 0x100;  ///< inclusive range; never below kMinSpi
  std::uint32_t max = 0xffffffff;
  std::optional<Mark> mark;
  std::uint32_t if_id = 0;
};

/// XFRM operations. All calls are synchronous; errors are values:
///  kInvalidInput (rejected before reaching the kernel, names the field),
///  kNotFound (get/delete of a missing object), kConflict (add of an existing
///  one), kPermission (no CAP_NET_ADMIN), kUnsupported (kernel lacks the
///  algorithm/feature), kKernel (other kernel refusals; message carries the
///  kernel's extended-ACK text and names the object).
class XfrmApi {
 public:
  virtual ~XfrmApi() = default;

  virtual const Ownership& ownership() const = 0;

  // ---- SAs ----
  /// Allocate an SPI in [min, max]; returns the SPI (a larval SA now exists).
  virtual Result<std::uint32_t> allocate_spi(const SpiRequest& req) = 0;
  /// Add a new SA (kConflict if (dst, spi, proto, mark) exists). For an SPI
  /// obtained from allocate_spi() use update_sa(): the larval SA exists.
  virtual Status add_sa(const Sa& sa) = 0;
  /// Replace an existing SA (XFRM_MSG_UPDSA); kNotFound if it does not exist.
  virtual Status update_sa(const Sa& sa) = 0;
  /// Delete an SA. kNotFound when absent (callers reconciling may treat that as success).
  virtual Status delete_sa(const SaId& id) = 0;
  virtual Result<SaState> get_sa(const SaId& id) = 0;
  /// All owned SAs, with counters.
  virtual Result<std::vector<SaState>> dump_sas() = 0;

  // ---- policies ----
  /// Add a policy (kConflict on an existing selector/dir/mark/if_id). Returns the kernel index.
  virtual Result<std::uint32_t> add_policy(const Policy& p) = 0;
  /// Add or replace (XFRM_MSG_UPDPOLICY). Returns the kernel index.
  virtual Result<std::uint32_t> update_policy(const Policy& p) = 0;
  virtual Status delete_policy(const PolicyId& id) = 0;
  /// By (selector, dir, mark, if_id), or by index when id.index != 0.
  virtual Result<Policy> get_policy(const PolicyId& id) = 0;
  virtual Result<std::vector<Policy>> dump_policies() = 0;
  /// The policies OUTSIDE this instance's scope (other daemons', e.g.
  /// charon's), for reading only: precedence checks at commit. Per-socket
  /// policies (IKE bypass) are left out. Nothing here can modify them.
  virtual Result<std::vector<Policy>> dump_foreign_policies() = 0;

  // ---- bulk (one socket, pipelined; every item attempted) ----
  virtual Result<BatchResult> add_policies(std::span<const Policy> ps) = 0;
  virtual Result<BatchResult> delete_policies(std::span<const PolicyId> ids) = 0;
  virtual Result<BatchResult> add_sas(std::span<const Sa> sas) = 0;
  virtual Result<BatchResult> delete_sas(std::span<const SaId> ids) = 0;

  // ---- default policy (namespace-wide, Linux >= 5.16) ----
  virtual Result<DefaultPolicy> get_default_policy() = 0;
  virtual Status set_default_policy(const DefaultPolicy& d) = 0;

  // ---- events ----
  virtual Result<std::unique_ptr<EventSubscription>> subscribe(const EventMask& mask) = 0;
};

/// How to open the netlink backend.
struct XfrmOptions {
  /// Network namespace: "" = the caller's, a name under /run/netns, or an
  /// absolute path (/proc/<pid>/ns/net). Sockets are created inside it on a
  /// short-lived thread, so the calling thread never changes namespace.
  std::string netns;
  Ownership ownership = Ownership::all();
  /// Socket receive buffer for requests and events (bytes).
  int rcvbuf = 8 << 20;
  /// Maximum requests in flight during bulk operations.
  std::size_t pipeline_depth = 256;
  /// Test hook for fault injection into the transport: called before each
  /// send and receive on the request socket with "send" or "recv"; a non-zero
  /// return makes that call fail with this errno (EINTR is retried like a
  /// real interruption). Leave empty outside tests.
  std::function<int(std::string_view op)> fault_hook;
};

/// Open the real (netlink) implementation.
Result<std::unique_ptr<XfrmApi>> open_xfrm(const XfrmOptions& opts = {});

}  // namespace storcrypt::netlink
