// storcrypt: the always-on at-rest encryption policy.
#pragma once

#include "storcrypt/common/result.h"

namespace storcrypt::dm {

struct AtRestPolicy {
  /// When true the pool stores data only on encrypted volumes, and the flag
  /// cannot be turned off again.
  bool encryption_always_on = false;
};

/// Refuses an unencrypted volume in a pool whose policy is always-on (xEncryptionRequired).
Status check_volume_create(const AtRestPolicy& policy, bool encrypted);
/// Refuses turning always-on encryption off (xEncryptionAlwaysOn).
Status check_policy_change(const AtRestPolicy& current, const AtRestPolicy& proposed);

}  // namespace storcrypt::dm
