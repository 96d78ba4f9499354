#include "storcrypt/kmodule/probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "storcrypt/common/text.h"

namespace storcrypt::kmodule {
namespace {

Feature mod(std::string name, std::string desc, std::string module, std::vector<std::string> config,
            bool required = true) {
  Feature f;
  f.name = std::move(name);
  f.kind = FeatureKind::kModule;
  f.description = std::move(desc);
  f.module = std::move(module);
  f.config = std::move(config);
  f.required = required;
  return f;
}

Feature alg(std::string name, std::string type, std::string desc, bool required = true) {
  Feature f;
  f.name = std::move(name);
  f.kind = FeatureKind::kAlgorithm;
  f.alg_type = std::move(type);
  f.description = std::move(desc);
  f.required = required;
  return f;
}

/// Config symbol of one crypto API component (algorithm or template).
std::string component_config(const std::string& c) {
  static const std::map<std::string, std::string> m = {
      {"rfc4106", "CONFIG_CRYPTO_GCM"},     {"gcm", "CONFIG_CRYPTO_GCM"},
      {"aes", "CONFIG_CRYPTO_AES"},         {"cbc", "CONFIG_CRYPTO_CBC"},
      {"hmac", "CONFIG_CRYPTO_HMAC"},       {"sha1", "CONFIG_CRYPTO_SHA1"},
      {"sha256", "CONFIG_CRYPTO_SHA256"},   {"sha384", "CONFIG_CRYPTO_SHA512"},
      {"sha512", "CONFIG_CRYPTO_SHA512"},   {"xts", "CONFIG_CRYPTO_XTS"},
      {"authenc", "CONFIG_CRYPTO_AUTHENC"}, {"authencesn", "CONFIG_CRYPTO_AUTHENC"},
      {"ecb", "CONFIG_CRYPTO_ECB"},         {"ctr", "CONFIG_CRYPTO_CTR"},
      {"ghash", "CONFIG_CRYPTO_GHASH"},     {"cipher_null", "CONFIG_CRYPTO_NULL"},
  };
  auto it = m.find(c);
  return it == m.end() ? std::string() : it->second;
}

/// "authenc(hmac(sha256),cbc(aes))" -> {"authenc", "hmac", "sha256", "cbc", "aes"}.
std::vector<std::string> components(const std::string& name) { return split_tokens(name, "(),"); }

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

std::string config_value(const std::optional<std::map<std::string, std::string>>& cfg, const std::string& sym) {
  if (!cfg) return "?";
  auto it = cfg->find(sym);
  return it == cfg->end() ? "n" : it->second;
}

class Prober {
 public:
  Prober(SystemView& sys, const ProbeOptions& o) : sys_(sys), opts_(o) {
    release_ = sys.kernel_release();
    cfg_ = sys.kernel_config();
    auto regs = sys.registered_algorithms();
    registered_.insert(regs.begin(), regs.end());
  }

  const std::string& release() const { return release_; }
  bool config_available() const { return cfg_.has_value(); }

  FeatureCheck check(const Feature& f) {
    FeatureCheck c;
    c.feature = f;
    if (f.kind == FeatureKind::kModule)
      check_module(c);
    else
      check_algorithm(c);
    return c;
  }

 private:
  void check_module(FeatureCheck& c) {
    const Feature& f = c.feature;
    const std::string sym = f.config.empty() ? std::string() : f.config.front();
    std::string resolved;
    auto st = sys_.module_state(f.module, &resolved);
    if (resolved.empty()) resolved = f.module;
    switch (st) {
      case SystemView::ModuleState::kBuiltin:
        c.state = CheckState::kPresent;
        c.how = "built in";
        return;
      case SystemView::ModuleState::kLive:
        c.state = CheckState::kPresent;
        c.how = fmt::format("module {} loaded", resolved);
        return;
      case SystemView::ModuleState::kAvailable:
        if (!opts_.load) {
          c.state = CheckState::kLoadable;
          c.how = fmt::format("module {} installed, not loaded (the kernel loads it on demand)", resolved);
          return;
        }
        if (auto s = sys_.load_module(resolved); s.ok()) {
          c.state = CheckState::kPresent;
          c.how = fmt::format("module {} loaded now", resolved);
        } else {
          c.state = CheckState::kMissing;
          c.problem = fmt::format("module {} is installed but could not be loaded: {}", resolved, s.error().message());
          c.fix = fmt::format("run as root `modprobe {}` and check `dmesg`", resolved);
        }
        return;
      case SystemView::ModuleState::kAbsent:
        break;
    }
    // No module: a functional probe or the kernel config decides.
    if ((f.name == "xfrm_user" && sys_.xfrm_netlink_available()) ||
        (f.name == "dm-mod" && sys_.device_mapper_available())) {
      c.state = CheckState::kPresent;
      c.how = f.name == "xfrm_user" ? "built in (NETLINK_XFRM socket opens)" : "built in (/dev/mapper/control)";
      return;
    }
    const std::string v = config_value(cfg_, sym);
    if (v == "y") {
      c.state = CheckState::kPresent;
      c.how = fmt::format("built in ({}=y)", sym);
    } else if (v == "m") {
      c.state = CheckState::kMissing;
      c.problem = fmt::format("{}=m but module {} is not installed for kernel {}", sym, f.module, release_);
      c.fix =
          fmt::format("install the modules of kernel {} (the linux-image package) or rebuild with {}=y", release_, sym);
    } else if (v == "n") {
      c.state = CheckState::kMissing;
      c.problem = fmt::format("kernel has no {} support ({})", f.description, sym);
      c.fix = fmt::format("boot a kernel built with {}=y or =m (Debian's linux-image-amd64 has it)", sym);
    } else {
      c.state = CheckState::kUnknown;
      c.problem = fmt::format(
          "module {} not found and the kernel config is unreadable: cannot tell whether {} ({}) is "
          "built in",
          f.module, f.description, sym);
      c.fix = fmt::format("enable CONFIG_IKCONFIG_PROC or install /boot/config-{}", release_);
    }
  }

  // Is one component (template or algorithm) obtainable without instantiating?
  bool component_available(const std::string& comp, std::string* how) {
    if (registered_.count(comp)) {
      *how = comp + " registered";
      return true;
    }
    std::string resolved;
    auto st = sys_.module_state("crypto-" + comp, &resolved);
    if (st == SystemView::ModuleState::kBuiltin || st == SystemView::ModuleState::kLive) {
      *how = fmt::format("{} in {}", comp, resolved.empty() ? "the kernel" : "module " + resolved);
      return true;
    }
    if (st == SystemView::ModuleState::kAvailable) {
      *how = fmt::format("{} from module {}", comp, resolved);
      return true;
    }
    std::string sym = component_config(comp);
    if (!sym.empty() && config_value(cfg_, sym) == "y") {
      *how = fmt::format("{} built in ({}=y)", comp, sym);
      return true;
    }
    return false;
  }

  void check_algorithm(FeatureCheck& c) {
    const Feature& f = c.feature;
    if (registered_.count(f.name)) {
      c.state = CheckState::kPresent;
      c.how = "registered in /proc/crypto";
      return;
    }
    const auto comps = components(f.name);
    std::set<std::string> syms;
    for (const auto& comp : comps)
      if (auto s = component_config(comp); !s.empty()) syms.insert(s);
    if (opts_.instantiate) {
      int err = sys_.alg_bind(f.alg_type, f.name);
      if (err == 0) {
        c.state = CheckState::kPresent;
        c.how = fmt::format("instantiated through AF_ALG ({})", f.alg_type);
        return;
      }
      if (err == ENOENT) {
        // The crypto API already tried to load crypto-* modules for us.
        std::vector<std::string> off;
        for (const auto& s : syms)
          if (config_value(cfg_, s) == "n") off.push_back(s);
        c.state = CheckState::kMissing;
        if (!off.empty()) {
          c.problem = fmt::format("kernel has no {} ({} not set)", f.name, join(off));
          c.fix = fmt::format("boot a kernel built with {} (=y or =m)", join(off));
        } else {
          c.problem = fmt::format("kernel cannot instantiate {} (needs {}; modules missing?)", f.name,
                                  join(std::vector<std::string>(syms.begin(), syms.end())));
          c.fix = fmt::format("install the modules of kernel {} or load them: modprobe crypto-{}", release_,
                              comps.empty() ? f.name : comps.front());
        }
        return;
      }
      // AF_ALG unavailable (no CONFIG_CRYPTO_USER_API_*) or refused: report by module/config.
    }
    std::vector<std::string> hows, missing;
    for (const auto& comp : comps) {
      std::string how;
      if (component_available(comp, &how))
        hows.push_back(how);
      else
        missing.push_back(comp);
    }
    if (missing.empty()) {
      c.state = CheckState::kLoadable;
      c.how = fmt::format("not instantiated yet; available: {}", join(hows));
      return;
    }
    std::vector<std::string> msyms;
    for (const auto& m : missing)
      if (auto s = component_config(m); !s.empty() && std::find(msyms.begin(), msyms.end(), s) == msyms.end())
        msyms.push_back(s);
    if (!cfg_) {
      c.state = CheckState::kUnknown;
      c.problem = fmt::format("cannot tell whether the kernel provides {} (no module for {}, kernel config unreadable)",
                              f.name, join(missing));
      c.fix = fmt::format("enable CONFIG_IKCONFIG_PROC or CONFIG_CRYPTO_USER_API_{} so the probe can check",
                          f.alg_type == "aead"   ? "AEAD"
                          : f.alg_type == "hash" ? "HASH"
                                                 : "SKCIPHER");
      return;
    }
    c.state = CheckState::kMissing;
    c.problem = fmt::format("kernel has no {} (missing {}{})", f.name, join(missing),
                            msyms.empty() ? "" : ": " + join(msyms) + " not set");
    c.fix = msyms.empty() ? "use a kernel that provides it" : fmt::format("boot a kernel built with {}", join(msyms));
  }

  SystemView& sys_;
  ProbeOptions opts_;
  std::string release_;
  std::optional<std::map<std::string, std::string>> cfg_;
  std::set<std::string> registered_;
};

}  // namespace

std::vector<Feature> ipsec_features() {
  return {
      mod("xfrm_user", "XFRM netlink configuration", "xfrm_user", {"CONFIG_XFRM_USER"}),
      mod("esp4", "ESP", "esp4", {"CONFIG_INET_ESP"}),
      mod("esp6", "IPv6 ESP", "esp6", {"CONFIG_INET6_ESP"}),
      mod("ah4", "AH", "ah4", {"CONFIG_INET_AH"}, false),
      mod("ah6", "IPv6 AH", "ah6", {"CONFIG_INET6_AH"}, false),
      alg("rfc4106(gcm(aes))", "aead", "AES-GCM for ESP (RFC 4106)"),
      alg("cbc(aes)", "skcipher", "AES-CBC"),
      alg("authenc(hmac(sha256),cbc(aes))", "aead", "AES-CBC with HMAC for ESP"),
      alg("hmac(sha1)", "hash", "HMAC-SHA1-96", false),
      alg("hmac(sha256)", "hash", "HMAC-SHA256-128"),
      alg("hmac(sha384)", "hash", "HMAC-SHA384-192"),
      alg("hmac(sha512)", "hash", "HMAC-SHA512-256"),
      // ESP integrity only (Service = ESP-INTEGRITY) sends this NULL cipher; optional like AH.
      alg("ecb(cipher_null)", "skcipher", "NULL cipher for integrity-only ESP", false),
  };
}

std::vector<Feature> at_rest_features() {
  return {
      mod("dm-mod", "device-mapper", "dm_mod", {"CONFIG_BLK_DEV_DM"}),
      mod("dm-crypt", "dm-crypt", "dm_crypt", {"CONFIG_DM_CRYPT"}),
      alg("xts(aes)", "skcipher", "AES-XTS for dm-crypt"),
  };
}

std::string_view check_state_name(CheckState s) {
  switch (s) {
    case CheckState::kPresent:
      return "present";
    case CheckState::kLoadable:
      return "loadable";
    case CheckState::kMissing:
      return "missing";
    case CheckState::kUnknown:
      return "unknown";
  }
  return "?";
}

bool ProbeReport::ok() const { return missing().empty(); }

std::vector<const FeatureCheck*> ProbeReport::missing() const {
  std::vector<const FeatureCheck*> out;
  for (const auto& c : checks)
    if (c.feature.required && !c.usable()) out.push_back(&c);
  return out;
}

const FeatureCheck* ProbeReport::find(const std::string& name) const {
  for (const auto& c : checks)
    if (c.feature.name == name) return &c;
  return nullptr;
}

std::string ProbeReport::to_text() const {
  std::string out =
      fmt::format("kernel {} (modules {}, config {})\n", kernel_release,
                  modules_supported ? "supported" : "not supported", config_available ? "readable" : "unreadable");
  for (const auto& c : checks) {
    const char* tag = c.usable() ? "ok  " : (c.feature.required ? "FAIL" : "warn");
    if (c.usable())
      out += fmt::format("{} {}: {}\n", tag, c.feature.name, c.how);
    else
      out += fmt::format("{} {}: {} (fix: {})\n", tag, c.feature.name, c.problem, c.fix);
  }
  return out;
}

ProbeReport probe(SystemView& sys, const std::vector<Feature>& features, const ProbeOptions& opts) {
  Prober p(sys, opts);
  ProbeReport r;
  r.kernel_release = p.release();
  r.config_available = p.config_available();
  r.modules_supported = sys.modules_supported();
  for (const auto& f : features) r.checks.push_back(p.check(f));
  return r;
}

ProbeReport probe_all(const ProbeOptions& opts) {
  auto sys = real_system();
  auto fs = ipsec_features();
  auto rest = at_rest_features();
  fs.insert(fs.end(), rest.begin(), rest.end());
  return probe(*sys, fs, opts);
}

std::map<std::string, std::string> parse_kernel_config(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CONFIG_", 0) == 0) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string v = line.substr(eq + 1);
      out[line.substr(0, eq)] = v;
    } else if (line.rfind("# CONFIG_", 0) == 0 && line.size() > 13 &&
               line.compare(line.size() - 11, 11, " is not set") == 0) {
      out[line.substr(2, line.size() - 13)] = "n";
    }
  }
  return out;
}

}  // namespace storcrypt::kmodule
