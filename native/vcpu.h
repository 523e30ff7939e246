// The vCPU as JavaScript sees it: registers, CPUID, debug, and runs.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "base/flex.h"
#include "vcpu_core.h"

namespace nodekvm {

class Vm;
class Vcpu;

// One environment's vCPUs by a small number, so that run(), called once
// per exit, finds its vCPU by index: napi_unwrap is a private-property
// lookup that cost a fifth of the native layer's time per exit.
class RunTable {
 public:
  uint32_t Add(Vcpu* v);
  void Remove(uint32_t slot);
  Vcpu* Find(uint32_t slot) const {
    uint32_t i = slot & kIndexMask;
    return i < entries_.size() && entries_[i].slot == slot ? entries_[i].vcpu : nullptr;
  }

 private:
  static constexpr uint32_t kIndexBits = 20;
  static constexpr uint32_t kIndexMask = (1u << kIndexBits) - 1;
  struct Entry {
    Vcpu* vcpu = nullptr;
    uint32_t slot = 0;  // index, and in the high bits a count of its reuses
  };
  std::vector<Entry> entries_;
  std::vector<uint32_t> free_;
};

class Vcpu : public Napi::ObjectWrap<Vcpu> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, Napi::Object vm, std::shared_ptr<VcpuCore> core,
                                  uint32_t id);
  explicit Vcpu(const Napi::CallbackInfo& info);
  ~Vcpu() override;
  // The binding's runVcpu(slot, timeoutMs?): run() by RunTable slot.
  static Napi::Function DefineRun(Napi::Env env);

 private:
  int Fd(const char* syscall, bool forRun = false);
  static napi_value RunSlot(napi_env env, napi_callback_info info);
  napi_value Run(napi_env env, napi_value timeoutMs);
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
  std::shared_ptr<RunTable> runTable_;  // outlives the environment's own data at teardown
  uint32_t runSlot_ = 0;
  Vm* vm_ = nullptr;
  Napi::ObjectReference vmRef_;  // the VM must outlive its vCPU's wrapper
  uint32_t id_ = 0;
  CpuidBuffer cpuid_;  // reused by setCpuid() and getCpuid()
  MsrsBuffer msrs_;    // reused by getMsrs() and setMsrs()

  Napi::Value HarvestDirtyRing(const Napi::CallbackInfo& info);  // rings.cc
};

}  // namespace nodekvm
