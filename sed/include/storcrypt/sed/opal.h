// storcrypt: self-encrypting drives (TCG Opal) through the kernel's sed-opal
// ioctls (linux/sed-opal.h). No user-space TCG stack: the kernel builds and
// parses every TCG packet; this library fills the ioctl argument structures,
// issues them through an injected seam (SedIoctl) and maps the results.
//
// The ioctl result convention of sed-opal: 0 = success, a positive value = the
// drive's TCG method status (1 NOT_AUTHORIZED, 3 SP_BUSY, ...), a negative
// value = -errno from the kernel (ENOTTY/EOPNOTSUPP/ENOTSUPP: no Opal).
//
// Only ioctls up to IOC_OPAL_GET_STATUS (236) are used: Debian 12's 6.1 kernel
// has nothing newer (no SET_SID_PW: the SID password cannot be changed after
// take-ownership, so callers keep the SID key for the drive's life).
//
// Authority model: SID (Admin SP owner) and Admin1 of the Locking SP, both
// set from keys the caller supplies; the global locking range only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"

namespace storcrypt::sed {

/// TCG Core method status codes the kernel passes up (5.1.5).
enum class TcgStatus : int {
  kSuccess = 0x00,
  kNotAuthorized = 0x01,
  kSpBusy = 0x03,
  kSpFailed = 0x04,
  kSpDisabled = 0x05,
  kSpFrozen = 0x06,
  kNoSessionsAvailable = 0x07,
  kInvalidParameter = 0x0C,
  kTperMalfunction = 0x0F,
  kAuthorityLockedOut = 0x12,
  kFail = 0x3F,
};
std::string tcg_status_name(int status);

/// Stable error names callers can test (Error::name()).
inline constexpr std::string_view kErrNotOpal = "xSedNotOpal";                ///< no sed-opal support
inline constexpr std::string_view kErrNotAuthorized = "xSedNotAuthorized";    ///< wrong key / owned by someone else
inline constexpr std::string_view kErrDriveRefused = "xSedDriveRefused";      ///< another TCG status
inline constexpr std::string_view kErrAlreadyActive = "xSedLockingActive";    ///< Locking SP already active
inline constexpr std::string_view kErrInUse = "xSedDriveInUse";              ///< mounted / held open

/// The kernel boundary: one sed-opal ioctl on a block device.
class SedIoctl {
 public:
  virtual ~SedIoctl() = default;
  /// Open `device`, issue `request` with `arg`, close. Returns the ioctl's
  /// value (>= 0) or -errno (also for a failed open).
  virtual long call(const std::string& device, unsigned long request, void* arg) = 0;
  /// 0 when nobody holds `device` (an O_EXCL open succeeds), else -errno
  /// (-EBUSY: mounted, a device-mapper target or another exclusive user).
  virtual int exclusive_check(const std::string& device) = 0;
};
/// The real thing: open(2) + ioctl(2).
std::unique_ptr<SedIoctl> make_kernel_ioctl();

/// IOC_OPAL_GET_STATUS flags, decoded.
struct DriveStatus {
  std::uint32_t flags = 0;
  bool supported = false;          ///< OPAL_FL_SUPPORTED
  bool locking_supported = false;  ///< OPAL_FL_LOCKING_SUPPORTED
  bool locking_enabled = false;    ///< OPAL_FL_LOCKING_ENABLED (Locking SP active)
  bool locked = false;             ///< OPAL_FL_LOCKED (some range locked)
  bool mbr_enabled = false;        ///< OPAL_FL_MBR_ENABLED
  bool mbr_done = false;           ///< OPAL_FL_MBR_DONE
};
DriveStatus decode_status(std::uint32_t flags);

/// Locking operations of one drive (block device path, e.g. /dev/nvme0n1).
/// Every method is one kernel ioctl (the kernel runs the TCG sessions);
/// argument structures holding keys are wiped after the call.
class Drive {
 public:
  Drive(SedIoctl& io, std::string device) : io_(io), device_(std::move(device)) {}
  const std::string& device() const { return device_; }

  /// GET_STATUS. A drive without sed-opal support: error kUnsupported/xSedNotOpal with the reason.
  Result<DriveStatus> status();
  /// TAKE_OWNERSHIP: SID := `sid` (the kernel authenticates with the MSID).
  /// A drive someone already owns: kConflict/xSedNotAuthorized.
  Status take_ownership(const SecretBytes& sid);
  /// ACTIVATE_LSP (global range, no single-user mode): Admin1 := SID's PIN.
  Status activate_locking(const SecretBytes& sid);
  /// LR_SETUP of the global range: read/write locking enabled or not
  /// (disable = off: the data stays readable, the keys stay set).
  Status setup_global_range(const SecretBytes& admin1, bool lock_enabled);
  /// SET_PW: Admin1's password from `current` to `next`.
  Status set_admin1_password(const SecretBytes& current, const SecretBytes& next);
  /// LOCK_UNLOCK of the global range (Admin1): RW = unlocked, LK = locked.
  Status unlock(const SecretBytes& admin1);
  Status lock(const SecretBytes& admin1);
  /// SAVE: the kernel keeps the unlock (RW) to replay after suspend/resume.
  Status save_for_resume(const SecretBytes& admin1);
  /// SAVE with an empty key (as cryptsetup does when it locks): the kernel's
  /// resume replay then fails to authenticate and the range stays locked,
  /// and the earlier saved key no longer sits in kernel memory.
  Status forget_saved_unlock();
  /// SECURE_ERASE_LR: the global range gets a new media key (GenKey): data gone.
  Status secure_erase(const SecretBytes& admin1);
  /// REVERT_TPR with the SID: factory state, all data erased, ownership gone.
  Status revert(const SecretBytes& sid);
  /// PSID_REVERT_TPR with the PSID from the drive's label (last resort).
  Status psid_revert(std::string_view psid);
  /// kConflict/xSedDriveInUse when the device is mounted or held open exclusively.
  Status check_not_in_use();

 private:
  Status run(unsigned long request, void* arg, std::string_view what);
  SedIoctl& io_;
  std::string device_;
};

/// Map one ioctl result (see the header comment) to a Status naming the drive and the step.
Status map_result(long rc, std::string_view device, std::string_view what);

}  // namespace storcrypt::sed
