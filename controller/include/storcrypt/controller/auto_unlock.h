// storcrypt controller: unlock registered volumes at start-up and retry the
// ones that stay locked (issue #7).
//
// AutoUnlock holds the decision logic only; the volume listing, opening and
// event raising are injected so it is unit-testable without root:
//   start()  - one pass over every registered volume that is not open; each
//              failure becomes "locked" and raises one event (volume + reason).
//   retry()  - tries the locked volumes again. A volume that opens (here or
//              by an operator's `volume open`) or is no longer registered has
//              its event marked fixed. A volume failing for the same reason
//              raises nothing new; a different reason raises a new event and
//              marks the previous one fixed (it no longer describes the
//              volume). Volumes closed later by an operator are never
//              reopened: only the ones locked at start-up are retried.
// AutoUnlockWorker runs start() at once, then retry() every interval on its
// own thread until the locked set is empty or it is stopped.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storcrypt/common/result.h"

namespace storcrypt::controller {

struct RegisteredVolume {
  std::string name;
  std::string device;
  bool open = false;
};

struct AutoUnlockHooks {
  /// Every registered volume with its current state.
  std::function<Result<std::vector<RegisteredVolume>>()> list;
  /// Open one volume; the error message is the reason it stays locked.
  std::function<Status(const RegisteredVolume&)> open;
  /// Raise the "volume stays locked" event; returns the event id.
  std::function<Result<int64_t>(const RegisteredVolume&, const std::string& reason)> raise;
  /// Mark an event fixed.
  std::function<void(int64_t event_id)> mark_fixed;
};

struct AutoUnlockPass {
  std::vector<std::string> opened;        ///< names opened in this pass
  std::vector<std::string> still_locked;  ///< names locked after this pass
  std::vector<std::string> raised;        ///< names for which a new event was raised
  std::vector<std::string> errors;        ///< listing / event failures (for the daemon log)
};

class AutoUnlock {
 public:
  explicit AutoUnlock(AutoUnlockHooks hooks) : h_(std::move(hooks)) {}

  AutoUnlockPass start();
  AutoUnlockPass retry();

  struct Locked {
    RegisteredVolume volume;
    std::string reason;
    int64_t event_id = 0;  ///< 0: raising failed
  };
  const std::map<std::string, Locked>& locked() const { return locked_; }

 private:
  void attempt(const RegisteredVolume& v, AutoUnlockPass& pass);
  AutoUnlockHooks h_;
  std::map<std::string, Locked> locked_;  ///< by volume name
};

/// Runs an AutoUnlock: start() in the constructor (so the daemon serves only
/// once every volume was tried), then retry() every `interval` on its own
/// thread while volumes stay locked. `on_pass` (optional) sees each pass.
class AutoUnlockWorker {
 public:
  AutoUnlockWorker(AutoUnlockHooks hooks, std::chrono::milliseconds interval,
                   std::function<void(const AutoUnlockPass&)> on_pass = {});
  ~AutoUnlockWorker();  ///< stops and joins
  AutoUnlockWorker(const AutoUnlockWorker&) = delete;
  AutoUnlockWorker& operator=(const AutoUnlockWorker&) = delete;

  void stop();
  /// Passes run so far (start() counts as one).
  std::uint64_t passes() const;
  /// Blocks until at least `n` passes ran or the worker finished (for tests).
  void wait_passes(std::uint64_t n) const;

 private:
  void run();
  void pass_done(const AutoUnlockPass& p);
  AutoUnlock logic_;
  std::chrono::milliseconds interval_;
  std::function<void(const AutoUnlockPass&)> on_pass_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stop_ = false;
  bool finished_ = false;
  std::uint64_t passes_ = 0;
  std::thread thread_;
};

}  // namespace storcrypt::controller
