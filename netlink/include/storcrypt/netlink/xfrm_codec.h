// storcrypt: NETLINK_XFRM message encoding and decoding.
//
// Used by the netlink backend; public so unit tests can round-trip messages
// and fuzzers can feed the decoders. Callers above netlink/ use XfrmApi.
// Encoded messages are complete netlink messages (nlmsghdr included, seq 0)
// held in SecretBytes because SA messages carry keys. Decoders accept any
// bytes and never read outside them.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/netlink/xfrm_api.h"
#include "storcrypt/netlink/xfrm_types.h"

namespace storcrypt::netlink::codec {

using Bytes = std::span<const std::uint8_t>;

/// XFRM_MSG_NEWSA (or UPDSA when update). The SA must have passed validate().
SecretBytes encode_sa(const Sa& sa, bool update);
/// XFRM_MSG_GETSA / XFRM_MSG_DELSA by id.
SecretBytes encode_sa_id(const SaId& id, bool del);
/// XFRM_MSG_ALLOCSPI.
SecretBytes encode_alloc_spi(const SpiRequest& req);
/// XFRM_MSG_NEWPOLICY (or UPDPOLICY).
SecretBytes encode_policy(const Policy& p, bool update);
/// XFRM_MSG_GETPOLICY / XFRM_MSG_DELPOLICY by id (selector or index).
SecretBytes encode_policy_id(const PolicyId& id, bool del);
/// Dump request (NLM_F_DUMP) for XFRM_MSG_GETSA or XFRM_MSG_GETPOLICY.
SecretBytes encode_dump(bool sas);
SecretBytes encode_get_default();
SecretBytes encode_set_default(const DefaultPolicy& d);

/// NEWSA/UPDSA/GETSA reply -> SA with counters.
Result<SaState> decode_sa(Bytes msg);
/// NEWPOLICY/UPDPOLICY/GETPOLICY reply -> policy.
Result<Policy> decode_policy(Bytes msg);
/// ACQUIRE / EXPIRE / POLEXPIRE -> event; kProtocol for other types.
Result<XfrmEvent> decode_event(Bytes msg);
/// GETDEFAULT reply.
Result<DefaultPolicy> decode_default(Bytes msg);

/// A decoded NLMSG_ERROR.
struct NetlinkError {
  int error = 0;                        ///< 0 = ACK, else a negative errno
  std::string message;                  ///< NLMSGERR_ATTR_MSG (extended ACK), may be empty
  std::optional<std::uint32_t> offset;  ///< NLMSGERR_ATTR_OFFS into the request
};
Result<NetlinkError> decode_error(Bytes msg);

/// Name of the request part at byte `offset` of `request` (an encoded
/// message): "XFRMA_ALG_AEAD", "header (xfrm_usersa_info)", or "" if unknown.
std::string field_at_offset(Bytes request, std::uint32_t offset);
/// "XFRMA_TMPL" etc.; "attribute N" for unknown types.
std::string attribute_name(std::uint16_t type);

/// Ownership key of an SA (reqid) or policy (index) message, read from
/// the fixed header only, so objects we cannot fully decode can be skipped.
struct OwnerKey {
  bool is_sa = false;
  std::uint32_t reqid = 0;
  std::uint32_t priority = 0;
  std::uint32_t index = 0;  ///< policies: storcrypt's ownership tag
  std::uint8_t dir = 0;  ///< policies: 0-2 in/out/fwd; 3-5 are per-socket policies
  std::optional<Mark> mark;
};
std::optional<OwnerKey> peek_owner(Bytes msg);

/// Split a receive buffer into messages; stops at the first malformed one.
std::vector<Bytes> split_messages(Bytes buffer);

}  // namespace storcrypt::netlink::codec
