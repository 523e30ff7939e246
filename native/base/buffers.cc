#include "buffers.h"

#include <dlfcn.h>

#include <algorithm>

namespace nodekvm {

namespace {

// void v8::ArrayBuffer::SetDetachKey(v8::Local<v8::Value>): under the
// Itanium C++ ABI, `this` and then the Local (one pointer, passed as
// one). A napi_value is the pointer a Local holds: Node-API makes one
// from the other by a cast.
using SetDetachKeyFn = void (*)(napi_value self, napi_value key);

SetDetachKeyFn SetDetachKey() {
  static const auto fn = reinterpret_cast<SetDetachKeyFn>(
      dlsym(RTLD_DEFAULT, "_ZN2v811ArrayBuffer12SetDetachKeyENS_5LocalINS_5ValueEEE"));
  return fn;
}

// bool v8::ArrayBuffer::IsDetachable() const
using IsDetachableFn = bool (*)(napi_value self);

IsDetachableFn IsDetachableCall() {
  static const auto fn =
      reinterpret_cast<IsDetachableFn>(dlsym(RTLD_DEFAULT, "_ZNK2v811ArrayBuffer12IsDetachableEv"));
  return fn;
}

bool IsArrayBuffer(napi_env env, napi_value v) {
  bool is = false;
  return napi_is_arraybuffer(env, v, &is) == napi_ok && is;
}

// Marks a buffer as listed, so that borrowing it again adds nothing.
constexpr napi_type_tag kTracked = {0x6e6f64656b766d31ULL, 0x7472616365643a31ULL};

}  // namespace

void ClearDetachKey(napi_env env, napi_value arraybuffer) {
  SetDetachKeyFn fn = SetDetachKey();
  napi_value undefined;
  if (fn == nullptr || !IsArrayBuffer(env, arraybuffer) || napi_get_undefined(env, &undefined) != napi_ok) return;
  fn(arraybuffer, undefined);
}

bool IsDetachable(napi_env env, napi_value arraybuffer) {
  IsDetachableFn fn = IsDetachableCall();
  return fn == nullptr || !IsArrayBuffer(env, arraybuffer) || fn(arraybuffer);
}

void DetachBuffer(Napi::ArrayBuffer ab) {
  if (ab.IsEmpty() || ab.IsDetached()) return;
  ClearDetachKey(ab.Env(), ab);
  ab.Detach();
}

void ExternalBuffers::TrackOnce(Napi::ArrayBuffer ab) {
  bool listed = false;
  if (napi_check_object_type_tag(ab.Env(), ab, &kTracked, &listed) != napi_ok || listed) return;
  if (napi_type_tag_object(ab.Env(), ab, &kTracked) != napi_ok) return;
  Track(ab);
}

void ExternalBuffers::Track(Napi::ArrayBuffer ab) {
  if (refs_.size() >= pruneAt_) {
    refs_.erase(std::remove_if(refs_.begin(), refs_.end(), [](auto& r) { return r.Value().IsEmpty(); }),
                refs_.end());
    pruneAt_ = std::max<size_t>(64, refs_.size() * 2);
  }
  refs_.push_back(Napi::Weak(ab));
}

void ExternalBuffers::ClearKeys(Napi::Env env) {
  for (auto& r : refs_) {
    Napi::ArrayBuffer ab = r.Value();
    if (!ab.IsEmpty()) ClearDetachKey(env, ab);
  }
}

}  // namespace nodekvm
