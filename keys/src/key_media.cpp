#include "storcrypt/keys/key_media.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <map>

#include "storcrypt/common/fd.h"
#include "storcrypt/common/files.h"

namespace storcrypt::keys {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPrefix = "storcrypt-";
constexpr std::string_view kSuffix = ".key";

// "storcrypt-<key id>.g<gen>.key" -> ref; false for other names.
bool parse_file_name(const std::string& name, KeyRef* ref) {
  if (name.size() <= kPrefix.size() + kSuffix.size() || name.compare(0, kPrefix.size(), kPrefix) != 0 ||
      name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
    return false;
  std::string mid = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  auto dot = mid.rfind(".g");
  if (dot == std::string::npos || dot == 0) return false;
  std::string_view g(mid.data() + dot + 2, mid.size() - dot - 2);
  std::uint64_t gen = 0;
  auto [p, ec] = std::from_chars(g.data(), g.data() + g.size(), gen);
  if (ec != std::errc() || p != g.data() + g.size() || gen == 0) return false;
  ref->key_id = mid.substr(0, dot);
  ref->generation = gen;
  return valid_identifier(ref->key_id);
}

std::string ref_text(const KeyRef& ref) {
  return "key '" + ref.key_id + "' generation " + std::to_string(ref.generation);
}

}  // namespace

std::string key_file_name(const KeyRef& ref) {
  return std::string(kPrefix) + ref.key_id + ".g" + std::to_string(ref.generation) + std::string(kSuffix);
}

Status shred_file(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return ok_status();
    return errno_error(errno, "opening " + path.string() + " to shred it");
  }
  struct stat sb {};
  if (::fstat(fd.get(), &sb) != 0) return errno_error(errno, "stat " + path.string());
  std::vector<std::uint8_t> zeros(static_cast<std::size_t>(std::max<off_t>(sb.st_size, 0)), 0);
  STORCRYPT_TRY(write_all(fd.get(), zeros, path));
  if (::fsync(fd.get()) != 0) return errno_error(errno, "fsync of " + path.string());
  fd.reset();
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error(errno, "removing " + path.string());
  return fsync_directory(path.parent_path());
}

Result<std::string> read_small_file(const fs::path& path, std::size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return errno_error(errno, "opening " + path.string());
  std::string out(max_bytes + 1, '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    ssize_t r = ::read(fd.get(), out.data() + got, out.size() - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      secure_wipe(out);
      return errno_error(errno, "reading " + path.string());
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

KeyMediaProvider::KeyMediaProvider(KeyMediaConfig cfg) : cfg_(std::move(cfg)) {}

Result<KeyMediaProvider> KeyMediaProvider::create(KeyMediaConfig cfg) {
  if (!valid_identifier(cfg.system_id))
    return Error(ErrorCode::kInvalidInput, "keymedia: system_id is empty or has characters outside [A-Za-z0-9._:-]",
                 "set system_id to 1..128 characters [A-Za-z0-9._:-]");
  if (!valid_identifier(cfg.provider_id))
    return Error(ErrorCode::kInvalidInput, "keymedia: provider_id is empty or invalid",
                 "set provider_id to 1..128 characters [A-Za-z0-9._:-]");
  if (cfg.media_dirs.empty())
    return Error(ErrorCode::kInvalidInput, "keymedia: media_dirs is empty",
                 "list the mount points of the key media in media_dirs");
  for (auto& d : cfg.media_dirs)
    if (!d.is_absolute())
      return Error(ErrorCode::kInvalidInput, "keymedia: media_dirs entry '" + d.string() + "' is not absolute",
                   "use absolute mount-point paths");
  if (cfg.desired_copies == 0) cfg.desired_copies = 1;
  return KeyMediaProvider(std::move(cfg));
}

std::vector<fs::path> KeyMediaProvider::present_media() const {
  std::vector<fs::path> out;
  for (const auto& d : cfg_.media_dirs) {
    std::error_code ec;
    if (fs::is_directory(d, ec)) out.push_back(d);
  }
  return out;
}

Result<ProviderReport> KeyMediaProvider::write_everywhere(const KeyRef& ref, const SecretBytes& ak) {
  auto media = present_media();
  if (media.empty())
    return Error(ErrorCode::kUnavailable,
                 "no key medium is present (configured: " + std::to_string(cfg_.media_dirs.size()) + " directories)",
                 "insert and mount at least one key medium", "xKeyMediaMissing");
  KeyFile kf{cfg_.system_id, ref.key_id, ref.generation, ak.clone()};
  STORCRYPT_ASSIGN_OR_RETURN(std::string text, encode_key_file(kf));
  ProviderReport rep;
  for (const auto& m : media) {
    auto st = write_file_atomic(m / key_file_name(ref), text);
    if (!st.ok()) {
      rep.warnings.push_back("medium " + m.string() + ": " + st.error().message());
      continue;
    }
    ++rep.copies_written;
    if (cfg_.after_medium_write && cfg_.after_medium_write(m)) {
      secure_wipe(text);
      return Error(ErrorCode::kInternal, "injected crash after writing " + m.string());
    }
  }
  secure_wipe(text);
  if (rep.copies_written == 0) {
    std::string why;
    for (auto& w : rep.warnings) why += "; " + w;
    return Error(ErrorCode::kUnavailable, "could not write " + ref_text(ref) + " to any key medium" + why,
                 "check that the key media are mounted read-write", "xKeyMediaWriteFailed");
  }
  if (rep.copies_written < cfg_.desired_copies)
    rep.warnings.push_back("only " + std::to_string(rep.copies_written) + " of " + std::to_string(cfg_.desired_copies) +
                           " desired copies of " + ref_text(ref) +
                           " written; insert more key media and run 'storcrypt keymedia init'");
  return rep;
}

Result<ProviderReport> KeyMediaProvider::store(const KeyRef& ref, const SecretBytes& ak) {
  if (!valid_identifier(ref.key_id) || ref.generation == 0)
    return Error(ErrorCode::kInvalidInput, "keymedia store: invalid key id or generation 0");
  return write_everywhere(ref, ak);
}

Result<FetchedKey> KeyMediaProvider::fetch(const KeyRef& ref) {
  if (!valid_identifier(ref.key_id) || ref.generation == 0)
    return Error(ErrorCode::kInvalidInput, "keymedia fetch: invalid key id or generation 0");
  FetchedKey out;
  std::vector<std::string> reasons;
  for (const auto& d : cfg_.media_dirs) {
    std::error_code ec;
    if (!fs::is_directory(d, ec)) {
      reasons.push_back(d.string() + ": medium not present");
      continue;
    }
    fs::path p = d / key_file_name(ref);
    if (!fs::exists(fs::symlink_status(p, ec))) {
      reasons.push_back(d.string() + ": no copy of this key");
      continue;
    }
    auto bytes = read_small_file(p, kMaxKeyFileBytes);
    if (!bytes.ok()) {
      std::string w = "medium " + d.string() + ": copy unreadable: " + bytes.error().message();
      out.warnings.push_back(w);
      reasons.push_back(w);
      continue;
    }
    KeyFileProblem prob = KeyFileProblem::kNone;
    auto kf = load_key_file({reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size()}, cfg_.system_id,
                            ref.key_id, ref.generation, &prob);
    secure_wipe(*bytes);
    if (!kf.ok()) {
      std::string w = "medium " + d.string() + ": copy " + std::string(key_file_problem_name(prob)) + " (" +
                      kf.error().message() + "), not used";
      out.warnings.push_back(w);
      reasons.push_back(w);
      continue;
    }
    ++out.valid_copies;
    if (out.ak.empty()) {
      out.ak = std::move(kf->ak);
    } else if (!out.ak.equals(kf->ak)) {
      out.warnings.push_back("medium " + d.string() + ": copy differs from the first valid copy, not used");
      --out.valid_copies;
    }
  }
  if (out.valid_copies == 0) {
    std::string why;
    for (auto& r : reasons) why += "; " + r;
    return Error(ErrorCode::kNotFound, "no valid copy of " + ref_text(ref) + " on any key medium" + why,
                 "insert a key medium that holds this key", "xKeyNotOnMedia");
  }
  return out;
}

Result<ProviderReport> KeyMediaProvider::rekey(const KeyRef& current, const KeyRef& next, const SecretBytes& new_ak) {
  if (next.key_id != current.key_id || next.generation <= current.generation)
    return Error(ErrorCode::kInvalidInput, "keymedia rekey: next must be the same key id with a higher generation");
  STORCRYPT_ASSIGN_OR_RETURN(FetchedKey cur, fetch(current));
  STORCRYPT_ASSIGN_OR_RETURN(ProviderReport rep, write_everywhere(next, new_ak));
  rep.warnings.insert(rep.warnings.begin(), cur.warnings.begin(), cur.warnings.end());
  return rep;
}

Result<ProviderReport> KeyMediaProvider::retire(const KeyRef& ref) {
  ProviderReport rep;
  for (const auto& m : present_media()) {
    fs::path p = m / key_file_name(ref);
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(p, ec))) continue;
    auto st = shred_file(p);
    if (!st.ok()) {
      rep.warnings.push_back("medium " + m.string() + ": " + st.error().message());
      continue;
    }
    ++rep.copies_removed;
  }
  if (!rep.warnings.empty() && rep.copies_removed == 0)
    return Error(ErrorCode::kUnavailable, "could not remove " + ref_text(ref) + ": " + rep.warnings.front(),
                 "check that the key media are mounted read-write");
  return rep;
}

Result<bool> KeyMediaProvider::holds(const std::string& key_id) {
  if (!valid_identifier(key_id)) return Error(ErrorCode::kInvalidInput, "keymedia: invalid key id");
  for (const auto& m : present_media()) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(m, ec)) {
      std::string name = e.path().filename().string();
      if (auto target = atomic_write_target(name)) name = *target;
      KeyRef r;
      if (parse_file_name(name, &r) && r.key_id == key_id) return true;
    }
    if (ec) return errno_error(ec.value(), "listing key medium " + m.string());
  }
  return false;
}

Result<ProviderReport> KeyMediaProvider::destroy_all(const std::string& key_id) {
  if (!valid_identifier(key_id)) return Error(ErrorCode::kInvalidInput, "keymedia destroy: invalid key id");
  ProviderReport rep;
  for (const auto& m : present_media()) {
    std::error_code ec;
    std::vector<fs::path> victims;
    for (const auto& e : fs::directory_iterator(m, ec)) {
      std::string name = e.path().filename().string();
      // Leftover temp files of interrupted writes hold key material too
      // (".<name>.tmp" is what versions before write_file_atomic() left).
      if (auto target = atomic_write_target(name))
        name = *target;
      else if (!name.empty() && name[0] == '.' && name.size() > 5 && name.compare(name.size() - 4, 4, ".tmp") == 0)
        name = name.substr(1, name.size() - 5);
      KeyRef r;
      if (parse_file_name(name, &r) && r.key_id == key_id) victims.push_back(e.path());
    }
    if (ec) rep.warnings.push_back("medium " + m.string() + ": listing failed: " + ec.message());
    for (const auto& v : victims) {
      auto st = shred_file(v);
      if (!st.ok()) {
        rep.warnings.push_back("medium " + m.string() + ": " + st.error().message());
        continue;
      }
      ++rep.copies_removed;
    }
  }
  if (rep.copies_removed == 0 && !rep.warnings.empty())
    return Error(ErrorCode::kUnavailable, "could not shred key '" + key_id + "': " + rep.warnings.front(),
                 "check that the key media are mounted read-write");
  return rep;
}

std::vector<MediumStatus> KeyMediaProvider::scan() const {
  std::vector<MediumStatus> out;
  for (const auto& d : cfg_.media_dirs) {
    MediumStatus ms;
    ms.dir = d;
    std::error_code ec;
    ms.present = fs::is_directory(d, ec);
    if (ms.present) {
      for (const auto& e : fs::directory_iterator(d, ec)) {
        KeyRef r;
        if (!parse_file_name(e.path().filename().string(), &r)) continue;
        KeyFileEntry ent{e.path(), r.key_id, r.generation, KeyFileProblem::kNone, {}};
        auto bytes = read_small_file(e.path(), kMaxKeyFileBytes);
        if (!bytes.ok()) {
          ent.problem = KeyFileProblem::kCorrupt;
          ent.detail = bytes.error().message();
        } else {
          auto kf = load_key_file({reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size()}, cfg_.system_id,
                                  r.key_id, r.generation, &ent.problem);
          secure_wipe(*bytes);
          if (!kf.ok()) ent.detail = kf.error().message();
        }
        ms.files.push_back(std::move(ent));
      }
      std::sort(ms.files.begin(), ms.files.end(),
                [](const KeyFileEntry& a, const KeyFileEntry& b) { return a.path < b.path; });
    }
    out.push_back(std::move(ms));
  }
  return out;
}

Result<ProviderReport> KeyMediaProvider::init_medium(const fs::path& dir) {
  if (std::find(cfg_.media_dirs.begin(), cfg_.media_dirs.end(), dir) == cfg_.media_dirs.end())
    return Error(ErrorCode::kInvalidInput, "keymedia init: '" + dir.string() + "' is not a configured medium",
                 "add it to media_dirs first");
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return Error(ErrorCode::kUnavailable, "keymedia init: medium '" + dir.string() + "' is not present",
                 "mount the medium at that path");
  std::map<std::pair<std::string, std::uint64_t>, bool> refs;
  for (const auto& ms : scan())
    for (const auto& f : ms.files)
      if (f.problem == KeyFileProblem::kNone) refs[{f.key_id, f.generation}] = true;
  ProviderReport rep;
  for (const auto& [k, _] : refs) {
    KeyRef ref{k.first, k.second};
    STORCRYPT_ASSIGN_OR_RETURN(FetchedKey fk, fetch(ref));
    KeyFile kf{cfg_.system_id, ref.key_id, ref.generation, std::move(fk.ak)};
    STORCRYPT_ASSIGN_OR_RETURN(std::string text, encode_key_file(kf));
    auto st = write_file_atomic(dir / key_file_name(ref), text);
    secure_wipe(text);
    STORCRYPT_TRY(st);
    ++rep.copies_written;
  }
  return rep;
}

}  // namespace storcrypt::keys
