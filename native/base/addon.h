// Per-environment state shared by the native classes.
#pragma once

#include <napi.h>

#include <cstddef>
#include <memory>

namespace nodekvm {

class RunTable;

struct AddonData {
  Napi::FunctionReference errorFactory;  // set by lib/core/errors.ts
  Napi::FunctionReference vmClass;
  Napi::FunctionReference memoryClass;
  Napi::FunctionReference noop;  // called to learn whether JS can still run
  std::shared_ptr<RunTable> runTable;  // vcpu.h
};

AddonData& Data(Napi::Env env);

size_t PageSize();

}  // namespace nodekvm
