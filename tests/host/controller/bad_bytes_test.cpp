// Host tier: bytes that are not text never crash anything. Every argument of
// every verb, enumerated from the CLI's own tables (add_all_commands, as the
// storcrypt binary builds them), gets bytes that are not UTF-8 through the
// real storcrypt binary talking to a real storcryptd: an argument or an input
// file that is not text is invalid input (exit 2, error xNotText naming the
// argument or the file), never an abort (exit 134). A verb added later is
// covered without touching this test. The daemon, given request bytes and
// file names that are not text, answers instead of dying.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <CLI/CLI.hpp>
#include <optional>
#include <set>

#include "daemon_fixture.h"
#include "storcrypt/common/fd.h"
#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace {

using nlohmann::json;
using storcrypt::controller::LocalPath;
using storcrypt::testing::Daemon;
using storcrypt::testing::ProcessResult;

// Not UTF-8: a stray continuation byte, an overlong '/', a surrogate.
const std::string kBadText = "bad\x80value\xc0\xaf\xed\xa0\x80";
// What `head -c N /dev/urandom` and NUL bytes look like.
const std::string kBinary = std::string("\x7f" "ELF\x02\x01\x01\0\0\0\xff\xfe\x00\x9c", 15) + kBadText;

struct Arg {
  std::string name;  ///< "--cn" or a positional's name
  bool positional = false;
  bool required = false;
  bool integer = false;
  std::optional<LocalPath> path;
};
struct Verb {
  std::string noun, verb;
  std::vector<Arg> args;
};

// The verb table of the storcrypt binary: every noun, verb and argument that
// takes a value (flags take none).
std::vector<Verb> cli_verbs() {
  CLI::App app;
  storcrypt::controller::ClientContext cc;
  storcrypt::controller::add_all_commands(app, cc);
  std::vector<Verb> out;
  auto all = [](CLI::App*) { return true; };
  for (CLI::App* noun : app.get_subcommands(all)) {
    for (CLI::App* verb : noun->get_subcommands(all)) {
      Verb v{noun->get_name(), verb->get_name(), {}};
      for (CLI::Option* o : verb->get_options()) {
        if (o->get_items_expected_max() == 0) continue;  // a flag
        Arg a;
        a.positional = o->get_positional();
        a.name = a.positional ? o->get_name(true) : o->get_name();
        a.required = o->get_required();
        a.integer = o->get_type_name().rfind("INT", 0) == 0 || o->get_type_name().rfind("UINT", 0) == 0;
        a.path = storcrypt::controller::local_path_use(o);
        v.args.push_back(a);
      }
      out.push_back(std::move(v));
    }
  }
  return out;
}

class BadBytes : public Daemon {
 protected:
  void SetUp() override {
    Daemon::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    text_file_ = dir_ + "/text.txt";
    std::ofstream(text_file_) << "some-text-value\n";
    binary_file_ = dir_ + "/binary.bin";
    std::ofstream(binary_file_, std::ios::binary) << kBinary;
  }

  // argv for `noun verb` with `target` set to `value` and every other required
  // argument to a harmless placeholder.
  std::vector<std::string> argv_for(const Verb& v, const Arg& target, const std::string& value) {
    std::vector<std::string> named, positional;
    for (const auto& a : v.args) {
      std::string val;
      if (&a == &target) {
        val = value;
      } else if (!a.required) {
        continue;
      } else if (a.path == LocalPath::kInput) {
        val = text_file_;
      } else if (a.path) {
        val = dir_ + "/out-" + v.noun + "-" + v.verb;
      } else {
        val = a.integer ? "1" : "x1";
      }
      if (a.positional) {
        positional.push_back(val);
      } else {
        named.push_back(a.name);
        named.push_back(val);
      }
    }
    std::vector<std::string> argv{v.noun, v.verb};
    argv.insert(argv.end(), positional.begin(), positional.end());
    argv.insert(argv.end(), named.begin(), named.end());
    return argv;
  }

  // Runs with --json; checks the one-document contract and that the process
  // was not aborted; returns the document (with "exit_code").
  json run_json(const std::vector<std::string>& argv, const std::string& what) {
    std::vector<std::string> a{"--json"};
    a.insert(a.end(), argv.begin(), argv.end());
    ProcessResult r = cli(a);
    EXPECT_NE(r.exit_code, 134) << what << ": aborted\n" << r.err;
    EXPECT_LT(r.exit_code, 128) << what << ": killed by a signal\n" << r.err;
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << what << ": stdout is not one JSON document: " << r.out << r.err;
    if (j.is_discarded()) return json::object();
    j["exit_code"] = r.exit_code;
    if (j.value("ok", true) == false) {
      EXPECT_EQ(j["error"]["exit_code"], r.exit_code) << what << ": " << j.dump();
      EXPECT_NE(r.exit_code, 0) << what;
    }
    return j;
  }

  void expect_not_text(const json& j, const std::string& named, const std::string& what) {
    EXPECT_EQ(j["exit_code"], 2) << what << ": " << j.dump();
    EXPECT_EQ(j["ok"], false) << what;
    EXPECT_EQ(j["error"]["name"], "xNotText") << what << ": " << j.dump();
    EXPECT_EQ(j["error"]["category"], "invalid-input") << what;
    const std::string msg = j["error"].value("message", "");
    EXPECT_NE(msg.find(named + " is not text"), std::string::npos) << what << ": " << msg;
    EXPECT_FALSE(j["error"].value("fix", "").empty()) << what;
  }

  std::string text_file_, binary_file_;
};

TEST_F(BadBytes, EveryArgumentOfEveryVerbRefusesBytesThatAreNotText) {
  start();
  const auto verbs = cli_verbs();
  ASSERT_GE(verbs.size(), 30u) << "the CLI's verb table looks empty";
  int text_args = 0, input_files = 0, output_files = 0;
  std::set<std::string> seen;  // the verbs the issue named must be among them
  for (const auto& v : verbs) {
    for (const auto& a : v.args) {
      const std::string what = v.noun + " " + v.verb + " " + a.name;
      seen.insert(v.noun + " " + v.verb + " " + a.name);
      if (!a.path) {
        ++text_args;
        const std::string named = a.positional ? "the argument '" + a.name + "'" : a.name;
        expect_not_text(run_json(argv_for(v, a, kBadText), what), named, what);
        // The human form names it too, on stderr, with the same exit code.
        ProcessResult h = cli(argv_for(v, a, kBadText));
        EXPECT_EQ(h.exit_code, 2) << what << ": " << h.err;
        EXPECT_NE(h.err.find("storcrypt: error: " + named + " is not text"), std::string::npos) << what << h.err;
      } else if (*a.path == LocalPath::kInput) {
        ++input_files;
        expect_not_text(run_json(argv_for(v, a, binary_file_), what), "the file " + binary_file_, what);
        // A file name that is not text is fine locally; shown escaped.
        json j = run_json(argv_for(v, a, dir_ + "/missing\xff.txt"), what + " (missing file)");
        EXPECT_EQ(j["exit_code"], 3) << what << ": " << j.dump();
        EXPECT_NE(j["error"].value("message", "").find("missing\\xff.txt"), std::string::npos) << j.dump();
      } else if (*a.path == LocalPath::kOutput) {
        ++output_files;
        // Written locally: any outcome the daemon gives, but a clean one
        // (--json prints the result instead of writing the file).
        const std::string out = dir_ + "/out\xff" + v.noun + v.verb;
        run_json(argv_for(v, a, out), what);
        ProcessResult h = cli(argv_for(v, a, out));
        EXPECT_LT(h.exit_code, 128) << what << ": " << h.err;
        if (h.exit_code == 0) {
          EXPECT_TRUE(std::filesystem::exists(out)) << what;
        }
      }
    }
  }
  EXPECT_GE(text_args, 40);
  EXPECT_GE(input_files, 7);
  EXPECT_GE(output_files, 4);
  for (const char* must : {"cert install file", "policy import file", "key import file", "key create --hex-file",
                           "cert csr --cn", "policy add --name", "volume create device", "keymedia init dir"})
    EXPECT_TRUE(seen.count(must)) << "not in the CLI's table: " << must;
  // The daemon served every verb that got through and is still there.
  EXPECT_EQ(cli_json({"system", "status"})["ok"], true);
}

TEST_F(BadBytes, TheReportedCrashesOfTheFirstReleaseAreCleanErrors) {
  start();
  std::ofstream(dir_ + "/pass", std::ios::binary) << "long-enough-passphrase\n";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"cert", "install", binary_file_}, "the file " + binary_file_},
      {{"policy", "import", binary_file_}, "the file " + binary_file_},
      {{"key", "import", binary_file_, "--passphrase-file", dir_ + "/pass"}, "the file " + binary_file_},
      {{"key", "create", "k1", "--algorithm", "AES-GCM-256", "--hex-file", binary_file_}, "the file " + binary_file_},
      {{"cert", "csr", "--cn", "node\xff" "1"}, "--cn"},
      {{"policy", "add", "--name", "w\xff" "eb", "--direction", "outbound", "--action", "BYPASS"}, "--name"},
  };
  for (const auto& [argv, named] : cases) {
    std::string what;
    for (const auto& a : argv) what += a + " ";
    expect_not_text(run_json(argv, what), named, what);
  }
  // Nothing reached the daemon: no key, no policy, no CSR.
  EXPECT_TRUE(cli_json({"key", "list"})["result"]["keys"].empty());
  EXPECT_TRUE(cli_json({"policy", "list"})["result"]["policies"].empty());
  EXPECT_EQ(cli_json({"cert", "show"})["result"]["csr_pending"], false);
}

// Bytes sent straight to the socket: JSON carries only UTF-8, so the daemon
// refuses them as a parse error (and keeps serving).
TEST_F(BadBytes, DaemonAnswersRequestsThatAreNotText) {
  start();
  for (const std::string& line :
       {std::string("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"cert.csr\",\"params\":{\"common_name\":\"a\xff\"}}\n"),
        std::string("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"sys\xc0\xaf\",\"params\":{}}\n"), kBinary + "\n"}) {
    storcrypt::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock_.c_str());
    ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
    std::string reply;
    char buf[4096];
    for (ssize_t n; reply.find('\n') == std::string::npos && (n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0;)
      reply.append(buf, static_cast<size_t>(n));
    json j = json::parse(reply, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << reply;
    EXPECT_EQ(j["error"]["code"], -32700) << reply;  // parse error
  }
  EXPECT_EQ(cli_json({"system", "status"})["ok"], true);
}

// A state directory whose name is not text (a file system name): the daemon
// serves, and reports the name with the bad bytes replaced (U+FFFD).
TEST_F(BadBytes, DaemonReportsFileSystemNamesThatAreNotText) {
  state_ = dir_ + "/state\xff\xfe";
  write_config("");
  start();
  json st = cli_json({"system", "status"});
  ASSERT_EQ(st["ok"], true) << st.dump();
  const std::string shown = st["result"]["state_directory"];
  EXPECT_NE(shown.find("state\xef\xbf\xbd"), std::string::npos) << shown;
  json doc = cli_json({"system", "doctor"});
  EXPECT_EQ(doc["ok"], true) << doc.dump();
  ProcessResult human = cli({"system", "status"});
  EXPECT_EQ(human.exit_code, 0) << human.err;
}

}  // namespace
