#include "vcpu.h"

#include <pthread.h>

#include <cerrno>
#include <string>

#include "base/addon.h"
#include "base/args.h"
#include "base/convert.h"
#include "base/errors.h"
#include "base/flex.h"
#include "base/ioctl.h"
#include "base/tags.h"
#include "kick.h"
#include "vm.h"

namespace nodekvm {

namespace {

struct PendingVcpu {
  std::shared_ptr<VcpuCore> core;
  uint32_t id;
};

// Whether JavaScript can still run in this environment: false once
// worker.terminate() or process.exit() began tearing it down.
bool EnvAlive(Napi::Env env) {
  napi_value global;
  napi_value result;
  if (napi_get_global(env, &global) != napi_ok) return false;
  return napi_call_function(env, global, Data(env).noop.Value(), 0, nullptr, &result) == napi_ok;
}

}  // namespace

Napi::Function Vcpu::Define(Napi::Env env) {
  return DefineClass(env, "Vcpu",
                     {
                         InstanceMethod<&Vcpu::Run>("run"),
                         InstanceMethod<&Vcpu::RunAsync>("runAsync"),
                         InstanceMethod<&Vcpu::Kick>("kick"),
                         InstanceMethod<&Vcpu::GetRegs>("getRegs"),
                         InstanceMethod<&Vcpu::SetRegs>("setRegs"),
                         InstanceMethod<&Vcpu::GetSregs>("getSregs"),
                         InstanceMethod<&Vcpu::SetSregs>("setSregs"),
                         InstanceMethod<&Vcpu::SetCpuid>("setCpuid"),
                         InstanceMethod<&Vcpu::Translate>("translate"),
                         InstanceMethod<&Vcpu::SetGuestDebug>("setGuestDebug"),
                         InstanceMethod<&Vcpu::GetStatsFd>("getStatsFd"),
                         InstanceMethod<&Vcpu::Close>("close"),
                         InstanceAccessor<&Vcpu::GetRunBuffer>("runBuffer"),
                         InstanceAccessor<&Vcpu::GetId>("id"),
                         InstanceAccessor<&Vcpu::GetFd>("fd"),
                         InstanceAccessor<&Vcpu::GetRunning>("running"),
                         InstanceAccessor<&Vcpu::GetKickHandle>("kickHandle"),
                     });
}

Napi::Object Vcpu::NewInstance(Napi::Env env, Napi::Object vm, std::shared_ptr<VcpuCore> core, uint32_t id) {
  PendingVcpu pending{std::move(core), id};
  return Data(env).vcpuClass.New({Napi::External<PendingVcpu>::New(env, &pending), vm});
}

Vcpu::Vcpu(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Vcpu>(info) {
  if (!info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "vCPUs are created with vm.createVcpu()");
  }
  auto* pending = info[0].As<Napi::External<PendingVcpu>>().Data();
  core_ = std::move(pending->core);
  id_ = pending->id;
  Napi::Object vm = info[1].As<Napi::Object>();
  vm_ = Vm::Unwrap(vm);
  vmRef_ = Napi::Persistent(vm);
  Tag(info.This().As<Napi::Object>(), kVcpuTag);
}

Vcpu::~Vcpu() {
  core_->MarkCollected();
  core_->Shutdown();
}

int Vcpu::Fd(const char* syscall, bool forRun) {
  if (core_->closed()) throw ClosedError(Env(), "vCPU", syscall);
  if (core_->busy()) {
    throw SysError(Env(), EBUSY, syscall,
                   forRun ? "a runAsync() is still in flight on this vCPU"
                          : "the vCPU is running (runAsync); await it or kick() it first");
  }
  return core_->fd();
}

// run(timeoutMs?): KVM_RUN on this thread until an exit, a kick from
// another thread (kickVcpu), the deadline, or the environment's teardown.
Napi::Value Vcpu::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fd("KVM_RUN", true);
  int64_t deadline = info[0].IsUndefined() ? 0 : MonotonicNs() + static_cast<int64_t>(ReadMs(info[0], "timeoutMs") * 1e6);
  vm_->ValidateSlots(env);
  EnsureKickHandler(env);
  UnblockKickSignal();
  SyncRun watch{pthread_self(), core_->run(), deadline};
  WatchBegin(&watch);
  struct Guard {
    SyncRun* w;
    ~Guard() { WatchEnd(w); }
  } guard{&watch};
  for (;;) {
    bool kicked = false;
    if (core_->RunOnce(&kicked) >= 0) break;
    int err = errno;
    if (err != EINTR) throw SysError(env, err, "KVM_RUN");
    if (kicked || (deadline != 0 && MonotonicNs() >= deadline)) break;
    if (watch.reason.exchange(SyncRun::kNone) != SyncRun::kTick) break;  // someone else's signal
    // A tick from the watchdog: go on unless this environment is going away.
    if (!EnvAlive(env)) return Napi::Value();
  }
  return Napi::Number::New(env, core_->run()->exit_reason);
}

Napi::Value Vcpu::RunAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fd("KVM_RUN", true);
  vm_->ValidateSlots(env);
  return core_->StartAsync(env);
}

Napi::Value Vcpu::Kick(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !core_->closed() && core_->Kick());
}

Napi::Value Vcpu::GetRegs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  kvm_regs regs{};
  CheckedIoctl(env, Fd("KVM_GET_REGS"), NODEKVM_IOCTL(KVM_GET_REGS), &regs);
  return RegsToJs(env, regs);
}

// Fields left out keep their current values.
void Vcpu::SetRegs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = ReadObject(info[0], "regs");
  int fd = Fd("KVM_SET_REGS");
  kvm_regs regs{};
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_GET_REGS), &regs);
  RegsFromJs(o, regs);
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_SET_REGS), &regs);
}

Napi::Value Vcpu::GetSregs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  kvm_sregs s{};
  CheckedIoctl(env, Fd("KVM_GET_SREGS"), NODEKVM_IOCTL(KVM_GET_SREGS), &s);
  return SregsToJs(env, s);
}

// Like setRegs, a partial object updates only what it names, down to
// single segment fields.
void Vcpu::SetSregs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = ReadObject(info[0], "sregs");
  int fd = Fd("KVM_SET_SREGS");
  kvm_sregs s{};
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_GET_SREGS), &s);
  SregsFromJs(o, s);
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_SET_SREGS), &s);
}

// setCpuid(entries): KVM_SET_CPUID2 with objects shaped like
// kvm.getSupportedCpuid()'s.
void Vcpu::SetCpuid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array entries = ReadArray(info[0], "entries", 4096);
  int fd = Fd("KVM_SET_CPUID2");
  uint32_t n = entries.Length();
  cpuid_.Reserve(n);
  cpuid_.header()->nent = n;
  for (uint32_t i = 0; i < n; i++) {
    CpuidEntryFromJs(ReadObject(entries.Get(i), "entries[" + std::to_string(i) + "]"), cpuid_.entries()[i], i);
  }
  CheckedIoctl(env, fd, Ioctl{KVM_SET_CPUID2_, "KVM_SET_CPUID2"}, cpuid_.arg());
}

// translate(linearAddress): KVM_TRANSLATE through the guest's page tables.
Napi::Value Vcpu::Translate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  kvm_translation t{};
  t.linear_address = ReadU64(info[0], "linearAddress");
  CheckedIoctl(env, Fd("KVM_TRANSLATE"), NODEKVM_IOCTL(KVM_TRANSLATE), &t);
  return TranslationToJs(env, t);
}

// setGuestDebug(control, debugregs[8]): KVM_SET_GUEST_DEBUG.
void Vcpu::SetGuestDebug(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  kvm_guest_debug dbg{};
  dbg.control = ReadU32(info[0], "control");
  Napi::Array regs = ReadArray(info[1], "debugregs", 8);
  for (uint32_t i = 0; i < regs.Length(); i++) {
    dbg.arch.debugreg[i] = ReadU64(regs.Get(i), "debugregs[" + std::to_string(i) + "]");
  }
  CheckedIoctl(env, Fd("KVM_SET_GUEST_DEBUG"), NODEKVM_IOCTL(KVM_SET_GUEST_DEBUG), &dbg);
}

// getStatsFd(): KVM_GET_STATS_FD on the vCPU. The caller owns the fd.
Napi::Value Vcpu::GetStatsFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, CheckedIoctl(env, Fd("KVM_GET_STATS_FD"), NODEKVM_IOCTL(KVM_GET_STATS_FD)));
}

Napi::Value Vcpu::GetRunBuffer(const Napi::CallbackInfo& info) {
  if (core_->closed()) throw ClosedError(info.Env(), "vCPU", "mmap");
  return core_->RunBuffer(info.Env());
}

Napi::Value Vcpu::GetId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), id_); }

Napi::Value Vcpu::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_->fd()); }

Napi::Value Vcpu::GetRunning(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), core_->busy()); }

Napi::Value Vcpu::GetKickHandle(const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), core_->handle());
}

void Vcpu::Close(const Napi::CallbackInfo&) { core_->Shutdown(); }

}  // namespace nodekvm
