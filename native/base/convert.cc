#include "convert.h"

#include <cstddef>
#include <string>
#include <utility>

#include "args.h"

namespace nodekvm {

namespace {

using CpuidField = __u32 kvm_cpuid_entry2::*;
const std::pair<const char*, CpuidField> kCpuid[] = {
    {"function", &kvm_cpuid_entry2::function}, {"index", &kvm_cpuid_entry2::index},
    {"flags", &kvm_cpuid_entry2::flags},       {"eax", &kvm_cpuid_entry2::eax},
    {"ebx", &kvm_cpuid_entry2::ebx},           {"ecx", &kvm_cpuid_entry2::ecx},
    {"edx", &kvm_cpuid_entry2::edx},
};

Napi::BigInt U64(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

}  // namespace

Napi::Object CpuidEntryToJs(Napi::Env env, const kvm_cpuid_entry2& e) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [name, field] : kCpuid) o.Set(name, Napi::Number::New(env, e.*field));
  return o;
}

void CpuidEntryFromJs(const Napi::Object& o, kvm_cpuid_entry2& e, uint32_t index) {
  for (const auto& [name, field] : kCpuid) {
    e.*field = ReadU32(o.Get(name), "entries[" + std::to_string(index) + "]." + name);
  }
}

Napi::Array MsrEntriesToJs(Napi::Env env, const kvm_msr_entry* entries, uint32_t count) {
  Napi::Array out = Napi::Array::New(env, count);
  for (uint32_t i = 0; i < count; i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Napi::Number::New(env, entries[i].index));
    o.Set("value", U64(env, entries[i].data));
    out.Set(i, o);
  }
  return out;
}

void MsrIndicesFromJs(const Napi::Value& indices, MsrsBuffer& msrs) {
  Napi::Array list = ReadArray(indices, "indices", 4096);
  uint32_t n = list.Length();
  msrs.Reserve(n);
  msrs.header()->nmsrs = n;
  for (uint32_t i = 0; i < n; i++) {
    msrs.entries()[i] = kvm_msr_entry{ReadU32(list.Get(i), "indices[" + std::to_string(i) + "]"), 0, 0};
  }
}

void MsrEntriesFromJs(const Napi::Value& entries, MsrsBuffer& msrs) {
  Napi::Array list = ReadArray(entries, "entries", 4096);
  uint32_t n = list.Length();
  msrs.Reserve(n);
  msrs.header()->nmsrs = n;
  for (uint32_t i = 0; i < n; i++) {
    std::string name = "entries[" + std::to_string(i) + "]";
    Napi::Object o = ReadObject(list.Get(i), name);
    msrs.entries()[i] = kvm_msr_entry{ReadU32(o.Get("index"), name + ".index"), 0, ReadU64(o.Get("value"), name + ".value")};
  }
}

Napi::Object TranslationToJs(Napi::Env env, const kvm_translation& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("physicalAddress", U64(env, t.physical_address));
  o.Set("valid", Napi::Boolean::New(env, t.valid != 0));
  o.Set("writeable", Napi::Boolean::New(env, t.writeable != 0));
  o.Set("usermode", Napi::Boolean::New(env, t.usermode != 0));
  return o;
}

Napi::Object RunLayout(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  auto set = [&](const char* name, size_t v) { o.Set(name, Napi::Number::New(env, static_cast<double>(v))); };
  set("immediateExit", offsetof(kvm_run, immediate_exit));
  set("exitReason", offsetof(kvm_run, exit_reason));
  set("ioDirection", offsetof(kvm_run, io.direction));
  set("ioSize", offsetof(kvm_run, io.size));
  set("ioPort", offsetof(kvm_run, io.port));
  set("ioCount", offsetof(kvm_run, io.count));
  set("ioDataOffset", offsetof(kvm_run, io.data_offset));
  set("mmioPhysAddr", offsetof(kvm_run, mmio.phys_addr));
  set("mmioData", offsetof(kvm_run, mmio.data));
  set("mmioLen", offsetof(kvm_run, mmio.len));
  set("mmioIsWrite", offsetof(kvm_run, mmio.is_write));
  set("failEntryReason", offsetof(kvm_run, fail_entry.hardware_entry_failure_reason));
  set("failEntryCpu", offsetof(kvm_run, fail_entry.cpu));
  set("hwExitReason", offsetof(kvm_run, hw.hardware_exit_reason));
  set("exException", offsetof(kvm_run, ex.exception));
  set("exErrorCode", offsetof(kvm_run, ex.error_code));
  set("internalSuberror", offsetof(kvm_run, internal.suberror));
  set("internalNdata", offsetof(kvm_run, internal.ndata));
  set("internalData", offsetof(kvm_run, internal.data));
  set("debugException", offsetof(kvm_run, debug.arch.exception));
  set("debugPc", offsetof(kvm_run, debug.arch.pc));
  set("debugDr6", offsetof(kvm_run, debug.arch.dr6));
  set("debugDr7", offsetof(kvm_run, debug.arch.dr7));
  set("systemEventType", offsetof(kvm_run, system_event.type));
  set("systemEventNdata", offsetof(kvm_run, system_event.ndata));
  set("systemEventData", offsetof(kvm_run, system_event.data));
  set("hypercallNr", offsetof(kvm_run, hypercall.nr));
  set("hypercallArgs", offsetof(kvm_run, hypercall.args));
  set("hypercallRet", offsetof(kvm_run, hypercall.ret));
  set("hypercallFlags", offsetof(kvm_run, hypercall.longmode));
  set("tprAccessRip", offsetof(kvm_run, tpr_access.rip));
  set("tprAccessIsWrite", offsetof(kvm_run, tpr_access.is_write));
  set("eoiVector", offsetof(kvm_run, eoi.vector));
  set("msrError", offsetof(kvm_run, msr.error));
  set("msrReason", offsetof(kvm_run, msr.reason));
  set("msrIndex", offsetof(kvm_run, msr.index));
  set("msrData", offsetof(kvm_run, msr.data));
  set("notifyFlags", offsetof(kvm_run, notify.flags));
  // The exit union; KVM_EXIT_MEMORY_FAULT's fields (flags, gpa, size: three
  // u64s) are newer than some build machines' headers.
  set("exitUnion", offsetof(kvm_run, hw));
  set("kvmDirtyRegs", offsetof(kvm_run, kvm_dirty_regs));
  set("syncRegs", offsetof(kvm_run, s.regs.regs));  // kvm_regs: 18 u64s
  set("syncSregs", offsetof(kvm_run, s.regs.sregs));
  set("syncEvents", offsetof(kvm_run, s.regs.events));
  set("readyForInterruptInjection", offsetof(kvm_run, ready_for_interrupt_injection));
  set("ifFlag", offsetof(kvm_run, if_flag));
  set("cr8", offsetof(kvm_run, cr8));
  set("apicBase", offsetof(kvm_run, apic_base));
  set("requestInterruptWindow", offsetof(kvm_run, request_interrupt_window));
  return o;
}

}  // namespace nodekvm
