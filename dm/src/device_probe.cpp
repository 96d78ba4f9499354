// The real DeviceProbe: libblkid for signatures, /proc and /sys for users.
#include "storcrypt/dm/device_probe.h"

#include <blkid/blkid.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "storcrypt/common/fd.h"
#include "device_read.h"

namespace storcrypt::dm {
namespace fs = std::filesystem;

std::string describe(const DeviceSignature& s) {
  if (s.usage == "partition table") return s.type + " partition table";
  if (s.usage == "filesystem") return s.type + " filesystem";
  if (s.type == "crypto_LUKS" && !s.version.empty()) return s.type + " version " + s.version;
  return s.type;
}

std::string describe(const std::vector<DeviceSignature>& s) {
  std::string out;
  for (const auto& x : s) out += (out.empty() ? "" : ", ") + describe(x);
  return out;
}

namespace {

std::string first_line(const fs::path& p) {
  std::ifstream f(p);
  std::string s;
  std::getline(f, s);
  return s;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mount_path(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto oct = [&](std::size_t k) { return s[k] >= '0' && s[k] <= '7'; };
    if (s[i] == '\\' && i + 3 < s.size() && oct(i + 1) && oct(i + 2) && oct(i + 3)) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

class BlkidProbe {
 public:
  explicit BlkidProbe(blkid_probe p) : p_(p) {}
  ~BlkidProbe() {
    if (p_) blkid_free_probe(p_);
  }
  BlkidProbe(const BlkidProbe&) = delete;
  BlkidProbe& operator=(const BlkidProbe&) = delete;
  blkid_probe get() const { return p_; }
  std::string value(const char* name) const {
    const char* v = nullptr;
    std::size_t len = 0;
    if (blkid_probe_lookup_value(p_, name, &v, &len) != 0 || !v) return {};
    return std::string(v);  // NUL-terminated; len counts the NUL
  }

 private:
  blkid_probe p_;
};

class SystemProbe final : public DeviceProbe {
 public:
  Result<std::vector<DeviceSignature>> signatures(const std::string& dev) override {
    // Read the first 64 KiB ourselves: a device whose header cannot be read
    // is an error with its errno, never "no signature".
    STORCRYPT_TRY(detail::read_device_head(dev, std::size_t{64} * 1024, "look for signatures", "the first 64 KiB",
                                           "the device does not read back; check it (dmesg) before putting a "
                                           "volume on it"));
    errno = 0;
    BlkidProbe pr(blkid_new_probe_from_filename(dev.c_str()));
    if (!pr.get()) return errno_error(errno ? errno : EIO, "libblkid: opening " + dev);
    blkid_probe_enable_superblocks(pr.get(), 1);
    blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE | BLKID_SUBLKS_VERSION |
                                                    BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM);
    blkid_probe_enable_partitions(pr.get(), 1);
    blkid_probe_set_partitions_flags(pr.get(), BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);
    std::vector<DeviceSignature> out;
    for (int i = 0; i < 64; ++i) {
      errno = 0;
      int rc = blkid_do_probe(pr.get());
      if (rc == 1) return out;
      if (rc < 0)
        return errno_error(errno ? errno : EIO, "libblkid: reading signatures of " + dev).context("probing " + dev);
      DeviceSignature s;
      if (std::string t = pr.value("TYPE"); !t.empty()) {
        s.type = t;
        s.usage = pr.value("USAGE");
        s.version = pr.value("VERSION");
        s.offset = std::strtoull(pr.value("SBMAGIC_OFFSET").c_str(), nullptr, 10);
      } else if (std::string pt = pr.value("PTTYPE"); !pt.empty()) {
        s.type = pt;
        s.usage = "partition table";
        s.offset = std::strtoull(pr.value("PTMAGIC_OFFSET").c_str(), nullptr, 10);
      } else {
        continue;
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  Result<std::vector<std::string>> users(const std::string& dev) override {
    struct stat st {};
    if (::stat(dev.c_str(), &st) != 0) return errno_error(errno, "examining " + dev);
    std::vector<std::string> out;
    if (!S_ISBLK(st.st_mode)) return out;  // an image file: no kernel users to find
    auto mm = [](dev_t d) { return std::to_string(major(d)) + ":" + std::to_string(minor(d)); };
    // The device and its partitions: "M:m" -> label used in messages.
    std::vector<std::pair<std::string, std::string>> devs{{mm(st.st_rdev), ""}};
    fs::path sys = fs::path("/sys/dev/block") / mm(st.st_rdev);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(sys, ec)) {
      if (!fs::exists(e.path() / "partition")) continue;
      std::string d = first_line(e.path() / "dev");
      if (!d.empty()) devs.push_back({d, e.path().filename().string()});
    }
    auto where = [](const std::string& part) { return part.empty() ? std::string() : " (partition " + part + ")"; };

    std::ifstream mi("/proc/self/mountinfo");
    if (!mi) return errno_error(errno ? errno : ENOENT, "reading /proc/self/mountinfo");
    std::string line;
    while (std::getline(mi, line)) {
      std::istringstream ls(line);
      std::string id, parent, majmin, root, mountpoint;
      if (!(ls >> id >> parent >> majmin >> root >> mountpoint)) continue;
      for (const auto& [d, part] : devs)
        if (d == majmin) out.push_back("mounted at " + unescape_mount_path(mountpoint) + where(part));
    }
    for (const auto& [d, part] : devs) {
      for (const auto& h : fs::directory_iterator(fs::path("/sys/dev/block") / d / "holders", ec)) {
        std::string name = h.path().filename().string();
        std::string dm = first_line(h.path() / "dm" / "name");
        out.push_back("held by " + name + (dm.empty() ? "" : " (/dev/mapper/" + dm + ")") + where(part));
      }
    }
    UniqueFd fd(::open(dev.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
    if (!fd.valid()) {
      int e = errno;
      if (e != EBUSY) return errno_error(e, "opening " + dev + " exclusively");
      if (out.empty()) out.push_back("opened exclusively by another process (open O_EXCL: busy)");
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<DeviceProbe> make_system_probe() { return std::make_unique<SystemProbe>(); }

}  // namespace storcrypt::dm
