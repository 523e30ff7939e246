#include "args.h"

#include <cmath>

#include "errors.h"

namespace nodekvm {

namespace {
constexpr double kMaxSafe = 9007199254740991.0;
}

int64_t ReadInt(const Napi::Value& v, const std::string& name, int64_t min, int64_t max) {
  if (!v.IsNumber()) throw ArgTypeError(v.Env(), name, "of type number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    throw OutOfRangeError(v.Env(), name, "an integer >= " + std::to_string(min) + " && <= " + std::to_string(max));
  }
  return static_cast<int64_t>(d);
}

uint64_t ReadU64(const Napi::Value& v, const std::string& name, uint64_t max) {
  uint64_t r = 0;
  if (v.IsBigInt()) {
    bool lossless = false;
    r = v.As<Napi::BigInt>().Uint64Value(&lossless);
    // Uint64Value wraps negatives and truncates past 64 bits: both lossy.
    if (!lossless) throw OutOfRangeError(v.Env(), name, ">= 0n && < 2n ** 64n");
  } else if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d < 0 || d > kMaxSafe || std::floor(d) != d) {
      throw OutOfRangeError(v.Env(), name, "a non-negative safe integer (use a bigint above 2 ** 53)");
    }
    r = static_cast<uint64_t>(d);
  } else {
    throw ArgTypeError(v.Env(), name, "of type bigint or number");
  }
  if (r > max) throw OutOfRangeError(v.Env(), name, "<= " + std::to_string(max));
  return r;
}

bool ReadBool(const Napi::Value& v, const std::string& name) {
  if (!v.IsBoolean()) throw ArgTypeError(v.Env(), name, "of type boolean");
  return v.As<Napi::Boolean>().Value();
}

double ReadMs(const Napi::Value& v, const std::string& name) {
  return static_cast<double>(ReadInt(v, name, 0, 2147483647));
}

std::string ReadPath(const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) throw ArgTypeError(v.Env(), name, "of type string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.empty() || s.find('\0') != std::string::npos) {
    throw ArgValueError(v.Env(), name, "must be a non-empty string without null bytes");
  }
  return s;
}

Napi::Object ReadObject(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || v.IsArray()) throw ArgTypeError(v.Env(), name, "of type object");
  return v.As<Napi::Object>();
}

Napi::Array ReadArray(const Napi::Value& v, const std::string& name, uint32_t maxLength) {
  if (!v.IsArray()) throw ArgTypeError(v.Env(), name, "an instance of Array");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > maxLength) {
    throw OutOfRangeError(v.Env(), name + ".length", "<= " + std::to_string(maxLength));
  }
  return a;
}

Napi::Uint8Array ReadBytes(const Napi::Value& v, const std::string& name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw ArgTypeError(v.Env(), name, "an instance of Uint8Array");
  }
  return v.As<Napi::Uint8Array>();
}

}  // namespace nodekvm
