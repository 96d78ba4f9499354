#include "storcrypt/netlink/xfrm_api.h"

namespace storcrypt::netlink {

Result<std::unique_ptr<XfrmApi>> open_xfrm(const XfrmOptions&) {
  return Error(ErrorCode::kUnsupported, "the netlink XFRM backend is not built yet");
}

}  // namespace storcrypt::netlink
