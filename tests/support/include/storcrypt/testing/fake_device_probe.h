// A DeviceProbe for unit tests: signatures, users and read errors per device
// are whatever the test sets (the real probe is tested on real devices in the VM).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "storcrypt/dm/device_probe.h"

namespace storcrypt::dm {

class FakeDeviceProbe final : public DeviceProbe {
 public:
  std::map<std::string, std::vector<DeviceSignature>> sigs;
  std::map<std::string, std::vector<std::string>> users_of;
  std::map<std::string, Error> read_errors;  ///< returned by signatures() and users()

  Result<std::vector<DeviceSignature>> signatures(const std::string& dev) override {
    if (auto it = read_errors.find(dev); it != read_errors.end()) return Error(it->second);
    auto it = sigs.find(dev);
    return it == sigs.end() ? std::vector<DeviceSignature>{} : it->second;
  }
  Result<std::vector<std::string>> users(const std::string& dev) override {
    if (auto it = read_errors.find(dev); it != read_errors.end()) return Error(it->second);
    auto it = users_of.find(dev);
    return it == users_of.end() ? std::vector<std::string>{} : it->second;
  }
};

}  // namespace storcrypt::dm
