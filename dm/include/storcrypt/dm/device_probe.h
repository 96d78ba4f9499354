// storcrypt: what is on a block device and who uses it, asked before
// anything destructive (volume create, erase, adopt).
//
// `DeviceProbe` is the injectable boundary (VolumeManager takes one; unit
// tests use a fake). The real probe (make_system_probe) reads signatures with
// libblkid (superblocks with type/usage/version, partition tables) and finds
// users from the kernel: mounts (/proc/self/mountinfo by major:minor, also of
// the device's partitions), holders (/sys/dev/block/M:m/holders, e.g. a
// dm-crypt or LVM mapping) and exclusive openers (open(O_EXCL) -> EBUSY).
// A read error is an error, never "blank".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"

namespace storcrypt::dm {

struct DeviceSignature {
  std::string type;          ///< blkid TYPE or PTTYPE: "ext4", "LVM2_member", "crypto_LUKS", "dos", "gpt"
  std::string usage;         ///< blkid USAGE ("filesystem", "raid", "crypto", "other") or "partition table"
  std::string version;       ///< blkid VERSION, e.g. "1" or "2" for crypto_LUKS; may be empty
  std::uint64_t offset = 0;  ///< byte offset of the magic
};

/// "ext4 filesystem", "LVM2_member", "linux_raid_member", "crypto_LUKS version 1",
/// "dos partition table".
std::string describe(const DeviceSignature& s);
/// describe() of each, joined with ", ".
std::string describe(const std::vector<DeviceSignature>& s);

class DeviceProbe {
 public:
  virtual ~DeviceProbe() = default;
  /// Every signature on `dev` (empty: blank as far as libblkid knows).
  /// A device that cannot be opened or read is an error.
  virtual Result<std::vector<DeviceSignature>> signatures(const std::string& dev) = 0;
  /// Why `dev` is in use, one reason each: "mounted at /mnt/x",
  /// "held by dm-3 (/dev/mapper/x)", "opened exclusively by another process".
  /// Empty: nobody uses it.
  virtual Result<std::vector<std::string>> users(const std::string& dev) = 0;
};

std::unique_ptr<DeviceProbe> make_system_probe();

}  // namespace storcrypt::dm
