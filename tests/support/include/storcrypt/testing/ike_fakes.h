// In-memory fakes of the IKE engine's seams (ike/transport.h, ike/kernel.h)
// and a small P-384 test PKI, for the ike/ unit and host tests.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "storcrypt/ike/auth.h"
#include "storcrypt/ike/ike_sa.h"
#include "storcrypt/ike/kernel.h"
#include "storcrypt/ike/transport.h"
#include "storcrypt/testing/test_pki.h"

namespace storcrypt::testing {

/// Records every datagram sent; the test moves them to the other side.
class MemoryTransport : public ike::Transport {
 public:
  Status send(const ike::Datagram& d) override;
  std::deque<ike::Datagram> sent;
  std::size_t total_sent = 0;
};

/// A copy of an installed ChildSaSpec (keys cloned: SecretBytes is move-only).
ike::ChildSaSpec clone_spec(const ike::ChildSaSpec& s);

/// Remembers reservations and installed CHILD_SAs by inbound SPI.
/// A kernel of SAs and per-reqid policy sets, enough to judge the order of a
/// make-before-break rekey. `installed` holds one record per CHILD_SA, by its
/// inbound SPI (a rekeyed CHILD_SA appears once its inbound SA is in and
/// leaves with its inbound SA).
class FakeChildSaKernel : public ike::ChildSaKernel {
 public:
  Result<ike::ChildSaSlot> reserve(const IpAddress& local, const IpAddress& remote) override;
  Status install(const ike::ChildSaSpec& spec) override;
  Status remove(const ike::ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                std::uint32_t spi_out) override;
  /// Recorded in `retired`, then as remove() (the fake keeps no stale policies).
  Status retire(const ike::ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                std::uint32_t spi_out) override {
    retired.push_back(slot.spi_in);
    return remove(slot, local, remote, spi_out);
  }
  Result<ike::ChildSaCounters> counters(const ike::ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                                        std::uint32_t spi_out) override;
  Result<ike::ChildSaSlot> reserve_rekey(const ike::ChildSaSlot& old, const IpAddress& local,
                                         const IpAddress& remote) override;
  Status install_sa(const ike::ChildSaSpec& spec, ike::SaDirection dir) override;
  Status remove_sa(std::uint32_t reqid, const IpAddress& dst, std::uint32_t spi) override;

  struct Sa {
    std::uint32_t reqid = 0;
    ike::SaDirection dir = ike::SaDirection::kIn;
    std::uint64_t seq = 0;  ///< order of installation
  };
  /// The outbound SA the kernel would send with for `reqid` (the newest), 0 if none.
  std::uint32_t sending_spi(std::uint32_t reqid) const;

  std::map<std::uint32_t, ike::ChildSaSpec> installed;  ///< by spi_in
  std::map<std::uint32_t, ike::ChildSaSlot> reserved;   ///< by spi_in, not (yet) installed
  std::map<std::uint32_t, Sa> sas;                      ///< every SA, by SPI
  std::map<std::uint32_t, int> policies;                ///< reqid -> installed policy sets (0 or 1)
  std::vector<std::uint32_t> removed;                   ///< spi_in of every remove() call
  std::vector<std::uint32_t> retired;                   ///< spi_in of every retire() call (then removed too)
  std::vector<ike::ChildSaSlot> reserve_log;            ///< every reservation, in order
  std::vector<ike::ChildSaSpec> install_log;            ///< every successful install, in order
  std::vector<std::pair<ike::SaDirection, std::uint32_t>> sa_log;  ///< every install_sa(), in order
  bool fail_install = false;  ///< install() and install_sa() fail
  /// Like XFRM's duplicate policy check: install() of the selectors an
  /// installed CHILD_SA already holds is refused (kConflict, as EEXIST).
  bool refuse_same_selectors = false;
  std::uint64_t bytes_in = 100;  ///< what counters() says every CHILD_SA received (tests raise it: ESP traffic)
  std::uint32_t next_spi = 0;  ///< 0: random SPIs (0xc0000000 | random)
  std::uint32_t next_reqid = 1;

 private:
  std::uint32_t new_spi();
  std::uint64_t seq_ = 0;
};

/// A certificate with subject O=storcrypt-test,CN=<cn> (test_pki.h's
/// issue_cert): a CA when `san` is null (self-signed when issuer is null),
/// else an end entity with that SAN.
CertPtr make_test_cert(EVP_PKEY* key, const std::string& cn, long serial, const char* san, X509* issuer,
                       EVP_PKEY* issuer_key);

/// SHA-1 of a CA certificate's SubjectPublicKeyInfo (a CERTREQ entry).
ike::Bytes spki_sha1(X509* ca);

/// Root CA -> intermediate CA -> two end entities left (SAN left.lab +
/// left_ip) and right (SAN right.lab + right_ip), all ECDSA P-384.
struct IkeTestPki {
  explicit IkeTestPki(const std::string& left_ip = "192.0.2.1", const std::string& right_ip = "192.0.2.2");
  KeyPtr root_key, inter_key, left_key, right_key;
  CertPtr root, inter, left, right;
  /// SHA-1 of the root's SubjectPublicKeyInfo (a CERTREQ entry).
  ike::Bytes root_spki_sha1() const { return spki_sha1(root.get()); }
  /// The product's validator (ike::PeerValidator, peer_auth.h) trusting
  /// exactly `root`.
  ike::PeerCertValidator validator() const;
  /// The left site (192.0.2.1, protecting 198.51.100.0/24) configured for its
  /// peer `peer_name`, the right site (192.0.2.2, 203.0.113.0/24, ID
  /// right.lab): certificate + intermediate, CERTREQ for the root, validator.
  ike::PeerConfig left_config(const std::string& peer_name) const;
  /// The right site configured for its peer `peer_name` (the left site).
  ike::PeerConfig right_config(const std::string& peer_name) const;

 private:
  ike::PeerConfig side_config(bool left_side, const std::string& peer_name) const;
};

/// One IKE proposal (number 1, no SPI): the AES-CBC (gcm false) or AES-GCM
/// (gcm true) suite of ike::default_ike_proposals() with KE group `group`.
ike::Proposal ike_proposal(bool gcm, std::uint16_t group = ike::transform_id::kGroupEcp384);

ike::X509Ref share(const CertPtr& x);
ike::PkeyRef share(const KeyPtr& k);

}  // namespace storcrypt::testing
