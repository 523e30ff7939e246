// One checked way to make an ioctl: the request is named once (the macro
// stringifies it), EINTR is retried, and a failure throws a KvmError whose
// syscall is that name.
#pragma once

#include <napi.h>
#include <sys/ioctl.h>

#include <string>

namespace nodekvm {

struct Ioctl {
  unsigned long request;
  const char* name;
};

#define NODEKVM_IOCTL(req) ::nodekvm::Ioctl{static_cast<unsigned long>(req), #req}

// ioctl() retried on EINTR; returns -1 with errno set on failure.
int IoctlRetry(int fd, unsigned long request, unsigned long arg);

// The ioctl's result; throws KvmError(errno, op.name, detail) on failure.
int CheckedIoctl(Napi::Env env, int fd, Ioctl op, unsigned long arg = 0, const std::string& detail = "");

template <class T>
int CheckedIoctl(Napi::Env env, int fd, Ioctl op, T* arg, const std::string& detail = "") {
  return CheckedIoctl(env, fd, op, reinterpret_cast<unsigned long>(arg), detail);
}

}  // namespace nodekvm
