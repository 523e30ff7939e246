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

// The arguments of a call to one of a vCPU's functions, after its slot:
// what node-addon-api's CallbackInfo gives a method.
class Args {
 public:
  Args(napi_env env, size_t argc, const napi_value* argv) : env_(env), argc_(argc), argv_(argv) {}
  Napi::Env Env() const { return Napi::Env(env_); }
  size_t Length() const { return argc_; }
  Napi::Value operator[](size_t i) const {
    return i < argc_ ? Napi::Value(env_, argv_[i]) : Env().Undefined();
  }

 private:
  napi_env env_;
  size_t argc_;
  const napi_value* argv_;
};

// One environment's vCPUs, owned here and named by a small number (their
// slot) that lib/ passes to every vCPU function. A vCPU has no JavaScript
// wrapper of its own: napi_new_instance and napi_wrap cost a tenth of a
// VM's life in user time, and napi_unwrap is a private-property lookup on
// every call. lib/ releases a slot when its handle is garbage-collected.
class RunTable {
 public:
  uint32_t Add(std::unique_ptr<Vcpu> v);
  // Destroys the vCPU (closing it); a stale slot does nothing.
  void Remove(uint32_t slot);
  Vcpu* Find(uint32_t slot) const {
    uint32_t i = slot & kIndexMask;
    return i < entries_.size() && entries_[i].slot == slot ? entries_[i].vcpu.get() : nullptr;
  }
  // A VM being destroyed: its vCPUs (closed by then) forget it.
  void ForgetVm(const Vm* vm);
  // At the environment's teardown, before the finalizers.
  void Clear();

 private:
  static constexpr uint32_t kIndexBits = 20;
  static constexpr uint32_t kIndexMask = (1u << kIndexBits) - 1;
  struct Entry {
    std::unique_ptr<Vcpu> vcpu;
    uint32_t slot = 0;  // index, and in the high bits a count of its reuses
  };
  std::vector<Entry> entries_;
  std::vector<uint32_t> free_;
};

class Vcpu {
 public:
  Vcpu(Napi::Env env, std::shared_ptr<VcpuCore> core, uint32_t id, Vm* vm);
  ~Vcpu();
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
  template <typename R, R (Vcpu::*M)(const Args&)>
  static napi_value Call(napi_env env, napi_callback_info cbinfo);
  static napi_value Release(napi_env env, napi_callback_info cbinfo);
  Napi::Env Env() const { return Napi::Env(env_); }
 private:
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
