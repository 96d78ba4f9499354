// Fuzz the policy-file parser: whatever parses must export and re-import to
// the same list, swapping twice must be the identity, and the test tool and
// compiler must accept every parsed list.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "storcrypt/policy/compiler.h"
#include "storcrypt/policy/text.h"

using namespace storcrypt::policy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto list = import_policies(in);
  if (!list.ok()) {
    if (list.error().message().empty()) std::abort();
    return 0;
  }
  const std::string text = export_policies(*list);
  auto again = import_policies(text);
  if (!again.ok() || !(*again == *list)) std::abort();
  if (export_policies(*again) != text) std::abort();
  auto sw = import_policies(text, ImportOptions{true});
  // The one list that cannot be swapped: a transport-mode PROTECT with
  // LocalAddress ANY (this node's addresses) would need RemoteAddress ANY.
  bool local_any_transport = false;
  for (const Policy& p : list->policies())
    local_any_transport = local_any_transport || (p.protection && p.protection->mode == Mode::kTransport &&
                                                  p.selector.local.kind == AddressSpec::Kind::kAny);
  if (!sw.ok() && !local_any_transport) std::abort();
  if (sw.ok()) {
    auto back = import_policies(export_policies(*sw), ImportOptions{true});
    if (!back.ok() || !(*back == *list)) std::abort();
  }

  bool small = list->size() <= 16;
  for (const Policy& p : list->policies()) small = small && selector_count(p) <= 256;
  if (small) {
    (void)validate(*list, KeyStore{});
    (void)compile(*list);
    TestQuery q;
    q.local = IpAddress::v4(0xc0000201);
    q.remote = IpAddress::v4(0xc0000202);
    auto rows = test_traffic(*list, {}, q);
    // A list may name an address selector it does not define (import allows
    // it, validate and commit refuse it); the test tool says so. Anything
    // else must answer with at least one row.
    if (!rows.ok() ? rows.error().name() != "xAddressUndefined" : rows->empty()) std::abort();
  }
  return 0;
}
