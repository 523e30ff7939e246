// Turning failed syscalls into JavaScript KvmError objects.
#pragma once

#include <napi.h>

#include <string>

namespace nodekvm {

// Registered by lib/errors.ts: (errno, syscall, detail) => KvmError.
void SetErrorFactory(const Napi::CallbackInfo& info);

// Builds the KvmError for a failed syscall; throw it with `throw`.
Napi::Error SysError(Napi::Env env, int err, const char* syscall,
                     const std::string& detail = "");

// The error for a call on an object that was already closed.
Napi::Error ClosedError(Napi::Env env, const char* what, const char* syscall);

}  // namespace nodekvm
