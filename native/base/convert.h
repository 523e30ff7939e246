// Kernel structs <-> JavaScript objects, in one place. (Registers and the
// vCPU state structs are decoded in TypeScript from their bytes.)
#pragma once

#include <linux/kvm.h>
#include <napi.h>

#include "flex.h"

namespace nodekvm {

Napi::Object CpuidEntryToJs(Napi::Env env, const kvm_cpuid_entry2& e);
void CpuidEntryFromJs(const Napi::Object& o, kvm_cpuid_entry2& e, uint32_t index);

// MSRs as { index, value } with the value a bigint. The readers fill a
// kvm_msrs buffer from an array of indices or of entries.
Napi::Array MsrEntriesToJs(Napi::Env env, const kvm_msr_entry* entries, uint32_t count);
void MsrIndicesFromJs(const Napi::Value& indices, MsrsBuffer& msrs);
void MsrEntriesFromJs(const Napi::Value& entries, MsrsBuffer& msrs);

Napi::Object TranslationToJs(Napi::Env env, const kvm_translation& t);

// Offsets into struct kvm_run, from the kernel header this addon was built
// with, so that the exit decoder needs no hard-coded ABI.
Napi::Object RunLayout(Napi::Env env);

}  // namespace nodekvm
