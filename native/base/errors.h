// The addon's errors, in the project's one taxonomy: KvmError for failed
// syscalls and closed objects, Node-style ERR_* errors for bad arguments.
#pragma once

#include <napi.h>

#include <string>

namespace nodekvm {

// Registered by lib/core/errors.ts: (errno, syscall, detail) => KvmError.
void SetErrorFactory(const Napi::CallbackInfo& info);

// Builds the KvmError for a failed syscall; throw it with `throw`.
Napi::Error SysError(Napi::Env env, int err, const char* syscall, const std::string& detail = "");

// The error for a call on an object that was already closed.
Napi::Error ClosedError(Napi::Env env, const char* what, const char* syscall);

// TypeError, code ERR_INVALID_ARG_TYPE: `The "name" argument must be <expected>`.
Napi::Error ArgTypeError(Napi::Env env, const std::string& name, const std::string& expected);
// RangeError, code ERR_OUT_OF_RANGE: `The value of "name" is out of range. It must be <range>`.
Napi::Error OutOfRangeError(Napi::Env env, const std::string& name, const std::string& range);
// RangeError, code ERR_INVALID_ARG_VALUE: `The argument 'name' <reason>`.
Napi::Error ArgValueError(Napi::Env env, const std::string& name, const std::string& reason);

}  // namespace nodekvm
