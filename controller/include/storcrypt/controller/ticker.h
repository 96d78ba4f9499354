// storcrypt controller: a periodic background task for noun modules
// (watchers started from a start hook). The task runs at once, then every
// `every`, on its own thread; destruction stops and joins it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include "storcrypt/common/secret.h"

namespace storcrypt::controller {

class Ticker {
 public:
  Ticker(std::chrono::seconds every, std::function<void()> fn)
      : thread_([this, every, fn = std::move(fn)] {
          std::unique_lock lock(mu_);
          while (!stop_) {
            lock.unlock();
            fn();
            // Watchers read SAs and keys; this thread's stack (and what an
            // earlier thread left on it: glibc reuses stacks) may hold copies.
            wipe_stack();
            lock.lock();
            cv_.wait_for(lock, every, [this] { return stop_; });
          }
        }) {}
  ~Ticker() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  ///< declared last: starts after the members it uses
};

/// An interval from the environment (whole seconds within [1, max]), else `dflt`.
inline std::chrono::seconds interval_from_env(const char* name, std::chrono::seconds dflt, long max = 86400) {
  if (const char* e = std::getenv(name); e && *e) {
    char* end = nullptr;
    long v = std::strtol(e, &end, 10);
    if (end && *end == '\0' && v >= 1 && v <= max) return std::chrono::seconds(v);
  }
  return dflt;
}

}  // namespace storcrypt::controller
