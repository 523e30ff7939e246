// Type tags on the native objects, so that an object of one class (or a
// plain object dressed as one) is never taken for another.
#pragma once

#include <napi.h>

#include <string>

#include "errors.h"

namespace nodekvm {

// One 128-bit tag per class; the values only need to differ from each
// other and from other addons'.
constexpr napi_type_tag kKvmTag = {0x6e6f64656b766d01ULL, 0x4b766d0000000001ULL};
constexpr napi_type_tag kVmTag = {0x6e6f64656b766d01ULL, 0x566d000000000002ULL};
constexpr napi_type_tag kVcpuTag = {0x6e6f64656b766d01ULL, 0x5663707500000003ULL};
constexpr napi_type_tag kMemoryTag = {0x6e6f64656b766d01ULL, 0x4d656d0000000004ULL};

inline void Tag(Napi::Object o, const napi_type_tag& tag) { o.TypeTag(&tag); }

// The native object behind `v`, if it carries T's tag; else a TypeError.
template <class T>
T* UnwrapTagged(const Napi::Value& v, const napi_type_tag& tag, const std::string& name, const char* expected) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&tag)) throw ArgTypeError(v.Env(), name, expected);
  return T::Unwrap(v.As<Napi::Object>());
}

}  // namespace nodekvm
