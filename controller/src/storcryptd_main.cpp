// storcryptd: the storcrypt daemon (composition root and request loop).
#include <fcntl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "storcrypt/common/fd.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/controller/config.h"
#include "storcrypt/controller/dispatcher.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/controller/server.h"

namespace sc = storcrypt::controller;
using storcrypt::Error;
using storcrypt::ErrorCode;
using storcrypt::Status;

namespace {

// systemd readiness (Type=notify) without libsystemd: one datagram.
void sd_notify(const char* msg) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || (path[0] != '/' && path[0] != '@')) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t len = std::strlen(path);
  if (len >= sizeof(addr.sun_path)) return;
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  storcrypt::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return;
  (void)::sendto(fd.get(), msg, std::strlen(msg), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
}

Status prepare_state_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Error(ErrorCode::kPermission, "creating state directory " + dir + ": " + ec.message(),
                 "create it (mode 0700, owned by the storcryptd user) or set state_directory");
  }
  if (::chmod(dir.c_str(), 0700) != 0) return storcrypt::errno_error(errno, "setting mode of " + dir);
  return storcrypt::ok_status();
}

storcrypt::Result<storcrypt::UniqueFd> lock_state_dir(const std::string& dir) {
  std::string path = dir + "/storcryptd.lock";
  storcrypt::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return storcrypt::errno_error(errno, "opening " + path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    return Error(ErrorCode::kConflict, "another storcryptd is using state directory " + dir,
                 "stop the other daemon first", "xDaemonAlreadyRunning");
  }
  return fd;
}

// The secure heap for key material (secret.h): locked, not in core dumps.
// 1 MiB holds some 16,000 keys of 64 bytes; beyond it keys fall back to the
// ordinary (wiped) heap and `system doctor` says so.
constexpr std::size_t kSecureHeapBytes = 1 << 20;

// Key material must not leave the process through a core dump: no dumps
// (with PR_SET_DUMPABLE 0 the kernel writes none, and only CAP_SYS_PTRACE
// may attach), and the key pages are MADV_DONTDUMP for dumpers that do
// attach (gcore). Warnings only: the daemon still works without them.
void protect_key_memory() {
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    spdlog::warn("cannot exclude storcryptd from core dumps (prctl PR_SET_DUMPABLE): {}", std::strerror(errno));
  if (Status st = storcrypt::init_secure_memory(kSecureHeapBytes); !st.ok()) {
    spdlog::warn("{}; key material stays in ordinary (wiped) memory", st.error().to_string());
  } else if (!storcrypt::secure_memory_status().locked) {
    rlimit rl{};
    ::getrlimit(RLIMIT_MEMLOCK, &rl);
    spdlog::warn("key memory could not be locked (RLIMIT_MEMLOCK {} bytes): it may be swapped out; "
                 "the storcryptd unit sets LimitMEMLOCK=infinity",
                 static_cast<unsigned long long>(rl.rlim_cur));
  }
}

struct Options {
  std::string config_path = sc::kDefaultConfigPath;
  bool config_given = false;
  bool foreground = false;
};

int run(const Options& opt, const sc::Config& config, int ready_fd) {
  auto fail = [&](const Error& e) {
    spdlog::critical("{}", e.to_string());
    if (ready_fd >= 0) {
      std::string m = "storcryptd: " + e.to_string() + "\n";
      (void)!::write(ready_fd, m.data(), m.size());
    }
    return 1;
  };
  protect_key_memory();
  if (Status st = prepare_state_dir(config.state_directory); !st.ok()) return fail(st.error());
  auto lock = lock_state_dir(config.state_directory);
  if (!lock.ok()) return fail(lock.error());

  auto db = sc::Db::open(config.state_directory + "/storcrypt.db");
  if (!db.ok()) return fail(db.error());
  auto journal = sc::open_db_journal(**db);
  if (!journal.ok()) return fail(journal.error());
  auto events = sc::EventLog::create(**db);
  if (!events.ok()) return fail(events.error());

  sc::Context ctx;
  ctx.config = config;
  ctx.config_path = opt.config_path;
  ctx.db = db->get();
  ctx.journal = journal->get();
  ctx.events = events->get();
  ctx.version = STORCRYPT_VERSION;
  ctx.started_unix = static_cast<int64_t>(std::time(nullptr));

  sc::Dispatcher dispatcher;
  if (Status st = sc::register_all_methods(dispatcher, ctx); !st.ok()) return fail(st.error());

  // A marker that exists only while the daemon runs: finding it at start-up
  // means the previous run ended without a clean shutdown.
  std::string marker = config.state_directory + "/running";
  if (::access(marker.c_str(), F_OK) == 0) {
    spdlog::warn("previous storcryptd run did not shut down cleanly");
    (void)ctx.events->raise(sc::event_code::kUncleanShutdown, "storcryptd did not shut down cleanly before this start");
  }
  { storcrypt::UniqueFd m(::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600)); }

  auto outcomes = ctx.journal->recover();
  if (!outcomes.ok()) return fail(outcomes.error());
  for (const auto& o : *outcomes) {
    nlohmann::json sense{{"operation", o.id}, {"kind", o.kind}, {"outcome", o.outcome}};
    if (!o.detail.empty()) sense["error"] = o.detail;
    if (o.outcome == "deferred") {
      spdlog::warn("journal operation {} ({}) left pending: {}", o.id, o.kind, o.detail);
      (void)ctx.events->raise(sc::event_code::kJournalRecoveryFailed,
                              "operation " + std::to_string(o.id) + " (" + o.kind +
                                  ") could not be settled yet; it stays pending",
                              sense);
    } else if (o.outcome == "failed") {
      spdlog::error("journal operation {} ({}) could not be settled: {}", o.id, o.kind, o.detail);
      (void)ctx.events->raise(sc::event_code::kJournalRecoveryFailed,
                              "operation " + std::to_string(o.id) + " (" + o.kind + ") failed during recovery", sense);
    } else if (o.outcome == "no-handler") {
      spdlog::warn("journal operation {} ({}) has no resume handler; left unfinished", o.id, o.kind);
      (void)ctx.events->raise(sc::event_code::kJournalNoHandler,
                              "operation " + std::to_string(o.id) + " (" + o.kind + ") left unfinished", sense);
    } else {
      spdlog::info("journal operation {} ({}) settled: {}", o.id, o.kind, o.outcome);
      (void)ctx.events->raise(sc::event_code::kJournalRecovered,
                              "operation " + std::to_string(o.id) + " (" + o.kind + ") " + o.outcome, sense);
    }
  }

  for (auto& hook : ctx.start_hooks) hook();
  // The hooks read key files and unlocked volumes on this thread: its stack
  // below here holds pieces of what they parsed.
  storcrypt::wipe_stack();

  asio::io_context io;
  sc::Server server(io, dispatcher, config);
  if (Status st = server.listen(); !st.ok()) return fail(st.error());

  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const asio::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    sd_notify("STOPPING=1");
    server.stop();
    io.stop();
  });
  ::signal(SIGPIPE, SIG_IGN);

  spdlog::info("storcryptd {} serving {} (state {})", ctx.version, config.socket_path, config.state_directory);
  sd_notify("READY=1");
  if (ready_fd >= 0) {
    char ok = 0;
    (void)!::write(ready_fd, &ok, 1);
    ::close(ready_fd);
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::close(null);
    }
  }
  io.run();
  server.stop();
  ::unlink(marker.c_str());
  spdlog::info("storcryptd stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"storcryptd: the storcrypt encryption controller daemon", "storcryptd"};
  app.set_version_flag("--version", STORCRYPT_VERSION);
  auto* c = app.add_option("--config", opt.config_path, "Configuration file")->capture_default_str();
  app.add_flag("--foreground", opt.foreground, "Do not detach; log to stderr (use under systemd)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  opt.config_given = c->count() > 0;

  auto config = sc::load_config(opt.config_path, opt.config_given);
  if (!config.ok()) {
    std::cerr << "storcryptd: " << config.error().to_string() << "\n";
    return 2;
  }
  int ready_fd = -1;
  if (!opt.foreground) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
      std::perror("storcryptd: pipe");
      return 70;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("storcryptd: fork");
      return 70;
    }
    if (pid > 0) {
      // Parent: exit once the daemon is serving (or report why it is not).
      ::close(p[1]);
      std::string msg;
      char buf[512];
      ssize_t n;
      while ((n = ::read(p[0], buf, sizeof(buf))) > 0) {
        msg.append(buf, static_cast<size_t>(n));
        if (msg[0] == '\0') return 0;
      }
      std::cerr << (msg.empty() ? "storcryptd: daemon exited during start-up\n" : msg);
      return 1;
    }
    ::close(p[0]);
    ::setsid();
    if (::chdir("/") != 0) return 70;
    ready_fd = p[1];
    auto sink = std::make_shared<spdlog::sinks::syslog_sink_mt>("storcryptd", LOG_PID, LOG_DAEMON, false);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("storcryptd", sink));
  } else {
    auto logger = spdlog::stderr_logger_mt("storcryptd");
    spdlog::set_default_logger(logger);
    // journald adds its own timestamps.
    spdlog::set_pattern(std::getenv("JOURNAL_STREAM") ? "[%l] %v" : "%Y-%m-%dT%H:%M:%S.%e [%l] %v");
  }
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  return run(opt, *config, ready_fd);
}
