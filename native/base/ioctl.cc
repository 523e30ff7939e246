#include "ioctl.h"

#include <cerrno>

#include "errors.h"

namespace nodekvm {

int IoctlRetry(int fd, unsigned long request, unsigned long arg) {
  int r;
  do {
    r = ::ioctl(fd, request, arg);
  } while (r < 0 && errno == EINTR);
  return r;
}

int CheckedIoctl(Napi::Env env, int fd, Ioctl op, unsigned long arg, const std::string& detail) {
  int r = IoctlRetry(fd, op.request, arg);
  if (r < 0) throw SysError(env, errno, op.name, detail);
  return r;
}

}  // namespace nodekvm
