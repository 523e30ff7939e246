// Type tags on the native objects passed as arguments (guest memory), so
// that an object of another class (or a plain object dressed as one) is
// never taken for one. A method's receiver needs none: V8 refuses a `this`
// of another class ("Illegal invocation"), and a tag costs each object a
// private property.
#pragma once

#include <napi.h>

#include <string>

#include "errors.h"

namespace nodekvm {

// A 128-bit tag; it only needs to differ from other addons'.
constexpr napi_type_tag kMemoryTag = {0x6e6f64656b766d01ULL, 0x4d656d0000000004ULL};

inline void Tag(Napi::Object o, const napi_type_tag& tag) { o.TypeTag(&tag); }

// The native object behind `v`, if it carries T's tag; else a TypeError.
template <class T>
T* UnwrapTagged(const Napi::Value& v, const napi_type_tag& tag, const std::string& name, const char* expected) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&tag)) throw ArgTypeError(v.Env(), name, expected);
  return T::Unwrap(v.As<Napi::Object>());
}

}  // namespace nodekvm
