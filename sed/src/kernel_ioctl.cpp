// storcrypt: the real sed-opal ioctl seam (open(2) + ioctl(2)).
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

#include "storcrypt/sed/opal.h"

namespace storcrypt::sed {
namespace {

class KernelIoctl final : public SedIoctl {
 public:
  long call(const std::string& device, unsigned long request, void* arg) override {
    const int fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -errno;
    long rc = ::ioctl(fd, request, arg);
    if (rc < 0) rc = -errno;
    ::close(fd);
    return rc;
  }
  int exclusive_check(const std::string& device) override {
    const int fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC | O_EXCL | O_NONBLOCK);
    if (fd < 0) return -errno;
    ::close(fd);
    return 0;
  }
};

}  // namespace

std::unique_ptr<SedIoctl> make_kernel_ioctl() { return std::make_unique<KernelIoctl>(); }

}  // namespace storcrypt::sed
