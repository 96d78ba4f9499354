// storcrypt: an in-memory SedIoctl for unit tests of the logic above the
// kernel boundary. It interprets the sed-opal argument structures with a
// small model of an Opal drive per device path (SID, Admin1, Locking SP,
// global range, media key generation), records every request, and can be
// told to fail. Real-kernel behaviour is proven in the VM tier (tests/vm/sed).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "storcrypt/sed/opal.h"

namespace storcrypt::sed {

struct FakeDriveModel {
  bool opal = true;              ///< false: every ioctl fails with -ENOTSUPP (524)
  std::string msid = "MSID";
  std::string psid = "PSID";
  std::string sid;               ///< empty: SID PIN is the MSID (not owned)
  bool lsp_active = false;
  std::string admin1;
  bool lock_enabled = false;     ///< RLE/WLE of the global range
  bool locked = false;           ///< RL/WL of the global range
  std::uint64_t media_key = 1;   ///< bumped by GenKey and revert
  std::vector<std::string> saved;  ///< IOC_OPAL_SAVE keys, per call
  bool in_use = false;           ///< exclusive_check returns -EBUSY
  /// Power cycle: a lock-enabled range locks again.
  void power_cycle() {
    if (lsp_active && lock_enabled) locked = true;
  }
};

class FakeSedIoctl final : public SedIoctl {
 public:
  std::map<std::string, FakeDriveModel> drives;
  /// Requests issued (ioctl numbers, _IOC_NR), in order, per device.
  std::vector<std::pair<std::string, unsigned>> calls;
  /// Fault injection: return non-zero to fail this call with that value (before any effect).
  std::function<long(const std::string& device, unsigned nr)> fail;

  long call(const std::string& device, unsigned long request, void* arg) override;
  int exclusive_check(const std::string& device) override;
  /// Number of calls with ioctl number `nr` (e.g. 220 for SAVE) on `device`.
  std::size_t count(const std::string& device, unsigned nr) const;
};

}  // namespace storcrypt::sed
