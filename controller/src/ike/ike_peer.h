// storcrypt controller, IKEv2: one configured peer as the operator gave it
// (text, stored as JSON in SQLite) and its translation into what the IKE
// engine needs (addresses, traffic selectors, IDs, proposals), with an error
// that says what is wrong and what to do for every bad value.
//
// Proposal strings are strongSwan's: proposals separated by ',', algorithms
// of one proposal by '-':
//   IKE  encryption (aes128 aes192 aes256: AES-CBC; aes128gcm16 aes192gcm16
//        aes256gcm16, also written ...gcm128), integrity (sha256 sha384
//        sha512; not with GCM), PRF (prfsha256 prfsha384 prfsha512; derived
//        from the integrity algorithm when omitted with AES-CBC, required with
//        GCM), key exchange (ecp256 ecp384 ecp521 curve25519/x25519; required)
//   ESP  encryption (aes128 aes192 aes256 with an integrity algorithm;
//        aes128gcm16 aes256gcm16), integrity, key exchange (optional: PFS for
//        CREATE_CHILD_SA; never sent in IKE_AUTH), esn/noesn (default noesn)
// Anything else (3des, sha1, modp2048, ...) is refused by name.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/ip.h"
#include "storcrypt/common/result.h"
#include "storcrypt/ike/ike_sa.h"

namespace storcrypt::controller {

/// CNSA defaults (issue 14): IKE aes256-sha384-ecp384 then
/// aes256gcm16-prfsha384-ecp384; ESP aes256gcm16 with ecp384 PFS.
inline constexpr const char* kDefaultIkeProposal = "aes256-sha384-ecp384,aes256gcm16-prfsha384-ecp384";
inline constexpr const char* kDefaultEspProposal = "aes256gcm16-ecp384";

struct IkePeerSpec {
  std::string name;
  std::string remote;                  ///< the peer's address
  std::string local;                   ///< this node's address ("" = any address of the remote's family)
  std::vector<std::string> local_ts;   ///< prefixes on our side of the tunnel
  std::vector<std::string> remote_ts;  ///< prefixes on the peer's side
  std::string id;                      ///< "" = our certificate's subject DN; "fqdn:NAME" or "ip:ADDR" (a SAN)
  std::string remote_id;               ///< "" = any ID its certificate names; "fqdn:", "ip:", "dn:"
  std::string ike_proposal = kDefaultIkeProposal;
  std::string esp_proposal = kDefaultEspProposal;
  std::string start = "none";  ///< none | start (bring up when the daemon starts)
  /// What follows a dead peer (no answer to the liveness check): none (its
  /// SAs are removed and it stays down) | restart (a new IKE SA is initiated
  /// at once and retried every 30 s until the peer answers).
  std::string dpd_action = "none";

  nlohmann::json to_json() const;
  static Result<IkePeerSpec> from_json(const nlohmann::json& j);
};

/// What the engine gets from a spec (everything but certificate, key and validator).
struct ResolvedPeer {
  IpAddress remote, local;
  std::vector<ike::TsRange> local_ts, remote_ts;
  std::optional<ike::IdPayload> local_id, remote_id;
  std::vector<ike::Proposal> ike_proposals, esp_proposals;
};

/// Validate every field of a spec (kInvalidInput naming the field, with a fix).
Result<ResolvedPeer> resolve_peer(const IkePeerSpec& spec);

/// A peer name: 1-64 of A-Z a-z 0-9 . _ - , starting with a letter or digit.
Status check_peer_name(std::string_view name);
/// strongSwan-style proposal list for IKE (protocol kIke) or ESP (kEsp).
Result<std::vector<ike::Proposal>> parse_proposals(std::string_view text, ike::ProtocolId protocol);
/// "fqdn:NAME", "ip:ADDR", "dn:CN=x,O=y" (RFC 2253 order; dn only when `allow_dn`).
Result<ike::IdPayload> parse_id(std::string_view text, bool allow_dn, std::string_view field);
/// A negotiated suite in strongSwan's words: "aes256-sha384-prfsha384-ecp384",
/// "aes256gcm16-noesn", ...
std::string suite_name(const ike::Suite& s);
/// A traffic selector as "192.0.2.0/24" when it is a prefix with any
/// protocol and port, else "proto/ports first-last".
std::string ts_text(const ike::TsRange& r);

}  // namespace storcrypt::controller
