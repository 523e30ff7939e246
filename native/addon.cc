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
#include "base/buffers.h"
#include "base/convert.h"
#include "base/errors.h"
#include "eventfd.h"
#include "kick.h"
#include "kvm.h"
#include "memory.h"
#include "rings.h"
#include "state.h"
#include "vcpu.h"
#include "vm.h"

namespace nodekvm {

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

ExternalBuffers& TrackedBuffers(Napi::Env env) { return *Data(env).buffers; }

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
  set("KVM_CAP_DIRTY_LOG_RING_ACQ_REL", KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
  set("KVM_CAP_IRQFD_RESAMPLE", KVM_CAP_IRQFD_RESAMPLE);
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
  // Every number lib/core/constants.ts names: from the header where the
  // build machine's has it, else the kernel's stable ABI value.
#ifdef KVM_CAP_USER_MEMORY
  set("KVM_CAP_USER_MEMORY", KVM_CAP_USER_MEMORY);
#else
  set("KVM_CAP_USER_MEMORY", 3);
#endif
#ifdef KVM_CAP_SET_TSS_ADDR
  set("KVM_CAP_SET_TSS_ADDR", KVM_CAP_SET_TSS_ADDR);
#else
  set("KVM_CAP_SET_TSS_ADDR", 4);
#endif
#ifdef KVM_CAP_EXT_CPUID
  set("KVM_CAP_EXT_CPUID", KVM_CAP_EXT_CPUID);
#else
  set("KVM_CAP_EXT_CPUID", 7);
#endif
#ifdef KVM_CAP_NR_VCPUS
  set("KVM_CAP_NR_VCPUS", KVM_CAP_NR_VCPUS);
#else
  set("KVM_CAP_NR_VCPUS", 9);
#endif
#ifdef KVM_CAP_NR_MEMSLOTS
  set("KVM_CAP_NR_MEMSLOTS", KVM_CAP_NR_MEMSLOTS);
#else
  set("KVM_CAP_NR_MEMSLOTS", 10);
#endif
#ifdef KVM_CAP_SET_GUEST_DEBUG
  set("KVM_CAP_SET_GUEST_DEBUG", KVM_CAP_SET_GUEST_DEBUG);
#else
  set("KVM_CAP_SET_GUEST_DEBUG", 23);
#endif
#ifdef KVM_CAP_SET_IDENTITY_MAP_ADDR
  set("KVM_CAP_SET_IDENTITY_MAP_ADDR", KVM_CAP_SET_IDENTITY_MAP_ADDR);
#else
  set("KVM_CAP_SET_IDENTITY_MAP_ADDR", 37);
#endif
#ifdef KVM_CAP_READONLY_MEM
  set("KVM_CAP_READONLY_MEM", KVM_CAP_READONLY_MEM);
#else
  set("KVM_CAP_READONLY_MEM", 81);
#endif
#ifdef KVM_CAP_MAX_VCPUS
  set("KVM_CAP_MAX_VCPUS", KVM_CAP_MAX_VCPUS);
#else
  set("KVM_CAP_MAX_VCPUS", 66);
#endif
#ifdef KVM_CAP_IMMEDIATE_EXIT
  set("KVM_CAP_IMMEDIATE_EXIT", KVM_CAP_IMMEDIATE_EXIT);
#else
  set("KVM_CAP_IMMEDIATE_EXIT", 136);
#endif
#ifdef KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
  set("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2", KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
#else
  set("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2", 168);
#endif
#ifdef KVM_CAP_BINARY_STATS_FD
  set("KVM_CAP_BINARY_STATS_FD", KVM_CAP_BINARY_STATS_FD);
#else
  set("KVM_CAP_BINARY_STATS_FD", 203);
#endif
#ifdef KVM_CAP_IRQCHIP
  set("KVM_CAP_IRQCHIP", KVM_CAP_IRQCHIP);
#else
  set("KVM_CAP_IRQCHIP", 0);
#endif
#ifdef KVM_CAP_HLT
  set("KVM_CAP_HLT", KVM_CAP_HLT);
#else
  set("KVM_CAP_HLT", 1);
#endif
#ifdef KVM_CAP_MP_STATE
  set("KVM_CAP_MP_STATE", KVM_CAP_MP_STATE);
#else
  set("KVM_CAP_MP_STATE", 14);
#endif
#ifdef KVM_CAP_COALESCED_MMIO
  set("KVM_CAP_COALESCED_MMIO", KVM_CAP_COALESCED_MMIO);
#else
  set("KVM_CAP_COALESCED_MMIO", 15);
#endif
#ifdef KVM_CAP_IRQ_ROUTING
  set("KVM_CAP_IRQ_ROUTING", KVM_CAP_IRQ_ROUTING);
#else
  set("KVM_CAP_IRQ_ROUTING", 25);
#endif
#ifdef KVM_CAP_IRQFD
  set("KVM_CAP_IRQFD", KVM_CAP_IRQFD);
#else
  set("KVM_CAP_IRQFD", 32);
#endif
#ifdef KVM_CAP_PIT2
  set("KVM_CAP_PIT2", KVM_CAP_PIT2);
#else
  set("KVM_CAP_PIT2", 33);
#endif
#ifdef KVM_CAP_PIT_STATE2
  set("KVM_CAP_PIT_STATE2", KVM_CAP_PIT_STATE2);
#else
  set("KVM_CAP_PIT_STATE2", 35);
#endif
#ifdef KVM_CAP_IOEVENTFD
  set("KVM_CAP_IOEVENTFD", KVM_CAP_IOEVENTFD);
#else
  set("KVM_CAP_IOEVENTFD", 36);
#endif
#ifdef KVM_CAP_ADJUST_CLOCK
  set("KVM_CAP_ADJUST_CLOCK", KVM_CAP_ADJUST_CLOCK);
#else
  set("KVM_CAP_ADJUST_CLOCK", 39);
#endif
#ifdef KVM_CAP_VCPU_EVENTS
  set("KVM_CAP_VCPU_EVENTS", KVM_CAP_VCPU_EVENTS);
#else
  set("KVM_CAP_VCPU_EVENTS", 41);
#endif
#ifdef KVM_CAP_DEBUGREGS
  set("KVM_CAP_DEBUGREGS", KVM_CAP_DEBUGREGS);
#else
  set("KVM_CAP_DEBUGREGS", 50);
#endif
#ifdef KVM_CAP_XSAVE
  set("KVM_CAP_XSAVE", KVM_CAP_XSAVE);
#else
  set("KVM_CAP_XSAVE", 55);
#endif
#ifdef KVM_CAP_XCRS
  set("KVM_CAP_XCRS", KVM_CAP_XCRS);
#else
  set("KVM_CAP_XCRS", 56);
#endif
#ifdef KVM_CAP_GET_TSC_KHZ
  set("KVM_CAP_GET_TSC_KHZ", KVM_CAP_GET_TSC_KHZ);
#else
  set("KVM_CAP_GET_TSC_KHZ", 61);
#endif
#ifdef KVM_CAP_SYNC_REGS
  set("KVM_CAP_SYNC_REGS", KVM_CAP_SYNC_REGS);
#else
  set("KVM_CAP_SYNC_REGS", 74);
#endif
#ifdef KVM_CAP_X86_SMM
  set("KVM_CAP_X86_SMM", KVM_CAP_X86_SMM);
#else
  set("KVM_CAP_X86_SMM", 117);
#endif
#ifdef KVM_CAP_SPLIT_IRQCHIP
  set("KVM_CAP_SPLIT_IRQCHIP", KVM_CAP_SPLIT_IRQCHIP);
#else
  set("KVM_CAP_SPLIT_IRQCHIP", 121);
#endif
#ifdef KVM_CAP_MAX_VCPU_ID
  set("KVM_CAP_MAX_VCPU_ID", KVM_CAP_MAX_VCPU_ID);
#else
  set("KVM_CAP_MAX_VCPU_ID", 128);
#endif
#ifdef KVM_CAP_COALESCED_PIO
  set("KVM_CAP_COALESCED_PIO", KVM_CAP_COALESCED_PIO);
#else
  set("KVM_CAP_COALESCED_PIO", 162);
#endif
#ifdef KVM_CAP_NESTED_STATE
  set("KVM_CAP_NESTED_STATE", KVM_CAP_NESTED_STATE);
#else
  set("KVM_CAP_NESTED_STATE", 157);
#endif
#ifdef KVM_CAP_GET_MSR_FEATURES
  set("KVM_CAP_GET_MSR_FEATURES", KVM_CAP_GET_MSR_FEATURES);
#else
  set("KVM_CAP_GET_MSR_FEATURES", 153);
#endif
#ifdef KVM_CAP_X86_USER_SPACE_MSR
  set("KVM_CAP_X86_USER_SPACE_MSR", KVM_CAP_X86_USER_SPACE_MSR);
#else
  set("KVM_CAP_X86_USER_SPACE_MSR", 188);
#endif
#ifdef KVM_CAP_X86_MSR_FILTER
  set("KVM_CAP_X86_MSR_FILTER", KVM_CAP_X86_MSR_FILTER);
#else
  set("KVM_CAP_X86_MSR_FILTER", 189);
#endif
#ifdef KVM_CAP_DIRTY_LOG_RING
  set("KVM_CAP_DIRTY_LOG_RING", KVM_CAP_DIRTY_LOG_RING);
#else
  set("KVM_CAP_DIRTY_LOG_RING", 192);
#endif
#ifdef KVM_CAP_DIRTY_LOG_RING_ACQ_REL
  set("KVM_CAP_DIRTY_LOG_RING_ACQ_REL", KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
#else
  set("KVM_CAP_DIRTY_LOG_RING_ACQ_REL", 223);
#endif
#ifdef KVM_CAP_IRQFD_RESAMPLE
  set("KVM_CAP_IRQFD_RESAMPLE", KVM_CAP_IRQFD_RESAMPLE);
#else
  set("KVM_CAP_IRQFD_RESAMPLE", 82);
#endif
#ifdef KVM_CAP_EXIT_HYPERCALL
  set("KVM_CAP_EXIT_HYPERCALL", KVM_CAP_EXIT_HYPERCALL);
#else
  set("KVM_CAP_EXIT_HYPERCALL", 201);
#endif
#ifdef KVM_CAP_XSAVE2
  set("KVM_CAP_XSAVE2", KVM_CAP_XSAVE2);
#else
  set("KVM_CAP_XSAVE2", 208);
#endif
#ifdef KVM_CAP_USER_MEMORY2
  set("KVM_CAP_USER_MEMORY2", KVM_CAP_USER_MEMORY2);
#else
  set("KVM_CAP_USER_MEMORY2", 231);
#endif
#ifdef KVM_EXIT_UNKNOWN
  set("KVM_EXIT_UNKNOWN", KVM_EXIT_UNKNOWN);
#else
  set("KVM_EXIT_UNKNOWN", 0);
#endif
#ifdef KVM_EXIT_EXCEPTION
  set("KVM_EXIT_EXCEPTION", KVM_EXIT_EXCEPTION);
#else
  set("KVM_EXIT_EXCEPTION", 1);
#endif
#ifdef KVM_EXIT_IO
  set("KVM_EXIT_IO", KVM_EXIT_IO);
#else
  set("KVM_EXIT_IO", 2);
#endif
#ifdef KVM_EXIT_HYPERCALL
  set("KVM_EXIT_HYPERCALL", KVM_EXIT_HYPERCALL);
#else
  set("KVM_EXIT_HYPERCALL", 3);
#endif
#ifdef KVM_EXIT_DEBUG
  set("KVM_EXIT_DEBUG", KVM_EXIT_DEBUG);
#else
  set("KVM_EXIT_DEBUG", 4);
#endif
#ifdef KVM_EXIT_HLT
  set("KVM_EXIT_HLT", KVM_EXIT_HLT);
#else
  set("KVM_EXIT_HLT", 5);
#endif
#ifdef KVM_EXIT_MMIO
  set("KVM_EXIT_MMIO", KVM_EXIT_MMIO);
#else
  set("KVM_EXIT_MMIO", 6);
#endif
#ifdef KVM_EXIT_IRQ_WINDOW_OPEN
  set("KVM_EXIT_IRQ_WINDOW_OPEN", KVM_EXIT_IRQ_WINDOW_OPEN);
#else
  set("KVM_EXIT_IRQ_WINDOW_OPEN", 7);
#endif
#ifdef KVM_EXIT_SHUTDOWN
  set("KVM_EXIT_SHUTDOWN", KVM_EXIT_SHUTDOWN);
#else
  set("KVM_EXIT_SHUTDOWN", 8);
#endif
#ifdef KVM_EXIT_FAIL_ENTRY
  set("KVM_EXIT_FAIL_ENTRY", KVM_EXIT_FAIL_ENTRY);
#else
  set("KVM_EXIT_FAIL_ENTRY", 9);
#endif
#ifdef KVM_EXIT_INTR
  set("KVM_EXIT_INTR", KVM_EXIT_INTR);
#else
  set("KVM_EXIT_INTR", 10);
#endif
#ifdef KVM_EXIT_SET_TPR
  set("KVM_EXIT_SET_TPR", KVM_EXIT_SET_TPR);
#else
  set("KVM_EXIT_SET_TPR", 11);
#endif
#ifdef KVM_EXIT_TPR_ACCESS
  set("KVM_EXIT_TPR_ACCESS", KVM_EXIT_TPR_ACCESS);
#else
  set("KVM_EXIT_TPR_ACCESS", 12);
#endif
#ifdef KVM_EXIT_NMI
  set("KVM_EXIT_NMI", KVM_EXIT_NMI);
#else
  set("KVM_EXIT_NMI", 16);
#endif
#ifdef KVM_EXIT_INTERNAL_ERROR
  set("KVM_EXIT_INTERNAL_ERROR", KVM_EXIT_INTERNAL_ERROR);
#else
  set("KVM_EXIT_INTERNAL_ERROR", 17);
#endif
#ifdef KVM_EXIT_SYSTEM_EVENT
  set("KVM_EXIT_SYSTEM_EVENT", KVM_EXIT_SYSTEM_EVENT);
#else
  set("KVM_EXIT_SYSTEM_EVENT", 24);
#endif
#ifdef KVM_EXIT_IOAPIC_EOI
  set("KVM_EXIT_IOAPIC_EOI", KVM_EXIT_IOAPIC_EOI);
#else
  set("KVM_EXIT_IOAPIC_EOI", 26);
#endif
#ifdef KVM_EXIT_HYPERV
  set("KVM_EXIT_HYPERV", KVM_EXIT_HYPERV);
#else
  set("KVM_EXIT_HYPERV", 27);
#endif
#ifdef KVM_EXIT_X86_RDMSR
  set("KVM_EXIT_X86_RDMSR", KVM_EXIT_X86_RDMSR);
#else
  set("KVM_EXIT_X86_RDMSR", 29);
#endif
#ifdef KVM_EXIT_X86_WRMSR
  set("KVM_EXIT_X86_WRMSR", KVM_EXIT_X86_WRMSR);
#else
  set("KVM_EXIT_X86_WRMSR", 30);
#endif
#ifdef KVM_EXIT_DIRTY_RING_FULL
  set("KVM_EXIT_DIRTY_RING_FULL", KVM_EXIT_DIRTY_RING_FULL);
#else
  set("KVM_EXIT_DIRTY_RING_FULL", 31);
#endif
#ifdef KVM_EXIT_AP_RESET_HOLD
  set("KVM_EXIT_AP_RESET_HOLD", KVM_EXIT_AP_RESET_HOLD);
#else
  set("KVM_EXIT_AP_RESET_HOLD", 32);
#endif
#ifdef KVM_EXIT_X86_BUS_LOCK
  set("KVM_EXIT_X86_BUS_LOCK", KVM_EXIT_X86_BUS_LOCK);
#else
  set("KVM_EXIT_X86_BUS_LOCK", 33);
#endif
#ifdef KVM_EXIT_XEN
  set("KVM_EXIT_XEN", KVM_EXIT_XEN);
#else
  set("KVM_EXIT_XEN", 34);
#endif
#ifdef KVM_EXIT_NOTIFY
  set("KVM_EXIT_NOTIFY", KVM_EXIT_NOTIFY);
#else
  set("KVM_EXIT_NOTIFY", 37);
#endif
#ifdef KVM_EXIT_MEMORY_FAULT
  set("KVM_EXIT_MEMORY_FAULT", KVM_EXIT_MEMORY_FAULT);
#else
  set("KVM_EXIT_MEMORY_FAULT", 39);
#endif
#ifdef KVM_CAP_GUEST_MEMFD
  set("KVM_CAP_GUEST_MEMFD", KVM_CAP_GUEST_MEMFD);
#else
  set("KVM_CAP_GUEST_MEMFD", 234);
#endif
#ifdef KVM_MEM_GUEST_MEMFD
  set("KVM_MEM_GUEST_MEMFD", KVM_MEM_GUEST_MEMFD);
#else
  set("KVM_MEM_GUEST_MEMFD", 4);
#endif
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
  // Cleanup hooks run in reverse order: the VMs' table empties first
  // (closing their vCPUs' cores and slots), then the vCPUs', then guest
  // memory's, after the cores' own hooks and while references can still
  // be dropped.
  data.buffers = std::make_unique<ExternalBuffers>();
  data.memoryTable = std::make_shared<Table<Memory>>(env);
  napi_add_env_cleanup_hook(env, &Table<Memory>::TeardownHook, data.memoryTable.get());
  data.runTable = std::make_shared<Table<Vcpu>>(env);
  napi_add_env_cleanup_hook(env, &Table<Vcpu>::TeardownHook, data.runTable.get());
  data.vmTable = std::make_shared<Table<Vm>>(env);
  napi_add_env_cleanup_hook(env, &Table<Vm>::TeardownHook, data.vmTable.get());
  exports.Set("Kvm", Kvm::Define(env));
  exports.Set("vm", Vm::DefineFunctions(env));
  exports.Set("vcpu", Vcpu::DefineFunctions(env));
  exports.Set("runVcpu", Vcpu::DefineRun(env));
  exports.Set("memory", Memory::DefineFunctions(env));
  exports.Set("EventFd", EventFd::Define(env));
  exports.Set("ringLayouts", RingLayouts(env));
  // A JavaScript function, not a native one: its entry checks V8's
  // interrupts, so a call fails once execution is being terminated (a
  // worker's terminate(), a vm timeout, the REPL's Ctrl+C), and a sync run
  // that ticks over it ends.
  napi_value noop;
  NAPI_THROW_IF_FAILED(env, napi_run_script(env, Napi::String::New(env, "(function noop() {})"), &noop), exports);
  data.noop = Napi::Persistent(Napi::Function(env, noop));
  // A run checks a wasm slot's buffer through the builtin getter: a getter
  // of the caller's own could run JavaScript (a runAsync(), a close())
  // in the middle of the run's checks.
  napi_value wasmBuffer;
  NAPI_THROW_IF_FAILED(
      env,
      napi_run_script(env,
                      Napi::String::New(env, "Object.getOwnPropertyDescriptor(WebAssembly.Memory.prototype, 'buffer').get"),
                      &wasmBuffer),
      exports);
  data.wasmBuffer = Napi::Persistent(Napi::Function(env, wasmBuffer));
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
  exports.Set("clearDetachKeys", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    TrackedBuffers(info.Env()).ClearKeys(info.Env());
  }, "clearDetachKeys"));
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
