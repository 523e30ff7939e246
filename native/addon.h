// Per-environment state shared by the native classes.
#pragma once

#include <napi.h>

namespace nodekvm {

struct AddonData {
  Napi::FunctionReference errorFactory;  // set by lib/errors.ts
  Napi::FunctionReference vmClass;
  Napi::FunctionReference vcpuClass;
  Napi::FunctionReference memoryClass;
  Napi::FunctionReference noop;  // called to learn whether JS can still run
};

AddonData& Data(Napi::Env env);

// ioctl() retried on EINTR; returns -1 with errno set on failure.
int IoctlRetry(int fd, unsigned long request, unsigned long arg);

// Reads a bigint or a non-negative safe integer as a u64.
uint64_t ToU64(const Napi::Value& v, const char* name);

size_t PageSize();

}  // namespace nodekvm
