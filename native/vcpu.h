// The vCPU as JavaScript sees it: registers, CPUID, debug, and runs.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "base/flex.h"
#include "base/table.h"
#include "vcpu_core.h"

namespace nodekvm {

class Vm;
class Vcpu;

// One environment's vCPUs (base/table.h). run() finds its vCPU by index
// once per exit, as every other vCPU function does.
using RunTable = Table<Vcpu>;

class Vcpu {
 public:
  static constexpr const char* kSlotOf = "a vCPU's slot";
  Vcpu(Napi::Env env, std::shared_ptr<VcpuCore> core, uint32_t id, Vm* vm);
  ~Vcpu();
  bool Releasable() const { return true; }
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;
  // The binding's vcpu functions, each taking a slot first, and
  // runVcpu(slot, timeoutMs?).
  static Napi::Object DefineFunctions(Napi::Env env);
  static Napi::Function DefineRun(Napi::Env env);
  void ForgetVm(const Vm* vm) {
    if (vm_ == vm) vm_ = nullptr;
  }

 private:
  Napi::Env Env() const { return Napi::Env(env_); }
  int Fd(const char* syscall, bool forRun = false);
  static napi_value RunSlot(napi_env env, napi_callback_info info);
  napi_value Run(napi_env env, napi_value timeoutMs);
  void Park(const Args& info);
  void Unpark(const Args& info);
  Napi::Value RunAsync(const Args& info);
  Napi::Value Kick(const Args& info);
  void GetRegs(const Args& info);
  void SetRegs(const Args& info);
  void SetCpuid(const Args& info);
  Napi::Value Translate(const Args& info);
  void SetGuestDebug(const Args& info);
  Napi::Value GetStatsFd(const Args& info);
  Napi::Value GetRunBuffer(const Args& info);
  Napi::Value GetId(const Args& info);
  Napi::Value GetFd(const Args& info);
  Napi::Value GetRunning(const Args& info);
  Napi::Value GetKickHandle(const Args& info);
  Napi::Value GetState(const Args& info);
  void SetState(const Args& info);
  Napi::Value GetNestedState(const Args& info);
  void SetNestedState(const Args& info);
  Napi::Value GetMsrs(const Args& info);
  Napi::Value SetMsrs(const Args& info);
  Napi::Value GetCpuid(const Args& info);
  Napi::Value GetTscKhz(const Args& info);
  void SetTscKhz(const Args& info);
  void Interrupt(const Args& info);
  void Nmi(const Args& info);
  void Smi(const Args& info);
  Napi::Value EnableCap(const Args& info);
  size_t XsaveSize();
  void SetSyncRegs(const Args& info);
  void CompletePendingIo(const Args& info);
  void Close(const Args& info);

  std::shared_ptr<VcpuCore> core_;
  napi_env env_;
  // Valid while the core is open: a VM closes its vCPUs' cores before it
  // goes (ForgetVm), and every use comes after Fd() or closed().
  Vm* vm_ = nullptr;
  uint32_t id_ = 0;
  CpuidBuffer cpuid_;  // reused by setCpuid() and getCpuid()
  MsrsBuffer msrs_;    // reused by getMsrs() and setMsrs()

  Napi::Value HarvestDirtyRing(const Args& info);  // rings.cc
};

}  // namespace nodekvm
