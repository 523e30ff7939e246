// Reading arguments from JavaScript, checked: no value is coerced. lib/
// validates first with friendlier messages; these keep the addon safe when
// it is called directly, with errors of the same kinds.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace nodekvm {

// An integer number in [min, max] (both within ±2^53).
int64_t ReadInt(const Napi::Value& v, const std::string& name, int64_t min, int64_t max);
inline uint32_t ReadU32(const Napi::Value& v, const std::string& name) {
  return static_cast<uint32_t>(ReadInt(v, name, 0, UINT32_MAX));
}
// A bigint in [0, max], or a non-negative safe integer.
uint64_t ReadU64(const Napi::Value& v, const std::string& name, uint64_t max = UINT64_MAX);
bool ReadBool(const Napi::Value& v, const std::string& name);
// A finite number of milliseconds in [0, 2^31 - 1].
double ReadMs(const Napi::Value& v, const std::string& name);
std::string ReadPath(const Napi::Value& v, const std::string& name);  // a string without NUL bytes
Napi::Object ReadObject(const Napi::Value& v, const std::string& name);
Napi::Array ReadArray(const Napi::Value& v, const std::string& name, uint32_t maxLength);
Napi::Uint8Array ReadBytes(const Napi::Value& v, const std::string& name);

}  // namespace nodekvm
