// External ArrayBuffers over memory the addon maps (guest memory, its
// windows, kvm_run), and detaching them whatever JavaScript did to them.
//
// Node 24's markAsUntransferable() gives an ArrayBuffer a V8 detach key.
// napi_detach_arraybuffer, and Node's teardown of an environment (it
// detaches every external buffer still alive), detach without the key and
// so abort the process. No Node-API call clears a key: ClearDetachKey
// calls V8's v8::ArrayBuffer::SetDetachKey, which the node binary
// exports, looked up at run time (where it is missing, keys stay).
#pragma once

#include <napi.h>

#include <cstddef>
#include <utility>
#include <vector>

namespace nodekvm {

// Every external ArrayBuffer the addon made in an environment, and every
// ArrayBuffer lib/ marked, weakly and each once. Node's teardown detaches
// them before any Node-API cleanup hook runs, so lib/ calls ClearKeys()
// from the process's 'exit' event.
class ExternalBuffers {
 public:
  void Track(Napi::ArrayBuffer ab);
  // Track(), unless the buffer is listed already (a type tag says so).
  void TrackOnce(Napi::ArrayBuffer ab);
  void ClearKeys(Napi::Env env);

 private:
  std::vector<Napi::Reference<Napi::ArrayBuffer>> refs_;
  size_t pruneAt_ = 64;
};

// The environment's ExternalBuffers (addon.cc).
ExternalBuffers& TrackedBuffers(Napi::Env env);

// An ArrayBuffer over [data, data + length) that JavaScript reads in
// place; `finalize(env, data)` runs when it is collected.
template <class Finalizer>
Napi::ArrayBuffer NewExternalBuffer(Napi::Env env, void* data, size_t length, Finalizer finalize) {
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, data, length, std::move(finalize));
  TrackedBuffers(env).Track(ab);
  return ab;
}

// Makes a buffer detachable again: clears its detach key, if V8's call is there.
void ClearDetachKey(napi_env env, napi_value arraybuffer);

// Whether a transfer() could detach the buffer (false for a
// WebAssembly.Memory's); true where V8's call is missing.
bool IsDetachable(napi_env env, napi_value arraybuffer);

// Detaches `ab` (an ArrayBuffer not yet detached), its detach key cleared first.
void DetachBuffer(Napi::ArrayBuffer ab);

}  // namespace nodekvm
