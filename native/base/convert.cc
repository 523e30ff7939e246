#include "convert.h"

#include <cstddef>
#include <string>
#include <utility>

#include "args.h"

namespace nodekvm {

namespace {

using RegField = __u64 kvm_regs::*;
const std::pair<const char*, RegField> kRegs[] = {
    {"rax", &kvm_regs::rax}, {"rbx", &kvm_regs::rbx}, {"rcx", &kvm_regs::rcx},
    {"rdx", &kvm_regs::rdx}, {"rsi", &kvm_regs::rsi}, {"rdi", &kvm_regs::rdi},
    {"rsp", &kvm_regs::rsp}, {"rbp", &kvm_regs::rbp}, {"r8", &kvm_regs::r8},
    {"r9", &kvm_regs::r9},   {"r10", &kvm_regs::r10}, {"r11", &kvm_regs::r11},
    {"r12", &kvm_regs::r12}, {"r13", &kvm_regs::r13}, {"r14", &kvm_regs::r14},
    {"r15", &kvm_regs::r15}, {"rip", &kvm_regs::rip}, {"rflags", &kvm_regs::rflags},
};

using SegField = kvm_segment kvm_sregs::*;
const std::pair<const char*, SegField> kSegments[] = {
    {"cs", &kvm_sregs::cs}, {"ds", &kvm_sregs::ds}, {"es", &kvm_sregs::es},
    {"fs", &kvm_sregs::fs}, {"gs", &kvm_sregs::gs}, {"ss", &kvm_sregs::ss},
    {"tr", &kvm_sregs::tr}, {"ldt", &kvm_sregs::ldt},
};

// Each bit field with the largest value it holds.
struct SegmentBit {
  const char* name;
  __u8 kvm_segment::*field;
  int max;
};
const SegmentBit kSegmentBits[] = {
    {"type", &kvm_segment::type, 15}, {"present", &kvm_segment::present, 1},
    {"dpl", &kvm_segment::dpl, 3},    {"db", &kvm_segment::db, 1},
    {"s", &kvm_segment::s, 1},        {"l", &kvm_segment::l, 1},
    {"g", &kvm_segment::g, 1},        {"avl", &kvm_segment::avl, 1},
    {"unusable", &kvm_segment::unusable, 1},
};

using CrField = __u64 kvm_sregs::*;
const std::pair<const char*, CrField> kControl[] = {
    {"cr0", &kvm_sregs::cr0}, {"cr2", &kvm_sregs::cr2},   {"cr3", &kvm_sregs::cr3},
    {"cr4", &kvm_sregs::cr4}, {"cr8", &kvm_sregs::cr8},   {"efer", &kvm_sregs::efer},
    {"apicBase", &kvm_sregs::apic_base},
};

using CpuidField = __u32 kvm_cpuid_entry2::*;
const std::pair<const char*, CpuidField> kCpuid[] = {
    {"function", &kvm_cpuid_entry2::function}, {"index", &kvm_cpuid_entry2::index},
    {"flags", &kvm_cpuid_entry2::flags},       {"eax", &kvm_cpuid_entry2::eax},
    {"ebx", &kvm_cpuid_entry2::ebx},           {"ecx", &kvm_cpuid_entry2::ecx},
    {"edx", &kvm_cpuid_entry2::edx},
};

Napi::BigInt U64(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

Napi::Object SegmentToJs(Napi::Env env, const kvm_segment& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("base", U64(env, s.base));
  o.Set("limit", Napi::Number::New(env, s.limit));
  o.Set("selector", Napi::Number::New(env, s.selector));
  for (const auto& bit : kSegmentBits) o.Set(bit.name, Napi::Number::New(env, s.*bit.field));
  return o;
}

void SegmentFromJs(const Napi::Object& o, kvm_segment& s, const std::string& name) {
  if (o.Has("base")) s.base = ReadU64(o.Get("base"), name + ".base");
  if (o.Has("limit")) s.limit = ReadU32(o.Get("limit"), name + ".limit");
  if (o.Has("selector")) s.selector = static_cast<__u16>(ReadInt(o.Get("selector"), name + ".selector", 0, 0xffff));
  for (const auto& bit : kSegmentBits) {
    if (o.Has(bit.name)) s.*bit.field = static_cast<__u8>(ReadInt(o.Get(bit.name), name + "." + bit.name, 0, bit.max));
  }
}

Napi::Object DtableToJs(Napi::Env env, const kvm_dtable& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("base", U64(env, t.base));
  o.Set("limit", Napi::Number::New(env, t.limit));
  return o;
}

void DtableFromJs(const Napi::Object& o, kvm_dtable& t, const std::string& name) {
  if (o.Has("base")) t.base = ReadU64(o.Get("base"), name + ".base");
  if (o.Has("limit")) t.limit = static_cast<__u16>(ReadInt(o.Get("limit"), name + ".limit", 0, 0xffff));
}

}  // namespace

void RegsFromJs(const Napi::Object& o, kvm_regs& r) {
  for (const auto& [name, field] : kRegs) {
    if (o.Has(name)) r.*field = ReadU64(o.Get(name), std::string("regs.") + name);
  }
}

Napi::Object SregsToJs(Napi::Env env, const kvm_sregs& s) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [name, field] : kSegments) o.Set(name, SegmentToJs(env, s.*field));
  o.Set("gdt", DtableToJs(env, s.gdt));
  o.Set("idt", DtableToJs(env, s.idt));
  for (const auto& [name, field] : kControl) o.Set(name, U64(env, s.*field));
  Napi::Array bitmap = Napi::Array::New(env, 4);
  for (uint32_t i = 0; i < 4; i++) bitmap.Set(i, U64(env, s.interrupt_bitmap[i]));
  o.Set("interruptBitmap", bitmap);
  return o;
}

void SregsFromJs(const Napi::Object& o, kvm_sregs& s) {
  for (const auto& [name, field] : kSegments) {
    std::string n = std::string("sregs.") + name;
    if (o.Has(name)) SegmentFromJs(ReadObject(o.Get(name), n), s.*field, n);
  }
  if (o.Has("gdt")) DtableFromJs(ReadObject(o.Get("gdt"), "sregs.gdt"), s.gdt, "sregs.gdt");
  if (o.Has("idt")) DtableFromJs(ReadObject(o.Get("idt"), "sregs.idt"), s.idt, "sregs.idt");
  for (const auto& [name, field] : kControl) {
    if (o.Has(name)) s.*field = ReadU64(o.Get(name), std::string("sregs.") + name);
  }
  if (o.Has("interruptBitmap")) {
    Napi::Array bitmap = ReadArray(o.Get("interruptBitmap"), "sregs.interruptBitmap", 4);
    for (uint32_t i = 0; i < bitmap.Length(); i++) {
      s.interrupt_bitmap[i] = ReadU64(bitmap.Get(i), "sregs.interruptBitmap[" + std::to_string(i) + "]");
    }
  }
}

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
  set("readyForInterruptInjection", offsetof(kvm_run, ready_for_interrupt_injection));
  set("ifFlag", offsetof(kvm_run, if_flag));
  set("cr8", offsetof(kvm_run, cr8));
  set("apicBase", offsetof(kvm_run, apic_base));
  set("requestInterruptWindow", offsetof(kvm_run, request_interrupt_window));
  return o;
}

}  // namespace nodekvm
