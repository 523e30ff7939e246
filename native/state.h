// A vCPU's fixed-size kernel state structs (FPU, LAPIC, XSAVE, XCRs, debug
// registers, MP state, events, nested state) as raw bytes: lib/core/state.ts
// decodes them with the offsets StateLayouts() reports, and snapshots keep
// them byte for byte.
#pragma once

#include <napi.h>

#include <cstddef>
#include <string>
#include <vector>

namespace nodekvm {

struct StateKind {
  const char* name;
  const char* getName;
  const char* setName;
  unsigned long get;
  unsigned long set;
  size_t size;
};

// The kind called `name`, or a TypeError naming the valid ones.
const StateKind& FindStateKind(Napi::Env env, const std::string& name);

// Offsets and sizes of the state structs' fields, from the kernel headers.
Napi::Object StateLayouts(Napi::Env env);

}  // namespace nodekvm
