#include "storcrypt/testing/fake_xfrm.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>

namespace storcrypt::netlink {
namespace {

struct SaEntry {
  Sa sa;
  SaCounters counters;
  bool larval = false;
};

struct PolicyEntry {
  Policy p;
  std::uint64_t seq = 0;
};

bool same_sa(const SaId& a, const SaId& b) {
  return a.dst == b.dst && a.spi == b.spi && a.proto == b.proto && a.mark == b.mark;
}

bool same_policy(const PolicyId& a, const Policy& p) {
  if (a.index != 0) return a.index == p.index && a.dir == p.dir;
  return a.selector == p.selector && a.dir == p.dir && a.mark == p.mark && a.if_id == p.if_id;
}

Error not_found(const std::string& what) {
  return Error(ErrorCode::kNotFound, what + ": no such object", "list existing objects and retry with one of them");
}

struct Queue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<XfrmEvent> events;
  EventMask mask;
};

class FakeSubscription : public EventSubscription {
 public:
  explicit FakeSubscription(std::shared_ptr<Queue> q) : q_(std::move(q)) {}
  Result<std::optional<XfrmEvent>> next(std::chrono::milliseconds timeout) override {
    std::unique_lock lk(q_->mu);
    if (!q_->cv.wait_for(lk, timeout, [&] { return !q_->events.empty(); })) return std::optional<XfrmEvent>{};
    XfrmEvent ev = std::move(q_->events.front());
    q_->events.pop_front();
    return std::optional<XfrmEvent>(std::move(ev));
  }
  int fd() const override { return -1; }

 private:
  std::shared_ptr<Queue> q_;
};

}  // namespace

struct FakeXfrm::Impl {
  mutable std::mutex mu;
  std::vector<SaEntry> sas;  // owned and foreign alike, like the kernel
  std::vector<PolicyEntry> policies;
  std::uint32_t idx_generator = 0;
  std::uint64_t seq = 0;
  DefaultPolicy defaults;
  std::vector<std::weak_ptr<Queue>> subs;
  std::vector<std::pair<std::string, Error>> failures;
  std::size_t mutations = 0;

  std::optional<Error> take_failure(std::string_view op) {
    for (auto it = failures.begin(); it != failures.end(); ++it) {
      if (it->first == "*" || it->first == op) {
        Error e = std::move(it->second);
        failures.erase(it);
        return e;
      }
    }
    return std::nullopt;
  }

  SaEntry* find_sa(const SaId& id) {
    for (auto& e : sas)
      if (same_sa(e.sa.id(), id)) return &e;
    return nullptr;
  }

  PolicyEntry* find_policy(const PolicyId& id) {
    for (auto& e : policies)
      if (same_policy(id, e.p)) return &e;
    return nullptr;
  }

  /// Like the real backend: a policy the kernel would give an index outside
  /// the owner's range (the chosen one is taken) is not kept.
  static Status check_index_kept(const Ownership& own, const Policy& p, std::uint32_t idx, std::string_view op) {
    if (own.owns_index(idx)) return ok_status();
    return Error(ErrorCode::kConflict,
                 fmt::format("{} {}: the kernel gave it index {} instead of {} (that index is in use); it was "
                             "removed again",
                             op, p.to_string(), idx, p.index),
                 "choose a free index from the owner's range");
  }

  std::uint32_t gen_index(Direction dir, std::uint32_t wanted) {
    for (;;) {
      std::uint32_t idx;
      if (wanted) {
        idx = wanted;
        wanted = 0;
      } else {
        idx = idx_generator | static_cast<std::uint32_t>(dir);
        idx_generator += 8;
      }
      if (idx == 0) idx = 8;
      bool used = std::any_of(policies.begin(), policies.end(), [&](const PolicyEntry& e) { return e.p.index == idx; });
      if (!used) return idx;
    }
  }
};

FakeXfrm::FakeXfrm(Ownership own) : own_(own), impl_(std::make_shared<Impl>()) {}
FakeXfrm::FakeXfrm(const FakeXfrm& same_kernel, Ownership own) : own_(own), impl_(same_kernel.impl_) {}
FakeXfrm::~FakeXfrm() = default;

Result<std::uint32_t> FakeXfrm::allocate_spi(const SpiRequest& req) {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("allocate_spi")) return *e;
  std::uint32_t lo = std::max(req.min, kMinSpi);
  if (req.max < lo)
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("max: SPI range [{}, {}] is empty (SPIs below 256 are reserved)", req.min, req.max));
  if (req.src.family != req.dst.family) return Error(ErrorCode::kInvalidInput, "src: address families differ");
  if (!own_.owns_reqid(req.reqid))
    return Error(ErrorCode::kInvalidInput, fmt::format("reqid: {} is outside storcrypt's reqid range", req.reqid));
  for (std::uint64_t spi = lo; spi <= req.max; ++spi) {
    SaId id{req.dst, static_cast<std::uint32_t>(spi), req.proto, req.mark};
    if (impl_->find_sa(id)) continue;
    SaEntry e;
    e.sa.src = req.src;
    e.sa.dst = req.dst;
    e.sa.spi = static_cast<std::uint32_t>(spi);
    e.sa.proto = req.proto;
    e.sa.mode = req.mode;
    e.sa.reqid = req.reqid;
    e.sa.mark = req.mark;
    e.sa.if_id = req.if_id;
    e.larval = true;
    impl_->sas.push_back(std::move(e));
    ++impl_->mutations;
    return static_cast<std::uint32_t>(spi);
  }
  return Error(ErrorCode::kConflict, "allocating SPI: no free SPI in the range", "widen the SPI range");
}

Status FakeXfrm::add_sa(const Sa& sa) {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("add_sa")) return *e;
  STORCRYPT_TRY(validate(sa));
  STORCRYPT_TRY(own_.require_owned(sa));
  if (impl_->find_sa(sa.id()))
    return Error(ErrorCode::kConflict, fmt::format("adding {}: SA already exists", sa.id().to_string()),
                 "delete it first or use update");
  SaEntry e;
  e.sa = sa.clone();
  e.counters.add_time = 1;
  impl_->sas.push_back(std::move(e));
  ++impl_->mutations;
  return ok_status();
}

Status FakeXfrm::update_sa(const Sa& sa) {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("update_sa")) return *e;
  STORCRYPT_TRY(validate(sa));
  STORCRYPT_TRY(own_.require_owned(sa));
  SaEntry* e = impl_->find_sa(sa.id());
  if (!e) return not_found("updating " + sa.id().to_string());
  if (!own_.owns(e->sa))
    return Error(ErrorCode::kConflict, fmt::format("updating {}: SA is not owned by storcrypt", sa.id().to_string()));
  e->sa = sa.clone();
  e->larval = false;
  ++impl_->mutations;
  return ok_status();
}

Status FakeXfrm::delete_sa(const SaId& id) {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("delete_sa")) return *e;
  for (auto it = impl_->sas.begin(); it != impl_->sas.end(); ++it) {
    if (!same_sa(it->sa.id(), id)) continue;
    if (!own_.owns(it->sa))
      return Error(ErrorCode::kConflict, fmt::format("deleting {}: SA is not owned by storcrypt", id.to_string()));
    impl_->sas.erase(it);
    ++impl_->mutations;
    return ok_status();
  }
  return not_found("deleting " + id.to_string());
}

Result<SaState> FakeXfrm::get_sa(const SaId& id) {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("get_sa")) return *e;
  SaEntry* e = impl_->find_sa(id);
  if (!e || !own_.owns(e->sa)) return not_found("getting " + id.to_string());
  return SaState{e->sa.clone(), e->counters};
}

Result<std::vector<SaState>> FakeXfrm::dump_sas() {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("dump_sas")) return *e;
  std::vector<SaState> out;
  for (const auto& e : impl_->sas)
    if (own_.owns(e.sa)) out.push_back(SaState{e.sa.clone(), e.counters});
  return out;
}

Result<std::uint32_t> FakeXfrm::add_policy(const Policy& p) {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("add_policy")) return *e;
  STORCRYPT_TRY(validate(p));
  STORCRYPT_TRY(own_.require_owned(p));
  if (impl_->find_policy(p.id()))
    return Error(ErrorCode::kConflict, fmt::format("adding {}: policy already exists", p.to_string()),
                 "delete it first or use update");
  PolicyEntry e{p, ++impl_->seq};
  e.p.index = impl_->gen_index(p.dir, p.index);
  STORCRYPT_TRY(impl_->check_index_kept(own_, p, e.p.index, "adding"));
  impl_->policies.push_back(e);
  ++impl_->mutations;
  return e.p.index;
}

Result<std::uint32_t> FakeXfrm::update_policy(const Policy& p) {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("update_policy")) return *e;
  STORCRYPT_TRY(validate(p));
  STORCRYPT_TRY(own_.require_owned(p));
  ++impl_->mutations;
  if (PolicyEntry* e = impl_->find_policy(p.id())) {
    if (!own_.owns(e->p))
      return Error(ErrorCode::kConflict, fmt::format("updating {}: policy is not owned by storcrypt", p.to_string()));
    std::uint32_t idx = e->p.index;
    e->p = p;
    e->p.index = idx;
    return idx;
  }
  PolicyEntry e{p, ++impl_->seq};
  e.p.index = impl_->gen_index(p.dir, p.index);
  STORCRYPT_TRY(impl_->check_index_kept(own_, p, e.p.index, "updating"));
  impl_->policies.push_back(e);
  return e.p.index;
}

Status FakeXfrm::delete_policy(const PolicyId& id) {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("delete_policy")) return *e;
  for (auto it = impl_->policies.begin(); it != impl_->policies.end(); ++it) {
    if (!same_policy(id, it->p)) continue;
    if (!own_.owns(it->p))
      return Error(ErrorCode::kConflict, fmt::format("deleting {}: policy is not owned by storcrypt", id.to_string()));
    impl_->policies.erase(it);
    ++impl_->mutations;
    return ok_status();
  }
  return not_found("deleting " + id.to_string());
}

Result<Policy> FakeXfrm::get_policy(const PolicyId& id) {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("get_policy")) return *e;
  PolicyEntry* e = impl_->find_policy(id);
  if (!e || !own_.owns(e->p)) return not_found("getting " + id.to_string());
  return e->p;
}

Result<std::vector<Policy>> FakeXfrm::dump_policies() {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("dump_policies")) return *e;
  std::vector<Policy> out;
  for (const auto& e : impl_->policies)
    if (own_.owns(e.p)) out.push_back(e.p);
  return out;
}

Result<std::vector<Policy>> FakeXfrm::dump_foreign_policies() {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("dump_foreign_policies")) return *e;
  std::vector<Policy> out;
  for (const auto& e : impl_->policies)
    if (!own_.owns(e.p)) out.push_back(e.p);
  return out;
}

Result<BatchResult> FakeXfrm::add_policies(std::span<const Policy> ps) {
  BatchResult r;
  for (std::size_t i = 0; i < ps.size(); ++i) {
    auto res = add_policy(ps[i]);
    if (res.ok())
      ++r.succeeded;
    else
      r.failures.emplace_back(i, std::move(res).error());
  }
  return r;
}

Result<BatchResult> FakeXfrm::delete_policies(std::span<const PolicyId> ids) {
  BatchResult r;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto res = delete_policy(ids[i]);
    if (res.ok())
      ++r.succeeded;
    else
      r.failures.emplace_back(i, std::move(res).error());
  }
  return r;
}

Result<BatchResult> FakeXfrm::add_sas(std::span<const Sa> sas) {
  BatchResult r;
  for (std::size_t i = 0; i < sas.size(); ++i) {
    auto res = add_sa(sas[i]);
    if (res.ok())
      ++r.succeeded;
    else
      r.failures.emplace_back(i, std::move(res).error());
  }
  return r;
}

Result<BatchResult> FakeXfrm::delete_sas(std::span<const SaId> ids) {
  BatchResult r;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto res = delete_sa(ids[i]);
    if (res.ok())
      ++r.succeeded;
    else
      r.failures.emplace_back(i, std::move(res).error());
  }
  return r;
}

Result<DefaultPolicy> FakeXfrm::get_default_policy() {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("get_default_policy")) return *e;
  return impl_->defaults;
}

Status FakeXfrm::set_default_policy(const DefaultPolicy& d) {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("set_default_policy")) return *e;
  impl_->defaults = d;
  ++impl_->mutations;
  return ok_status();
}

Result<std::unique_ptr<EventSubscription>> FakeXfrm::subscribe(const EventMask& mask) {
  std::lock_guard lk(impl_->mu);
  if (auto e = impl_->take_failure("subscribe")) return *e;
  auto q = std::make_shared<Queue>();
  q->mask = mask;
  impl_->subs.push_back(q);
  return std::unique_ptr<EventSubscription>(std::make_unique<FakeSubscription>(q));
}

void FakeXfrm::fail_next(std::string op, Error err) {
  std::lock_guard lk(impl_->mu);
  impl_->failures.emplace_back(std::move(op), std::move(err));
}

Status FakeXfrm::add_traffic(const SaId& id, std::uint64_t bytes, std::uint64_t packets) {
  std::lock_guard lk(impl_->mu);
  SaEntry* e = impl_->find_sa(id);
  if (!e) return not_found("counting traffic on " + id.to_string());
  e->counters.bytes += bytes;
  e->counters.packets += packets;
  e->counters.oseq += packets;
  return ok_status();
}

Status FakeXfrm::add_integrity_failures(const SaId& id, std::uint32_t n) {
  std::lock_guard lk(impl_->mu);
  SaEntry* e = impl_->find_sa(id);
  if (!e) return not_found("counting integrity failures on " + id.to_string());
  e->counters.integrity_failed += n;
  return ok_status();
}

void FakeXfrm::emit(const XfrmEvent& ev) {
  std::lock_guard lk(impl_->mu);
  bool owned = std::visit(
      [&](const auto& e) -> bool {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, PolicyExpireEvent>)
          return own_.owns_index(e.id.index);
        else
          return own_.owns_reqid(e.reqid);
      },
      ev);
  if (!owned) return;
  for (auto& w : impl_->subs) {
    auto q = w.lock();
    if (!q) continue;
    bool wanted = std::visit(
        [&](const auto& e) -> bool {
          using T = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<T, AcquireEvent>) return q->mask.acquire;
          if constexpr (std::is_same_v<T, SaExpireEvent>) return q->mask.expire;
          return q->mask.policy_expire;
        },
        ev);
    if (!wanted) continue;
    {
      std::lock_guard qlk(q->mu);
      q->events.push_back(ev);
    }
    q->cv.notify_all();
  }
}

void FakeXfrm::add_foreign_sa(const Sa& sa) {
  std::lock_guard lk(impl_->mu);
  SaEntry e;
  e.sa = sa.clone();
  impl_->sas.push_back(std::move(e));
}

void FakeXfrm::add_foreign_policy(const Policy& p) {
  std::lock_guard lk(impl_->mu);
  PolicyEntry e{p, ++impl_->seq};
  e.p.index = impl_->gen_index(p.dir, p.index);
  impl_->policies.push_back(e);
}

std::size_t FakeXfrm::total_sas() const {
  std::lock_guard lk(impl_->mu);
  return impl_->sas.size();
}

std::size_t FakeXfrm::total_policies() const {
  std::lock_guard lk(impl_->mu);
  return impl_->policies.size();
}

std::optional<Policy> FakeXfrm::lookup_policy(Direction dir, const IpAddress& src, const IpAddress& dst,
                                              std::uint8_t proto, std::uint16_t sport, std::uint16_t dport) const {
  std::lock_guard lk(impl_->mu);
  const PolicyEntry* best = nullptr;
  for (const auto& e : impl_->policies) {
    if (e.p.dir != dir || !e.p.selector.matches(src, dst, proto, sport, dport)) continue;
    // Lowest priority number wins; on a tie the kernel keeps the older policy.
    if (!best || e.p.priority < best->p.priority || (e.p.priority == best->p.priority && e.seq < best->seq)) best = &e;
  }
  if (!best) return std::nullopt;
  return best->p;
}

std::size_t FakeXfrm::mutation_count() const {
  std::lock_guard lk(impl_->mu);
  return impl_->mutations;
}

}  // namespace storcrypt::netlink
