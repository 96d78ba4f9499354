// The real SystemView: uname, /proc/config.gz (zlib), libkmod, /proc/crypto, AF_ALG.
#include <errno.h>
#include <fcntl.h>
#include <libkmod.h>
#include <linux/if_alg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "storcrypt/common/fd.h"
#include "storcrypt/kmodule/probe.h"

#ifndef AF_ALG
#define AF_ALG 38
#endif

namespace storcrypt::kmodule {
namespace {

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::optional<std::string> read_gz(const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) return std::nullopt;
  std::string out;
  char buf[65536];
  int n;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  bool ok = n == 0;
  gzclose(gz);
  if (!ok) return std::nullopt;
  return out;
}

struct KmodListFree {
  void operator()(kmod_list* l) const {
    if (l) kmod_module_unref_list(l);
  }
};

class RealSystem : public SystemView {
 public:
  RealSystem() {
    ctx_ = kmod_new(nullptr, nullptr);
    if (ctx_) kmod_load_resources(ctx_);
  }
  ~RealSystem() override {
    if (ctx_) kmod_unref(ctx_);
  }

  std::string kernel_release() override {
    utsname u{};
    uname(&u);
    return u.release;
  }

  std::optional<std::map<std::string, std::string>> kernel_config() override {
    if (auto t = read_gz("/proc/config.gz")) return parse_kernel_config(*t);
    if (auto t = read_text("/boot/config-" + kernel_release())) return parse_kernel_config(*t);
    return std::nullopt;
  }

  bool modules_supported() override { return access("/proc/modules", F_OK) == 0; }

  ModuleState module_state(const std::string& name, std::string* resolved) override {
    if (!ctx_) return ModuleState::kAbsent;
    kmod_list* raw = nullptr;
    if (kmod_module_new_from_lookup(ctx_, name.c_str(), &raw) < 0 || !raw) return ModuleState::kAbsent;
    std::unique_ptr<kmod_list, KmodListFree> list(raw);
    ModuleState best = ModuleState::kAbsent;
    kmod_list* it;
    kmod_list_foreach(it, list.get()) {
      kmod_module* m = kmod_module_get_module(it);
      const char* mname = kmod_module_get_name(m);
      int st = kmod_module_get_initstate(m);
      ModuleState s = ModuleState::kAbsent;
      if (st == KMOD_MODULE_BUILTIN)
        s = ModuleState::kBuiltin;
      else if (st == KMOD_MODULE_LIVE || st == KMOD_MODULE_COMING)
        s = ModuleState::kLive;
      else if (kmod_module_get_path(m) != nullptr)
        s = ModuleState::kAvailable;
      if (s != ModuleState::kAbsent && (best == ModuleState::kAbsent || s < best)) {
        best = s;
        if (resolved) *resolved = mname ? mname : name;
      }
      kmod_module_unref(m);
    }
    return best;
  }

  Status load_module(const std::string& name) override {
    if (!ctx_) return Error(ErrorCode::kUnsupported, "libkmod could not initialise");
    kmod_list* raw = nullptr;
    int rc = kmod_module_new_from_lookup(ctx_, name.c_str(), &raw);
    if (rc < 0 || !raw) return Error(ErrorCode::kNotFound, "module " + name + " not found");
    std::unique_ptr<kmod_list, KmodListFree> list(raw);
    kmod_list* it;
    kmod_list_foreach(it, list.get()) {
      kmod_module* m = kmod_module_get_module(it);
      rc = kmod_module_probe_insert_module(m, KMOD_PROBE_APPLY_BLACKLIST, nullptr, nullptr, nullptr, nullptr);
      kmod_module_unref(m);
      if (rc == 0) return ok_status();
    }
    int e = rc < 0 ? -rc : EINVAL;
    return errno_error(e, "loading module " + name);
  }

  std::vector<std::string> registered_algorithms() override {
    std::vector<std::string> out;
    auto t = read_text("/proc/crypto");
    if (!t) return out;
    std::istringstream in(*t);
    std::string line;
    while (std::getline(in, line)) {
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string key = line.substr(0, line.find_first_of(" \t"));
      if (key != "name" && key != "driver") continue;
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      out.push_back(v);
    }
    return out;
  }

  int alg_bind(const std::string& type, const std::string& name) override {
    UniqueFd fd(socket(AF_ALG, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return errno;
    sockaddr_alg sa{};
    sa.salg_family = AF_ALG;
    std::strncpy(reinterpret_cast<char*>(sa.salg_type), type.c_str(), sizeof sa.salg_type - 1);
    std::strncpy(reinterpret_cast<char*>(sa.salg_name), name.c_str(), sizeof sa.salg_name - 1);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return errno;
    return 0;
  }

  bool xfrm_netlink_available() override {
    UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 6 /* NETLINK_XFRM */));
    return fd.valid() || errno != EPROTONOSUPPORT;
  }

  bool device_mapper_available() override {
    if (access("/dev/mapper/control", F_OK) == 0) return true;
    auto misc = read_text("/proc/misc");
    return misc && misc->find("device-mapper") != std::string::npos;
  }

 private:
  kmod_ctx* ctx_ = nullptr;
};

}  // namespace

std::unique_ptr<SystemView> real_system() { return std::make_unique<RealSystem>(); }

}  // namespace storcrypt::kmodule
