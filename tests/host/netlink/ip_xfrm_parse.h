// Test helper: parse `ip -s xfrm policy` / `ip -s xfrm state` output into
// key/value blocks, so tests compare what the kernel holds (as an independent
// tool prints it) field by field with what was installed through storcrypt.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace storcrypt::testing {

struct IpXfrmBlock {
  std::map<std::string, std::string> head;  ///< first line: src, dst, proto, sport, dport, type, code
  std::map<std::string, std::string> kv;    ///< the rest: dir, action, index, priority, spi, reqid, mode,
                                            ///< mark, if_id, aead.name/key/icv, enc.*, auth-trunc.*,
                                            ///< soft_bytes/hard_bytes/..., cur_bytes, stats.*
  std::vector<std::map<std::string, std::string>> tmpls;
  std::string text;
  std::string get(const std::string& k) const {
    auto it = kv.find(k);
    return it == kv.end() ? std::string() : it->second;
  }
};

std::vector<IpXfrmBlock> parse_ip_xfrm(const std::string& out);

}  // namespace storcrypt::testing
