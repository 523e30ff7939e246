// Guest memory: anonymous mappings the addon owns, or caller-owned JS buffers.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "base/fd.h"
#include "base/table.h"

namespace nodekvm {

// Guest memory has no JavaScript wrapper: the environment's table owns it
// and lib/ names it by slot (base/table.h), as a VM's slots do.
class Memory {
 public:
  static constexpr const char* kSlotOf = "a GuestMemory's slot";
  // The binding's memory functions: allocate(size, thp) and
  // borrow(kind, source, view) give a slot; the others take one first.
  static Napi::Object DefineFunctions(Napi::Env env);
  // The memory a slot names, or an ERR_INVALID_ARG_TYPE naming `name`.
  static Memory* FromSlot(const Napi::Value& v, const char* name);
  Memory() = default;
  // A slot that maps this memory holds lib's GuestMemory, so its handle
  // cannot be collected meanwhile; refused all the same, for KVM must
  // never map freed pages.
  bool Releasable() const { return *pins_ == 0; }
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // False once the caller's buffer was detached or moved: KVM must then
  // stop using it.
  bool StillValid(Napi::Env env) const;
  bool NeedsValidation() const { return kind_ == Kind::kArrayBuffer || kind_ == Kind::kWasm; }
  // Counts a slot that maps this memory (and its pages, when the addon
  // mapped them); the slot gives both back with Unpin().
  std::shared_ptr<int> Pin() {
    ++*pins_;
    if (mapping_) ++mapping_->pins;
    return pins_;
  }
  static void Unpin(const std::shared_ptr<int>& pins, const std::shared_ptr<Mapping>& mapping) {
    --*pins;
    if (mapping) --mapping->pins;
  }
  // The addon mapping behind this memory: its own, or the one a caller's
  // buffer views (null for memory the addon did not map).
  std::shared_ptr<Mapping> mapping() const { return mapping_; }
  // The largest ArrayBuffer this Node can make (buffer.constants.MAX_LENGTH).
  static void SetMaxView(double bytes);

 private:
  enum class Kind { kMapped, kArrayBuffer, kShared, kWasm };

  void InitMapped(Napi::Env env, size_t size, int thp);
  void InitHugetlb(Napi::Env env, size_t size);
  void MakeBuffer(Napi::Env env);
  void Adopt(Napi::Env env, uint8_t* base, size_t size);
  void InitBorrowed(const Args& info);
  Napi::Value GetBuffer(const Args& info);
  Napi::Value GetSize(const Args& info);
  Napi::Value GetAddress(const Args& info);
  Napi::Value GetPins(const Args& info);
  Napi::Value GetKind(const Args& info);
  Napi::Value GetMarkable(const Args& info);
  Napi::Value GetClosed(const Args& info);
  Napi::Value View(const Args& info);
  void Close(const Args& info);

  Kind kind_ = Kind::kMapped;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t byteOffset_ = 0;    // of data_ in the caller's buffer (views)
  bool wasmSource_ = false;  // the source is a WebAssembly.Memory: read its .buffer
  bool markable_ = false;    // lib/ marks the source untransferable (InitBorrowed)
  std::shared_ptr<int> pins_ = std::make_shared<int>(0);  // slots that map this memory
  bool closed_ = false;
  std::shared_ptr<Mapping> mapping_;     // kMapped: ours; borrowed: the addon mapping it views, if any
  std::vector<Napi::Reference<Napi::ArrayBuffer>> windows_;  // weak: views made by View(), detached at close
  Napi::Reference<Napi::Value> buffer_;  // kMapped: our ArrayBuffer; else the caller's source
};

}  // namespace nodekvm
