#include "errors.h"

#include <cstring>

#include "addon.h"

namespace nodekvm {

void SetErrorFactory(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) {
    throw Napi::TypeError::New(info.Env(), "setErrorFactory expects a function");
  }
  Data(info.Env()).errorFactory = Napi::Persistent(info[0].As<Napi::Function>());
}

Napi::Error SysError(Napi::Env env, int err, const char* syscall,
                     const std::string& detail) {
  Napi::FunctionReference& factory = Data(env).errorFactory;
  if (!factory.IsEmpty()) {
    Napi::Value e = factory.Call({Napi::Number::New(env, err),
                                  Napi::String::New(env, syscall),
                                  Napi::String::New(env, detail)});
    return Napi::Error(env, e);
  }
  // Only reached when the addon is used without lib/.
  std::string msg = std::string(syscall) + ": " + std::strerror(err);
  if (!detail.empty()) msg += " (" + detail + ")";
  return Napi::Error::New(env, msg);
}

Napi::Error ClosedError(Napi::Env env, const char* what, const char* syscall) {
  return SysError(env, EBADF, syscall, std::string(what) + " is closed");
}

}  // namespace nodekvm
