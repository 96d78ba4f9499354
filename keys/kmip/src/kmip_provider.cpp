// Access keys on KMIP key servers (see kmip_provider.h).
#include "storcrypt/keys/kmip_provider.h"

#include "storcrypt/keys/key_file.h"

namespace storcrypt::keys {

namespace {

class ClientOps final : public KmipKeyServerOps {
 public:
  explicit ClientOps(std::unique_ptr<kmip::Client> c) : c_(std::move(c)) {}
  Result<std::vector<std::string>> locate(const kmip::LocateFilter& f) override { return c_->locate(f); }
  Result<std::string> register_key(const kmip::RegisterParams& p, const SecretBytes& m) override {
    return c_->register_object(p, m);
  }
  Status activate(const std::string& uid) override { return c_->activate(uid); }
  Result<kmip::ManagedObject> get(const std::string& uid) override { return c_->get(uid); }
  Result<kmip::State> state(const std::string& uid) override {
    STORCRYPT_ASSIGN_OR_RETURN(auto attrs, c_->get_attributes(uid, {"State"}));
    for (const auto& a : attrs)
      if (a.name == "State") return static_cast<kmip::State>(a.value.num);
    return Error(ErrorCode::kProtocol, "the key server returned no State for object " + uid);
  }
  Status revoke(const std::string& uid, const kmip::RevokeParams& p) override { return c_->revoke(uid, p); }
  Status destroy(const std::string& uid) override { return c_->destroy(uid); }

 private:
  std::unique_ptr<kmip::Client> c_;
};

bool item_not_found(const Error& e) {
  return kmip::failure_category(e) == kmip::FailureCategory::kServerError &&
         kmip::server_result_reason(e) == kmip::ResultReason::kItemNotFound;
}

kmip::LocateFilter by_name(const std::string& name) {
  kmip::LocateFilter f;
  f.name = name;
  f.object_type = kmip::ObjectType::kSymmetricKey;
  return f;
}

}  // namespace

std::unique_ptr<KmipKeyServerOps> make_kmip_client_ops(std::unique_ptr<kmip::Client> client) {
  return std::make_unique<ClientOps>(std::move(client));
}

KmipKeyProvider::KmipKeyProvider(KmipProviderConfig cfg, std::vector<KmipServerHandle> servers)
    : cfg_(std::move(cfg)), servers_(std::move(servers)) {}

std::string KmipKeyProvider::object_name(const KeyRef& ref) const {
  return object_group(ref.key_id) + "-g" + std::to_string(ref.generation);
}

std::string KmipKeyProvider::object_group(const std::string& key_id) const {
  return cfg_.name_prefix.empty() ? key_id : cfg_.name_prefix + "-" + key_id;
}

std::optional<std::string> KmipKeyProvider::cached_uid(std::size_t index, const KeyRef& ref) const {
  std::lock_guard lock(mu_);
  auto it = uids_.find({index, object_name(ref)});
  if (it == uids_.end()) return std::nullopt;
  return it->second;
}

void KmipKeyProvider::remember(std::size_t index, const std::string& name, const std::string& uid) {
  std::lock_guard lock(mu_);
  uids_[{index, name}] = uid;
}

void KmipKeyProvider::forget(std::size_t index, const std::string& uid) {
  std::lock_guard lock(mu_);
  for (auto it = uids_.begin(); it != uids_.end();) {
    if (it->first.first == index && it->second == uid)
      it = uids_.erase(it);
    else
      ++it;
  }
}

Error KmipKeyProvider::server_error(const Error& e, std::size_t index, const std::string& what) const {
  std::string where = servers_[index].label + ": " + what;
  if (cfg_.map_error) return cfg_.map_error(e, where);
  return Error(e).context(where);
}

Result<ProviderReport> KmipKeyProvider::store(const KeyRef& ref, const SecretBytes& ak) {
  if (servers_.empty())
    return Error(ErrorCode::kUnavailable, "key provider " + cfg_.provider_id + " has no key servers",
                 "add a key server with AddKeyServerToProviderKmip", "xKeyProviderConfigurationError");
  if (ak.size() != kAccessKeyBytes)
    return Error(ErrorCode::kInvalidInput, "an access key is " + std::to_string(kAccessKeyBytes) + " bytes");
  const std::string name = object_name(ref);
  ProviderReport rep;
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    auto& ops = *servers_[i].ops;
    // Idempotent after a timeout: the key may already be there.
    auto found = ops.locate(by_name(name));
    if (!found.ok()) return server_error(found.error(), i, "locating key " + name);
    if (!found->empty()) {
      const std::string uid = found->front();
      auto obj = ops.get(uid);
      if (!obj.ok()) return server_error(obj.error(), i, "reading key " + name + " (" + uid + ")");
      if (found->size() > 1 || !obj->material.equals(ak))
        return Error(ErrorCode::kConflict,
                     servers_[i].label + " already holds a different key named " + name + " (" + uid + ")",
                     "the key server keeps a key of this name that this node did not store; it is never "
                     "overwritten: check the key server (another system with the same system id?) and remove "
                     "it there if it is stale",
                     "xKeyServerFailedKeyAlreadyExists");
      remember(i, name, uid);
      ++rep.copies_written;
      continue;
    }
    kmip::RegisterParams p;
    p.object_type = kmip::ObjectType::kSymmetricKey;
    p.algorithm = kmip::CryptographicAlgorithm::kAes;
    p.usage_mask = kmip::usage::kEncrypt | kmip::usage::kDecrypt;
    p.name = name;
    p.object_group = object_group(ref.key_id);
    auto uid = ops.register_key(p, ak);
    if (!uid.ok()) return server_error(uid.error(), i, "registering key " + name);
    remember(i, name, *uid);
    if (auto st = ops.activate(*uid); !st.ok())
      rep.warnings.push_back(servers_[i].label + ": key " + name + " (" + *uid +
                             ") stays pre-active: Activate failed: " + st.error().message());
    ++rep.copies_written;
  }
  return rep;
}

Result<FetchedKey> KmipKeyProvider::fetch(const KeyRef& ref) {
  const std::string name = object_name(ref);
  std::vector<std::string> failures;
  bool all_answered = true;
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    auto& ops = *servers_[i].ops;
    std::optional<std::string> uid = cached_uid(i, ref);
    Result<kmip::ManagedObject> obj = Error(ErrorCode::kNotFound, "not looked up");
    if (uid) {
      obj = ops.get(*uid);
      if (!obj.ok() && item_not_found(obj.error())) {
        forget(i, *uid);
        uid.reset();
      }
    }
    if (!uid) {
      auto found = ops.locate(by_name(name));
      if (!found.ok()) {
        all_answered = false;
        failures.push_back(server_error(found.error(), i, "locating key " + name).message());
        continue;
      }
      if (found->empty()) {
        failures.push_back(servers_[i].label + ": no key named " + name);
        continue;
      }
      uid = found->front();
      obj = ops.get(*uid);
    }
    if (!obj.ok()) {
      if (!item_not_found(obj.error())) all_answered = false;
      failures.push_back(server_error(obj.error(), i, "getting key " + name + " (" + *uid + ")").message());
      continue;
    }
    if (obj->object_type != kmip::ObjectType::kSymmetricKey || obj->material.size() != kAccessKeyBytes) {
      all_answered = false;
      failures.push_back(servers_[i].label + ": object " + *uid + " named " + name + " is not a 256-bit symmetric key");
      continue;
    }
    remember(i, name, *uid);
    FetchedKey out;
    out.ak = std::move(obj->material);
    out.valid_copies = 1;
    for (auto& f : failures) out.warnings.push_back(std::move(f) + " (served by " + servers_[i].label + ")");
    return out;
  }
  std::string why;
  for (const auto& f : failures) why += (why.empty() ? "" : "; ") + f;
  if (servers_.empty()) why = "the provider has no key servers";
  if (all_answered && !servers_.empty())
    return Error(ErrorCode::kNotFound,
                 "no key server of key provider " + cfg_.provider_id + " holds key " + name + ": " + why,
                 "the key was destroyed or never stored on these key servers", "xKeyNotFound");
  return Error(ErrorCode::kUnavailable, "key " + name + " of key provider " + cfg_.provider_id + " unavailable: " + why,
               "make a key server of the provider reachable (TestKeyProviderKmip shows which fails)",
               "xKeyProviderUnavailable");
}

Result<ProviderReport> KmipKeyProvider::rekey(const KeyRef& current, const KeyRef& next, const SecretBytes& new_ak) {
  STORCRYPT_TRY(fetch(current));  // a valid copy of the current key first
  return store(next, new_ak);
}

Status KmipKeyProvider::destroy_objects(std::size_t index, const std::vector<std::string>& uids, std::size_t* removed) {
  auto& ops = *servers_[index].ops;
  for (const auto& uid : uids) {
    auto st = ops.state(uid);
    if (!st.ok()) {
      if (item_not_found(st.error())) continue;  // already gone
      return server_error(st.error(), index, "reading the state of object " + uid);
    }
    if (*st == kmip::State::kActive) {
      kmip::RevokeParams rp;
      rp.reason = kmip::RevocationReasonCode::kCessationOfOperation;
      rp.message = "storcrypt: key retired";
      if (auto r = ops.revoke(uid, rp); !r.ok()) return server_error(r.error(), index, "revoking object " + uid);
    }
    if (auto d = ops.destroy(uid); !d.ok() && !item_not_found(d.error()))
      return server_error(d.error(), index, "destroying object " + uid);
    forget(index, uid);
    ++*removed;
  }
  return ok_status();
}

Result<ProviderReport> KmipKeyProvider::destroy_matching(const kmip::LocateFilter& f, const std::string& what) {
  ProviderReport rep;
  std::optional<Error> first;
  std::string failed;
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    auto found = servers_[i].ops->locate(f);
    Status st = found.ok() ? destroy_objects(i, *found, &rep.copies_removed)
                           : Status(server_error(found.error(), i, "locating " + what));
    if (!st.ok()) {
      failed += (failed.empty() ? "" : ", ") + servers_[i].label;
      if (!first) first = st.error();
    }
  }
  if (first)
    return Error(first->code(),
                 what + " not destroyed on " + failed + " (" + std::to_string(rep.copies_removed) +
                     " object(s) destroyed elsewhere): " + first->message(),
                 first->fix().empty() ? "make the key server reachable and repeat" : first->fix(), first->name());
  return rep;
}

Result<ProviderReport> KmipKeyProvider::retire(const KeyRef& ref) {
  return destroy_matching(by_name(object_name(ref)), "key " + object_name(ref));
}

Result<ProviderReport> KmipKeyProvider::destroy_all(const std::string& key_id) {
  kmip::LocateFilter f;
  f.object_group = object_group(key_id);
  f.object_type = kmip::ObjectType::kSymmetricKey;
  return destroy_matching(f, "the keys of group " + object_group(key_id));
}

Result<bool> KmipKeyProvider::holds(const std::string& key_id) {
  kmip::LocateFilter f;
  f.object_group = object_group(key_id);
  f.object_type = kmip::ObjectType::kSymmetricKey;
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    auto found = servers_[i].ops->locate(f);
    if (!found.ok()) return server_error(found.error(), i, "locating the keys of group " + object_group(key_id));
    if (!found->empty()) return true;
  }
  return false;
}

}  // namespace storcrypt::keys
