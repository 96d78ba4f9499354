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
  if (!own.owns_priority(p.priority))
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("priority: {} is outside storcrypt's priority range [{}, {}] ({})", p.priority,
                             own.priority_min, own.priority_max, p.to_string()),
                 "use a priority from the configured range");
  if (own.mark && p.mark != own.mark)
    return Error(ErrorCode::kInvalidInput, fmt::format("mark: {} must carry storcrypt's mark", p.to_string()),
                 "set the policy's mark to the configured ownership mark");
  return ok_status();
}

}  // namespace storcrypt::netlink::detail
