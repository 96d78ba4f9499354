// The controller's owner of the CertStore (certs/ is not thread-safe; API
// handlers run on worker threads). Shared by the cert and truststore nouns and
// by later modules (ipsec, kmip) through Context::service<CertService>().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "storcrypt/certs/certs.h"
#include "storcrypt/controller/dispatcher.h"

namespace storcrypt::controller {

class CertService {
 public:
  explicit CertService(certs::CertStore store) : store_(std::move(store)) {}
  /// Run fn with exclusive access to the store.
  template <typename F>
  auto with(F&& fn) {
    std::lock_guard lock(mu_);
    return fn(store_);
  }
  /// Changes whenever the truststore is changed through the API (consumers
  /// that cache a view of it, e.g. the IKE peer validator, rebuild it).
  std::uint64_t trust_generation() const { return trust_generation_.load(); }
  void trust_changed() { ++trust_generation_; }

 private:
  std::mutex mu_;
  certs::CertStore store_;
  std::atomic<std::uint64_t> trust_generation_{0};
};

/// The CertService of ctx, created on first use at <state>/certs.
Result<std::shared_ptr<CertService>> cert_service(Context& ctx);

nlohmann::json cert_info_json(const certs::CertInfo& c);

}  // namespace storcrypt::controller
