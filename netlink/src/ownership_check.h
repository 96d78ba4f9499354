// Internal: the ownership checks shared by the netlink backend and FakeXfrm.
#pragma once

#include <fmt/format.h>

#include "storcrypt/netlink/xfrm_types.h"

namespace storcrypt::netlink::detail {

inline Status check_owned_sa(const Ownership& own, const Sa& sa) {
  if (!own.owns_reqid(sa.reqid))
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("reqid: {} is outside storcrypt's reqid range [{}, {}] ({})", sa.reqid, own.reqid_min,
                             own.reqid_max, sa.id().to_string()),
                 "allocate reqids from the configured range");
  if (own.mark && sa.mark != own.mark)
    return Error(ErrorCode::kInvalidInput, fmt::format("mark: {} must carry storcrypt's mark", sa.id().to_string()),
                 "set the SA's mark to the configured ownership mark");
  return ok_status();
}

inline Status check_owned_policy(const Ownership& own, const Policy& p) {
  if (!own.owns_index(p.index))
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("index: {} is outside storcrypt's policy index range [0x{:08x}, 0x{:08x}] ({})", p.index,
                             own.index_min, own.index_max, p.to_string()),
                 "choose the policy's index with Ownership::policy_index() (the index is storcrypt's ownership tag)");
  if (own.mark && p.mark != own.mark)
    return Error(ErrorCode::kInvalidInput, fmt::format("mark: {} must carry storcrypt's mark", p.to_string()),
                 "set the policy's mark to the configured ownership mark");
  return ok_status();
}

}  // namespace storcrypt::netlink::detail
