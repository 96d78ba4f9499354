// Unit tests of the sed-opal ioctl layer: argument structures exactly as the
// kernel reads them, and the mapping of ioctl results to errors.
#include "storcrypt/sed/opal.h"

#include <gtest/gtest.h>
#include <linux/ioctl.h>
#include <linux/sed-opal.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "storcrypt/testing/fake_opal.h"

namespace storcrypt::sed {
namespace {

/// Records each request and a copy of its argument bytes; returns `rc`.
class CaptureIoctl final : public SedIoctl {
 public:
  struct Call {
    std::string device;
    unsigned long request;
    std::vector<std::uint8_t> arg;
  };
  std::vector<Call> calls;
  long rc = 0;
  std::uint32_t status_flags = 0;
  int exclusive_rc = 0;
  long call(const std::string& device, unsigned long request, void* arg) override {
    const auto* p = static_cast<const std::uint8_t*>(arg);
    calls.push_back({device, request, std::vector<std::uint8_t>(p, p + _IOC_SIZE(request))});
    if (request == IOC_OPAL_GET_STATUS && rc == 0) static_cast<opal_status*>(arg)->flags = status_flags;
    return rc;
  }
  int exclusive_check(const std::string&) override { return exclusive_rc; }
  template <typename T>
  T last() const {
    T v;
    EXPECT_EQ(calls.back().arg.size(), sizeof(T));
    std::memcpy(&v, calls.back().arg.data(), sizeof(T));
    return v;
  }
};

SecretBytes key(char c, std::size_t n = 32) {
  SecretBytes k(n);
  std::memset(k.data(), c, n);
  return k;
}
std::string key_str(const opal_key& k) { return std::string(reinterpret_cast<const char*>(k.key), k.key_len); }

TEST(SedArgs, TakeOwnershipSendsTheSidKeyForTheGlobalRange) {
  CaptureIoctl io;
  Drive d(io, "/dev/nvme0n1");
  ASSERT_TRUE(d.take_ownership(key('S')).ok());
  ASSERT_EQ(io.calls.size(), 1u);
  EXPECT_EQ(io.calls[0].device, "/dev/nvme0n1");
  EXPECT_EQ(io.calls[0].request, IOC_OPAL_TAKE_OWNERSHIP);
  auto k = io.last<opal_key>();
  EXPECT_EQ(k.lr, 0);
  EXPECT_EQ(k.key_len, 32);
  EXPECT_EQ(key_str(k), std::string(32, 'S'));
}

TEST(SedArgs, ActivateLockingOneGlobalRangeWithoutSingleUserMode) {
  CaptureIoctl io;
  ASSERT_TRUE(Drive(io, "/dev/sda").activate_locking(key('S')).ok());
  EXPECT_EQ(io.calls[0].request, IOC_OPAL_ACTIVATE_LSP);
  auto a = io.last<opal_lr_act>();
  EXPECT_EQ(a.sum, 0u);
  EXPECT_EQ(a.num_lrs, 1);
  EXPECT_EQ(a.lr[0], 0);
  EXPECT_EQ(key_str(a.key), std::string(32, 'S'));
}

TEST(SedArgs, GlobalRangeSetupEnablesOrDisablesBothDirectionsAsAdmin1) {
  CaptureIoctl io;
  Drive d(io, "/dev/sda");
  ASSERT_TRUE(d.setup_global_range(key('A'), true).ok());
  auto on = io.last<opal_user_lr_setup>();
  EXPECT_EQ(io.calls.back().request, IOC_OPAL_LR_SETUP);
  EXPECT_EQ(on.RLE, 1u);
  EXPECT_EQ(on.WLE, 1u);
  EXPECT_EQ(on.range_start, 0u);
  EXPECT_EQ(on.range_length, 0u);
  EXPECT_EQ(on.session.who, static_cast<std::uint32_t>(OPAL_ADMIN1));
  EXPECT_EQ(on.session.sum, 0u);
  EXPECT_EQ(on.session.opal_key.lr, 0);
  EXPECT_EQ(key_str(on.session.opal_key), std::string(32, 'A'));
  ASSERT_TRUE(d.setup_global_range(key('A'), false).ok());
  auto off = io.last<opal_user_lr_setup>();
  EXPECT_EQ(off.RLE, 0u);
  EXPECT_EQ(off.WLE, 0u);
}

TEST(SedArgs, SetPasswordAuthenticatesWithTheCurrentAdmin1Key) {
  CaptureIoctl io;
  ASSERT_TRUE(Drive(io, "/dev/sda").set_admin1_password(key('O'), key('N', 40)).ok());
  EXPECT_EQ(io.calls[0].request, IOC_OPAL_SET_PW);
  auto p = io.last<opal_new_pw>();
  EXPECT_EQ(p.session.who, static_cast<std::uint32_t>(OPAL_ADMIN1));
  EXPECT_EQ(key_str(p.session.opal_key), std::string(32, 'O'));
  EXPECT_EQ(p.new_user_pw.who, static_cast<std::uint32_t>(OPAL_ADMIN1));
  EXPECT_EQ(key_str(p.new_user_pw.opal_key), std::string(40, 'N'));
}

TEST(SedArgs, LockUnlockAndSaveStates) {
  CaptureIoctl io;
  Drive d(io, "/dev/sda");
  ASSERT_TRUE(d.unlock(key('A')).ok());
  EXPECT_EQ(io.calls.back().request, IOC_OPAL_LOCK_UNLOCK);
  EXPECT_EQ(io.last<opal_lock_unlock>().l_state, static_cast<std::uint32_t>(OPAL_RW));
  ASSERT_TRUE(d.lock(key('A')).ok());
  EXPECT_EQ(io.last<opal_lock_unlock>().l_state, static_cast<std::uint32_t>(OPAL_LK));
  ASSERT_TRUE(d.save_for_resume(key('A')).ok());
  EXPECT_EQ(io.calls.back().request, IOC_OPAL_SAVE);
  auto s = io.last<opal_lock_unlock>();
  EXPECT_EQ(s.l_state, static_cast<std::uint32_t>(OPAL_RW));
  EXPECT_EQ(s.session.who, static_cast<std::uint32_t>(OPAL_ADMIN1));
  EXPECT_EQ(key_str(s.session.opal_key), std::string(32, 'A'));
}

TEST(SedArgs, EraseAndReverts) {
  CaptureIoctl io;
  Drive d(io, "/dev/sda");
  ASSERT_TRUE(d.secure_erase(key('A')).ok());
  EXPECT_EQ(io.calls.back().request, IOC_OPAL_SECURE_ERASE_LR);
  EXPECT_EQ(io.last<opal_session_info>().who, static_cast<std::uint32_t>(OPAL_ADMIN1));
  ASSERT_TRUE(d.revert(key('S')).ok());
  EXPECT_EQ(io.calls.back().request, IOC_OPAL_REVERT_TPR);
  EXPECT_EQ(key_str(io.last<opal_key>()), std::string(32, 'S'));
  ASSERT_TRUE(d.psid_revert("0123456789ABCDEF0123456789ABCDEF").ok());
  EXPECT_EQ(io.calls.back().request, IOC_OPAL_PSID_REVERT_TPR);
  EXPECT_EQ(key_str(io.last<opal_key>()), "0123456789ABCDEF0123456789ABCDEF");
}

TEST(SedArgs, BadKeysAreRefusedBeforeAnyIoctl) {
  CaptureIoctl io;
  Drive d(io, "/dev/sda");
  auto empty = d.unlock(SecretBytes());
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidInput);
  auto big = d.take_ownership(key('x', 257));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kInvalidInput);
  EXPECT_FALSE(d.psid_revert("").ok());
  EXPECT_TRUE(io.calls.empty());
}

TEST(SedStatus, DecodesTheGetStatusFlags) {
  CaptureIoctl io;
  io.status_flags = OPAL_FL_SUPPORTED | OPAL_FL_LOCKING_SUPPORTED | OPAL_FL_LOCKING_ENABLED | OPAL_FL_LOCKED;
  auto s = Drive(io, "/dev/sda").status();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->supported && s->locking_supported && s->locking_enabled && s->locked);
  EXPECT_FALSE(s->mbr_enabled || s->mbr_done);
  EXPECT_EQ(io.calls[0].request, IOC_OPAL_GET_STATUS);
}

TEST(SedStatus, NotOpalDrivesSayWhy) {
  for (long rc : {long(-ENOTTY), long(-EOPNOTSUPP), -524L}) {
    CaptureIoctl io;
    io.rc = rc;
    auto s = Drive(io, "/dev/vda").status();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ErrorCode::kUnsupported) << rc;
    EXPECT_EQ(s.error().name(), kErrNotOpal);
    EXPECT_NE(s.error().message().find("/dev/vda"), std::string::npos);
    EXPECT_NE(s.error().message().find("not a TCG Opal drive"), std::string::npos);
  }
  CaptureIoctl io;  // answers, but without OPAL_FL_SUPPORTED
  auto s = Drive(io, "/dev/sdb").status();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().name(), kErrNotOpal);
}

TEST(SedErrors, TcgStatusesAreNamedAndMapped) {
  auto na = map_result(1, "/dev/sda", "unlocking");
  ASSERT_FALSE(na.ok());
  EXPECT_EQ(na.error().code(), ErrorCode::kPermission);
  EXPECT_EQ(na.error().name(), kErrNotAuthorized);
  EXPECT_NE(na.error().message().find("NOT_AUTHORIZED"), std::string::npos);
  EXPECT_NE(na.error().message().find("unlocking"), std::string::npos);
  EXPECT_FALSE(na.error().fix().empty());
  auto busy = map_result(3, "/dev/sda", "x");
  EXPECT_EQ(busy.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(busy.error().message().find("SP_BUSY"), std::string::npos);
  auto fail = map_result(0x3f, "/dev/sda", "x");
  EXPECT_EQ(fail.error().name(), kErrDriveRefused);
  EXPECT_NE(fail.error().message().find("FAIL"), std::string::npos);
  EXPECT_EQ(map_result(-EACCES, "/dev/sda", "x").error().code(), ErrorCode::kPermission);
  EXPECT_EQ(map_result(-ENOENT, "/dev/sda", "x").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(map_result(-EIO, "/dev/sda", "x").error().code(), ErrorCode::kKernel);
  EXPECT_EQ(map_result(-ETIMEDOUT, "/dev/sda", "x").error().sys_errno(), ETIMEDOUT);
  EXPECT_EQ(map_result(-ENODEV, "/dev/sda", "activating the Locking SP").error().name(), kErrAlreadyActive);
  EXPECT_TRUE(map_result(0, "/dev/sda", "x").ok());
}

TEST(SedErrors, KeysNeverAppearInErrors) {
  CaptureIoctl io;
  io.rc = 1;
  auto r = Drive(io, "/dev/sda").unlock(key('Q'));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().to_string().find("QQQQ"), std::string::npos);
}

TEST(SedErrors, DriveInUse) {
  CaptureIoctl io;
  io.exclusive_rc = -EBUSY;
  auto r = Drive(io, "/dev/sda").check_not_in_use();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), kErrInUse);
  io.exclusive_rc = 0;
  EXPECT_TRUE(Drive(io, "/dev/sda").check_not_in_use().ok());
}

TEST(SedFake, ModelFollowsTheKernelFlow) {
  FakeSedIoctl io;
  io.drives["/dev/a"] = {};
  Drive d(io, "/dev/a");
  ASSERT_TRUE(d.take_ownership(key('S')).ok());
  EXPECT_EQ(d.take_ownership(key('X')).error().name(), kErrNotAuthorized);
  ASSERT_TRUE(d.activate_locking(key('S')).ok());
  ASSERT_TRUE(d.setup_global_range(key('S'), true).ok());
  ASSERT_TRUE(d.lock(key('S')).ok());
  EXPECT_TRUE(d.status()->locked);
  EXPECT_FALSE(d.unlock(key('W')).ok());
  ASSERT_TRUE(d.unlock(key('S')).ok());
  EXPECT_FALSE(d.status()->locked);
  io.drives["/dev/a"].power_cycle();
  EXPECT_TRUE(d.status()->locked);
  io.drives["/dev/b"].opal = false;
  EXPECT_EQ(Drive(io, "/dev/b").status().error().name(), kErrNotOpal);
}

}  // namespace
}  // namespace storcrypt::sed
