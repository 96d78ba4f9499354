// storcrypt policy: the readable policy file (blocks of `Name = Value`
// lines, one block per policy, blocks separated by blank lines).
//
//   # comment
//   Name = protect-db
//   Direction = outbound
//   LocalAddress = 192.0.2.1
//   RemoteAddress = 192.0.2.2
//   Protocol = TCP
//   LocalPort = ANY
//   RemotePort = 5000-5001        (IcmpType / IcmpCode for ICMP and ICMPv6)
//   Action = PROTECT
//   Service = ESP-INTEGRITY-CONFIDENTIALITY
//   Mode = transport               (tunnel: LocalEndpoint, RemoteEndpoint)
//   SPI = 0x1000
//   EncryptionAlgorithm = AES-GCM-256
//   EncryptionKey = db-key
//   IntegrityAlgorithm / IntegrityKey for AH, ESP integrity and AES-CBC
//
// A named address selector is a block of its own (any LocalAddress or
// RemoteAddress may then be its name); export writes them before the policies:
//
//   Address = PRODUCTION
//   Entries = 192.0.2.0/24, 198.51.100.7, 203.0.113.10-203.0.113.20
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/policy/model.h"

namespace storcrypt::policy {

struct ImportOptions {
  /// Import the partner's list: swap local and remote (addresses, ports,
  /// tunnel endpoints) and flip inbound/outbound. SPIs and key names stay.
  bool swap = false;
};

/// The fields of a policy file that only a PROTECT policy carries (Service,
/// Mode, SPI, endpoints, algorithms and key names).
const std::vector<std::string_view>& protection_fields();

/// Serialize the list (keys are referenced by name only; no key values).
std::string export_policies(const PolicyList& list);

/// Parse a policy file. Errors name the line and the field.
Result<PolicyList> import_policies(std::string_view text, const ImportOptions& opt = {});

/// The partner's view of one policy (what ImportOptions::swap applies).
Policy swapped(const Policy& p);

}  // namespace storcrypt::policy
