// The admin command's documentation keeps up with its code: every noun and
// verb that the built `storcrypt` binary lists in its --help output has a
// `.SS noun` section in storcrypt(8) naming the verb, and appears in the bash
// completion's noun list and in the verb list of that noun.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"

namespace {

using storcrypt::testing::find_program;
using storcrypt::testing::run;
using storcrypt::testing::sh;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream is(text);
  for (std::string l; std::getline(is, l);) out.push_back(l);
  return out;
}

/// The subcommand names of a CLI11 help text: the first word of each line
/// of the "SUBCOMMANDS:"/"Subcommands:" block.
std::vector<std::string> subcommands_in_help(const std::string& help) {
  std::vector<std::string> out;
  bool in_block = false;
  static const std::regex header(R"(^\s*(SUBCOMMANDS|Subcommands):\s*$)");
  static const std::regex entry(R"(^\s+([a-z][a-z0-9-]*)(\s|$))");
  for (const auto& l : lines_of(help)) {
    if (std::regex_match(l, header)) {
      in_block = true;
      continue;
    }
    if (!in_block) continue;
    std::smatch m;
    if (std::regex_search(l, m, entry)) {
      out.push_back(m[1]);
    } else if (!l.empty() && l[0] != ' ') {
      in_block = false;  // the next block (e.g. OPTIONS:) starts
    }
  }
  return out;
}

/// The long option names of a CLI11 help text (every name of an option
/// line such as "  --local-port,--icmp-type TEXT"), except --help.
std::vector<std::string> long_options_in_help(const std::string& help) {
  std::vector<std::string> out;
  static const std::regex line(R"(^  +(-[-a-zA-Z0-9,]*))");
  for (const auto& l : lines_of(help)) {
    std::smatch m;
    if (!std::regex_search(l, m, line)) continue;
    std::istringstream names(m[1].str());
    for (std::string n; std::getline(names, n, ',');)
      if (n.rfind("--", 0) == 0 && n != "--help") out.push_back(n);
  }
  return out;
}

/// The positional argument names of a CLI11 usage line
/// ("Usage: storcrypt policy move [OPTIONS] name position" -> name, position).
std::vector<std::string> positionals_in_help(const std::string& help) {
  std::vector<std::string> out;
  for (const auto& l : lines_of(help)) {
    if (l.rfind("Usage: ", 0) != 0) continue;
    auto at = l.find("[OPTIONS]");
    if (at == std::string::npos) return out;
    std::istringstream is(l.substr(at + 9));
    for (std::string w; is >> w;) {
      w.erase(std::remove_if(w.begin(), w.end(), [](char c) { return c == '[' || c == ']'; }), w.end());
      if (!w.empty() && w != "SUBCOMMAND") out.push_back(w);
    }
  }
  return out;
}

struct Tree {
  std::map<std::string, std::vector<std::string>> verbs;        ///< noun -> verbs
  std::map<std::string, std::vector<std::string>> options;      ///< "noun verb" -> long options
  std::map<std::string, std::vector<std::string>> positionals;  ///< "noun verb" -> positional names
};

/// From `storcrypt --help`, `storcrypt <noun> --help` and
/// `storcrypt <noun> <verb> --help`.
Tree cli_tree() {
  Tree tree;
  auto top = run({STORCRYPT_BIN, "--help"});
  EXPECT_EQ(top.exit_code, 0) << top.err;
  for (const auto& noun : subcommands_in_help(top.out)) {
    auto h = run({STORCRYPT_BIN, noun, "--help"});
    EXPECT_EQ(h.exit_code, 0) << noun << ": " << h.err;
    tree.verbs[noun] = subcommands_in_help(h.out);
    for (const auto& verb : tree.verbs[noun]) {
      auto v = run({STORCRYPT_BIN, noun, verb, "--help"});
      EXPECT_EQ(v.exit_code, 0) << noun << " " << verb << ": " << v.err;
      tree.options[noun + " " + verb] = long_options_in_help(v.out);
      tree.positionals[noun + " " + verb] = positionals_in_help(v.out);
    }
  }
  return tree;
}

/// The body of `.SS noun` in the man page (up to the next .SS or .SH).
std::string man_section(const std::string& man, const std::string& noun) {
  std::string body;
  bool in = false;
  for (const auto& l : lines_of(man)) {
    if (l.rfind(".SS ", 0) == 0 || l.rfind(".SH ", 0) == 0) {
      std::string title = l.substr(4);
      if (!title.empty() && title.front() == '"') title = title.substr(1, title.size() - 2);
      in = l.rfind(".SS ", 0) == 0 && title == noun;
      continue;
    }
    if (in) body += l + "\n";
  }
  return body;
}

/// The tag line `.B noun verb ...` (directly after `.TP`) describing
/// `noun verb` ("" when none).
/// Verbs with '-' are written `\-`.
std::string man_verb_line(const std::string& section, const std::string& noun, const std::string& verb) {
  std::string escaped;
  for (char c : verb) escaped += (c == '-') ? std::string("\\\\-") : std::string(1, c);
  const std::regex re("^\\.B \"?" + noun + " " + escaped + "(\\s|\"|\\\\|$)");
  std::string prev;
  for (const auto& l : lines_of(section)) {
    if (prev == ".TP" && std::regex_search(l, re)) return l;
    prev = l;
  }
  return "";
}

/// Does the tag line name the positional argument in capitals
/// (`\fINAME`, `NEW_NAME`), as a whole word?
bool man_line_has_positional(const std::string& line, const std::string& name) {
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::regex fonts(R"(\\f[BIRP])");
  const std::string plain_line = std::regex_replace(line, fonts, " ");
  const std::regex re("(^|[^A-Z_])" + upper + "([^A-Z_]|$)");
  return std::regex_search(plain_line, re);
}

/// Does the man section mention the option (written `\-\-name`, not as the
/// prefix of a longer option)?
bool man_has_option(const std::string& section, const std::string& option) {
  std::string escaped;
  for (char c : option) escaped += (c == '-') ? std::string("\\\\-") : std::string(1, c);
  const std::regex re(escaped + "([^a-z0-9\\\\]|\\\\[^-]|$)");
  return std::regex_search(section, re);
}

std::set<std::string> words(const std::string& s) {
  std::set<std::string> out;
  std::istringstream is(s);
  for (std::string w; is >> w;) out.insert(w);
  return out;
}

/// `local nouns="..."` of the completion script.
std::set<std::string> completion_nouns(const std::string& script) {
  std::smatch m;
  static const std::regex re(R"re(local nouns="([^"]*)")re");
  if (!std::regex_search(script, m, re)) return {};
  std::set<std::string> out = words(m[1]);
  // Later lines `nouns+=" ..."` add nouns (so a new noun is an added line).
  static const std::regex more(R"re(\n\s*nouns\+="([^"]*)")re");
  for (auto it = std::sregex_iterator(script.begin(), script.end(), more); it != std::sregex_iterator(); ++it)
    for (const auto& w : words((*it)[1])) out.insert(w);
  return out;
}

/// `noun) verbs="..." ;;` of the completion script.
std::set<std::string> completion_verbs(const std::string& script, const std::string& noun) {
  std::smatch m;
  const std::regex re("\\n\\s*" + noun + R"re(\) verbs="([^"]*)")re");
  if (!std::regex_search(script, m, re)) return {};
  return words(m[1]);
}

/// The options the completion offers after `noun verb`: the words of the
/// case arm whose pattern names "noun verb" (up to its `;;`), with $fields
/// expanded from `local fields="..."`.
std::set<std::string> completion_options(const std::string& script, const std::string& noun, const std::string& verb) {
  std::set<std::string> out;
  const std::string pattern = "\"" + noun + " " + verb + "\"";
  std::smatch fm;
  static const std::regex fields_re(R"re(local fields="([^"]*)")re");
  const std::set<std::string> fields =
      std::regex_search(script, fm, fields_re) ? words(fm[1]) : std::set<std::string>{};
  std::size_t pos = 0;
  while ((pos = script.find(pattern, pos)) != std::string::npos) {
    // Only a case pattern: the rest of its line up to ')' holds only further patterns.
    std::size_t close = script.find(')', pos);
    std::size_t eol = script.find('\n', pos);
    if (close == std::string::npos || close > eol) {
      pos += pattern.size();
      continue;
    }
    std::size_t end = script.find(";;", close);
    for (const auto& w : words(script.substr(close + 1, end - close - 1))) {
      std::string t = w;
      t.erase(std::remove(t.begin(), t.end(), '"'), t.end());
      if (t == "$fields") {
        out.insert(fields.begin(), fields.end());
      } else {
        out.insert(t);
      }
    }
    pos = end;
  }
  return out;
}

class CliDocs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tree_ = new Tree(cli_tree()); }
  static void TearDownTestSuite() {
    delete tree_;
    tree_ = nullptr;
  }
  static Tree* tree_;
};
Tree* CliDocs::tree_ = nullptr;

TEST_F(CliDocs, HelpListsNounsAndVerbs) {
  // The parser itself must find something, or every other check is vacuous.
  ASSERT_GE(tree_->verbs.size(), 4u);
  for (const char* noun : {"system", "event", "cert", "truststore"}) {
    ASSERT_TRUE(tree_->verbs.count(noun)) << noun << " missing from storcrypt --help";
  }
  for (const auto& [noun, verbs] : tree_->verbs) EXPECT_FALSE(verbs.empty()) << noun << " lists no verbs";
  const auto& ev = tree_->verbs.at("event");
  EXPECT_NE(std::find(ev.begin(), ev.end(), "list"), ev.end());
  const auto& el = tree_->options.at("event list");
  EXPECT_NE(std::find(el.begin(), el.end(), "--severity"), el.end());
  EXPECT_EQ(std::find(el.begin(), el.end(), "--help"), el.end());
  EXPECT_EQ(tree_->positionals.at("event show"), std::vector<std::string>{"id"});
}

TEST_F(CliDocs, ManPageHasEveryNounAndVerb) {
  const std::string man = read_text(STORCRYPT_MAN8);
  ASSERT_NE(man.find(".TH STORCRYPT 8"), std::string::npos) << STORCRYPT_MAN8;
  for (const auto& [noun, verbs] : tree_->verbs) {
    const std::string sec = man_section(man, noun);
    EXPECT_FALSE(sec.empty()) << "storcrypt.8 has no '.SS " << noun << "' section";
    if (sec.empty()) continue;
    for (const auto& verb : verbs) {
      const std::string tag = man_verb_line(sec, noun, verb);
      EXPECT_FALSE(tag.empty()) << "storcrypt.8 section '" << noun << "' does not describe '" << noun << " " << verb
                                << "'";
      for (const auto& pos : tree_->positionals.at(noun + " " + verb))
        EXPECT_TRUE(tag.empty() || man_line_has_positional(tag, pos))
            << "storcrypt.8 '" << noun << " " << verb << "' line does not name the argument " << pos << ": " << tag;
      for (const auto& opt : tree_->options.at(noun + " " + verb))
        EXPECT_TRUE(man_has_option(sec, opt))
            << "storcrypt.8 section '" << noun << "' does not mention " << opt << " of '" << noun << " " << verb << "'";
    }
  }
}

TEST_F(CliDocs, CompletionHasEveryNounAndVerb) {
  const std::string script = read_text(STORCRYPT_COMPLETION);
  const auto nouns = completion_nouns(script);
  ASSERT_FALSE(nouns.empty()) << "no 'local nouns=\"...\"' in " << STORCRYPT_COMPLETION;
  for (const auto& [noun, verbs] : tree_->verbs) {
    EXPECT_TRUE(nouns.count(noun)) << "completion noun list lacks " << noun;
    const auto cv = completion_verbs(script, noun);
    EXPECT_FALSE(cv.empty()) << "completion has no verb list for " << noun;
    for (const auto& verb : verbs) {
      EXPECT_TRUE(cv.count(verb)) << "completion verb list of " << noun << " lacks " << verb;
      const auto opts = completion_options(script, noun, verb);
      for (const auto& opt : tree_->options.at(noun + " " + verb))
        EXPECT_TRUE(opts.count(opt)) << "completion does not offer " << opt << " after '" << noun << " " << verb << "'";
    }
    // Nothing in the completion that the binary does not have.
    for (const auto& v : cv)
      EXPECT_TRUE(std::find(verbs.begin(), verbs.end(), v) != verbs.end())
          << "completion offers unknown verb " << noun << " " << v;
  }
  for (const auto& n : nouns) EXPECT_TRUE(tree_->verbs.count(n)) << "completion offers unknown noun " << n;
}

// Both pages render without groff/man warnings at 80 columns.
TEST(ManPages, RenderWithoutWarnings) {
  STORCRYPT_REQUIRE(!find_program("man").empty(), "needs man(1) (Debian man-db, installed by scripts/setup.sh)");
  for (const char* page : {STORCRYPT_MAN8, STORCRYPTD_MAN8}) {
    auto r = sh(std::string("MANWIDTH=80 man --warnings -l '") + page + "' 2>&1 >/dev/null");
    EXPECT_EQ(r.exit_code, 0) << page;
    EXPECT_EQ(r.out, "") << page << " renders with warnings";
  }
}

}  // namespace
