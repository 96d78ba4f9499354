// storcrypt: sed-opal ioctl argument structures and result mapping.
#include "storcrypt/sed/opal.h"

#include <linux/ioctl.h>
#include <linux/sed-opal.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace storcrypt::sed {
namespace {

#ifndef ENOTSUPP
constexpr int kENOTSUPP = 524;  // kernel-internal "operation not supported" (sed_ioctl without opal_dev)
#else
constexpr int kENOTSUPP = ENOTSUPP;
#endif

/// Wipes an ioctl argument (it holds key material) when it goes out of scope.
template <typename T>
struct Wiped {
  T v{};
  ~Wiped() { secure_wipe(&v, sizeof(v)); }
};

Status fill_key(opal_key& k, std::span<const std::uint8_t> key, std::string_view what) {
  if (key.empty() || key.size() > OPAL_KEY_MAX) {
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("{}: a key must be 1..{} bytes, got {}", what, OPAL_KEY_MAX, key.size()));
  }
  k.lr = 0;  // the global locking range
  k.key_len = static_cast<std::uint8_t>(key.size());
  std::memcpy(k.key, key.data(), key.size());
  return ok_status();
}

Status admin1_session(opal_session_info& s, const SecretBytes& key, std::string_view what) {
  s.sum = 0;
  s.who = OPAL_ADMIN1;
  return fill_key(s.opal_key, key.view(), what);
}

}  // namespace

std::string tcg_status_name(int status) {
  switch (status) {
    case 0x00: return "SUCCESS";
    case 0x01: return "NOT_AUTHORIZED";
    case 0x03: return "SP_BUSY";
    case 0x04: return "SP_FAILED";
    case 0x05: return "SP_DISABLED";
    case 0x06: return "SP_FROZEN";
    case 0x07: return "NO_SESSIONS_AVAILABLE";
    case 0x08: return "UNIQUENESS_CONFLICT";
    case 0x09: return "INSUFFICIENT_SPACE";
    case 0x0A: return "INSUFFICIENT_ROWS";
    case 0x0B: return "INVALID_FUNCTION";
    case 0x0C: return "INVALID_PARAMETER";
    case 0x0F: return "TPER_MALFUNCTION";
    case 0x10: return "TRANSACTION_FAILURE";
    case 0x11: return "RESPONSE_OVERFLOW";
    case 0x12: return "AUTHORITY_LOCKED_OUT";
    case 0x3F: return "FAIL";
    default: return fmt::format("status {:#x}", status);
  }
}

DriveStatus decode_status(std::uint32_t flags) {
  DriveStatus s;
  s.flags = flags;
  s.supported = flags & OPAL_FL_SUPPORTED;
  s.locking_supported = flags & OPAL_FL_LOCKING_SUPPORTED;
  s.locking_enabled = flags & OPAL_FL_LOCKING_ENABLED;
  s.locked = flags & OPAL_FL_LOCKED;
  s.mbr_enabled = flags & OPAL_FL_MBR_ENABLED;
  s.mbr_done = flags & OPAL_FL_MBR_DONE;
  return s;
}

Status map_result(long rc, std::string_view device, std::string_view what) {
  if (rc == 0) return ok_status();
  if (rc > 0) {
    const std::string st = tcg_status_name(static_cast<int>(rc));
    if (rc == static_cast<long>(TcgStatus::kNotAuthorized)) {
      return Error(ErrorCode::kPermission,
                   fmt::format("{}: {}: the drive refused the key (TCG {})", device, what, st),
                   "the drive is locked with another key or owned by someone else: use the key that owns it, "
                   "or erase it with 'storcrypt drive revert DRIVE --psid' (destroys its data)",
                   std::string(kErrNotAuthorized));
    }
    if (rc == static_cast<long>(TcgStatus::kAuthorityLockedOut)) {
      return Error(ErrorCode::kPermission,
                   fmt::format("{}: {}: the drive locked the authority out after too many wrong keys (TCG {})",
                               device, what, st),
                   "power-cycle the drive to reset its try counter, then use the right key",
                   std::string(kErrNotAuthorized));
    }
    const ErrorCode code = (rc == static_cast<long>(TcgStatus::kSpBusy) ||
                            rc == static_cast<long>(TcgStatus::kNoSessionsAvailable))
                               ? ErrorCode::kUnavailable
                               : ErrorCode::kKernel;
    return Error(code, fmt::format("{}: {}: the drive refused (TCG {})", device, what, st),
                 "check the drive's state with 'storcrypt drive show'; retry; a drive that keeps refusing may "
                 "need a PSID revert",
                 std::string(kErrDriveRefused));
  }
  const int err = static_cast<int>(-rc);
  if (err == ENOTTY || err == EOPNOTSUPP || err == kENOTSUPP || err == EINVAL) {
    return Error(ErrorCode::kUnsupported,
                 fmt::format("{}: {}: not a TCG Opal drive for this kernel (sed-opal: {})", device, what,
                             err == kENOTSUPP ? std::string("no Security Send/Receive support")
                                              : std::string(std::strerror(err))),
                 "only NVMe and SATA drives with TCG Opal are supported (not through USB adapters)",
                 std::string(kErrNotOpal))
        .with_errno(err);
  }
  if (err == EACCES || err == EPERM) {
    return Error(ErrorCode::kPermission, fmt::format("{}: {}: {}", device, what, std::strerror(err)),
                 "sed-opal ioctls need CAP_SYS_ADMIN: run storcryptd as root")
        .with_errno(err);
  }
  if (err == ENOENT || err == ENXIO || err == ENODEV) {
    if (err == ENODEV && what == "activating the Locking SP") {
      return Error(ErrorCode::kConflict, fmt::format("{}: {}: the Locking SP is already active", device, what),
                   "", std::string(kErrAlreadyActive));
    }
    return Error(ErrorCode::kNotFound, fmt::format("{}: {}: {}", device, what, std::strerror(err)),
                 "check the device path (storcrypt drive list)")
        .with_errno(err);
  }
  return Error(ErrorCode::kKernel, fmt::format("{}: {}: {}", device, what, std::strerror(err))).with_errno(err);
}

Status Drive::run(unsigned long request, void* arg, std::string_view what) {
  return map_result(io_.call(device_, request, arg), device_, what);
}

Result<DriveStatus> Drive::status() {
  opal_status st{};
  STORCRYPT_TRY(run(IOC_OPAL_GET_STATUS, &st, "reading the Opal status"));
  DriveStatus s = decode_status(st.flags);
  if (!s.supported) {
    return Error(ErrorCode::kUnsupported,
                 fmt::format("{}: reading the Opal status: the drive does not answer Opal discovery", device_),
                 "only TCG Opal drives can be used", std::string(kErrNotOpal));
  }
  return s;
}

Status Drive::take_ownership(const SecretBytes& sid) {
  Wiped<opal_key> k;
  STORCRYPT_TRY(fill_key(k.v, sid.view(), "taking ownership"));
  return run(IOC_OPAL_TAKE_OWNERSHIP, &k.v, "taking ownership");
}

Status Drive::activate_locking(const SecretBytes& sid) {
  Wiped<opal_lr_act> a;
  STORCRYPT_TRY(fill_key(a.v.key, sid.view(), "activating the Locking SP"));
  a.v.sum = 0;
  a.v.num_lrs = 1;  // "due to kernel bug" also without single-user mode (cryptsetup)
  a.v.lr[0] = 0;
  return run(IOC_OPAL_ACTIVATE_LSP, &a.v, "activating the Locking SP");
}

Status Drive::setup_global_range(const SecretBytes& admin1, bool lock_enabled) {
  Wiped<opal_user_lr_setup> s;
  STORCRYPT_TRY(admin1_session(s.v.session, admin1, "setting up the global locking range"));
  s.v.range_start = 0;
  s.v.range_length = 0;
  s.v.RLE = lock_enabled ? 1 : 0;
  s.v.WLE = lock_enabled ? 1 : 0;
  return run(IOC_OPAL_LR_SETUP, &s.v,
             lock_enabled ? "enabling locking on the global range" : "disabling locking on the global range");
}

Status Drive::set_admin1_password(const SecretBytes& current, const SecretBytes& next) {
  Wiped<opal_new_pw> p;
  STORCRYPT_TRY(admin1_session(p.v.session, current, "changing the Admin1 password"));
  STORCRYPT_TRY(admin1_session(p.v.new_user_pw, next, "changing the Admin1 password"));
  return run(IOC_OPAL_SET_PW, &p.v, "changing the Admin1 password");
}

namespace {
Status lock_unlock_arg(opal_lock_unlock& l, const SecretBytes& admin1, std::uint32_t state, std::string_view what) {
  STORCRYPT_TRY(admin1_session(l.session, admin1, what));
  l.l_state = state;
  return ok_status();
}
}  // namespace

Status Drive::unlock(const SecretBytes& admin1) {
  Wiped<opal_lock_unlock> l;
  STORCRYPT_TRY(lock_unlock_arg(l.v, admin1, OPAL_RW, "unlocking"));
  return run(IOC_OPAL_LOCK_UNLOCK, &l.v, "unlocking");
}

Status Drive::lock(const SecretBytes& admin1) {
  Wiped<opal_lock_unlock> l;
  STORCRYPT_TRY(lock_unlock_arg(l.v, admin1, OPAL_LK, "locking"));
  return run(IOC_OPAL_LOCK_UNLOCK, &l.v, "locking");
}

Status Drive::save_for_resume(const SecretBytes& admin1) {
  Wiped<opal_lock_unlock> l;
  STORCRYPT_TRY(lock_unlock_arg(l.v, admin1, OPAL_RW, "saving the unlock for resume"));
  return run(IOC_OPAL_SAVE, &l.v, "saving the unlock for resume");
}

Status Drive::forget_saved_unlock() {
  Wiped<opal_lock_unlock> l;
  l.v.session.sum = 0;
  l.v.session.who = OPAL_ADMIN1;
  l.v.session.opal_key.lr = 0;
  l.v.session.opal_key.key_len = 0;
  l.v.l_state = OPAL_LK;
  return run(IOC_OPAL_SAVE, &l.v, "forgetting the saved unlock");
}

Status Drive::secure_erase(const SecretBytes& admin1) {
  Wiped<opal_session_info> s;
  STORCRYPT_TRY(admin1_session(s.v, admin1, "secure erase (new media key)"));
  return run(IOC_OPAL_SECURE_ERASE_LR, &s.v, "secure erase (new media key)");
}

Status Drive::revert(const SecretBytes& sid) {
  Wiped<opal_key> k;
  STORCRYPT_TRY(fill_key(k.v, sid.view(), "reverting to factory state"));
  return run(IOC_OPAL_REVERT_TPR, &k.v, "reverting to factory state");
}

Status Drive::psid_revert(std::string_view psid) {
  Wiped<opal_key> k;
  STORCRYPT_TRY(fill_key(k.v, {reinterpret_cast<const std::uint8_t*>(psid.data()), psid.size()},
                         "PSID revert"));
  return run(IOC_OPAL_PSID_REVERT_TPR, &k.v, "PSID revert");
}

Status Drive::check_not_in_use() {
  const int rc = io_.exclusive_check(device_);
  if (rc == 0) return ok_status();
  if (rc == -EBUSY) {
    return Error(ErrorCode::kConflict,
                 fmt::format("{} is in use (mounted, part of a device-mapper or RAID device, or held open)",
                             device_),
                 "unmount it and stop whatever holds it, then retry", std::string(kErrInUse));
  }
  return map_result(rc, device_, "checking that the drive is not in use");
}

}  // namespace storcrypt::sed
