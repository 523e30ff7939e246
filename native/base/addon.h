// Per-environment state shared by the native classes.
#pragma once

#include <napi.h>

#include <cstddef>
#include <memory>

namespace nodekvm {

template <class T>
class Table;
class ExternalBuffers;
class Memory;
class Vcpu;
class Vm;

struct AddonData {
  Napi::FunctionReference errorFactory;  // set by lib/core/errors.ts
  Napi::FunctionReference noop;  // called to learn whether JS can still run
  Napi::FunctionReference wasmBuffer;  // WebAssembly.Memory.prototype's `buffer` getter, taken at load
  std::shared_ptr<Table<Vcpu>> runTable;  // the vCPUs (vcpu.h)
  std::shared_ptr<Table<Vm>> vmTable;     // the VMs (vm.h)
  std::shared_ptr<Table<Memory>> memoryTable;  // guest memory (memory.h)
  std::unique_ptr<ExternalBuffers> buffers;     // its ArrayBuffers, and kvm_run's (buffers.h)
};

AddonData& Data(Napi::Env env);

size_t PageSize();

}  // namespace nodekvm
