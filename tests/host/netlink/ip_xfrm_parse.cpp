#include "ip_xfrm_parse.h"

#include <regex>
#include <sstream>

namespace storcrypt::testing {
namespace {

std::vector<std::string> tokens(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> t;
  for (std::string w; in >> w;) t.push_back(w);
  return t;
}

// "0x00002000(8192)" -> "0x00002000"; "17(0x00000011)" -> "17".
std::string strip_paren(std::string v) {
  if (!v.empty() && v.back() == ',') v.pop_back();
  auto p = v.find('(');
  return p == std::string::npos || p == 0 ? v : v.substr(0, p);
}

void pairs(const std::vector<std::string>& t, std::size_t from, std::map<std::string, std::string>& out,
           const std::string& prefix = {}) {
  for (std::size_t i = from; i + 1 < t.size(); i += 2) out[prefix + t[i]] = strip_paren(t[i + 1]);
}

}  // namespace

std::vector<IpXfrmBlock> parse_ip_xfrm(const std::string& out) {
  std::vector<IpXfrmBlock> blocks;
  std::istringstream in(out);
  std::string line;
  bool in_tmpl = false;
  std::string pending;  // "current" or "stats": the next line holds their values
  static const std::regex limit(R"(limit: soft \(?(\w+)\)?\((bytes|packets)\), hard \(?(\w+)\)?\()");
  static const std::regex expire(R"(expire (add|use): soft (\d+)\(sec\), hard (\d+)\(sec\))");
  static const std::regex current(R"((\d+)\(bytes\), (\d+)\(packets\))");
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto t = tokens(line);
    if (line[0] != ' ' && line[0] != '\t') {
      if (t.empty() || t[0] != "src") continue;  // e.g. "Default policies:"
      blocks.emplace_back();
      pairs(t, 0, blocks.back().head);
      blocks.back().text = line + "\n";
      in_tmpl = false;
      pending.clear();
      continue;
    }
    if (blocks.empty() || t.empty()) continue;
    IpXfrmBlock& b = blocks.back();
    b.text += line + "\n";
    std::smatch m;
    if (pending == "current" && std::regex_search(line, m, current)) {
      b.kv["cur_bytes"] = m[1];
      b.kv["cur_packets"] = m[2];
      pending.clear();
      continue;
    }
    if (pending == "stats") {
      pairs(t, 0, b.kv, "stats.");
      pending.clear();
      continue;
    }
    if (t[0] == "tmpl") {
      in_tmpl = true;
      b.tmpls.emplace_back();
      pairs(t, 1, b.tmpls.back());
      continue;
    }
    if (in_tmpl && (t[0] == "proto" || t[0] == "level" || t[0] == "enc-mask")) {
      pairs(t, 0, b.tmpls.back());
      continue;
    }
    in_tmpl = false;
    if (std::regex_search(line, m, limit)) {
      b.kv["soft_" + m[2].str()] = m[1];
      b.kv["hard_" + m[2].str()] = m[3];
    } else if (std::regex_search(line, m, expire)) {
      b.kv["soft_" + m[1].str() + "_seconds"] = m[2];
      b.kv["hard_" + m[1].str() + "_seconds"] = m[3];
    } else if (t[0] == "lifetime" && t.size() > 1 && t[1] == "current:") {
      pending = "current";
    } else if (t[0] == "stats:") {
      pending = "stats";
    } else if ((t[0] == "aead" && t.size() >= 4) || (t[0] == "auth-trunc" && t.size() >= 4)) {
      b.kv[t[0] + ".name"] = t[1];
      b.kv[t[0] + ".key"] = t[2];
      // With -s ip inserts the key size: "aead NAME 0xKEY (160 bits) 128".
      b.kv[t[0] + ".bits"] = t.back();
      if (t.size() >= 6 && t[3].front() == '(') b.kv[t[0] + ".keybits"] = t[3].substr(1);
    } else if ((t[0] == "enc" || t[0] == "auth") && t.size() >= 3) {
      b.kv[t[0] + ".name"] = t[1];
      b.kv[t[0] + ".key"] = t[2];
      if (t.size() >= 5 && t[3].front() == '(') b.kv[t[0] + ".keybits"] = t[3].substr(1);
    } else if (t[0] == "sel") {
      pairs(t, 1, b.kv, "sel.");
    } else if (t[0] == "anti-replay") {
      // "anti-replay context: seq 0x0, oseq 0x0, bitmap ..." / "anti-replay esn context:"
      for (std::size_t i = 0; i + 1 < t.size(); ++i) {
        std::string v = t[i + 1];
        if (!v.empty() && v.back() == ',') v.pop_back();
        if (t[i] == "seq" || t[i] == "oseq" || t[i] == "replay_window" || t[i] == "seq_hi" || t[i] == "oseq_hi")
          b.kv["ar." + t[i]] = v;
      }
    } else if (t[0] == "mark" && t.size() >= 2) {
      b.kv["mark"] = t[1];
    } else if (t[0] == "encap") {
      // "encap type espinudp sport 4500 dport 4500 addr 0.0.0.0"
      pairs(t, 1, b.kv, "encap.");
    } else {
      pairs(t, 0, b.kv);
    }
  }
  return blocks;
}

}  // namespace storcrypt::testing
