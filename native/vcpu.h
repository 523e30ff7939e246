// The vCPU as JavaScript sees it: registers, CPUID, debug, and runs.
#pragma once

#include <napi.h>

#include <memory>

#include "base/flex.h"
#include "vcpu_core.h"

namespace nodekvm {

class Vm;

class Vcpu : public Napi::ObjectWrap<Vcpu> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, Napi::Object vm, std::shared_ptr<VcpuCore> core,
                                  uint32_t id);
  explicit Vcpu(const Napi::CallbackInfo& info);
  ~Vcpu() override;

 private:
  int Fd(const char* syscall, bool forRun = false);
  static Napi::Value RunEntry(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  void Park(const Napi::CallbackInfo& info);
  void Unpark(const Napi::CallbackInfo& info);
  Napi::Value RunAsync(const Napi::CallbackInfo& info);
  Napi::Value Kick(const Napi::CallbackInfo& info);
  void GetRegs(const Napi::CallbackInfo& info);
  void SetRegs(const Napi::CallbackInfo& info);
  void SetCpuid(const Napi::CallbackInfo& info);
  Napi::Value Translate(const Napi::CallbackInfo& info);
  void SetGuestDebug(const Napi::CallbackInfo& info);
  Napi::Value GetStatsFd(const Napi::CallbackInfo& info);
  Napi::Value GetRunBuffer(const Napi::CallbackInfo& info);
  Napi::Value GetId(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetRunning(const Napi::CallbackInfo& info);
  Napi::Value GetKickHandle(const Napi::CallbackInfo& info);
  Napi::Value GetState(const Napi::CallbackInfo& info);
  void SetState(const Napi::CallbackInfo& info);
  Napi::Value GetNestedState(const Napi::CallbackInfo& info);
  void SetNestedState(const Napi::CallbackInfo& info);
  Napi::Value GetMsrs(const Napi::CallbackInfo& info);
  Napi::Value SetMsrs(const Napi::CallbackInfo& info);
  Napi::Value GetCpuid(const Napi::CallbackInfo& info);
  Napi::Value GetTscKhz(const Napi::CallbackInfo& info);
  void SetTscKhz(const Napi::CallbackInfo& info);
  void Interrupt(const Napi::CallbackInfo& info);
  void Nmi(const Napi::CallbackInfo& info);
  void Smi(const Napi::CallbackInfo& info);
  Napi::Value EnableCap(const Napi::CallbackInfo& info);
  size_t XsaveSize();
  void SetSyncRegs(const Napi::CallbackInfo& info);
  void CompletePendingIo(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);

  std::shared_ptr<VcpuCore> core_;
  Vm* vm_ = nullptr;
  Napi::ObjectReference vmRef_;  // the VM must outlive its vCPU's wrapper
  uint32_t id_ = 0;
  CpuidBuffer cpuid_;  // reused by setCpuid() and getCpuid()
  MsrsBuffer msrs_;    // reused by getMsrs() and setMsrs()

  Napi::Value HarvestDirtyRing(const Napi::CallbackInfo& info);  // rings.cc
};

}  // namespace nodekvm
