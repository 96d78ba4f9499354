// API methods of the `system` noun: system.status, system.doctor.
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "storcrypt/common/secret.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/kmodule/probe.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

int status_rank(const std::string& s) {
  if (s == "ok") return 0;
  if (s == "warning") return 1;
  if (s == "error") return 2;
  return 3;  // critical
}

std::vector<CheckResult> state_checks(Context& ctx) {
  std::vector<CheckResult> out;
  const std::string& dir = ctx.config.state_directory;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    out.push_back({"state", "state-dir-exists", "critical", dir + " is missing or not a directory",
                   "restore the state directory from a backup and restart storcryptd"});
    return out;
  }
  out.push_back({"state", "state-dir-exists", "ok", dir, ""});
  if (st.st_uid != ::geteuid()) {
    out.push_back({"state", "state-dir-owner", "error",
                   dir + " is owned by uid " + std::to_string(st.st_uid) + ", storcryptd runs as uid " +
                       std::to_string(::geteuid()),
                   "chown the state directory to the storcryptd user"});
  } else {
    out.push_back({"state", "state-dir-owner", "ok", "owned by uid " + std::to_string(st.st_uid), ""});
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    out.push_back({"state", "state-dir-mode", "warning", std::string("mode is ") + mode + ", expected 0700",
                   "chmod 0700 " + dir});
  } else {
    out.push_back({"state", "state-dir-mode", "ok", "0700", ""});
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    out.push_back({"state", "state-dir-writable", "critical", dir + " is not writable",
                   "remount the filesystem read-write or fix permissions"});
  } else {
    out.push_back({"state", "state-dir-writable", "ok", "writable", ""});
  }
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0) {
    uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    std::string detail = std::to_string(free_bytes / (1024 * 1024)) + " MiB free";
    if (free_bytes < (8ULL << 20)) {
      out.push_back({"state", "state-dir-space", "error", detail, "free space on the filesystem of " + dir});
    } else if (free_bytes < (64ULL << 20)) {
      out.push_back({"state", "state-dir-space", "warning", detail, "free space on the filesystem of " + dir});
    } else {
      out.push_back({"state", "state-dir-space", "ok", detail, ""});
    }
  }
  Status ic = ctx.db->integrity_check();
  if (ic.ok()) {
    out.push_back({"state", "database-integrity", "ok", "PRAGMA integrity_check: ok", ""});
  } else {
    out.push_back({"state", "database-integrity", "critical", ic.error().message(), ic.error().fix()});
  }
  auto pending = ctx.journal->list(true, 1000);
  if (pending.ok() && !pending->empty()) {
    out.push_back({"state", "journal", "warning",
                   std::to_string(pending->size()) + " operation(s) unfinished (no resume handler in this build)",
                   "run the storcryptd version that started them; see `storcrypt system status --json`"});
  } else if (pending.ok()) {
    out.push_back({"state", "journal", "ok", "no unfinished operations", ""});
  }
  return out;
}

// Kernel capabilities (kmodule-glue). The doctor only looks: it neither loads
// modules nor changes anything (ProbeOptions::load = false); templates are
// instantiated through AF_ALG, which has no lasting effect.
std::vector<CheckResult> kernel_checks() {
  kmodule::ProbeOptions opts;
  opts.load = false;
  kmodule::ProbeReport report = kmodule::probe_all(opts);
  std::vector<CheckResult> out;
  if (!report.config_available) {
    out.push_back({"kernel", "kernel-config", "warning",
                   "kernel config not readable (/proc/config.gz, /boot/config-" + report.kernel_release + ")",
                   "install the kernel's config file so missing features can be named precisely"});
  }
  for (const auto& c : report.checks) {
    std::string status;
    switch (c.state) {
      case kmodule::CheckState::kPresent:
      case kmodule::CheckState::kLoadable:
        status = "ok";
        break;
      case kmodule::CheckState::kMissing:
        status = c.feature.required ? "error" : "warning";
        break;
      case kmodule::CheckState::kUnknown:
        status = "warning";
        break;
    }
    std::string detail = c.feature.description + ": " + std::string(kmodule::check_state_name(c.state));
    if (!c.how.empty()) detail += " (" + c.how + ")";
    if (!c.problem.empty()) detail += ": " + c.problem;
    out.push_back({"kernel", c.feature.name, status, detail, status == "ok" ? "" : c.fix});
  }
  return out;
}

// Key material in memory (common/secret.h): storcryptd sets up the secure
// heap and clears its dumpable flag at start-up.
std::vector<CheckResult> memory_checks() {
  std::vector<CheckResult> out;
  SecureMemoryStatus m = secure_memory_status();
  const std::string size = std::to_string(m.bytes / 1024) + " KiB";
  if (!m.initialized) {
    out.push_back({"memory", "key-memory", "warning",
                   "key material is in ordinary memory (no secure heap): it may be swapped out", ""});
  } else if (!m.locked) {
    rlimit rl{};
    ::getrlimit(RLIMIT_MEMLOCK, &rl);
    out.push_back({"memory", "key-memory", "warning",
                   "the " + size + " holding key material could not be locked or excluded from core dumps "
                   "(RLIMIT_MEMLOCK " + std::to_string(rl.rlim_cur) + " bytes): it may be swapped out",
                   "run storcryptd under its systemd unit (LimitMEMLOCK=infinity) or raise its memlock limit"});
  } else {
    out.push_back({"memory", "key-memory", "ok",
                   size + " locked and excluded from core dumps, " + std::to_string(m.used) + " bytes in use", ""});
  }
  if (m.fallbacks > 0) {
    out.push_back({"memory", "key-memory-full", "warning",
                   std::to_string(m.fallbacks) + " key allocation(s) found the secure heap full and used ordinary memory",
                   "report this with the output of `storcrypt system status --json`"});
  }
  if (::prctl(PR_GET_DUMPABLE) != 0) {
    out.push_back({"memory", "core-dumps", "warning", "storcryptd may be core-dumped (PR_GET_DUMPABLE is set)",
                   "restart storcryptd; it clears the flag at start-up"});
  } else {
    out.push_back({"memory", "core-dumps", "ok", "not dumpable", ""});
  }
  return out;
}

json versions() {
  struct utsname u {};
  ::uname(&u);
  return json{{"storcrypt", ""},
              {"sqlite", sqlite3_libversion()},
              {"openssl", OpenSSL_version(OPENSSL_VERSION)},
              {"kernel", std::string(u.release)},
              {"machine", std::string(u.machine)}};
}

}  // namespace

Status register_system_methods(Dispatcher& d, Context& ctx) {
  ctx.add_doctor_check([&ctx] { return state_checks(ctx); });
  ctx.add_doctor_check([] { return kernel_checks(); });
  ctx.add_doctor_check([] { return memory_checks(); });

  STORCRYPT_TRY(d.add(
      {"system.status",
       "daemon version, uptime, state database, unfixed events and unfinished operations",
       {},
       false,
       [&ctx](const Params&) -> Result<json> {
         auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - ctx.started);
         json schema = json::object();
         STORCRYPT_ASSIGN_OR_RETURN(auto rows, ctx.db->query("SELECT component, MAX(version) FROM schema_migrations "
                                                             "GROUP BY component ORDER BY component"));
         for (const auto& r : rows) schema[r.text(0)] = r.integer(1);
         STORCRYPT_ASSIGN_OR_RETURN(auto counts, ctx.events->unfixed_counts());
         json unfixed = json::object();
         for (const auto& [sev, n] : counts) unfixed[std::string(severity_name(sev))] = n;
         STORCRYPT_ASSIGN_OR_RETURN(auto pending, ctx.journal->list(true, 100));
         json ops = json::array();
         for (const auto& e : pending) {
           ops.push_back({{"id", e.id}, {"kind", e.kind}, {"steps", e.steps}, {"created", e.created}, {"note", e.note}});
         }
         std::error_code ec;
         auto db_size = std::filesystem::file_size(ctx.db->path(), ec);
         return json{{"version", ctx.version},
                     {"pid", static_cast<int64_t>(::getpid())},
                     {"started", ctx.started_unix},
                     {"uptime_seconds", uptime.count()},
                     {"state_directory", ctx.config.state_directory},
                     {"socket_path", ctx.config.socket_path},
                     {"database", {{"path", ctx.db->path()}, {"size_bytes", ec ? 0 : db_size}, {"schema", schema}}},
                     {"events", {{"unfixed", unfixed}}},
                     {"journal", {{"unfinished", ops}}}};
       }}));

  STORCRYPT_TRY(d.add({"system.doctor",
                       "check kernel capabilities, versions, state directory health and certificate expiry",
                       {},
                       false,
                       [&ctx](const Params&) -> Result<json> {
                         json checks = json::array();
                         std::string worst = "ok";
                         for (const auto& contributor : ctx.doctor_checks) {
                           for (const auto& c : contributor()) {
                             if (status_rank(c.status) > status_rank(worst)) worst = c.status;
                             json j{{"area", c.area}, {"check", c.check}, {"status", c.status}, {"detail", c.detail}};
                             if (!c.fix.empty()) j["fix"] = c.fix;
                             checks.push_back(std::move(j));
                           }
                         }
                         json v = versions();
                         v["storcrypt"] = ctx.version;
                         return json{{"status", worst}, {"versions", v}, {"checks", checks}};
                       }}));
  return ok_status();
}

}  // namespace storcrypt::controller
