// storcrypt IKEv2: the seam between the IKE state machine and the kernel's
// IPsec (XFRM) tables.
//
// The state machine (ike_sa.h) negotiates CHILD_SAs; it never talks to the
// kernel itself. It asks a ChildSaKernel for an inbound SPI (and the reqid
// that tags the CHILD_SA as ours), then hands over the negotiated keys and
// traffic selectors to install, and later removes them. Implementations:
//  - the XFRM one over netlink::XfrmApi (ike/xfrm_kernel.h): reqids from
//    the IKE half of storcrypt's owned range, policies with owned indexes
//    (see netlink/xfrm_types.h, "ownership"), so charon's or the manual
//    policy list's objects are never touched;
//  - a fake in tests/support for unit tests of the state machine.
//
// Keys cross this seam as SecretBytes and are wiped when the spec dies.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "storcrypt/common/ip.h"
#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/ike/proposal.h"

namespace storcrypt::ike {

/// One traffic selector range (RFC 7296 §3.13.1) in host form.
struct TsRange {
  std::uint8_t ip_protocol = 0;  ///< 0 = any
  std::uint16_t start_port = 0;
  std::uint16_t end_port = 65535;
  IpAddress start;
  IpAddress end;
  bool operator==(const TsRange&) const = default;
};

/// What a CHILD_SA reserved before its keys exist: the reqid that tags its
/// SAs and policies as ours and the inbound SPI we announce to the peer.
struct ChildSaSlot {
  std::uint32_t reqid = 0;
  std::uint32_t spi_in = 0;  ///< chosen by the kernel (XFRM_MSG_ALLOCSPI)
  bool operator==(const ChildSaSlot&) const = default;
};

/// Keys of one direction (encr includes the AES-GCM salt: 32 + 4 bytes).
struct DirectionKeys {
  SecretBytes encr;
  SecretBytes integ;  ///< empty for AEAD
};

/// Lifetimes for the kernel's soft/hard expiry (0 = none). Set by the
/// lifecycle layer; the state machine passes them through.
struct ChildSaLifetime {
  std::uint64_t soft_bytes = 0, hard_bytes = 0;
  std::uint64_t soft_packets = 0, hard_packets = 0;
  std::chrono::seconds soft_add{0}, hard_add{0};
};

/// A negotiated CHILD_SA, ready to install: two SAs (in, out) and the
/// policies that send the traffic selectors' packets through them.
struct ChildSaSpec {
  ChildSaSlot slot;
  std::uint32_t spi_out = 0;   ///< the peer's inbound SPI
  IpAddress local;             ///< outer (tunnel) addresses
  IpAddress remote;
  /// UDP encapsulation (RFC 3948) when a NAT was detected: our and the
  /// peer's port (normally 4500 and 4500, or the NAT's mapped port).
  std::optional<std::pair<std::uint16_t, std::uint16_t>> encap;
  bool tunnel = true;          ///< false = transport mode
  Suite suite;                 ///< ESP: encr/key bits/integ/esn as negotiated
  DirectionKeys in;            ///< peer -> us
  DirectionKeys out;           ///< us -> peer
  std::vector<TsRange> local_ts;   ///< narrowed selectors on our side
  std::vector<TsRange> remote_ts;  ///< and on the peer's side
  ChildSaLifetime lifetime;
  std::uint32_t replay_window = 32;
};

/// One SA of a CHILD_SA.
enum class SaDirection { kIn, kOut };

/// Counters of an installed CHILD_SA (from the kernel's SA state).
struct ChildSaCounters {
  std::uint64_t bytes_in = 0, packets_in = 0;
  std::uint64_t bytes_out = 0, packets_out = 0;
};

/// What an earlier instance of the daemon left in the kernel (it was killed
/// before it could delete its CHILD_SAs): see ChildSaKernel::clear_stale().
struct StaleObjects {
  std::size_t sas_deleted = 0;
  std::size_t policies_kept = 0;  ///< until replaced by a new CHILD_SA or pruned
};

class ChildSaKernel {
 public:
  virtual ~ChildSaKernel() = default;

  // Restart (the daemon was killed, e.g. SIGKILL, and started again): the
  // kernel still holds the CHILD_SAs of the dead instance, which nobody will
  // rekey or delete. Implementations without kernel state keep the defaults.

  /// Once, before the first CHILD_SA: delete every SA of our ranges at once
  /// (the peer learns of the restart from INITIAL_CONTACT and drops its
  /// copies) and keep the policies as stale: protected traffic then finds no
  /// SA and is dropped, never sent in clear. install() replaces a stale policy
  /// of the same selector atomically (XFRM_MSG_UPDPOLICY); prune_stale()
  /// removes those of peers that are no longer configured.
  virtual Result<StaleObjects> clear_stale() { return StaleObjects{}; }
  /// Delete the stale policies whose peer (the tunnel's remote address, or
  /// for transport mode the selector's remote host) is not in `keep`.
  /// Returns how many were deleted.
  virtual Result<std::size_t> prune_stale(const std::vector<IpAddress>& keep) {
    (void)keep;
    return std::size_t{0};
  }

  /// Reserve a reqid and an inbound SPI for a CHILD_SA between `local` and
  /// `remote` (the SPI's larval SA expires on its own if never installed).
  virtual Result<ChildSaSlot> reserve(const IpAddress& local, const IpAddress& remote) = 0;
  /// Install both SAs and the in/out/fwd policies of every (local_ts x
  /// remote_ts) pair. All or nothing: on failure what was added is removed.
  virtual Status install(const ChildSaSpec& spec) = 0;
  /// Remove the SAs and policies of a CHILD_SA (installed or only
  /// reserved). Removing what is already gone is not an error.
  virtual Status remove(const ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                        std::uint32_t spi_out) = 0;
  virtual Result<ChildSaCounters> counters(const ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                                           std::uint32_t spi_out) = 0;
  /// A CHILD_SA whose peer was found dead and will be restarted: remove its
  /// SAs and keep its policies as stale (as clear_stale() does), so its
  /// traffic is dropped, never sent in clear, until the restarted CHILD_SA
  /// takes them over in install() or prune_stale() deletes them.
  virtual Status retire(const ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                        std::uint32_t spi_out) {
    return remove(slot, local, remote, spi_out);
  }

  // Rekeying (RFC 7296 §2.8), make-before-break: the new SAs of a rekeyed
  // CHILD_SA take the old one's reqid, so the policies install() made carry
  // them unchanged; of two outbound SAs of one reqid the kernel sends with the
  // newer. The old SAs are removed one by one afterwards.

  /// A new inbound SPI under `old`'s reqid (no policy is touched).
  virtual Result<ChildSaSlot> reserve_rekey(const ChildSaSlot& old, const IpAddress& local,
                                            const IpAddress& remote) = 0;
  /// Install one SA of `spec`, whose slot came from reserve_rekey(): the
  /// inbound one (replacing the reserved SPI) or the outbound one.
  virtual Status install_sa(const ChildSaSpec& spec, SaDirection dir) = 0;
  /// Remove one SA of the CHILD_SA with `reqid` (SPI `spi`, destination
  /// `dst`): the old SAs after a rekey, or a reserved SPI never installed.
  /// An SA that carries another reqid is left alone (kConflict); one already
  /// gone is not an error.
  virtual Status remove_sa(std::uint32_t reqid, const IpAddress& dst, std::uint32_t spi) = 0;
};

}  // namespace storcrypt::ike
