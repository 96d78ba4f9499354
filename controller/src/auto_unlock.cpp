#include "storcrypt/controller/auto_unlock.h"

#include "storcrypt/common/secret.h"

namespace storcrypt::controller {

void AutoUnlock::attempt(const RegisteredVolume& v, AutoUnlockPass& pass) {
  Status st = h_.open(v);
  auto it = locked_.find(v.name);
  if (st.ok()) {
    pass.opened.push_back(v.name);
    if (it != locked_.end()) {
      if (it->second.event_id > 0) h_.mark_fixed(it->second.event_id);
      locked_.erase(it);
    }
    return;
  }
  std::string reason = st.error().message();
  pass.still_locked.push_back(v.name);
  if (it != locked_.end() && it->second.reason == reason && it->second.event_id > 0) return;  // no duplicate
  int64_t previous = it != locked_.end() ? it->second.event_id : 0;
  auto id = h_.raise(v, reason);
  if (!id.ok()) pass.errors.push_back("raising the locked-volume event for " + v.name + ": " + id.error().message());
  pass.raised.push_back(v.name);
  if (previous > 0) h_.mark_fixed(previous);  // superseded by the new reason
  locked_[v.name] = Locked{v, reason, id.ok() ? *id : 0};
}

AutoUnlockPass AutoUnlock::start() {
  AutoUnlockPass pass;
  auto vols = h_.list();
  if (!vols.ok()) {
    pass.errors.push_back("listing registered volumes: " + vols.error().message());
    return pass;
  }
  for (const auto& v : *vols)
    if (!v.open) attempt(v, pass);
  return pass;
}

AutoUnlockPass AutoUnlock::retry() {
  AutoUnlockPass pass;
  if (locked_.empty()) return pass;
  auto vols = h_.list();
  if (!vols.ok()) {
    pass.errors.push_back("listing registered volumes: " + vols.error().message());
    for (const auto& [name, _] : locked_) pass.still_locked.push_back(name);
    return pass;
  }
  std::map<std::string, RegisteredVolume> now;
  for (const auto& v : *vols) now[v.name] = v;
  std::vector<std::string> names;
  for (const auto& [name, _] : locked_) names.push_back(name);
  for (const auto& name : names) {
    auto cur = now.find(name);
    if (cur == now.end() || cur->second.open) {  // erased, or opened by an operator
      if (locked_[name].event_id > 0) h_.mark_fixed(locked_[name].event_id);
      locked_.erase(name);
      continue;
    }
    attempt(cur->second, pass);
  }
  return pass;
}

AutoUnlockWorker::AutoUnlockWorker(AutoUnlockHooks hooks, std::chrono::milliseconds interval,
                                   std::function<void(const AutoUnlockPass&)> on_pass)
    : logic_(std::move(hooks)), interval_(interval), on_pass_(std::move(on_pass)) {
  pass_done(logic_.start());  // inline: when the daemon serves, the first pass is done
  thread_ = std::thread([this] { run(); });
}

void AutoUnlockWorker::pass_done(const AutoUnlockPass& p) {
  if (on_pass_) on_pass_(p);
  std::lock_guard lock(mu_);
  ++passes_;
  cv_.notify_all();
}

AutoUnlockWorker::~AutoUnlockWorker() {
  stop();
  if (thread_.joinable()) thread_.join();
}

void AutoUnlockWorker::stop() {
  std::lock_guard lock(mu_);
  stop_ = true;
  cv_.notify_all();
}

std::uint64_t AutoUnlockWorker::passes() const {
  std::lock_guard lock(mu_);
  return passes_;
}

void AutoUnlockWorker::wait_passes(std::uint64_t n) const {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return passes_ >= n || finished_; });
}

void AutoUnlockWorker::run() {
  while (!logic_.locked().empty()) {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, interval_, [&] { return stop_; })) break;
    lock.unlock();
    pass_done(logic_.retry());
    wipe_stack();  // the pass read volume keys
  }
  std::lock_guard lock(mu_);
  finished_ = true;
  cv_.notify_all();
}

}  // namespace storcrypt::controller
