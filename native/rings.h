// The rings KVM shares with userspace (coalesced MMIO/PIO, dirty ring):
// their layouts for lib/core/rings.ts. The methods are Vm's and Vcpu's.
#pragma once

#include <napi.h>

namespace nodekvm {

Napi::Object RingLayouts(Napi::Env env);

}  // namespace nodekvm
