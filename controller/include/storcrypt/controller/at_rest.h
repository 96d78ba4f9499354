// storcrypt controller: the kernel seam of the at-rest nouns (volume, keymedia).
#pragma once

#include <memory>

#include "storcrypt/dm/crypt_backend.h"
#include "storcrypt/dm/device_probe.h"

namespace storcrypt::controller {

/// How the at-rest nouns reach LUKS2/dm-crypt and look at block devices.
/// storcryptd uses libcryptsetup (dm::make_libcryptsetup_backend) and libblkid
/// (dm::make_system_probe); unit tests put in-memory fakes (storcrypt::dm_fake)
/// in the Context (ctx.set_service(std::make_shared<AtRestKernel>(...))) before
/// the first volume or keymedia call. Either member left empty gets the real one.
struct AtRestKernel {
  std::shared_ptr<dm::CryptBackend> backend;
  std::shared_ptr<dm::DeviceProbe> probe;
};

}  // namespace storcrypt::controller
