// A VM fd: memory slots (the one record of them), vCPU creation, VM-wide settings.
#pragma once

#include <napi.h>

#include <map>
#include <memory>
#include <vector>

#include "base/fd.h"

namespace nodekvm {

class Memory;
class RunTable;
class VcpuCore;

class Vm : public Napi::ObjectWrap<Vm> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, UniqueFd fd, size_t vcpuMmapSize);
  explicit Vm(const Napi::CallbackInfo& info);
  ~Vm() override;

  // Before every KVM_RUN: throws (and removes the slot) if a caller-owned
  // buffer behind a slot was detached or moved.
  void ValidateSlots(Napi::Env env);
  // The VM fd (-1 once closed), for vCPU ioctls that ask VM-wide caps.
  int fd() const { return fd_.get(); }
  // The dirty ring's bytes per vCPU (0: not enabled), for the vCPUs' harvest.
  uint32_t dirtyRingBytes() const { return dirtyRingBytes_; }

 private:
  struct Slot {
    uint32_t flags;
    uint64_t gpa;
    uint64_t size;
    uint64_t hva;
    uint64_t offset;                  // of the slot's first byte in the memory
    bool borrowed;                    // caller-owned buffer: check before each run
    Memory* memory;                   // alive through memoryRef
    Napi::ObjectReference memoryRef;  // lib's GuestMemory: keeps the memory alive while KVM maps it
    std::shared_ptr<int> pins;        // the memory's slot count
    std::shared_ptr<Mapping> mapping; // mapped memory: its pages, whatever finalizes first
  };

  static void TeardownHook(void* arg);

  int Fd(const char* syscall);
  Napi::Value CheckExtension(const Napi::CallbackInfo& info);
  void SetTssAddr(const Napi::CallbackInfo& info);
  void SetIdentityMapAddr(const Napi::CallbackInfo& info);
  Napi::Value SetUserMemoryRegion(const Napi::CallbackInfo& info);
  Napi::Value CreateVcpu(const Napi::CallbackInfo& info);
  Napi::Value Slots(const Napi::CallbackInfo& info);
  Napi::Value GetSlotGeneration(const Napi::CallbackInfo& info);
  void CreateIrqchip(const Napi::CallbackInfo& info);
  Napi::Value GetIrqchip(const Napi::CallbackInfo& info);
  void SetIrqchip(const Napi::CallbackInfo& info);
  Napi::Value IrqLine(const Napi::CallbackInfo& info);
  void SetGsiRouting(const Napi::CallbackInfo& info);
  void CreatePit2(const Napi::CallbackInfo& info);
  Napi::Value GetPit2(const Napi::CallbackInfo& info);
  void SetPit2(const Napi::CallbackInfo& info);
  Napi::Value GetClock(const Napi::CallbackInfo& info);
  void SetClock(const Napi::CallbackInfo& info);
  void SetMsrFilter(const Napi::CallbackInfo& info);
  Napi::Value CreateGuestMemfd(const Napi::CallbackInfo& info);
  void GetDirtyLog(const Napi::CallbackInfo& info);
  void ClearDirtyLog(const Napi::CallbackInfo& info);
  Napi::Value EnableCap(const Napi::CallbackInfo& info);
  Napi::Value GetStatsFd(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);
  void CloseAll();
  int DeleteSlot(uint32_t id);
  void SetBorrowedSlots(size_t n);

  UniqueFd fd_;
  size_t vcpuMmapSize_ = 0;
  std::map<uint32_t, Slot> slots_;
  uint64_t slotGeneration_ = 0;  // bumped on every change, so lib/ knows when to re-read slots()
  size_t borrowedSlots_ = 0;  // slots whose memory needs ValidateSlots (SetBorrowedSlots)
  std::vector<std::shared_ptr<VcpuCore>> vcpus_;
  napi_env hookEnv_ = nullptr;  // set while the teardown hook is registered
  std::shared_ptr<RunTable> runTable_;  // where its vCPUs are; outlives the environment's data

  // Eventfds and rings (eventfd.cc, rings.cc).
  void IoEventFd(const Napi::CallbackInfo& info);
  void IrqFd(const Napi::CallbackInfo& info);
  void CoalescedZone(const Napi::CallbackInfo& info);
  void EnableDirtyRing(const Napi::CallbackInfo& info);
  Napi::Value ResetDirtyRings(const Napi::CallbackInfo& info);
  Napi::Value GetDirtyRingBytes(const Napi::CallbackInfo& info);
  uint32_t dirtyRingBytes_ = 0;
};

}  // namespace nodekvm
