// The /dev/kvm system fd: API version, capabilities, VM creation.
#pragma once

#include <napi.h>

#include "base/fd.h"

namespace nodekvm {

class Kvm : public Napi::ObjectWrap<Kvm> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Kvm(const Napi::CallbackInfo& info);

 private:
  int Fd(const char* syscall);
  Napi::Value ApiVersion(const Napi::CallbackInfo& info);
  Napi::Value CheckExtension(const Napi::CallbackInfo& info);
  Napi::Value VcpuMmapSize(const Napi::CallbackInfo& info);
  Napi::Value CreateVm(const Napi::CallbackInfo& info);
  Napi::Value GetSupportedCpuid(const Napi::CallbackInfo& info);
  Napi::Value GetMsrIndexList(const Napi::CallbackInfo& info);
  Napi::Value GetMsrs(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);

  UniqueFd fd_;
  int vcpuMmapSize_ = 0;  // KVM_GET_VCPU_MMAP_SIZE, asked once
};

}  // namespace nodekvm
