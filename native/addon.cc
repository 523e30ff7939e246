// Module entry: the classes, the error factory hook and kernel constants.
#include <linux/kvm.h>
#include <napi.h>
#include <sys/ioctl.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <memory>
#include <string>

#include "base/addon.h"
#include "base/args.h"
#include "base/convert.h"
#include "base/errors.h"
#include "kick.h"
#include "kvm.h"
#include "memory.h"
#include "state.h"
#include "vcpu.h"
#include "vm.h"

namespace nodekvm {

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

size_t PageSize() {
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

namespace {

Napi::Object Constants(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  auto set = [&](const char* name, double v) { o.Set(name, Napi::Number::New(env, v)); };
  set("KVM_API_VERSION", KVM_API_VERSION);
  set("KVM_CAP_USER_MEMORY", KVM_CAP_USER_MEMORY);
  set("KVM_CAP_SET_TSS_ADDR", KVM_CAP_SET_TSS_ADDR);
  set("KVM_CAP_SET_IDENTITY_MAP_ADDR", KVM_CAP_SET_IDENTITY_MAP_ADDR);
  set("KVM_CAP_NR_MEMSLOTS", KVM_CAP_NR_MEMSLOTS);
  set("KVM_CAP_NR_VCPUS", KVM_CAP_NR_VCPUS);
  set("KVM_CAP_MAX_VCPUS", KVM_CAP_MAX_VCPUS);
  set("KVM_CAP_READONLY_MEM", KVM_CAP_READONLY_MEM);
  set("KVM_CAP_IMMEDIATE_EXIT", KVM_CAP_IMMEDIATE_EXIT);
  set("KVM_CAP_SET_GUEST_DEBUG", KVM_CAP_SET_GUEST_DEBUG);
  set("KVM_CAP_EXT_CPUID", KVM_CAP_EXT_CPUID);
  set("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2", KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
  set("KVM_CAP_BINARY_STATS_FD", KVM_CAP_BINARY_STATS_FD);
  set("KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE", KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
  set("KVM_DIRTY_LOG_INITIALLY_SET", KVM_DIRTY_LOG_INITIALLY_SET);
  set("KVM_GUESTDBG_ENABLE", KVM_GUESTDBG_ENABLE);
  set("KVM_GUESTDBG_SINGLESTEP", KVM_GUESTDBG_SINGLESTEP);
  set("KVM_GUESTDBG_USE_SW_BP", KVM_GUESTDBG_USE_SW_BP);
  set("KVM_GUESTDBG_USE_HW_BP", KVM_GUESTDBG_USE_HW_BP);
  set("KVM_MEM_LOG_DIRTY_PAGES", KVM_MEM_LOG_DIRTY_PAGES);
  set("KVM_MEM_READONLY", KVM_MEM_READONLY);
  set("KVM_EXIT_UNKNOWN", KVM_EXIT_UNKNOWN);
  set("KVM_EXIT_EXCEPTION", KVM_EXIT_EXCEPTION);
  set("KVM_EXIT_IO", KVM_EXIT_IO);
  set("KVM_EXIT_HYPERCALL", KVM_EXIT_HYPERCALL);
  set("KVM_EXIT_DEBUG", KVM_EXIT_DEBUG);
  set("KVM_EXIT_HLT", KVM_EXIT_HLT);
  set("KVM_EXIT_MMIO", KVM_EXIT_MMIO);
  set("KVM_EXIT_SHUTDOWN", KVM_EXIT_SHUTDOWN);
  set("KVM_EXIT_FAIL_ENTRY", KVM_EXIT_FAIL_ENTRY);
  set("KVM_EXIT_INTR", KVM_EXIT_INTR);
  set("KVM_EXIT_INTERNAL_ERROR", KVM_EXIT_INTERNAL_ERROR);
  set("KVM_EXIT_SYSTEM_EVENT", KVM_EXIT_SYSTEM_EVENT);
  set("KVM_EXIT_IO_IN", KVM_EXIT_IO_IN);
  set("KVM_EXIT_IO_OUT", KVM_EXIT_IO_OUT);
  set("pageSize", static_cast<double>(PageSize()));
  return o;
}

// Node unloads an addon when the last environment that loaded it (a
// worker, say) goes away, but the kick handler and the watchdog thread are
// process-wide and outlive it: keep this library mapped for good.
void PinLibrary() {
  static const bool pinned = [] {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&PinLibrary), &info) == 0 || info.dli_fname == nullptr) return false;
    return dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) != nullptr;
  }();
  (void)pinned;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  PinLibrary();
  // Owned by the env, which deletes it at teardown.
  env.SetInstanceData(std::make_unique<AddonData>().release());
  AddonData& data = Data(env);
  Napi::Function vm = Vm::Define(env);
  Napi::Function vcpu = Vcpu::Define(env);
  Napi::Function memory = Memory::Define(env);
  data.vmClass = Napi::Persistent(vm);
  data.vcpuClass = Napi::Persistent(vcpu);
  data.memoryClass = Napi::Persistent(memory);
  exports.Set("Kvm", Kvm::Define(env));
  exports.Set("Vm", vm);
  exports.Set("Vcpu", vcpu);
  exports.Set("Memory", memory);
  data.noop = Napi::Persistent(Napi::Function::New(env, [](const Napi::CallbackInfo&) {}, "noop"));
  exports.Set("setKickSignal", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    SetKickSignal(info.Env(), static_cast<int>(ReadInt(info[0], "signal", 1, 64)));
  }, "setKickSignal"));
  exports.Set("setMaxView", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    Memory::SetMaxView(static_cast<double>(ReadU64(info[0], "bytes")));
  }, "setMaxView"));
  exports.Set("kickSignal", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), KickSignal());
  }, "kickSignal"));
  exports.Set("kickVcpu", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), VcpuCore::KickHandle(ReadU64(info[0], "handle")));
  }, "kickVcpu"));
  exports.Set("setErrorFactory", Napi::Function::New<SetErrorFactory>(env, "setErrorFactory"));
  exports.Set("runLayout", RunLayout(env));
  exports.Set("stateLayouts", StateLayouts(env));
  exports.Set("constants", Constants(env));
  return exports;
}

}  // namespace
}  // namespace nodekvm

static Napi::Object InitNodeKvm(Napi::Env env, Napi::Object exports) {
  return nodekvm::Init(env, exports);
}

NODE_API_MODULE(node_kvm, InitNodeKvm)
