#include "storcrypt/dm/policy.h"

namespace storcrypt::dm {

Status check_volume_create(const AtRestPolicy& policy, bool encrypted) {
  if (policy.encryption_always_on && !encrypted)
    return Error(ErrorCode::kConflict, "at-rest encryption is always on for this pool: unencrypted volumes are refused",
                 "create the volume encrypted (the default)", "xEncryptionRequired");
  return ok_status();
}

Status check_policy_change(const AtRestPolicy& current, const AtRestPolicy& proposed) {
  if (current.encryption_always_on && !proposed.encryption_always_on)
    return Error(ErrorCode::kConflict, "at-rest encryption cannot be turned off once it is always on",
                 "keep encryption_always_on=true; to retire the data, crypto-erase the volumes", "xEncryptionAlwaysOn");
  return ok_status();
}

}  // namespace storcrypt::dm
