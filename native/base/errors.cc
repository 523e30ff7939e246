#include "errors.h"

#include <cstring>

#include "addon.h"

namespace nodekvm {

void SetErrorFactory(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw ArgTypeError(info.Env(), "factory", "of type function");
  Data(info.Env()).errorFactory = Napi::Persistent(info[0].As<Napi::Function>());
}

Napi::Error SysError(Napi::Env env, int err, const char* syscall, const std::string& detail) {
  Napi::FunctionReference& factory = Data(env).errorFactory;
  if (!factory.IsEmpty()) {
    Napi::Value e = factory.Call({Napi::Number::New(env, err), Napi::String::New(env, syscall),
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

namespace {
template <class E>
Napi::Error Coded(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = E::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// Node says "argument" for a parameter and "property" for a field of one.
const char* Kind(const std::string& name) {
  return name.find('.') != std::string::npos || name.find('[') != std::string::npos ? "property" : "argument";
}
}  // namespace

Napi::Error ArgTypeError(Napi::Env env, const std::string& name, const std::string& expected) {
  return Coded<Napi::TypeError>(env, "ERR_INVALID_ARG_TYPE",
                                "The \"" + name + "\" " + Kind(name) + " must be " + expected);
}

Napi::Error OutOfRangeError(Napi::Env env, const std::string& name, const std::string& range) {
  return Coded<Napi::RangeError>(env, "ERR_OUT_OF_RANGE",
                                 "The value of \"" + name + "\" is out of range. It must be " + range);
}

Napi::Error ArgValueError(Napi::Env env, const std::string& name, const std::string& reason) {
  return Coded<Napi::RangeError>(env, "ERR_INVALID_ARG_VALUE",
                                 std::string("The ") + Kind(name) + " '" + name + "' " + reason);
}

}  // namespace nodekvm
