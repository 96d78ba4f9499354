// storcrypt: FakeXfrm, an in-memory XfrmApi for unit tests of modules above netlink/.
//
// It follows the kernel's rules closely enough for logic tests: validation
// as in the real backend, duplicate SA/policy keys (kConflict), missing
// objects (kNotFound), per-direction policy indexes, ownership filtering,
// SPI allocation in a range. It can inject failures and emit events. It is
// not a packet engine; lookup_policy() replicates the kernel's choice (lowest
// priority number among matching selectors; equal priority -> older one).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "storcrypt/netlink/xfrm_api.h"

namespace storcrypt::netlink {

class FakeXfrm : public XfrmApi {
 public:
  explicit FakeXfrm(Ownership own = Ownership::all());
  /// Another handle on the same fake kernel (its SAs, policies, failures):
  /// a restarted daemon finds what the one before it left behind.
  FakeXfrm(const FakeXfrm& same_kernel, Ownership own);
  ~FakeXfrm() override;

  const Ownership& ownership() const override { return own_; }

  Result<std::uint32_t> allocate_spi(const SpiRequest& req) override;
  Status add_sa(const Sa& sa) override;
  Status update_sa(const Sa& sa) override;
  Status delete_sa(const SaId& id) override;
  Result<SaState> get_sa(const SaId& id) override;
  Result<std::vector<SaState>> dump_sas() override;

  Result<std::uint32_t> add_policy(const Policy& p) override;
  Result<std::uint32_t> update_policy(const Policy& p) override;
  Status delete_policy(const PolicyId& id) override;
  Result<Policy> get_policy(const PolicyId& id) override;
  Result<std::vector<Policy>> dump_policies() override;
  Result<std::vector<Policy>> dump_foreign_policies() override;

  Result<BatchResult> add_policies(std::span<const Policy> ps) override;
  Result<BatchResult> delete_policies(std::span<const PolicyId> ids) override;
  Result<BatchResult> add_sas(std::span<const Sa> sas) override;
  Result<BatchResult> delete_sas(std::span<const SaId> ids) override;

  Result<DefaultPolicy> get_default_policy() override;
  Status set_default_policy(const DefaultPolicy& d) override;

  Result<std::unique_ptr<EventSubscription>> subscribe(const EventMask& mask) override;

  // ---- test controls ----
  /// The next call whose operation name matches `op` ("add_sa", "add_policy",
  /// "delete_sa", ... or "*" for any) fails with `err` (once).
  void fail_next(std::string op, Error err);
  /// Add to an SA's counters (simulated traffic). kNotFound if absent.
  Status add_traffic(const SaId& id, std::uint64_t bytes, std::uint64_t packets);
  /// Count inbound packets that failed the integrity check (a key mismatch).
  Status add_integrity_failures(const SaId& id, std::uint32_t n);
  /// Deliver an event to every live subscription.
  void emit(const XfrmEvent& ev);
  /// Insert an object that storcrypt does not own (e.g. another daemon's),
  /// bypassing the ownership check: it must stay untouched and unlisted.
  void add_foreign_sa(const Sa& sa);
  void add_foreign_policy(const Policy& p);
  /// Everything, owned or not (to assert that foreign objects survived).
  std::size_t total_sas() const;
  std::size_t total_policies() const;
  /// The policy the kernel would pick for a packet in `dir`, if any.
  std::optional<Policy> lookup_policy(Direction dir, const IpAddress& src, const IpAddress& dst, std::uint8_t proto,
                                      std::uint16_t sport, std::uint16_t dport) const;
  /// Number of mutating calls so far (adds, updates, deletes, set_default).
  std::size_t mutation_count() const;

 private:
  struct Impl;
  Ownership own_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace storcrypt::netlink
