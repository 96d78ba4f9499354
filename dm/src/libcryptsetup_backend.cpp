// The real CryptBackend: libcryptsetup 2.6 (LUKS2). Library messages are
// captured through a log callback and folded into errors; nothing is printed.
#include <fcntl.h>
#include <libcryptsetup.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "storcrypt/common/fd.h"
#include "device_read.h"
#include "storcrypt/dm/crypt_backend.h"

namespace storcrypt::dm {
namespace {

struct Log {
  std::string last_error;
};

void log_cb(int level, const char* msg, void* usr) {
  if (level != CRYPT_LOG_ERROR || !msg || !usr) return;
  auto* l = static_cast<Log*>(usr);
  std::string m(msg);
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  l->last_error = m;
}

class Handle {
 public:
  Handle() = default;
  ~Handle() {
    if (cd_) crypt_free(cd_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  crypt_device* get() const { return cd_; }
  crypt_device** out() { return &cd_; }
  Log log;
  void attach_log() {
    if (cd_) crypt_set_log_callback(cd_, log_cb, &log);
  }

 private:
  crypt_device* cd_ = nullptr;
};

Error crypt_error(int rc, const std::string& what, const Log& log) {
  int e = rc < 0 ? -rc : rc;
  std::string msg = what + ": " + std::strerror(e);
  if (!log.last_error.empty()) msg += " (libcryptsetup: " + log.last_error + ")";
  ErrorCode code = ErrorCode::kKernel;
  std::string fix;
  switch (e) {
    case EPERM:
      code = ErrorCode::kPermission;
      fix = "the key does not open this keyslot; check the key media hold this volume's current key";
      break;
    case ENOENT:
    case ENODEV:
      code = ErrorCode::kNotFound;
      break;
    case EBUSY:
    case EEXIST:
      code = ErrorCode::kConflict;
      break;
    case EINVAL:
      code = ErrorCode::kInvalidInput;
      break;
    case ENOTSUP:
      code = ErrorCode::kUnsupported;
      break;
    case EACCES:
      code = ErrorCode::kPermission;
      fix = "run as root";
      break;
    default:
      break;
  }
  return Error(code, std::move(msg), std::move(fix)).with_errno(e);
}

// crypt_init + crypt_load(LUKS2) on `dev`.
Status load(Handle& h, const std::string& dev) {
  int rc = crypt_init(h.out(), dev.c_str());
  if (rc < 0) return crypt_error(rc, "opening device " + dev, h.log);
  h.attach_log();
  rc = crypt_load(h.get(), CRYPT_LUKS2, nullptr);
  if (rc < 0) return crypt_error(rc, "loading the LUKS2 header of " + dev, h.log);
  return ok_status();
}

Status set_min_pbkdf(Handle& h, std::uint32_t iterations) {
  crypt_pbkdf_type pbkdf{};
  pbkdf.type = CRYPT_KDF_PBKDF2;
  pbkdf.hash = "sha256";
  pbkdf.iterations = iterations;
  pbkdf.flags = CRYPT_PBKDF_NO_BENCHMARK;
  int rc = crypt_set_pbkdf_type(h.get(), &pbkdf);
  if (rc < 0) return crypt_error(rc, "setting pbkdf2 with " + std::to_string(iterations) + " iterations", h.log);
  return ok_status();
}

std::uint32_t to_flags(const ActivationFlags& f) {
  std::uint32_t out = 0;
  if (f.no_read_workqueue) out |= CRYPT_ACTIVATE_NO_READ_WORKQUEUE;
  if (f.no_write_workqueue) out |= CRYPT_ACTIVATE_NO_WRITE_WORKQUEUE;
  return out;
}

const char* chr(const SecretBytes& s) { return reinterpret_cast<const char*>(s.data()); }

class LibcryptsetupBackend final : public CryptBackend {
 public:
  // Libraries never print: library-wide messages are dropped, per-call ones folded into errors.
  LibcryptsetupBackend() { crypt_set_log_callback(nullptr, log_cb, nullptr); }

  Result<bool> is_luks(const std::string& dev) override {
    // libcryptsetup reports an unreadable header like a missing one (-EINVAL):
    // read the primary header area ourselves first so a read error is an error.
    STORCRYPT_TRY(detail::read_device_head(dev, 4096, "read its LUKS2 header", "the LUKS2 header area",
                                           "the device does not read back; check it (dmesg) before any volume "
                                           "operation"));
    Handle h;
    int rc = crypt_init(h.out(), dev.c_str());
    if (rc < 0) return crypt_error(rc, "opening device " + dev, h.log);
    h.attach_log();
    rc = crypt_load(h.get(), CRYPT_LUKS2, nullptr);
    if (rc == 0) return true;
    // -EINVAL: no (valid) LUKS2 header. Anything else (-EIO, -ENOMEM, ...)
    // means the header could not be read: that is an error, not "not LUKS".
    if (rc == -EINVAL) return false;
    return crypt_error(rc, "reading the LUKS2 header of " + dev, h.log)
        .with_fix("the device does not read back; check it (dmesg) before any volume operation");
  }

  Result<HeaderInfo> inspect(const std::string& dev) override {
    Handle h;
    STORCRYPT_TRY(load(h, dev));
    HeaderInfo hi;
    const char* s = crypt_get_uuid(h.get());
    hi.uuid = s ? s : "";
    s = crypt_get_cipher(h.get());
    hi.cipher = s ? s : "";
    s = crypt_get_cipher_mode(h.get());
    hi.cipher_mode = s ? s : "";
    int vks = crypt_get_volume_key_size(h.get());
    hi.volume_key_bytes = vks > 0 ? static_cast<std::size_t>(vks) : 0;
    int ss = crypt_get_sector_size(h.get());
    hi.sector_size = ss > 0 ? static_cast<std::uint32_t>(ss) : 0;
    hi.data_offset_bytes = crypt_get_data_offset(h.get()) * 512;
    int max = crypt_keyslot_max(CRYPT_LUKS2);
    for (int i = 0; i < max; ++i) {
      auto st = crypt_keyslot_status(h.get(), i);
      if (st == CRYPT_SLOT_ACTIVE || st == CRYPT_SLOT_ACTIVE_LAST || st == CRYPT_SLOT_UNBOUND)
        hi.active_keyslots.push_back(i);
    }
    int tmax = crypt_token_max(CRYPT_LUKS2);
    for (int i = 0; i < tmax; ++i) {
      const char* type = nullptr;
      auto ts = crypt_token_status(h.get(), i, &type);
      if (ts == CRYPT_TOKEN_INVALID || ts == CRYPT_TOKEN_INACTIVE) continue;
      const char* json = nullptr;
      if (crypt_token_json_get(h.get(), i, &json) >= 0 && json) hi.tokens[i] = json;
    }
    return hi;
  }

  Status format(const std::string& dev, const FormatParams& p, int keyslot, const SecretBytes& ak) override {
    Handle h;
    int rc = crypt_init(h.out(), dev.c_str());
    if (rc < 0) return crypt_error(rc, "opening device " + dev, h.log);
    h.attach_log();
    STORCRYPT_TRY(set_min_pbkdf(h, p.pbkdf_iterations));
    crypt_pbkdf_type pbkdf{};
    pbkdf.type = CRYPT_KDF_PBKDF2;
    pbkdf.hash = "sha256";
    pbkdf.iterations = p.pbkdf_iterations;
    pbkdf.flags = CRYPT_PBKDF_NO_BENCHMARK;
    crypt_params_luks2 params{};
    params.pbkdf = &pbkdf;
    params.sector_size = p.sector_size;
    params.label = p.label.empty() ? nullptr : p.label.c_str();
    rc = crypt_format(h.get(), CRYPT_LUKS2, p.cipher.c_str(), p.cipher_mode.c_str(),
                      p.uuid.empty() ? nullptr : p.uuid.c_str(), nullptr,
                      p.volume_key_bytes, &params);
    if (rc < 0) return crypt_error(rc, "formatting " + dev + " as LUKS2", h.log);
    rc = crypt_keyslot_add_by_volume_key(h.get(), keyslot, nullptr, 0, chr(ak), ak.size());
    if (rc < 0) return crypt_error(rc, "adding keyslot " + std::to_string(keyslot) + " on " + dev, h.log);
    return ok_status();
  }

  Status add_keyslot(const std::string& dev, int new_slot, const SecretBytes& existing_ak, const SecretBytes& new_ak,
                     std::uint32_t pbkdf_iterations) override {
    Handle h;
    STORCRYPT_TRY(load(h, dev));
    auto st = crypt_keyslot_status(h.get(), new_slot);
    if (st != CRYPT_SLOT_INACTIVE)
      return Error(ErrorCode::kConflict, "keyslot " + std::to_string(new_slot) + " on " + dev + " is not free",
                   "keyslots are never overwritten in place; pick a free slot");
    STORCRYPT_TRY(set_min_pbkdf(h, pbkdf_iterations));
    int rc = crypt_keyslot_add_by_passphrase(h.get(), new_slot, chr(existing_ak), existing_ak.size(), chr(new_ak),
                                             new_ak.size());
    if (rc < 0) return crypt_error(rc, "adding keyslot " + std::to_string(new_slot) + " on " + dev, h.log);
    return ok_status();
  }

  Status destroy_keyslot(const std::string& dev, int slot) override {
    Handle h;
    STORCRYPT_TRY(load(h, dev));
    int rc = crypt_keyslot_destroy(h.get(), slot);
    if (rc < 0) return crypt_error(rc, "destroying keyslot " + std::to_string(slot) + " on " + dev, h.log);
    return ok_status();
  }

  Result<int> set_token(const std::string& dev, int token, const std::string& json) override {
    Handle h;
    STORCRYPT_TRY(load(h, dev));
    int rc = crypt_token_json_set(h.get(), token < 0 ? CRYPT_ANY_TOKEN : token, json.c_str());
    if (rc < 0) return crypt_error(rc, "writing the storcrypt token on " + dev, h.log);
    return rc;
  }

  Status remove_token(const std::string& dev, int token) override {
    Handle h;
    STORCRYPT_TRY(load(h, dev));
    int rc = crypt_token_json_set(h.get(), token, nullptr);
    if (rc < 0) return crypt_error(rc, "removing token " + std::to_string(token) + " on " + dev, h.log);
    return ok_status();
  }

  Status verify_key(const std::string& dev, int slot, const SecretBytes& ak) override {
    Handle h;
    STORCRYPT_TRY(load(h, dev));
    int rc = crypt_activate_by_passphrase(h.get(), nullptr, slot, chr(ak), ak.size(), 0);
    if (rc < 0) return crypt_error(rc, "checking the key of keyslot " + std::to_string(slot) + " on " + dev, h.log);
    return ok_status();
  }

  Status activate(const std::string& dev, const std::string& name, int slot, const SecretBytes& ak,
                  const ActivationFlags& flags) override {
    Handle h;
    STORCRYPT_TRY(load(h, dev));
    int rc = crypt_activate_by_passphrase(h.get(), name.c_str(), slot, chr(ak), ak.size(), to_flags(flags));
    if (rc < 0)
      return crypt_error(rc, "opening " + dev + " as /dev/mapper/" + name + " with keyslot " + std::to_string(slot),
                         h.log);
    return ok_status();
  }

  Status deactivate(const std::string& name) override {
    Handle h;
    int rc = crypt_init_by_name(h.out(), name.c_str());
    if (rc < 0) return crypt_error(rc, "finding mapping " + name, h.log);
    h.attach_log();
    rc = crypt_deactivate(h.get(), name.c_str());
    if (rc < 0) {
      auto e = crypt_error(rc, "closing /dev/mapper/" + name, h.log);
      if (rc == -EBUSY) e.with_fix("unmount the filesystem or stop the process using it, then close again");
      return e;
    }
    return ok_status();
  }

  Result<std::optional<ActiveInfo>> active(const std::string& name) override {
    auto st = crypt_status(nullptr, name.c_str());
    if (st != CRYPT_ACTIVE && st != CRYPT_BUSY) return std::optional<ActiveInfo>();
    Handle h;
    int rc = crypt_init_by_name(h.out(), name.c_str());
    if (rc < 0) return crypt_error(rc, "inspecting mapping " + name, h.log);
    h.attach_log();
    ActiveInfo ai;
    ai.name = name;
    const char* s = crypt_get_device_name(h.get());
    ai.device = s ? s : "";
    const char* c = crypt_get_cipher(h.get());
    const char* m = crypt_get_cipher_mode(h.get());
    ai.cipher = std::string(c ? c : "") + "-" + (m ? m : "");
    s = crypt_get_uuid(h.get());
    ai.uuid = s ? s : "";
    crypt_active_device cad{};
    if (crypt_get_active_device(h.get(), name.c_str(), &cad) == 0) {
      ai.flags.no_read_workqueue = cad.flags & CRYPT_ACTIVATE_NO_READ_WORKQUEUE;
      ai.flags.no_write_workqueue = cad.flags & CRYPT_ACTIVATE_NO_WRITE_WORKQUEUE;
    }
    return std::optional<ActiveInfo>(std::move(ai));
  }

  Status wipe_area(const std::string& dev, std::uint64_t length) override {
    UniqueFd fd(::open(dev.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) return errno_error(errno, "opening " + dev + " to wipe its LUKS2 header");
    std::string zeros(1 << 20, '\0');
    std::uint64_t off = 0;
    while (off < length) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), length - off));
      ssize_t w = ::pwrite(fd.get(), zeros.data(), n, static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno_error(errno, "zeroing the header area of " + dev);
      }
      if (w == 0) break;  // end of device
      off += static_cast<std::uint64_t>(w);
    }
    if (::fsync(fd.get()) != 0) return errno_error(errno, "syncing " + dev);
    return ok_status();
  }

  Status header_backup(const std::string& dev, const std::string& file) override {
    Handle h;
    STORCRYPT_TRY(load(h, dev));
    mode_t old = ::umask(077);
    int rc = crypt_header_backup(h.get(), CRYPT_LUKS2, file.c_str());
    ::umask(old);
    if (rc < 0) return crypt_error(rc, "backing up the LUKS2 header of " + dev + " to " + file, h.log);
    ::chmod(file.c_str(), 0600);
    return ok_status();
  }
};

}  // namespace

std::unique_ptr<CryptBackend> make_libcryptsetup_backend() { return std::make_unique<LibcryptsetupBackend>(); }

}  // namespace storcrypt::dm
