// storcrypt: the in-memory sed-opal model for unit tests (see fake_opal.h).
#include "storcrypt/testing/fake_opal.h"

#include <linux/ioctl.h>
#include <linux/sed-opal.h>

#include <cerrno>

namespace storcrypt::sed {
namespace {
constexpr long kNotAuthorized = 1;
constexpr long kEnotsupp = -524;

std::string key_of(const opal_key& k) { return std::string(reinterpret_cast<const char*>(k.key), k.key_len); }
}  // namespace

long FakeSedIoctl::call(const std::string& device, unsigned long request, void* arg) {
  const unsigned nr = _IOC_NR(request);
  calls.emplace_back(device, nr);
  auto it = drives.find(device);
  if (it == drives.end()) return -ENOENT;
  FakeDriveModel& d = it->second;
  if (!d.opal) return kEnotsupp;
  if (fail) {
    if (long rc = fail(device, nr)) return rc;
  }
  const std::string sid_pin = d.sid.empty() ? d.msid : d.sid;
  switch (request) {
    case IOC_OPAL_GET_STATUS: {
      auto* s = static_cast<opal_status*>(arg);
      s->flags = OPAL_FL_SUPPORTED | OPAL_FL_LOCKING_SUPPORTED | (d.lsp_active ? OPAL_FL_LOCKING_ENABLED : 0) |
                 (d.lsp_active && d.lock_enabled && d.locked ? OPAL_FL_LOCKED : 0);
      return 0;
    }
    case IOC_OPAL_TAKE_OWNERSHIP: {
      if (!d.sid.empty()) return kNotAuthorized;  // the MSID no longer opens SID
      d.sid = key_of(*static_cast<opal_key*>(arg));
      return 0;
    }
    case IOC_OPAL_ACTIVATE_LSP: {
      auto* a = static_cast<opal_lr_act*>(arg);
      if (key_of(a->key) != sid_pin) return kNotAuthorized;
      if (d.lsp_active) return -ENODEV;  // sed-opal: lifecycle is not Manufactured-Inactive
      d.lsp_active = true;
      d.admin1 = sid_pin;
      return 0;
    }
    default:
      break;
  }
  auto admin1_ok = [&](const opal_session_info& s) {
    return d.lsp_active && s.who == OPAL_ADMIN1 && key_of(s.opal_key) == d.admin1;
  };
  switch (request) {
    case IOC_OPAL_LR_SETUP: {
      auto* s = static_cast<opal_user_lr_setup*>(arg);
      if (!admin1_ok(s->session)) return kNotAuthorized;
      d.lock_enabled = s->RLE && s->WLE;
      d.locked = false;
      return 0;
    }
    case IOC_OPAL_SET_PW: {
      auto* p = static_cast<opal_new_pw*>(arg);
      if (!admin1_ok(p->session)) return kNotAuthorized;
      d.admin1 = key_of(p->new_user_pw.opal_key);
      return 0;
    }
    case IOC_OPAL_LOCK_UNLOCK: {
      auto* l = static_cast<opal_lock_unlock*>(arg);
      if (!admin1_ok(l->session)) return kNotAuthorized;
      d.locked = l->l_state == OPAL_LK;
      return 0;
    }
    case IOC_OPAL_SAVE: {
      auto* l = static_cast<opal_lock_unlock*>(arg);
      d.saved.push_back(key_of(l->session.opal_key));  // the kernel stores it unchecked
      return 0;
    }
    case IOC_OPAL_SECURE_ERASE_LR: {
      auto* s = static_cast<opal_session_info*>(arg);
      if (!admin1_ok(*s)) return kNotAuthorized;
      ++d.media_key;
      return 0;
    }
    case IOC_OPAL_REVERT_TPR:
    case IOC_OPAL_PSID_REVERT_TPR: {
      const std::string k = key_of(*static_cast<opal_key*>(arg));
      if (k != (request == IOC_OPAL_REVERT_TPR ? sid_pin : d.psid)) return kNotAuthorized;
      d.sid.clear();
      d.lsp_active = false;
      d.admin1.clear();
      d.lock_enabled = d.locked = false;
      ++d.media_key;
      d.saved.clear();
      return 0;
    }
    default:
      return -ENOTTY;
  }
}

int FakeSedIoctl::exclusive_check(const std::string& device) {
  auto it = drives.find(device);
  if (it == drives.end()) return -ENOENT;
  return it->second.in_use ? -EBUSY : 0;
}

std::size_t FakeSedIoctl::count(const std::string& device, unsigned nr) const {
  std::size_t n = 0;
  for (const auto& [dev, c] : calls) n += (dev == device && c == nr);
  return n;
}

}  // namespace storcrypt::sed
