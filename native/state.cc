#include "state.h"

#include <linux/kvm.h>

#include <cstddef>

#include "base/errors.h"
#include "base/flex.h"

namespace nodekvm {

namespace {
#define NODEKVM_STATE(name, get, set, type) \
  StateKind { name, #get, #set, static_cast<unsigned long>(get), static_cast<unsigned long>(set), sizeof(type) }

const StateKind kKinds[] = {
    NODEKVM_STATE("regs", KVM_GET_REGS, KVM_SET_REGS, kvm_regs),
    NODEKVM_STATE("sregs", KVM_GET_SREGS, KVM_SET_SREGS, kvm_sregs),
    NODEKVM_STATE("fpu", KVM_GET_FPU, KVM_SET_FPU, kvm_fpu),
    NODEKVM_STATE("lapic", KVM_GET_LAPIC, KVM_SET_LAPIC, kvm_lapic_state),
    StateKind{"xsave", "KVM_GET_XSAVE", "KVM_SET_XSAVE", KVM_GET_XSAVE_, KVM_SET_XSAVE_, sizeof(XsaveArea)},
    NODEKVM_STATE("xcrs", KVM_GET_XCRS, KVM_SET_XCRS, kvm_xcrs),
    NODEKVM_STATE("debugregs", KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, kvm_debugregs),
    NODEKVM_STATE("mpState", KVM_GET_MP_STATE, KVM_SET_MP_STATE, kvm_mp_state),
    NODEKVM_STATE("events", KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, kvm_vcpu_events),
};
#undef NODEKVM_STATE
}  // namespace

const StateKind& FindStateKind(Napi::Env env, const std::string& name) {
  for (const auto& k : kKinds) {
    if (name == k.name) return k;
  }
  throw ArgValueError(env, "kind", "must be one of regs, sregs, fpu, lapic, xsave, xcrs, debugregs, mpState, events");
}

Napi::Object StateLayouts(Napi::Env env) {
  Napi::Object all = Napi::Object::New(env);
  auto layout = [&](const char* name, size_t size) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("size", Napi::Number::New(env, static_cast<double>(size)));
    all.Set(name, o);
    return [o, env](const char* field, size_t offset) mutable {
      o.Set(field, Napi::Number::New(env, static_cast<double>(offset)));
    };
  };
  auto fpu = layout("fpu", sizeof(kvm_fpu));
  fpu("fpr", offsetof(kvm_fpu, fpr));
  fpu("fcw", offsetof(kvm_fpu, fcw));
  fpu("fsw", offsetof(kvm_fpu, fsw));
  fpu("ftwx", offsetof(kvm_fpu, ftwx));
  fpu("lastOpcode", offsetof(kvm_fpu, last_opcode));
  fpu("lastIp", offsetof(kvm_fpu, last_ip));
  fpu("lastDp", offsetof(kvm_fpu, last_dp));
  fpu("xmm", offsetof(kvm_fpu, xmm));
  fpu("mxcsr", offsetof(kvm_fpu, mxcsr));
  auto dbg = layout("debugregs", sizeof(kvm_debugregs));
  dbg("db", offsetof(kvm_debugregs, db));
  dbg("dr6", offsetof(kvm_debugregs, dr6));
  dbg("dr7", offsetof(kvm_debugregs, dr7));
  dbg("flags", offsetof(kvm_debugregs, flags));
  auto xcrs = layout("xcrs", sizeof(kvm_xcrs));
  xcrs("nrXcrs", offsetof(kvm_xcrs, nr_xcrs));
  xcrs("flags", offsetof(kvm_xcrs, flags));
  xcrs("xcrs", offsetof(kvm_xcrs, xcrs));
  xcrs("xcrSize", sizeof(kvm_xcr));
  xcrs("xcrIndex", offsetof(kvm_xcr, xcr));
  xcrs("xcrValue", offsetof(kvm_xcr, value));
  xcrs("max", KVM_MAX_XCRS);
  auto mp = layout("mpState", sizeof(kvm_mp_state));
  mp("mpState", offsetof(kvm_mp_state, mp_state));
  auto ev = layout("events", sizeof(kvm_vcpu_events));
  ev("exceptionInjected", offsetof(kvm_vcpu_events, exception.injected));
  ev("exceptionNr", offsetof(kvm_vcpu_events, exception.nr));
  ev("exceptionHasErrorCode", offsetof(kvm_vcpu_events, exception.has_error_code));
  ev("exceptionPending", offsetof(kvm_vcpu_events, exception.pending));
  ev("exceptionErrorCode", offsetof(kvm_vcpu_events, exception.error_code));
  ev("interruptInjected", offsetof(kvm_vcpu_events, interrupt.injected));
  ev("interruptNr", offsetof(kvm_vcpu_events, interrupt.nr));
  ev("interruptSoft", offsetof(kvm_vcpu_events, interrupt.soft));
  ev("interruptShadow", offsetof(kvm_vcpu_events, interrupt.shadow));
  ev("nmiInjected", offsetof(kvm_vcpu_events, nmi.injected));
  ev("nmiPending", offsetof(kvm_vcpu_events, nmi.pending));
  ev("nmiMasked", offsetof(kvm_vcpu_events, nmi.masked));
  ev("sipiVector", offsetof(kvm_vcpu_events, sipi_vector));
  ev("flags", offsetof(kvm_vcpu_events, flags));
  ev("smiSmm", offsetof(kvm_vcpu_events, smi.smm));
  ev("smiPending", offsetof(kvm_vcpu_events, smi.pending));
  ev("smiInsideNmi", offsetof(kvm_vcpu_events, smi.smm_inside_nmi));
  ev("smiLatchedInit", offsetof(kvm_vcpu_events, smi.latched_init));
  ev("tripleFaultPending", offsetof(kvm_vcpu_events, triple_fault.pending));
  ev("exceptionHasPayload", offsetof(kvm_vcpu_events, exception_has_payload));
  ev("exceptionPayload", offsetof(kvm_vcpu_events, exception_payload));
  auto pic = layout("pic", sizeof(kvm_pic_state));
  pic("lastIrr", offsetof(kvm_pic_state, last_irr));
  pic("irr", offsetof(kvm_pic_state, irr));
  pic("imr", offsetof(kvm_pic_state, imr));
  pic("isr", offsetof(kvm_pic_state, isr));
  pic("priorityAdd", offsetof(kvm_pic_state, priority_add));
  pic("irqBase", offsetof(kvm_pic_state, irq_base));
  pic("elcr", offsetof(kvm_pic_state, elcr));
  pic("initState", offsetof(kvm_pic_state, init_state));
  pic("autoEoi", offsetof(kvm_pic_state, auto_eoi));
  auto ioapic = layout("ioapic", sizeof(kvm_ioapic_state));
  ioapic("baseAddress", offsetof(kvm_ioapic_state, base_address));
  ioapic("ioregsel", offsetof(kvm_ioapic_state, ioregsel));
  ioapic("id", offsetof(kvm_ioapic_state, id));
  ioapic("irr", offsetof(kvm_ioapic_state, irr));
  ioapic("redirtbl", offsetof(kvm_ioapic_state, redirtbl));
  ioapic("pins", KVM_IOAPIC_NUM_PINS);
  auto pit = layout("pit2", sizeof(kvm_pit_state2));
  pit("channels", offsetof(kvm_pit_state2, channels));
  pit("channelSize", sizeof(kvm_pit_channel_state));
  pit("count", offsetof(kvm_pit_channel_state, count));
  pit("latchedCount", offsetof(kvm_pit_channel_state, latched_count));
  pit("status", offsetof(kvm_pit_channel_state, status));
  pit("rwMode", offsetof(kvm_pit_channel_state, rw_mode));
  pit("mode", offsetof(kvm_pit_channel_state, mode));
  pit("bcd", offsetof(kvm_pit_channel_state, bcd));
  pit("gate", offsetof(kvm_pit_channel_state, gate));
  pit("countLoadTime", offsetof(kvm_pit_channel_state, count_load_time));
  pit("flags", offsetof(kvm_pit_state2, flags));
  auto clock = layout("clock", sizeof(kvm_clock_data));
  clock("clock", offsetof(kvm_clock_data, clock));
  clock("flags", offsetof(kvm_clock_data, flags));
  clock("realtime", offsetof(kvm_clock_data, realtime));
  clock("hostTsc", offsetof(kvm_clock_data, host_tsc));
  layout("irqchip", sizeof(kvm_irqchip) - offsetof(kvm_irqchip, chip));
  layout("lapic", sizeof(kvm_lapic_state));
  layout("xsave", sizeof(XsaveArea));
  layout("regs", sizeof(kvm_regs));
  auto sregs = layout("sregs", sizeof(kvm_sregs));
  sregs("cs", offsetof(kvm_sregs, cs));
  sregs("ds", offsetof(kvm_sregs, ds));
  sregs("es", offsetof(kvm_sregs, es));
  sregs("fs", offsetof(kvm_sregs, fs));
  sregs("gs", offsetof(kvm_sregs, gs));
  sregs("ss", offsetof(kvm_sregs, ss));
  sregs("tr", offsetof(kvm_sregs, tr));
  sregs("ldt", offsetof(kvm_sregs, ldt));
  sregs("gdt", offsetof(kvm_sregs, gdt));
  sregs("idt", offsetof(kvm_sregs, idt));
  sregs("cr0", offsetof(kvm_sregs, cr0));
  sregs("cr2", offsetof(kvm_sregs, cr2));
  sregs("cr3", offsetof(kvm_sregs, cr3));
  sregs("cr4", offsetof(kvm_sregs, cr4));
  sregs("cr8", offsetof(kvm_sregs, cr8));
  sregs("efer", offsetof(kvm_sregs, efer));
  sregs("apicBase", offsetof(kvm_sregs, apic_base));
  sregs("interruptBitmap", offsetof(kvm_sregs, interrupt_bitmap));
  auto segment = layout("segment", sizeof(kvm_segment));
  segment("base", offsetof(kvm_segment, base));
  segment("limit", offsetof(kvm_segment, limit));
  segment("selector", offsetof(kvm_segment, selector));
  segment("type", offsetof(kvm_segment, type));
  segment("present", offsetof(kvm_segment, present));
  segment("dpl", offsetof(kvm_segment, dpl));
  segment("db", offsetof(kvm_segment, db));
  segment("s", offsetof(kvm_segment, s));
  segment("l", offsetof(kvm_segment, l));
  segment("g", offsetof(kvm_segment, g));
  segment("avl", offsetof(kvm_segment, avl));
  segment("unusable", offsetof(kvm_segment, unusable));
  auto dtable = layout("dtable", sizeof(kvm_dtable));
  dtable("base", offsetof(kvm_dtable, base));
  dtable("limit", offsetof(kvm_dtable, limit));
  return all;
}

}  // namespace nodekvm
