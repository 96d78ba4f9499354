// Host tier: a real storcryptd in a temporary state directory with its own
// socket, driven only through the storcrypt binary. The sqlite3 and setpriv
// programs act as independent judges (database integrity, caller identity).
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"

namespace {

using nlohmann::json;
using storcrypt::testing::ProcessResult;
using storcrypt::testing::run;

class Daemon : public ::testing::Test {
 protected:
  void SetUp() override {
    STORCRYPT_REQUIRE(storcrypt::testing::is_root(), "needs root (socket group storcrypt, setpriv)");
    STORCRYPT_REQUIRE(getgrnam("storcrypt") != nullptr, "needs group storcrypt (scripts/setup.sh)");
    std::string tmpl = (std::filesystem::temp_directory_path() / "storcrypt-ht-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    ::chmod(dir_.c_str(), 0755);
    sock_ = dir_ + "/api.sock";
    state_ = dir_ + "/state";
    conf_ = dir_ + "/storcrypt.conf";
    write_config("");
  }
  void TearDown() override {
    stop(SIGKILL);
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  void write_config(const std::string& extra) {
    std::ofstream(conf_) << "# host test\nstate_directory = " << state_ << "\nsocket_path = " << sock_
                         << "\nlog_level = debug\n"
                         << extra;
  }

  // Start in the background: storcryptd exits its parent only once serving.
  void start() {
    ProcessResult r = run({STORCRYPTD_BIN, "--config", conf_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json st = cli_json({"system", "status"});
    ASSERT_EQ(st["ok"], true) << st.dump();
    pid_ = st["result"]["pid"].get<pid_t>();
    ASSERT_GT(pid_, 1);
  }

  // Signal the daemon and wait until its process is gone.
  void stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    while (::kill(pid_, 0) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    pid_ = -1;
  }

  ProcessResult cli(std::vector<std::string> args, const std::string& bin = STORCRYPT_BIN) {
    std::vector<std::string> argv{bin, "--socket", sock_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  json cli_json(std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    ProcessResult r = cli(args);
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out << r.err;
    if (j.is_discarded()) return json::object();
    EXPECT_EQ(j["version"], 1);
    j["exit_code"] = r.exit_code;
    return j;
  }
  int64_t raise_test_event() {
    json j = cli_json({"event", "test"});
    return j["ok"] == true ? j["result"]["id"].get<int64_t>() : -1;
  }

  std::string dir_, sock_, state_, conf_;
  pid_t pid_ = -1;
};

TEST_F(Daemon, SystemStatusAndDoctorHappyPath) {
  start();
  ProcessResult r = cli({"system", "status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("state directory:  " + state_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("events=1"), std::string::npos) << r.out;

  json st = cli_json({"system", "status"});
  EXPECT_EQ(st["result"]["socket_path"], sock_);
  EXPECT_EQ(st["result"]["database"]["schema"]["journal"], 1);

  ProcessResult d = cli({"system", "doctor"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.out.find("database-integrity"), std::string::npos) << d.out;
  json dj = cli_json({"system", "doctor"});
  EXPECT_EQ(dj["result"]["status"], "ok") << dj.dump(2);
  EXPECT_FALSE(dj["result"]["versions"]["sqlite"].get<std::string>().empty());

  // The socket: 0660, group storcrypt; the state directory 0700.
  struct stat s {};
  ASSERT_EQ(::stat(sock_.c_str(), &s), 0);
  EXPECT_EQ(s.st_mode & 07777, 0660u);
  EXPECT_EQ(s.st_gid, getgrnam("storcrypt")->gr_gid);
  ASSERT_EQ(::stat(state_.c_str(), &s), 0);
  EXPECT_EQ(s.st_mode & 07777, 0700u);
}

TEST_F(Daemon, EventVerbsHappyPath) {
  start();
  ProcessResult t = cli({"event", "test", "--message", "hello from the host test"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("raised test event"), std::string::npos);
  int64_t id = raise_test_event();
  ASSERT_GT(id, 0);

  ProcessResult l = cli({"event", "list"});
  ASSERT_EQ(l.exit_code, 0) << l.err;
  EXPECT_NE(l.out.find("hello from the host test"), std::string::npos) << l.out;
  json lj = cli_json({"event", "list", "--code", "1099"});
  ASSERT_EQ(lj["result"]["events"].size(), 2u) << lj.dump();

  ProcessResult s = cli({"event", "show", std::to_string(id)});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find("user actions:"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("fixed:     no"), std::string::npos) << s.out;

  ProcessResult f = cli({"event", "fix", std::to_string(id)});
  ASSERT_EQ(f.exit_code, 0) << f.err;
  json sj = cli_json({"event", "show", std::to_string(id)});
  EXPECT_EQ(sj["result"]["fixed"], true);
  json unfixed = cli_json({"event", "list", "--unfixed"});
  for (const auto& e : unfixed["result"]["events"]) EXPECT_NE(e["id"], id);
  json errors = cli_json({"event", "list", "--severity", "error"});
  EXPECT_TRUE(errors["result"]["events"].empty());
}

TEST_F(Daemon, HelpEverywhere) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--help"},
                                        {"system", "--help"},
                                        {"system", "status", "--help"},
                                        {"system", "doctor", "--help"},
                                        {"event", "--help"},
                                        {"event", "list", "--help"},
                                        {"event", "show", "--help"},
                                        {"event", "fix", "--help"},
                                        {"event", "test", "--help"}}) {
    ProcessResult r = cli(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
  }
  EXPECT_EQ(run({STORCRYPTD_BIN, "--help"}).exit_code, 0);
}

struct BadInput {
  std::vector<std::string> args;
  int exit_code;
  const char* text;  // expected in stderr
};

TEST_F(Daemon, BadInputGivesClearMessageAndDocumentedExitCode) {
  start();
  const std::vector<BadInput> cases = {
      {{}, 1, "a noun is required (choose from: system, event"},
      {{"nonsense"}, 1, "unknown noun 'nonsense' (choose from: system, event"},
      {{"event", "bogus"}, 1, "unknown verb 'bogus' for 'event' (choose from: list, show, fix, test)"},
      {{"event"}, 1, "'event' needs a verb (choose from: list, show, fix, test)"},
      {{"event", "show"}, 1, "id is required"},
      {{"event", "show", "abc"}, 1, "abc"},
      {{"event", "show", "1", "2"}, 1, "not expected: 2"},
      {{"event", "list", "--severity", "loud"}, 1, "loud"},
      {{"event", "list", "--limit", "0"}, 1, "--limit: Value 0 not in range"},
      {{"event", "show", "0"}, 2, "'id' must be a positive integer"},
      {{"event", "show", "424242"}, 3, "event 424242 does not exist"},
      {{"event", "fix", "424242"}, 3, "event 424242 does not exist"},
  };
  for (const auto& c : cases) {
    ProcessResult r = cli(c.args);
    std::string what = c.args.empty() ? "(none)" : c.args.back();
    EXPECT_EQ(r.exit_code, c.exit_code) << what << ": " << r.err;
    EXPECT_NE(r.err.find(c.text), std::string::npos) << what << ": " << r.err;
    EXPECT_EQ(r.err.find("Options:"), std::string::npos) << "usage errors must not dump the help: " << r.err;
  }
  // --json errors: one document with the stable error shape.
  json j = cli_json({"event", "show", "424242"});
  EXPECT_EQ(j["exit_code"], 3);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["error"]["name"], "xEventNotFound");
  EXPECT_EQ(j["error"]["category"], "not-found");
  EXPECT_EQ(j["error"]["exit_code"], 3);
  EXPECT_FALSE(j["error"]["fix"].get<std::string>().empty());
}

TEST_F(Daemon, OversizedRequestRefused) {
  write_config("max_request_bytes = 4096\n");
  start();
  ProcessResult r = cli({"event", "test", "--message", std::string(8000, 'm')});
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_NE(r.err.find("exceeds the limit of 4096 bytes"), std::string::npos) << r.err;
  // The daemon is still serving.
  EXPECT_EQ(cli({"system", "status"}).exit_code, 0);
}

TEST_F(Daemon, NoDaemonIsUnavailable) {
  ProcessResult r = cli({"system", "status"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("storcryptd is not running"), std::string::npos) << r.err;
}

TEST_F(Daemon, FiftyConcurrentClientsAllAnswered) {
  start();
  constexpr int kClients = 50;
  std::vector<std::thread> threads;
  std::vector<ProcessResult> results(kClients);
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      // Half write, half read, all at once.
      results[static_cast<size_t>(i)] =
          i % 2 ? cli({"--json", "event", "test", "--message", "client " + std::to_string(i)})
                : cli({"--json", "system", "status"});
    });
  }
  for (auto& t : threads) t.join();
  std::set<int64_t> ids;
  for (int i = 0; i < kClients; ++i) {
    const auto& r = results[static_cast<size_t>(i)];
    ASSERT_EQ(r.exit_code, 0) << "client " << i << ": " << r.err << r.out;
    json j = json::parse(r.out);
    ASSERT_EQ(j["ok"], true);
    if (i % 2) ids.insert(j["result"]["id"].get<int64_t>());
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kClients / 2));
  json l = cli_json({"event", "list", "--code", "1099"});
  EXPECT_EQ(l["result"]["events"].size(), static_cast<size_t>(kClients / 2));
}

TEST_F(Daemon, KillNineDuringWritesLosesNothingAcknowledged) {
  STORCRYPT_REQUIRE(!storcrypt::testing::find_program("sqlite3").empty(), "needs the sqlite3 program");
  start();
  std::mutex mu;
  std::vector<int64_t> acked;
  std::atomic<bool> go{true};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&] {
      while (go) {
        int64_t id = raise_test_event();
        if (id > 0) {
          std::lock_guard lock(mu);
          acked.push_back(id);
        }
      }
    });
  }
  // Let writes flow, then kill the daemon while writers are mid-request.
  for (;;) {
    {
      std::lock_guard lock(mu);
      if (acked.size() >= 40) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop(SIGKILL);
  go = false;
  for (auto& t : writers) t.join();

  std::string db = state_ + "/storcrypt.db";
  ProcessResult ic = run({"sqlite3", db, "PRAGMA integrity_check;"});
  EXPECT_EQ(ic.exit_code, 0) << ic.err;
  EXPECT_EQ(ic.out, "ok\n");

  start();
  ProcessResult ic2 = run({"sqlite3", db, "PRAGMA integrity_check;"});
  EXPECT_EQ(ic2.out, "ok\n");
  json l = cli_json({"event", "list", "--code", "1099", "--limit", "10000"});
  std::set<int64_t> present;
  for (const auto& e : l["result"]["events"]) present.insert(e["id"].get<int64_t>());
  ASSERT_GE(acked.size(), 40u);
  for (int64_t id : acked) EXPECT_TRUE(present.count(id)) << "acknowledged event " << id << " lost";
  // The restart noticed the unclean shutdown.
  json unclean = cli_json({"event", "list", "--code", "1001"});
  EXPECT_EQ(unclean["result"]["events"].size(), 1u);
}

TEST_F(Daemon, GracefulShutdownOnSigterm) {
  start();
  stop(SIGTERM);
  EXPECT_FALSE(std::filesystem::exists(sock_)) << "socket left behind";
  start();
  json unclean = cli_json({"event", "list", "--code", "1001"});
  EXPECT_TRUE(unclean["result"]["events"].empty()) << "clean stop reported as unclean";
}

TEST_F(Daemon, SecondDaemonRefused) {
  start();
  ProcessResult r = run({STORCRYPTD_BIN, "--config", conf_, "--foreground"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("another storcryptd"), std::string::npos) << r.err;
  EXPECT_EQ(cli({"system", "status"}).exit_code, 0);  // the first one is untouched
}

TEST_F(Daemon, BadConfigNamesLineAndKey) {
  write_config("log_levle = info\n");
  ProcessResult r = run({STORCRYPTD_BIN, "--config", conf_, "--foreground"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(conf_ + ":5: log_levle: unknown key"), std::string::npos) << r.err;
  ProcessResult m = run({STORCRYPTD_BIN, "--config", dir_ + "/missing.conf", "--foreground"});
  EXPECT_EQ(m.exit_code, 2);
  EXPECT_NE(m.err.find("missing.conf"), std::string::npos) << m.err;
}

TEST_F(Daemon, NonRootNonGroupUserRefused) {
  STORCRYPT_REQUIRE(!storcrypt::testing::find_program("setpriv").empty(), "needs setpriv");
  start();
  // A copy of the CLI that user 65534 can execute.
  std::string bin = dir_ + "/storcrypt";
  std::filesystem::copy_file(STORCRYPT_BIN, bin);
  ::chmod(bin.c_str(), 0755);
  auto as_nobody = [&](std::vector<std::string> extra_groups) {
    std::vector<std::string> argv{"setpriv", "--reuid=65534", "--regid=65534"};
    if (extra_groups.empty()) {
      argv.push_back("--clear-groups");
    } else {
      argv.push_back("--groups=" + extra_groups[0]);
    }
    for (const auto& a : {bin, std::string("--socket"), sock_, std::string("system"), std::string("status")}) {
      argv.push_back(a);
    }
    return run(argv);
  };
  // Layer 1: the socket's mode and group.
  ProcessResult r = as_nobody({});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("permission denied"), std::string::npos) << r.err;

  // Layer 2: with the file mode opened up, SO_PEERCRED still refuses.
  ASSERT_EQ(::chmod(sock_.c_str(), 0666), 0);
  r = as_nobody({});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("uid 65534 may not use the storcrypt API"), std::string::npos) << r.err;

  // Control: the same user as a member of group storcrypt is served.
  r = as_nobody({std::to_string(getgrnam("storcrypt")->gr_gid)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
